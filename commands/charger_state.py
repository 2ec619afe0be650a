"""What the CSMS learns from a command the charger answered: reservations and local lists.

Version-neutral: each OCPP version's answer handler (``ocpp_gateway/v16``, ``v201``) reads its
payload and calls these with the answered ``Command``, whose ``response`` status decides; the
outcome is recorded through the ``chargepoints`` services (charging profiles: see ``charging_profiles``).
"""

from __future__ import annotations

from datetime import datetime

from charging.models import ReservationStatus
from charging.services import authorization, reservations
from commands.models import Command

ACCEPTED = "Accepted"


def _status(command: Command) -> str:
    return (command.response or {}).get("status", "")


def reservation_follow(
    *,
    command: Command,
    reservation_id: int,
    connector_id: int | None,
    evse_id: int | None,
    id_tag: str,
    expiry_date: datetime,
) -> None:
    """ReserveNow answered: record the reservation, active when Accepted, with the charger's status."""
    assert command.charge_point is not None
    status = _status(command)
    reservations.reservation_record(
        charge_point=command.charge_point,
        reservation_id=reservation_id,
        connector_id=connector_id,
        evse_id=evse_id,
        id_tag=id_tag,
        expiry_date=expiry_date,
        accepted=status == ACCEPTED,
        charger_status=status,
    )


def reservation_cancel_follow(*, command: Command, reservation_id: int) -> None:
    """CancelReservation answered: an Accepted answer ends the reservation as cancelled."""
    assert command.charge_point is not None
    if _status(command) == ACCEPTED:
        reservations.reservation_end(
            charge_point_id=command.charge_point.charge_point_id,
            reservation_id=reservation_id,
            status=ReservationStatus.CANCELLED,
        )


def local_list_version_follow(*, command: Command, version: object) -> None:
    """GetLocalListVersion answered: keep the version the charger reports (an int, else nothing)."""
    assert command.charge_point is not None
    if isinstance(version, int):
        authorization.local_auth_list_record(charge_point=command.charge_point, version=version)


def local_list_follow(*, command: Command, version: int, full: bool, entries: dict[str, str | None]) -> None:
    """SendLocalList answered: an Accepted answer installs the list (``entries``: id tag -> status,
    None to remove it from a differential update; ``full`` replaces the whole list)."""
    assert command.charge_point is not None
    if _status(command) == ACCEPTED:
        authorization.local_auth_list_record(
            charge_point=command.charge_point, version=version, full=full, entries=entries
        )
