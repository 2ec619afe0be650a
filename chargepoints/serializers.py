from __future__ import annotations

from typing import Any

from rest_framework import serializers

from chargepoints.identity import charge_point_id_validate
from chargepoints.models import (
    HEARTBEAT_INTERVAL_MAX,
    HEARTBEAT_INTERVAL_MIN,
    ChargePoint,
    Connector,
    LifecycleState,
    OcppVersion,
    SecurityEvent,
)
from kernel.serializers import UnknownFieldsRefused


class ChargePointSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    charge_point_id = serializers.CharField(
        max_length=48,
        validators=[charge_point_id_validate],
        trim_whitespace=False,  # " CP-9" is refused, not registered as "CP-9" while the client keeps " CP-9"
    )
    heartbeat_interval = serializers.IntegerField(
        min_value=HEARTBEAT_INTERVAL_MIN, max_value=HEARTBEAT_INTERVAL_MAX, required=False
    )
    ocpp_version = serializers.ChoiceField(choices=OcppVersion.choices, required=False, allow_blank=True)
    lifecycle_state = serializers.ChoiceField(choices=LifecycleState.choices, required=False)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_null=True,
        min_length=16,
        max_length=40,
        trim_whitespace=False,  # the password as sent, as the admin and OCPP set it: a trimmed one refused the charger
        help_text="HTTP Basic password the charger must present (OCPP security profile 1/2). null removes it.",
    )
    has_password = serializers.SerializerMethodField()
    previous_heartbeat_interval = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The interval (s) the charger may still heartbeat at until it takes heartbeat_interval (a push"
        " answered Accepted, or its next boot); null when it has. The offline sweep waits 2x the longest of"
        " heartbeat_interval, this, reported_heartbeat_interval and unconfirmed_heartbeat_interval.",
    )
    reported_heartbeat_interval = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The interval (s) the charger's last configuration read says it keeps instead of"
        " heartbeat_interval (a read-only key); null when it keeps heartbeat_interval. Boots leave it.",
    )
    unconfirmed_heartbeat_interval = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The interval (s) a push whose answer did not come back (a timeout) may have set: the"
        " charger keeps it or heartbeat_interval, which stays until the configuration read owed says (a read"
        " giving it makes it heartbeat_interval). The offline sweep waits for it meanwhile when longer.",
    )

    class Meta:
        model = ChargePoint
        fields = [
            "charge_point_id",
            "ocpp_version",
            "lifecycle_state",
            "heartbeat_interval",
            "previous_heartbeat_interval",
            "reported_heartbeat_interval",
            "unconfirmed_heartbeat_interval",
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "meter_type",
            "meter_serial_number",
            "connected",
            "last_seen",
            "last_heartbeat",
            "last_boot_at",
            "offline_since",
            "has_password",
            "password",
            "tariff",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "vendor",
            "model",
            "serial_number",
            "firmware_version",
            "meter_type",
            "meter_serial_number",
            "connected",
            "last_seen",
            "last_heartbeat",
            "last_boot_at",
            "offline_since",
            "created_at",
            "updated_at",
        ]
        # The tariff's field is the one the model's foreign key makes (a primary key of billing's Tariff).
        extra_kwargs = {
            "tariff": {
                "required": False,
                "allow_null": True,
                "help_text": "The charger's own tariff (its id); null: the default tariff applies.",
            }
        }

    def get_has_password(self, charge_point: ChargePoint) -> bool:
        return bool(charge_point.password_hash)


class ChargePointUpdateSerializer(ChargePointSerializer):
    """On update the id is fixed: it is the charger's identity in its URL. The same id may be sent
    back (a PUT of what was read); another one is a 400 naming ``charge_point_id``."""

    charge_point_id = serializers.CharField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        assert self.instance is not None
        if attrs.pop("charge_point_id", self.instance.charge_point_id) != self.instance.charge_point_id:
            raise serializers.ValidationError(
                {"charge_point_id": ["The id of a registered charge point cannot be changed; register a new one."]}
            )
        version = attrs.get("ocpp_version", self.instance.ocpp_version)
        if self.instance.connected and version != self.instance.ocpp_version:
            raise serializers.ValidationError(
                {
                    "ocpp_version": [
                        f"The charge point is connected over OCPP {self.instance.ocpp_version}: its connection sets it."
                    ]
                }
            )
        return super().validate(attrs)


class HeartbeatIntervalPushSerializer(serializers.Serializer):
    """The command that pushed heartbeat_interval to the connected charger (1.6 ChangeConfiguration
    HeartbeatInterval, 2.0.1 SetVariables OCPPCommCtrlr.HeartbeatInterval): a changed one, or the
    stored one given again to a charger known not to keep it."""

    command_id = serializers.UUIDField()
    state = serializers.CharField(
        help_text="accepted, reboot_required or rejected; or invalid_response, call_error, timeout, not_connected."
    )
    response = serializers.JSONField(allow_null=True, help_text="The charger's answer in snake_case.")


class ChargePointUpdatedSerializer(ChargePointUpdateSerializer):
    """The answer to a PUT or PATCH (the schema's; the view adds the push to the charger's fields)."""

    heartbeat_interval_push = HeartbeatIntervalPushSerializer(
        required=False,  # answered only when the interval was pushed (read-only fields are documented required)
        allow_null=True,
        help_text=(
            "Only when heartbeat_interval changed, or was given again while the charger is known not to keep it"
            " (reported_heartbeat_interval or previous_heartbeat_interval set): the push to the charger, null"
            " when it is not connected."
        ),
    )

    class Meta(ChargePointUpdateSerializer.Meta):
        fields = [*ChargePointUpdateSerializer.Meta.fields, "heartbeat_interval_push"]


class ConnectorSerializer(serializers.ModelSerializer):
    """A connector as its last StatusNotification told it; answered only, every field always
    (read-only: the schema lists each as required)."""

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
        read_only_fields = fields


class SecurityEventSerializer(serializers.ModelSerializer):
    """A SecurityEventNotification: ``type`` and ``tech_info`` as the charger sent them (``tech_info``
    null when none), ``timestamp`` by its clock, ``received_at`` by the CSMS's."""

    type = serializers.CharField(source="event_type")
    tech_info = serializers.SerializerMethodField()

    class Meta:
        model = SecurityEvent
        fields = ["type", "timestamp", "tech_info", "received_at"]

    def get_tech_info(self, event: SecurityEvent) -> str | None:
        return event.tech_info or None


class ConnectionStatusSerializer(serializers.ModelSerializer):
    """Exactly the fields of the public docs page, each always answered (read-only: the schema
    lists each as required; ``last_heartbeat`` and ``ocpp_version`` are null until known)."""

    ocpp_version = serializers.SerializerMethodField()

    class Meta:
        model = ChargePoint
        fields = ["charge_point_id", "connected", "last_heartbeat", "ocpp_version"]
        read_only_fields = fields

    def get_ocpp_version(self, charge_point: ChargePoint) -> str | None:
        return charge_point.ocpp_version or None
