"""The CSMS's record of reservations: what ReserveNow / CancelReservation achieved, and expiry."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.models import Reservation, ReservationStatus


def reservation_record(
    *,
    charge_point: ChargePoint,
    reservation_id: int,
    id_tag: str,
    expiry_date: datetime,
    accepted: bool,
    charger_status: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> Reservation:
    """Record the charger's answer to ReserveNow; an accepted one with a reused id replaces the
    reservation (OCPP 1.6 §5.13, 2.0.1 H01). A refused one changes nothing on the charger: an active
    reservation of that id stays as it is."""
    if not accepted:
        active = Reservation.objects.filter(
            charge_point=charge_point, reservation_id=reservation_id, status=ReservationStatus.ACTIVE
        ).first()
        if active is not None:
            return active
    reservation, _ = Reservation.objects.update_or_create(
        charge_point=charge_point,
        reservation_id=reservation_id,
        defaults={
            "connector_id": connector_id,
            "evse_id": evse_id,
            "id_tag": id_tag,
            "expiry_date": expiry_date,
            "charger_status": charger_status,
            "status": ReservationStatus.ACTIVE if accepted else ReservationStatus.REFUSED,
        },
    )
    return reservation


def reservation_end(*, charge_point_id: str, reservation_id: int, status: str) -> int:
    """An active reservation ends (cancelled, or expired/removed as a 2.0.1 charger reports)."""
    return Reservation.objects.filter(
        charge_point__charge_point_id=charge_point_id, reservation_id=reservation_id, status=ReservationStatus.ACTIVE
    ).update(status=status, updated_at=timezone.now())


def reservations_expire(*, now: datetime | None = None) -> int:
    """Close every active reservation past its expiry; returns how many."""
    now = now or timezone.now()
    with transaction.atomic():
        return Reservation.objects.filter(status=ReservationStatus.ACTIVE, expiry_date__lte=now).update(
            status=ReservationStatus.EXPIRED, updated_at=now
        )
