from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Tariff(models.Model):
    """What charging costs: energy, charging time, a session fee and an optional idle fee."""

    name = models.CharField(max_length=100)
    currency = models.CharField(max_length=3, help_text="ISO 4217 code, e.g. EUR.")
    price_per_kwh = models.DecimalField(max_digits=10, decimal_places=4, default=0)
    price_per_minute = models.DecimalField(
        max_digits=10, decimal_places=4, default=0, help_text="Per minute of charging (idle time excluded)."
    )
    # 3 decimals: a KWD, BHD, ... fee has fils (kernel.money); the API refuses more than the currency's.
    session_fee = models.DecimalField(max_digits=11, decimal_places=3, default=0)
    idle_fee_per_minute = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="Per idle minute after the grace period."
    )
    idle_grace_minutes = models.PositiveIntegerField(default=0)
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_to = models.DateTimeField(null=True, blank=True)
    is_default = models.BooleanField(default=False, help_text="Applies to chargers without a tariff of their own.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_to__isnull=True)
                | Q(valid_from__isnull=True)
                | Q(valid_to__gt=models.F("valid_from")),
                name="tariff_validity_window_ordered",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.currency})"


class BillingRecord(models.Model):
    """What an ended transaction costs, written in the same DB transaction that ended it."""

    transaction = models.OneToOneField("charging.Transaction", on_delete=models.PROTECT, related_name="billing_record")
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, null=True, blank=True, related_name="billing_records")
    charge_point_identity = models.CharField(max_length=48)  # indexed below, for exact matches
    id_tag = models.CharField(max_length=36, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    energy_wh = models.DecimalField(max_digits=20, decimal_places=3)
    started_at = models.DateTimeField()
    stopped_at = models.DateTimeField()
    duration_seconds = models.PositiveIntegerField()
    charging_seconds = models.PositiveIntegerField()
    idle_seconds = models.PositiveIntegerField()
    line_items = models.JSONField(default=list)
    # In the currency's minor unit (kernel.money): 3 decimals for KWD, BHD, ...
    total = models.DecimalField(max_digits=13, decimal_places=3)
    needs_review = models.BooleanField(
        default=False, help_text="No tariff applied, or the transaction's meter readings need a look."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-stopped_at", "-id"]
        # Id tags match ignoring case (OCPP): the filter compares LOWER(id_tag).
        indexes = [
            models.Index(Lower("id_tag"), name="billing_record_id_tag_lower"),
            # No LIKE twin (varchar_pattern_ops): records are filtered by an exact charger id.
            models.Index(fields=["charge_point_identity"], name="billing_record_charger"),
            # The list's order (newest stop first) and its stopped_after/before filters: each page is
            # read in order through it, not every record sorted (billing 0005).
            models.Index(fields=["stopped_at", "id"], name="billing_record_stopped"),
        ]

    def __str__(self) -> str:
        return f"{self.total} {self.currency} for transaction {self.transaction_id}"


class SessionTariff(models.Model):
    """The tariff an open session started under, kept when an operator changes what would price it
    (a charger's own tariff, a tariff's default flag or validity, a new default): the session is
    billed with the tariff valid at its start, not the one that applies when it ends
    (``billing.services``). No tariff (null): the session started under none, and stays unpriced."""

    transaction = models.OneToOneField(
        "charging.Transaction", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    tariff = models.ForeignKey(Tariff, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    def __str__(self) -> str:
        return f"Tariff {self.tariff_id} for transaction {self.transaction_id}"
