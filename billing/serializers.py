from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import BillingRecord, Tariff
from kernel.money import is_currency, minor_unit, round_money
from kernel.serializers import MoneyTotalField, QueryParamsSerializer, UnknownFieldsRefused, WattHoursField

_PRICE = {"min_value": Decimal(0)}
_PRICES = ("price_per_kwh", "price_per_minute", "session_fee", "idle_fee_per_minute")


class TariffSerializer(UnknownFieldsRefused, serializers.ModelSerializer):
    currency = serializers.CharField(min_length=3, max_length=3, help_text="ISO 4217 code, e.g. EUR.")

    class Meta:
        model = Tariff
        fields = [
            "id",
            "name",
            "currency",
            "price_per_kwh",
            "price_per_minute",
            "session_fee",
            "idle_fee_per_minute",
            "idle_grace_minutes",
            "valid_from",
            "valid_to",
            "is_default",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "price_per_kwh": _PRICE,
            "price_per_minute": _PRICE,
            "session_fee": _PRICE,
            "idle_fee_per_minute": _PRICE,
        }

    def to_representation(self, instance: Tariff) -> dict[str, Any]:
        """The session fee with its currency's decimals (``"0.50"`` EUR, ``"0.125"`` KWD, ``"250"``
        JPY): the column keeps 3 for every currency (``kernel.money``)."""
        data = super().to_representation(instance)
        if data.get("session_fee") is not None and instance.currency:
            data["session_fee"] = str(round_money(Decimal(data["session_fee"]), instance.currency))
        return data

    def validate_currency(self, value: str) -> str:
        """An ISO 4217 currency's code, in any case (``kernel.money.is_currency``): three letters that
        name none (``EUX``, ``XXX``) priced sessions in a currency nobody can pay. A tariff's code
        sent back unchanged is taken (one saved before the check, a withdrawn currency's)."""
        code = value.upper() if value.isascii() else value  # before upper(): "ß" becomes "SS"
        if is_currency(code) or (self.instance is not None and code == self.instance.currency):
            return code
        raise serializers.ValidationError("Use a three-letter ISO 4217 currency code, e.g. EUR.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in _PRICES:  # "-0" is 0 (min_value lets it through): stored and echoed as "0.00", not "-0.00"
            if attrs.get(name) is not None and attrs[name].is_zero():
                attrs[name] = attrs[name].copy_abs()
        valid_from = attrs.get("valid_from", getattr(self.instance, "valid_from", None))
        valid_to = attrs.get("valid_to", getattr(self.instance, "valid_to", None))
        if valid_from is not None and valid_to is not None and valid_to <= valid_from:
            raise serializers.ValidationError({"valid_to": ["valid_to must be after valid_from."]})
        currency = attrs.get("currency", getattr(self.instance, "currency", ""))
        fee = attrs.get("session_fee", getattr(self.instance, "session_fee", None))
        if currency and fee is not None and round_money(fee, currency) != fee:
            raise serializers.ValidationError(  # an amount, billed as it is: no rounding to hide
                {"session_fee": [f"A {currency} amount has at most {_decimals(currency)} decimals."]}
            )
        return attrs


def _decimals(currency: str) -> int:
    return -int(minor_unit(currency).as_tuple().exponent)


class LineItemSerializer(serializers.Serializer):
    """One priced line of a billing record (the shape ``billing.pricing.LineItem.as_json`` stores)."""

    kind = serializers.ChoiceField(choices=["energy", "charging_time", "session_fee", "idle_time"])
    description = serializers.CharField()
    quantity = serializers.CharField(help_text="Exact quantity as a decimal string, e.g. 10 or 12.5.")
    unit = serializers.CharField(help_text="kWh, min or session.")
    unit_price = serializers.CharField(help_text="Decimal string.")
    amount = serializers.CharField(help_text="Decimal string, rounded to the currency's minor unit.")


class BillingRecordSerializer(serializers.ModelSerializer):
    transaction_id = serializers.IntegerField(read_only=True, help_text="The transaction's id in this API.")
    ocpp_transaction_id = serializers.CharField(
        source="transaction.ocpp_id", read_only=True, help_text="The transactionId the charger used."
    )
    charge_point_id = serializers.CharField(source="charge_point_identity", read_only=True)
    energy_wh = WattHoursField(read_only=True)
    total = MoneyTotalField(help_text="The sum of the line items, in the currency's minor unit (0 decimals for JPY).")
    line_items = serializers.SerializerMethodField()
    anomalies = serializers.ListField(
        source="transaction.anomalies",
        child=serializers.CharField(),
        read_only=True,
        help_text="The transaction's anomaly codes (e.g. missing_readings, unauthorized_token): why it needs review.",
    )

    class Meta:
        model = BillingRecord
        fields = [
            "id",
            "transaction_id",
            "ocpp_transaction_id",
            "charge_point_id",
            "id_tag",
            "tariff",
            "currency",
            "energy_wh",
            "started_at",
            "stopped_at",
            "duration_seconds",
            "charging_seconds",
            "idle_seconds",
            "line_items",
            "total",
            "needs_review",
            "anomalies",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(LineItemSerializer(many=True))
    def get_line_items(self, record: BillingRecord) -> list[dict[str, Any]]:
        return record.line_items


class BillingRecordFilterSerializer(QueryParamsSerializer):
    charge_point_id = serializers.CharField(required=False, allow_blank=True)
    id_tag = serializers.CharField(required=False, allow_blank=True, help_text="Matched case-insensitively.")
    stopped_after = serializers.DateTimeField(required=False, help_text="Stopped at or after (ISO 8601).")
    stopped_before = serializers.DateTimeField(required=False, help_text="Stopped before (ISO 8601).")
