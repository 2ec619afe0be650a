"""What the CSMS learns from a command the charger answered: reservations and local lists.

Reads the command's snake_case request and response of either OCPP version and records the
outcome through the ``chargepoints`` services (charging profiles: see ``charging_profiles``).
"""

from __future__ import annotations

from typing import Any

from chargepoints.models import ChargePoint
from charging.models import ReservationStatus
from charging.services import authorization, reservations
from commands.models import Command
from kernel.timestamps import parse_ocpp_time


def _parts(command: Command) -> tuple[ChargePoint, dict[str, Any], str]:
    assert command.charge_point is not None
    return command.charge_point, command.request, (command.response or {}).get("status", "")


def reservation_follow(command: Command) -> None:
    charge_point, body, status = _parts(command)
    if command.command == "reserve_now":
        v16 = command.ocpp_version == "1.6"
        expiry = parse_ocpp_time(body["expiry_date"] if v16 else body["expiry_date_time"])
        assert expiry is not None  # the schema checked it is a date-time
        reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=body["reservation_id"] if v16 else body["id"],
            connector_id=body.get("connector_id") if v16 else None,
            evse_id=None if v16 else body.get("evse_id"),
            id_tag=body["id_tag"] if v16 else body["id_token"]["id_token"],
            expiry_date=expiry,
            accepted=status == "Accepted",
            charger_status=status,
        )
    elif command.command == "cancel_reservation" and status == "Accepted":
        reservations.reservation_end(
            charge_point_id=charge_point.charge_point_id,
            reservation_id=body["reservation_id"],
            status=ReservationStatus.CANCELLED,
        )


def local_list_follow(command: Command) -> None:
    charge_point, body, status = _parts(command)
    v16 = command.ocpp_version == "1.6"
    if command.command == "get_local_list_version":
        version = (command.response or {}).get("list_version" if v16 else "version_number")
        if isinstance(version, int):
            authorization.local_auth_list_record(charge_point=charge_point, version=version)
    elif command.command == "send_local_list" and status == "Accepted":
        entries: dict[str, str | None] = {}
        for entry in body.get("local_authorization_list") or []:
            id_tag = entry["id_tag"] if v16 else entry["id_token"]["id_token"]
            info = entry.get("id_tag_info" if v16 else "id_token_info")
            entries[id_tag] = info["status"] if info else None
        authorization.local_auth_list_record(
            charge_point=charge_point,
            version=body["list_version" if v16 else "version_number"],
            full=body["update_type"] == "Full",
            entries=entries,
        )
