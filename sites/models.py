"""Sites: grid connections whose capacity the engine shares among the sessions of member chargers.

Currents in A per phase, powers in W, voltages in V (phase to neutral).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.validators import MinValueValidator
from django.db import models

_AMPS: dict[str, Any] = {"max_digits": 8, "decimal_places": 1, "validators": [MinValueValidator(Decimal(0))]}


class Site(models.Model):
    """A grid connection: a capacity (A per phase and/or W), a phase count, a voltage, a base load."""

    name = models.CharField(max_length=100, unique=True)
    phases = models.PositiveSmallIntegerField(choices=[(1, "Single-phase"), (3, "Three-phase")], default=3)
    voltage_v = models.DecimalField(max_digits=6, decimal_places=1, default=Decimal(230), help_text="Phase to neutral.")
    capacity_a = models.DecimalField(null=True, blank=True, help_text="A per phase.", **_AMPS)
    capacity_w = models.DecimalField(
        max_digits=10,
        decimal_places=0,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="W over all phases.",
    )
    base_load_a = models.DecimalField(default=Decimal(0), help_text="Fixed load of the building, A per phase.", **_AMPS)
    live_base_load_a = models.JSONField(
        null=True, blank=True, help_text="The last measured load posted by the building's meter, A per phase."
    )
    live_base_load_at = models.DateTimeField(null=True, blank=True)
    min_current_a = models.DecimalField(default=Decimal(6), help_text="Below this a session is paused.", **_AMPS)
    failsafe_current_a = models.DecimalField(
        null=True,
        blank=True,
        help_text="The TxDefaultProfile limit of each member charger; blank: the capacity shared equally.",
        **_AMPS,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SiteMember(models.Model):
    """A charger on a site; a charger belongs to at most one."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="members")
    charge_point = models.OneToOneField(
        "chargepoints.ChargePoint", on_delete=models.CASCADE, related_name="site_membership"
    )
    max_current_a = models.DecimalField(default=Decimal(32), help_text="The charger's maximum, A per phase.", **_AMPS)
    phases = models.CharField(
        max_length=8, blank=True, help_text="Site phases its cars draw on, e.g. L1 or L1L2L3; blank: all of them."
    )
    priority = models.IntegerField(default=0, help_text="Higher is paused last when not every session fits.")
    smart_charging_flag = models.CharField(
        max_length=200,
        blank=True,
        help_text="Why the charger is counted at its maximum (it refused a profile); blank when it complies.",
    )
    flagged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["site", "charge_point__charge_point_id"]

    def __str__(self) -> str:
        return f"{self.charge_point} on {self.site}"


class ConnectorMaximum(models.Model):
    """A connector's (1.6) or EVSE's (2.0.1) own maximum, below the charger's."""

    member = models.ForeignKey(SiteMember, on_delete=models.CASCADE, related_name="connector_maximums")
    connector_id = models.PositiveIntegerField(help_text="1.6 connectorId or 2.0.1 evseId.")
    max_current_a = models.DecimalField(**_AMPS)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["member", "connector_id"], name="site_connector_maximum_unique")]

    def __str__(self) -> str:
        return f"{self.member.charge_point} connector {self.connector_id}: {self.max_current_a} A"


class SessionLimit(models.Model):
    """The TxProfile limit a session holds: what the engine last sent it and the charger accepted."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="session_limits")
    transaction = models.OneToOneField("charging.Transaction", on_delete=models.CASCADE, related_name="site_limit")
    limit_a = models.DecimalField(**_AMPS)
    draw_a = models.DecimalField(null=True, blank=True, help_text="The draw the limit was computed on.", **_AMPS)
    sent_at = models.DateTimeField()
    raised_at = models.DateTimeField(
        null=True, blank=True, help_text="When the limit was last raised: readings before it show a lower limit."
    )

    def __str__(self) -> str:
        return f"{self.transaction_id}: {self.limit_a} A"


class AllocationSnapshot(models.Model):  # noqa: DJ008  (no admin page; a __str__ would change nothing shown)
    """The site's allocation after a recompute: for the chart and the allocation webhook."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField(db_index=True)
    capacity_a = models.DecimalField(null=True, blank=True, **_AMPS)
    base_load_a = models.DecimalField(**_AMPS)
    limits_sum_a = models.DecimalField(**_AMPS)
    measured_a = models.DecimalField(null=True, blank=True, **_AMPS)
    limits = models.JSONField(help_text="Transaction id -> limit (A).")

    class Meta:
        ordering = ["-at"]
