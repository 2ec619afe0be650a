from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework import serializers

from kernel.schemas import INT32_RANGE
from kernel.serializers import UnknownFieldsRefused
from sites.models import AllocationSnapshot, Site, SiteMember

_AMPS: dict[str, Any] = {"max_digits": 8, "decimal_places": 1, "min_value": Decimal(0)}


class SiteSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = [
            "id",
            "name",
            "phases",
            "voltage_v",
            "capacity_a",
            "capacity_w",
            "base_load_a",
            "live_base_load_a",
            "live_base_load_at",
            "min_current_a",
            "failsafe_current_a",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "live_base_load_a", "live_base_load_at", "created_at", "updated_at"]

    def validate_voltage_v(self, value: Decimal) -> Decimal:
        if value <= 0:
            raise serializers.ValidationError("The voltage (phase to neutral) must be positive.")
        return value


class ConnectorMaximumSerializer(UnknownFieldsRefused, serializers.Serializer):
    connector_id = serializers.IntegerField(
        min_value=0, max_value=INT32_RANGE[-1], help_text="1.6 connectorId or 2.0.1 evseId."
    )
    max_current_a = serializers.DecimalField(**_AMPS)


class SiteMemberSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    charge_point_id = serializers.CharField(source="charge_point.charge_point_id", max_length=48)
    connector_maximums = ConnectorMaximumSerializer(many=True, required=False)

    class Meta:
        model = SiteMember
        fields = [
            "id",
            "charge_point_id",
            "max_current_a",
            "phases",
            "priority",
            "connector_maximums",
            "smart_charging_flag",
            "flagged_at",
            "created_at",
        ]
        read_only_fields = ["id", "flagged_at", "created_at"]

    def validate_smart_charging_flag(self, value: str) -> str:
        # The flag it holds may be sent back (a PATCH of what was read): it is kept.
        if value and (self.instance is None or value != self.instance.smart_charging_flag):
            raise serializers.ValidationError('Only clearing the flag ("") is allowed; the engine sets it.')
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """On a change, what was read may be sent back: the member's own charger and the flag it
        holds are no change (dropped); another charger is the view's 400."""
        if self.instance is not None:
            if attrs.get("charge_point", {}).get("charge_point_id") == self.instance.charge_point.charge_point_id:
                del attrs["charge_point"]
            if attrs.get("smart_charging_flag"):
                del attrs["smart_charging_flag"]
        return attrs

    def validate_connector_maximums(self, value: list[dict[str, Any]]) -> dict[int, Decimal]:
        ids = [item["connector_id"] for item in value]
        if len(set(ids)) != len(ids):
            raise serializers.ValidationError("Each connector_id may appear once.")
        return {item["connector_id"]: item["max_current_a"] for item in value}

    def to_representation(self, instance: SiteMember) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["connector_maximums"] = [
            {"connector_id": m.connector_id, "max_current_a": str(m.max_current_a)}
            # all(): a member list prefetches them (one query for the site, not one per member)
            for m in sorted(instance.connector_maximums.all(), key=lambda maximum: maximum.connector_id)
        ]
        return data


class BaseLoadSerializer(UnknownFieldsRefused, serializers.Serializer):
    load_a = serializers.ListField(
        child=serializers.DecimalField(**_AMPS), min_length=1, max_length=3, help_text="Measured load, A per phase."
    )


class AllocationSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = AllocationSnapshot
        fields = ["at", "capacity_a", "base_load_a", "limits_sum_a", "measured_a", "limits"]


class AllocationSessionSerializer(serializers.Serializer):
    """A session's limit in ``GET /sites/{id}/allocation/`` (the schema of that answer)."""

    transaction_id = serializers.IntegerField()
    charge_point_id = serializers.CharField()
    limit_a = serializers.CharField(help_text="The limit it holds, A (a decimal string).")
    draw_a = serializers.CharField(allow_null=True, help_text="What it draws, A (a decimal string; null: unknown).")
    steered = serializers.BooleanField(help_text="Whether the CSMS may change its limit.")


class AllocationSerializer(serializers.Serializer):
    """``GET /sites/{id}/allocation/``: the limits the site's sessions hold now and the history, newest first."""

    sessions = AllocationSessionSerializer(many=True)
    history = AllocationSnapshotSerializer(many=True)
