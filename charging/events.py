"""The ``data`` of the webhook events charging sessions emit (README, "Webhooks"); see chargepoints/events.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from charging.models import ExternalChargingLimit, Transaction, TransactionStatus
from kernel.serializers import wh_number
from webhooks.models import EventType
from webhooks.services import iso_utc


def transaction_event(session: Transaction) -> dict[str, Any]:
    """transaction.started / .ended: the session as it stands. ``id_tag`` null when none came (a
    2.0.1 start without idToken); ``energy_wh`` (Wh) null until the session has ended, in both
    versions (a 2.0.1 Started's Transaction.Begin reading gives 0 so far, a 1.6 start none);
    ``remote_start_id`` (2.0.1 F01: what ties the session to the RequestStartTransaction that asked
    for it) and ``reservation_id`` (the OCPP id of the reservation it used) null when none."""
    return {
        "transaction_id": session.pk,
        "ocpp_transaction_id": session.ocpp_id,
        "charge_point_id": session.charge_point.charge_point_id,
        "evse_id": session.evse_id,
        "connector_id": session.connector_id,
        "id_tag": session.id_tag or None,
        "status": session.status,
        "started_at": iso_utc(session.started_at),
        "stopped_at": iso_utc(session.stopped_at) if session.stopped_at else None,
        "stop_reason": session.stop_reason or None,
        "energy_wh": wh_number(session.energy_wh) if session.status == TransactionStatus.ENDED else None,
        "anomalies": session.anomalies,
        "remote_start_id": session.remote_start_id,
        "reservation_id": _reservation_id(session),
    }


def _reservation_id(session: Transaction) -> int | None:
    """The OCPP id of the reservation ``session`` used; None when none."""
    reservation = session.reservation if session.reservation_id is not None else None
    return reservation.reservation_id if reservation is not None else None


def charging_limit_changed(limit: ExternalChargingLimit, *, released: bool, at: datetime) -> dict[str, Any]:
    """charge_point.charging_limit_changed: a 2.0.1 station's external limit (K12 NotifyChargingLimit)
    set or changed, or (``released``, K13 ClearedChargingLimit) gone; ``evse_id`` 0 is the station,
    ``schedules`` the chargingSchedule list as the station sent it (camelCase), ``at`` when the CSMS
    heard of the change."""
    return {
        "charge_point_id": limit.charge_point.charge_point_id,
        "evse_id": limit.evse_id,
        "source": limit.source,
        "grid_critical": limit.grid_critical,
        "schedules": limit.schedules,
        "released": released,
        "at": iso_utc(at),
    }


EVENT_BUILDERS = {
    EventType.TRANSACTION_STARTED: transaction_event,
    EventType.TRANSACTION_ENDED: transaction_event,
    EventType.CHARGING_LIMIT_CHANGED: charging_limit_changed,
}
