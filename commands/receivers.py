"""What commands does when an operator changes a charger (``chargepoints.signals``); connected in
``CommandsConfig.ready``."""

from __future__ import annotations

from typing import Any

from chargepoints.models import ChargePoint
from commands.services import heartbeat_interval_push, pending_charger_wake
from kernel.models import ApiKey


def charge_point_change_follow(
    sender: Any,
    *,
    charge_point: ChargePoint,
    previous_state: str,
    previous_interval: int,
    api_key: ApiKey | None,
    user_id: int | None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Wake a charger just commissioned; push a new heartbeat interval to a connected charger.

    Returns the API answer's ``heartbeat_interval_push`` (the command, or None when the charger is
    not connected) when the interval changed, else nothing. After a push, ``charge_point``'s
    intervals are those its answer left (an Accepted one keeps no previous interval).
    """
    pending_charger_wake(charge_point=charge_point, previous_state=previous_state, api_key=api_key, user_id=user_id)
    if charge_point.heartbeat_interval == previous_interval:
        return {}
    pushed = heartbeat_interval_push(charge_point=charge_point, api_key=api_key, user_id=user_id)
    if pushed is not None:
        charge_point.refresh_from_db(
            fields=["heartbeat_interval", "previous_heartbeat_interval", "reported_heartbeat_interval", "updated_at"]
        )
    return {
        "heartbeat_interval_push": (
            {"command_id": str(pushed.id), "state": pushed.state, "response": pushed.response} if pushed else None
        )
    }
