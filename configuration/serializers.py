from __future__ import annotations

from typing import Any

from rest_framework import serializers

from configuration.models import (
    AttributeType,
    ConfigurationKey,
    DeviceModelAttribute,
    DeviceModelReport,
    DeviceModelVariable,
)
from kernel.serializers import UnknownFieldsRefused


class ConfigurationKeySerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = ConfigurationKey
        fields = [
            "key",
            "value",
            "readonly",
            "unknown",
            "pending_value",
            "unconfirmed_value",
            "learned_from",
            "learned_at",
            "command_id",
        ]
        read_only_fields = fields


class DeviceModelAttributeSerializer(serializers.ModelSerializer):
    command_id = serializers.UUIDField(allow_null=True)

    class Meta:
        model = DeviceModelAttribute
        fields = [
            "type",
            "value",
            "mutability",
            "persistent",
            "constant",
            "pending_value",
            "unconfirmed_value",
            "learned_from",
            "report_request_id",
            "learned_at",
            "command_id",
        ]
        read_only_fields = fields


class DeviceModelVariableSerializer(serializers.ModelSerializer):
    component = serializers.DictField(read_only=True)
    variable = serializers.DictField(read_only=True)
    attributes = DeviceModelAttributeSerializer(many=True)

    class Meta:
        model = DeviceModelVariable
        fields = ["component", "variable", "characteristics", "attributes", "learned_at"]
        read_only_fields = fields


class DeviceModelReportSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeviceModelReport
        fields = [
            "request_id",
            "parts_received",
            "variables_reported",
            "complete",
            "generated_at",
            "started_at",
            "completed_at",
        ]
        read_only_fields = fields


class KeyChangeSerializer(UnknownFieldsRefused, serializers.Serializer):
    key = serializers.CharField(max_length=50)
    value = serializers.CharField(max_length=500, allow_blank=True, trim_whitespace=False)


class EvseSerializer(UnknownFieldsRefused, serializers.Serializer):
    id = serializers.IntegerField(min_value=0)
    connector_id = serializers.IntegerField(min_value=0, required=False)


class ComponentSerializer(UnknownFieldsRefused, serializers.Serializer):
    name = serializers.CharField(max_length=50)
    instance = serializers.CharField(max_length=50, required=False)
    evse = EvseSerializer(required=False)


class VariableSerializer(UnknownFieldsRefused, serializers.Serializer):
    name = serializers.CharField(max_length=50)
    instance = serializers.CharField(max_length=50, required=False)


class VariableChangeSerializer(UnknownFieldsRefused, serializers.Serializer):
    component = ComponentSerializer()
    variable = VariableSerializer()
    attribute_type = serializers.ChoiceField(choices=AttributeType.values, required=False)
    value = serializers.CharField(max_length=1000, allow_blank=True, trim_whitespace=False)


class ConfigurationChangeSerializer(UnknownFieldsRefused, serializers.Serializer):
    """1.6: ``keys``; 2.0.1: ``variables``; one of the two, matching the charger's version."""

    keys = KeyChangeSerializer(many=True, required=False, allow_empty=False)
    variables = VariableChangeSerializer(many=True, required=False, allow_empty=False)

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        expected = "keys" if self.context["ocpp_version"] == "1.6" else "variables"
        other = "variables" if expected == "keys" else "keys"
        if other in data:
            raise serializers.ValidationError(
                {other: [f"This charge point speaks OCPP {self.context['ocpp_version']}; send {expected}."]}
            )
        if expected not in data:
            raise serializers.ValidationError({expected: ["This field is required."]})
        return data
