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
    interval_given: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Wake a charger just commissioned; push a new heartbeat interval to a connected charger, and
    the stored one given again (``interval_given``) to a charger known not to keep it: one it
    reported keeping instead (``reported_heartbeat_interval``: a firmware that ignores the Boot
    answer's interval) or has not taken (``previous_heartbeat_interval``: a push it refused).

    Returns the API answer's ``heartbeat_interval_push`` (the command, or None when the charger is
    not connected) when the interval was pushed, else nothing. After a push, ``charge_point``'s
    intervals are those its answer left (an Accepted one keeps no previous interval).
    """
    pending_charger_wake(charge_point=charge_point, previous_state=previous_state, api_key=api_key, user_id=user_id)
    kept = (charge_point.reported_heartbeat_interval, charge_point.previous_heartbeat_interval)
    not_kept = any(interval is not None for interval in kept)
    if charge_point.heartbeat_interval == previous_interval and not (interval_given and not_kept):
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
