"""The units a charger takes a charging profile's limit in, as its configuration gives them: OCPP 1.6
``ChargingScheduleAllowedChargingRateUnit`` (§9.4, a CSL of Current and Power), 2.0.1
``SmartChargingCtrlr.RateUnit`` (a member list of A and W). Kept as ``ChargePoint.charging_rate_units``
for the apps that may not read the configuration store (the site engine sends a charger that takes
W alone its limits in W); the configuration app reports what it learns here."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone

from chargepoints.models import ChargePoint
from chargepoints.signals import charging_rate_units_changed

logger = logging.getLogger(__name__)

_UNITS = {"current": "A", "power": "W", "a": "A", "w": "W"}


def charging_rate_units_of(value: str | None) -> str:
    """The units ``value`` (a configuration value's text) names: "A", "W" or "A,W"; "" (not known) for
    None or a value naming neither."""
    named = {_UNITS.get(name.strip().casefold()) for name in (value or "").split(",")}
    return ",".join(sorted(unit for unit in named if unit is not None))


def charging_rate_units_reported(*, reported: Mapping[int, str | None]) -> None:
    """The rate units each charger (its pk -> the value it gave, text; None: it has no such key or
    variable) says it takes, kept as its ``charging_rate_units``.

    Written once the caller's transaction commits, one UPDATE per distinct value (the configuration's
    rows before the chargers', as ``heartbeat_pace.heartbeat_intervals_reported`` explains)."""
    if not reported:
        return
    by_units: dict[str, list[int]] = {}
    for pk, value in reported.items():
        by_units.setdefault(charging_rate_units_of(value), []).append(pk)
    transaction.on_commit(lambda: _written(by_units), robust=True)


def _written(by_units: dict[str, list[int]]) -> None:
    """Each charger's units written where they changed, every group first; then
    ``charging_rate_units_changed`` sent for each (a receiver that raises is logged: the others and
    the writes stand)."""
    changed_by_units: dict[str, list[int]] = {}
    for units, pks in by_units.items():
        changed = list(
            ChargePoint.objects.filter(pk__in=pks).exclude(charging_rate_units=units).values_list("pk", flat=True)
        )
        if changed:
            ChargePoint.objects.filter(pk__in=changed).update(charging_rate_units=units, updated_at=timezone.now())
            changed_by_units[units] = changed
    for units, changed in changed_by_units.items():
        for receiver, error in charging_rate_units_changed.send_robust(
            sender=ChargePoint, charge_point_pks=changed, units=units
        ):
            if isinstance(error, Exception):
                logger.error("%s failed on rate units %r of chargers %s", receiver, units, changed, exc_info=error)
