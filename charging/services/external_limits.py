"""Limits other sources than the CSMS put on a 2.0.1 station (K12 NotifyChargingLimit, K13
ClearedChargingLimit): an energy manager's, the grid operator's. The CSMS sets none of them; it keeps
them so that an operator sees why a station charges slower than its own profiles allow."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.models import ExternalChargingLimit


def external_limit_notified(
    *,
    charge_point_id: str,
    evse_id: int | None,
    source: str,
    grid_critical: bool | None,
    schedules: list[dict[str, Any]],
) -> ExternalChargingLimit | None:
    """A NotifyChargingLimit (K12): the limit ``source`` (ChargingLimitSourceEnumType) sets on EVSE
    ``evse_id`` (None or 0: the whole station), with its ``schedules`` (chargingSchedule, as sent)
    and ``grid_critical``, replaces the one that source had there. None for an unknown charger."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk").first()
    if charge_point is None:
        return None
    limit, _ = ExternalChargingLimit.objects.update_or_create(
        charge_point=charge_point,
        evse_id=evse_id or 0,
        source=_stored_source(source),
        defaults={"grid_critical": grid_critical, "schedules": schedules, "reported_at": timezone.now()},
    )
    return limit


def external_limits_cleared(*, charge_point_id: str, evse_id: int | None, source: str) -> int:
    """A ClearedChargingLimit (K13): ``source`` released its limit on EVSE ``evse_id``; without one
    (None) it released all it had on the station. Returns how many recorded limits ended."""
    cleared = ExternalChargingLimit.objects.filter(
        charge_point__charge_point_id=charge_point_id, source=_stored_source(source)
    )
    if evse_id is not None:
        cleared = cleared.filter(evse_id=evse_id)
    return cleared.delete()[0]


def _stored_source(source: str) -> str:
    """A source as its column keeps it: a lenient charger model's unknown, longer name is cut."""
    return source[:_SOURCE_LENGTH]


_SOURCE_LENGTH: int = ExternalChargingLimit._meta.get_field("source").max_length  # type: ignore[assignment]
