"""Per-process buffer for Heartbeat rows and the liveness they carry; the interval a charger takes.

A Heartbeat is answered with the time at once; its row, the charger's ``last_heartbeat`` /
``last_seen`` and (for a charger the sweep had marked offline) its return online are written
with the other chargers' heartbeats every ``CSMS_HEARTBEAT_FLUSH_MS``, in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from chargepoints.services import ReceivedHeartbeat, charge_point_heartbeats_record
from chargepoints.services.heartbeat_pace import heartbeat_interval_of
from ocpp_gateway.buffers import WriteBehindBuffer


def _write(heartbeats: list[ReceivedHeartbeat]) -> None:
    charge_point_heartbeats_record(heartbeats=heartbeats)


heartbeats: WriteBehindBuffer[ReceivedHeartbeat] = WriteBehindBuffer(
    name="heartbeat",
    write=_write,
    flush_seconds=lambda: settings.CSMS_HEARTBEAT_FLUSH_SECONDS,
    max_batch=500,
    locks=lambda rows: frozenset(heartbeat.charge_point_id for heartbeat in rows),  # their chargers' rows, updated
)


def heartbeat_interval_accepted(action: str, payload: dict[str, Any], answer: dict[str, Any]) -> int | None:
    """The heartbeat interval (s) a charger takes from now on by answering the CSMS's CALL
    ``action`` (``payload``, as sent) with ``answer``: a 1.6 ChangeConfiguration of
    ``HeartbeatInterval`` answered Accepted (§5.3, §9.1.10), a 2.0.1 SetVariables whose
    ``OCPPCommCtrlr.HeartbeatInterval`` (Actual) is Accepted (B05). None for any other CALL or
    answer (RebootRequired: the charger keeps its interval until it boots), and for a value the
    CSMS does not keep as an interval (``heartbeat_interval_of``)."""
    if action == "ChangeConfiguration":
        key, value = payload.get("key"), payload.get("value")
        if isinstance(key, str) and key.casefold() == "heartbeatinterval" and answer.get("status") == "Accepted":
            return heartbeat_interval_of(value) if isinstance(value, str) else None
        return None
    if action != "SetVariables":
        return None
    results = answer.get("setVariableResult")
    accepted = isinstance(results, list) and any(
        isinstance(result, dict) and result.get("attributeStatus") == "Accepted" and _is_heartbeat_interval(result)
        for result in results
    )
    if not accepted:
        return None
    for data in payload.get("setVariableData") or []:
        if isinstance(data, dict) and _is_heartbeat_interval(data) and isinstance(data.get("attributeValue"), str):
            return heartbeat_interval_of(data["attributeValue"])
    return None


def _is_heartbeat_interval(entry: dict[str, Any]) -> bool:
    """Whether a SetVariableData or SetVariableResult names ``OCPPCommCtrlr.HeartbeatInterval``'s
    Actual attribute (no instance, no EVSE: the controller's one variable)."""
    component, variable = entry.get("component"), entry.get("variable")
    if not isinstance(component, dict) or not isinstance(variable, dict):
        return False
    return (
        str(component.get("name", "")).casefold() == "ocppcommctrlr"
        and not component.get("instance")
        and not component.get("evse")
        and str(variable.get("name", "")).casefold() == "heartbeatinterval"
        and not variable.get("instance")
        and entry.get("attributeType", "Actual") == "Actual"
    )
