"""What the CSMS learns from a command the charger answered: reservations and local lists.

Version-neutral: each OCPP version's answer handler (``ocpp_gateway/v16``, ``v201``;
docs/architecture.md, "A command") reads its payload and calls these with the charger and the
status it answered, which decides; charging profiles: see ``charging_profiles``.
"""

from __future__ import annotations

from datetime import datetime

from chargepoints.models import ChargePoint
from charging.models import ReservationStatus
from charging.services import authorization, reservations
from kernel.schemas import INT32_RANGE

ACCEPTED = "Accepted"


def reservation_follow(
    *,
    charge_point: ChargePoint,
    status: str,
    reservation_id: int,
    connector_id: int | None,
    evse_id: int | None,
    id_tag: str,
    expiry_date: datetime,
    token_type: str = "",
    parent_id_tag: str = "",
) -> None:
    """ReserveNow answered with ``status``: record the reservation, active when Accepted
    (``token_type``: a 2.0.1 idToken's type)."""
    reservations.reservation_record(
        charge_point=charge_point,
        reservation_id=reservation_id,
        connector_id=connector_id,
        evse_id=evse_id,
        id_tag=id_tag,
        token_type=token_type,
        parent_id_tag=parent_id_tag,
        expiry_date=expiry_date,
        accepted=status == ACCEPTED,
        charger_status=status,
    )


def reservation_cancel_follow(*, charge_point: ChargePoint, status: str, reservation_id: int) -> None:
    """CancelReservation answered: an Accepted answer ends the reservation as cancelled, and so does
    a Rejected one, which says the charger holds no reservation of that id (OCPP 1.6 §7.5, 2.0.1
    CancelReservationStatusEnumType): the record would stay active on nothing."""
    if status in (ACCEPTED, "Rejected"):
        reservations.reservation_end(
            charge_point_id=charge_point.charge_point_id,
            reservation_id=reservation_id,
            status=ReservationStatus.CANCELLED,
        )


def local_list_version_follow(*, charge_point: ChargePoint, version: object, ocpp_version: str) -> None:
    """GetLocalListVersion answered (in ``ocpp_version``): keep the version the charger reports (a
    32-bit int, else nothing: OCPP's integers are 32-bit, and so is the column)."""
    if isinstance(version, int) and not isinstance(version, bool) and version in INT32_RANGE:
        authorization.local_auth_list_record(charge_point=charge_point, version=version, ocpp_version=ocpp_version)


def local_list_follow(
    *,
    charge_point: ChargePoint,
    status: str,
    version: int,
    full: bool,
    entries: dict[str, str | None],
    ocpp_version: str,
) -> None:
    """SendLocalList answered (in ``ocpp_version``): an Accepted answer installs the list
    (``entries``: id tag, a 2.0.1 token with its type (``selectors.local_list_key``) -> status, None
    to remove it from a differential update; ``full`` replaces the whole list)."""
    if status == ACCEPTED:
        authorization.local_auth_list_record(
            charge_point=charge_point, version=version, full=full, entries=entries, ocpp_version=ocpp_version
        )
