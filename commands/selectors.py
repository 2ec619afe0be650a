"""Reads of the command audit log."""

from __future__ import annotations

from django.db import connection
from django.db.models import QuerySet

from chargepoints.models import ChargePoint
from commands.models import Command, CommandState
from kernel.plain_sql import columns_of, model_rows

FAILED_COMMAND_STATES = (
    CommandState.REJECTED,
    CommandState.INVALID_RESPONSE,
    CommandState.CALL_ERROR,
    CommandState.TIMEOUT,
    CommandState.NOT_CONNECTED,
)


def failed_command_list(*, limit: int = 20) -> QuerySet[Command]:
    """Commands the charger refused, failed or never got, the latest first, with their charger
    and who sent them (one query)."""
    return (
        Command.objects.filter(state__in=FAILED_COMMAND_STATES)
        .select_related("charge_point", "api_key", "user")
        .order_by("-created_at")[:limit]
    )


_MAY_HAVE_STARTED = (CommandState.ACCEPTED, CommandState.PENDING, CommandState.TIMEOUT)


def remote_start_id_token(*, charge_point_id: str, remote_start_id: int) -> dict[str, str] | None:
    """The idToken (``{"id_token": ..., "type": ...}``) of the latest 2.0.1 RequestStartTransaction
    sent to the charger with ``remote_start_id`` that it may have started: one it accepted, or whose
    answer was lost (pending, timed out); None when there is none. One it refused, or that never
    reached it, started nothing (a reused ``remoteStartId`` must not give its token to the session
    another request started)."""
    command = (
        Command.objects.filter(
            charge_point_identity=charge_point_id,
            command="request_start_transaction",
            request__remote_start_id=remote_start_id,
            state__in=_MAY_HAVE_STARTED,
        )
        .order_by("-created_at")
        .only("request")
        .first()
    )
    token = command.request.get("id_token") if command is not None else None
    if not isinstance(token, dict) or not isinstance(token.get("id_token"), str):
        return None
    return {"id_token": token["id_token"], "type": str(token.get("type", ""))}


# The 2.0.1 statuses that report on a request of the CSMS by its requestId, and that request's action.
_STATUS_OF_REQUEST = {"FirmwareStatusNotification": "UpdateFirmware", "LogStatusNotification": "GetLog"}


def status_asked_earlier(*, charge_point_id: str, action: str, request_id: object) -> bool:
    """Whether a 2.0.1 ``FirmwareStatusNotification`` or ``LogStatusNotification`` reports on an
    UpdateFirmware or GetLog (``request_id``, its ``requestId``) the CSMS sent this charger and it
    accepted, on any connection: a firmware update reboots the station, whose statuses after the
    reboot come on a new connection, Pending again (``OcppRouter``). One bounded read of the charger's
    commands (index ``command_charger_latest``); False for any other action or a missing id."""
    asked_by = _STATUS_OF_REQUEST.get(action)
    if asked_by is None or not isinstance(request_id, int) or isinstance(request_id, bool):
        return False
    return Command.objects.filter(
        charge_point__charge_point_id=charge_point_id,
        action=asked_by,
        state=CommandState.ACCEPTED,
        request__request_id=request_id,
    ).exists()


def command_charge_point(*, charge_point_id: str) -> ChargePoint | None:
    """The charge point a command is for (None if not registered), with its presence
    (``connection_channel``) and OCPP version: one plain statement on PostgreSQL (issue 15)."""
    if connection.vendor == "postgresql":
        found = model_rows(
            ChargePoint,
            f"SELECT {columns_of(ChargePoint, 'c')} FROM {connection.ops.quote_name(ChargePoint._meta.db_table)} c"
            " WHERE c.charge_point_id = %s",
            [charge_point_id],
        )
        return found[0] if found else None
    return ChargePoint.objects.filter(charge_point_id=charge_point_id).first()


def charging_profiles_question(*, charge_point_id: str, request_id: int) -> Command | None:
    """The 2.0.1 GetChargingProfiles (K09) the CSMS sent this charger with ``request_id`` (its
    ``requestId``), the latest if the id was used again: the question its ReportChargingProfiles
    answer. Its ``request`` (snake_case) holds ``evse_id`` and ``charging_profile``, the criterion."""
    return (
        Command.objects.filter(
            charge_point__charge_point_id=charge_point_id, action="GetChargingProfiles", request__request_id=request_id
        )
        .order_by("-created_at")
        .only("request", "created_at")
        .first()
    )
