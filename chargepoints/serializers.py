from __future__ import annotations

from django.core.validators import RegexValidator
from rest_framework import serializers

from chargepoints.models import ChargePoint, Connector, LifecycleState, OcppVersion

charge_point_id_validator = RegexValidator(
    r"^[A-Za-z0-9._:@+*\-]{1,48}$",
    "Use 1 to 48 letters, digits or . _ : @ + * - (it becomes part of the charger's URL).",
)


class ChargePointSerializer(serializers.ModelSerializer):
    charge_point_id = serializers.CharField(max_length=48, validators=[charge_point_id_validator])
    heartbeat_interval = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    ocpp_version = serializers.ChoiceField(choices=OcppVersion.choices, required=False, allow_blank=True)
    lifecycle_state = serializers.ChoiceField(choices=LifecycleState.choices, required=False)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_null=True,
        min_length=16,
        max_length=40,
        help_text="HTTP Basic password the charger must present (OCPP security profile 1/2). "
        "null removes it.",
    )
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = ChargePoint
        fields = [
            "charge_point_id",
            "ocpp_version",
            "lifecycle_state",
            "heartbeat_interval",
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "connected",
            "last_seen",
            "last_heartbeat",
            "last_boot_at",
            "offline_since",
            "has_password",
            "password",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "connected",
            "last_seen",
            "last_heartbeat",
            "last_boot_at",
            "offline_since",
            "created_at",
            "updated_at",
        ]

    def get_has_password(self, charge_point: ChargePoint) -> bool:
        return bool(charge_point.password_hash)


class ChargePointUpdateSerializer(ChargePointSerializer):
    """On update the id is fixed: it is the charger's identity in its URL."""

    charge_point_id = serializers.CharField(read_only=True)


class ConnectorSerializer(serializers.ModelSerializer):
    class Meta:
        model = Connector
        fields = [
            "connector_id",
            "evse_id",
            "status",
            "error_code",
            "info",
            "vendor_id",
            "vendor_error_code",
            "status_timestamp",
            "updated_at",
        ]


class ConnectionStatusSerializer(serializers.ModelSerializer):
    """Exactly the fields of the public docs page."""

    ocpp_version = serializers.SerializerMethodField()

    class Meta:
        model = ChargePoint
        fields = ["charge_point_id", "connected", "last_heartbeat", "ocpp_version"]

    def get_ocpp_version(self, charge_point: ChargePoint) -> str | None:
        return charge_point.ocpp_version or None
