"""Limits other sources than the CSMS put on a 2.0.1 station (K12 NotifyChargingLimit, K13
ClearedChargingLimit): an energy manager's, the grid operator's. The CSMS sets none of them; it keeps
them so that an operator sees why a station charges slower than its own profiles allow."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging import events
from charging.models import ExternalChargingLimit
from webhooks.models import EventType
from webhooks.services import webhook_event_emit


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
    and ``grid_critical``, replaces the one that source had there, and is announced
    (``charge_point.charging_limit_changed``). None for an unknown charger."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk", "charge_point_id").first()
    if charge_point is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        limit, _ = ExternalChargingLimit.objects.update_or_create(
            charge_point=charge_point,
            evse_id=evse_id or 0,
            source=_stored_source(source),
            defaults={"grid_critical": grid_critical, "schedules": schedules, "reported_at": now},
        )
        _announce(limit, released=False, at=now)
    return limit


def external_limits_cleared(*, charge_point_id: str, evse_id: int | None, source: str) -> int:
    """A ClearedChargingLimit (K13): ``source`` released its limit on EVSE ``evse_id``; without one
    (None) it released all it had on the station. Each one that ends is announced
    (``charge_point.charging_limit_changed``, ``released``). Returns how many ended."""
    cleared = ExternalChargingLimit.objects.filter(
        charge_point__charge_point_id=charge_point_id, source=_stored_source(source)
    )
    if evse_id is not None:
        cleared = cleared.filter(evse_id=evse_id)
    now = timezone.now()
    with transaction.atomic():
        limits = list(cleared.select_related("charge_point").select_for_update(of=("self",)))
        for limit in limits:
            _announce(limit, released=True, at=now)
        ExternalChargingLimit.objects.filter(pk__in=[limit.pk for limit in limits]).delete()
    return len(limits)


def _announce(limit: ExternalChargingLimit, *, released: bool, at: datetime) -> None:
    webhook_event_emit(
        event_type=EventType.CHARGING_LIMIT_CHANGED,
        data=events.charging_limit_changed(limit, released=released, at=at),
    )


def _stored_source(source: str) -> str:
    """A source as its column keeps it: a lenient charger model's unknown, longer name is cut."""
    return source[:_SOURCE_LENGTH]


_SOURCE_LENGTH: int = ExternalChargingLimit._meta.get_field("source").max_length  # type: ignore[assignment]
