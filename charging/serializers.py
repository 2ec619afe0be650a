"""The API's shapes of id tags, transactions and meter samples."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model
from rest_framework import serializers

from charging import metering, selectors
from charging.models import (
    AuthorizationStatus,
    IdTag,
    MeterSample,
    Transaction,
    TransactionStatus,
)
from charging.services import authorization
from kernel.serializers import (
    DecimalNumberField,
    MoneyTotalField,
    QueryParamsSerializer,
    UnknownFieldsRefused,
    WattHoursField,
)

# --- Id tags --------------------------------------------------------------------------------


def id_tag_validator(value: str) -> None:
    """An id tag as a charger can send it: printable characters, no whitespace. A zero-width space
    or a control character pasted with a card's number made a tag that looks like it and that no
    card matches (every Authorize of the card answered Invalid). A tag ending in ``/`` could not be
    named in its URL (``/id-tags/ABC/`` is the tag ``ABC``): refused too, as are ``.`` and ``..``
    (HTTP clients resolve them out of a URL: ``/id-tags/./`` is the list)."""
    if not value.isprintable() or any(character.isspace() for character in value):
        raise DjangoValidationError("An id tag has printable characters only, no whitespace.")
    if value.endswith("/"):
        raise DjangoValidationError("An id tag does not end with '/' (its URL could not name it).")
    if value in (".", ".."):
        raise DjangoValidationError("An id tag is not '.' or '..' (its URL could not name it).")


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


class IdTagSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
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
    answered_status = serializers.SerializerMethodField(
        help_text="What a charger presenting the tag is answered now (ConcurrentTx aside): status, or its"
        " group's Blocked, Expired or Invalid, or Expired past its or its group's expiry_date."
    )
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
            "answered_status",
            "expiry_date",
            "parent_id_tag",
            "description",
            "max_concurrent_sessions",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_answered_status(self, tag: IdTag) -> str:
        return selectors.id_tag_answered_status(tag=tag)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        refusal = authorization.id_tag_parent_refusal(self.instance, attrs.get("parent"))
        if refusal is not None:
            raise serializers.ValidationError({"parent_id_tag": [refusal]})
        return attrs


# --- Transactions and the meter ledger ------------------------------------------------------


# A session's billing record (billing's ``BillingRecord``, read through the reverse relation): the
# fields a ModelSerializer of it would make, declared here since billing builds on sessions.
class BillingRecordSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True, label="ID")
    currency = serializers.CharField(max_length=3, allow_blank=True, required=False)
    total = MoneyTotalField()


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
        help_text="raw_value in value_unit: unit and multiplier applied (1.5 kWh: 1500).",
    )
    value_unit = serializers.SerializerMethodField(
        help_text="The unit value is in: unit without its prefix (Wh for kWh, W for kW, varh, VA, ...), else unit."
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
            "value_unit",
            "source",
        ]
        read_only_fields = fields

    def get_value_unit(self, sample: MeterSample) -> str:
        return metering.base_unit(sample.unit, sample.measurand)


class TransactionFilterSerializer(QueryParamsSerializer):
    charge_point_id = serializers.CharField(required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=TransactionStatus.choices, required=False)
    started_after = serializers.DateTimeField(required=False, help_text="Started at or after (ISO 8601).")
    started_before = serializers.DateTimeField(required=False, help_text="Started before (ISO 8601).")
