from rest_framework import serializers

from commands.models import Command


class CommandSerializer(serializers.ModelSerializer):
    charge_point_id = serializers.CharField(source="charge_point_identity")
    requested_by = serializers.CharField()
    warnings = serializers.ListField(
        child=serializers.CharField(),
        help_text="What was sent anyway: a remote start for an id tag the CSMS does not know or would not "
        "accept (Invalid, Blocked, Expired), a charging profile that replaces an installed one.",
    )

    class Meta:
        model = Command
        fields = [
            "id",
            "charge_point_id",
            "ocpp_version",
            "command",
            "action",
            "request",
            "state",
            "response",
            "error_code",
            "error_description",
            "error_details",
            "response_violations",
            "requested_by",
            "idempotency_key",
            "created_at",
            "completed_at",
            "latency_ms",
            "warnings",
        ]
        read_only_fields = fields
