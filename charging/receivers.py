"""What sessions do when the fleet reports something (``chargepoints.signals``); connected in
``ChargingConfig.ready``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chargepoints.models import ChargePoint
from charging.services.reservations import connector_reservations_follow
from charging.services.transaction_end import connector_sessions_follow, connector_sessions_replay_follow


def connector_status_follow(
    sender: Any,
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    status: str,
    charging: bool | None,
    at: datetime,
    asked: bool | None = None,
    previous_status: str = "",
    **kwargs: Any,
) -> None:
    connector_sessions_follow(
        charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, status=status, charging=charging, at=at
    )
    connector_reservations_follow(
        charge_point=charge_point,
        connector_id=connector_id,
        evse_id=evse_id,
        status=status,
        any_active=asked,
        previous_status=previous_status,
    )


def connector_status_replay_follow(
    sender: Any,
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    charging: bool,
    at: datetime,
    newer_received_at: datetime,
    **kwargs: Any,
) -> None:
    connector_sessions_replay_follow(
        charge_point=charge_point,
        connector_id=connector_id,
        evse_id=evse_id,
        charging=charging,
        at=at,
        newer_received_at=newer_received_at,
    )
