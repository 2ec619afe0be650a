from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator
from django.db.models import Model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import BillingRecord, Tariff
from chargepoints import selectors
from chargepoints.identity import charge_point_id_validate
from chargepoints.metering import wh_number
from chargepoints.models import (
    AuthorizationStatus,
    ChargePoint,
    Connector,
    IdTag,
    LifecycleState,
    MeterSample,
    OcppVersion,
    Transaction,
    TransactionStatus,
)
from kernel.api_errors import ApiError


class ChargePointSerializer(serializers.ModelSerializer):
    charge_point_id = serializers.CharField(max_length=48, validators=[charge_point_id_validate])
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
    tariff = serializers.PrimaryKeyRelatedField(
        queryset=Tariff.objects.all(),
        required=False,
        allow_null=True,
        help_text="The charger's own tariff (its id); null: the default tariff applies.",
    )

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
            "tariff",
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
    """On update the id is fixed: it is the charger's identity in its URL. The same id may be sent
    back (a PUT of what was read); another one is a 400 naming ``charge_point_id``."""

    charge_point_id = serializers.CharField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        assert self.instance is not None
        if attrs.pop("charge_point_id", self.instance.charge_point_id) != self.instance.charge_point_id:
            raise serializers.ValidationError(
                {"charge_point_id": ["The id of a registered charge point cannot be changed; register a new one."]}
            )
        return super().validate(attrs)


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


# --- Numbers --------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.NUMBER)
class DecimalNumberField(serializers.DecimalField):
    """A decimal as a JSON number: 10000 when whole, 10000.5 otherwise (never "10000.000")."""

    def __init__(self, *, max_digits: int, decimal_places: int, **kwargs: Any) -> None:
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, coerce_to_string=False, **kwargs)

    def to_representation(self, value: Decimal) -> int | float | None:  # type: ignore[override]  # a number, not a string
        return wh_number(Decimal(value))


class WattHoursField(DecimalNumberField):
    """Energy in Wh, as stored on transactions and billing records."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=20, decimal_places=3, **kwargs)


# --- Id tags --------------------------------------------------------------------------------

id_tag_validator = RegexValidator(r"^\S+$", "An id tag has no whitespace.")

ID_TOKEN_TYPES = ["Central", "eMAID", "ISO14443", "ISO15693", "KeyCode", "Local", "MacAddress", "NoAuthorization"]


class IdTagRefField(serializers.SlugRelatedField):
    """Another id tag, named by its id tag and matched case-insensitively like OCPP does."""

    default_error_messages = {
        "does_not_exist": "No id tag {value!r} is registered.",
        "invalid": "Give the parent's id tag as a string.",
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="id_tag", **kwargs)

    def to_internal_value(self, data: Any) -> Model:
        if not isinstance(data, str):
            self.fail("invalid")
        found = selectors.id_tag_find(id_tag=data)
        if found is None:
            self.fail("does_not_exist", value=data)
        return found


class IdTagSerializer(serializers.ModelSerializer):
    id_tag = serializers.CharField(
        max_length=36,
        trim_whitespace=False,
        validators=[id_tag_validator],
        help_text="1.6 idTag (max 20) or 2.0.1 idToken (max 36); unique and matched case-insensitively.",
    )
    token_type = serializers.ChoiceField(
        choices=ID_TOKEN_TYPES,
        required=False,
        allow_blank=True,
        help_text="2.0.1 idToken type; blank matches any type.",
    )
    status = serializers.ChoiceField(choices=AuthorizationStatus.choices, required=False)
    parent_id_tag = IdTagRefField(
        source="parent",
        queryset=IdTag.objects.all(),
        required=False,
        allow_null=True,
        help_text="The parent's id tag (a fleet account, say); its Blocked or Expired status applies to this tag.",
    )

    class Meta:
        model = IdTag
        fields = [
            "id_tag",
            "token_type",
            "status",
            "expiry_date",
            "parent_id_tag",
            "description",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        parent = attrs.get("parent")
        if parent is not None and self.instance is not None and parent.pk == self.instance.pk:
            raise serializers.ValidationError({"parent_id_tag": ["An id tag cannot be its own parent."]})
        return attrs


# --- Transactions and the meter ledger ------------------------------------------------------


class BillingRecordSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = BillingRecord
        fields = ["id", "currency", "total"]


class TransactionSerializer(serializers.ModelSerializer):
    transaction_id = serializers.CharField(
        source="ocpp_id", read_only=True, help_text="The transactionId the charger uses (1.6: our integer id)."
    )
    charge_point_id = serializers.CharField(source="charge_point.charge_point_id", read_only=True)
    meter_start_wh = WattHoursField(read_only=True, allow_null=True)
    meter_stop_wh = WattHoursField(read_only=True, allow_null=True)
    energy_wh = WattHoursField(read_only=True, allow_null=True)
    reservation_id = serializers.IntegerField(
        source="reservation.reservation_id", read_only=True, allow_null=True, help_text="The OCPP reservation id."
    )
    anomalies = serializers.ListField(child=serializers.CharField(), read_only=True)
    billing_record = BillingRecordSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Transaction
        fields = [
            "id",
            "transaction_id",
            "charge_point_id",
            "ocpp_version",
            "evse_id",
            "connector_id",
            "id_tag",
            "id_tag_status",
            "stop_id_tag",
            "status",
            "started_at",
            "stopped_at",
            "meter_start_wh",
            "meter_stop_wh",
            "energy_wh",
            "stop_reason",
            "closed_by_csms",
            "idle_seconds",
            "reservation_id",
            "remote_start_id",
            "anomalies",
            "needs_review",
            "billing_record",
        ]
        read_only_fields = fields


class MeterSampleSerializer(serializers.ModelSerializer):
    value = DecimalNumberField(
        max_digits=24,
        decimal_places=6,
        read_only=True,
        allow_null=True,
        help_text="In the base unit (Wh, W, A, V, ...).",
    )

    class Meta:
        model = MeterSample
        fields = [
            "timestamp",
            "measurand",
            "phase",
            "unit",
            "multiplier",
            "context",
            "location",
            "format",
            "raw_value",
            "signed_data",
            "value",
            "source",
        ]
        read_only_fields = fields


# --- Query parameters -----------------------------------------------------------------------


class QueryParamsSerializer(serializers.Serializer):
    """Filters of a list, read from the query string; a bad one is a 400 naming the parameter."""

    @classmethod
    def parse(cls, query_params: Any) -> dict[str, Any]:
        serializer = cls(data=query_params)
        if not serializer.is_valid():
            raise ApiError(400, "ValidationError", "The query parameters are invalid.", details=serializer.errors)
        return serializer.validated_data


class TransactionFilterSerializer(QueryParamsSerializer):
    charge_point_id = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=TransactionStatus.choices, required=False)
    started_after = serializers.DateTimeField(required=False, help_text="Started at or after (ISO 8601).")
    started_before = serializers.DateTimeField(required=False, help_text="Started before (ISO 8601).")
