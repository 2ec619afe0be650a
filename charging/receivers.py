"""What sessions do when the fleet reports something (``chargepoints.signals``); connected in
``ChargingConfig.ready``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chargepoints.models import ChargePoint
from charging.services.reservations import connector_reservations_follow
from charging.services.transaction_end import connector_sessions_follow


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
    **kwargs: Any,
) -> None:
    connector_sessions_follow(
        charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, status=status, charging=charging, at=at
    )
    connector_reservations_follow(
        charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, status=status, any_active=asked
    )
