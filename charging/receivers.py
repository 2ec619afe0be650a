"""What sessions do when the fleet reports something (``chargepoints.signals``); connected in
``ChargingConfig.ready``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from chargepoints.models import ChargePoint
from charging.selectors import transactions_open_exist
from charging.services.transaction_end import transaction_charging_state_set, transactions_close_after_reboot


def connector_sessions_follow(
    sender: Any,
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    status: str,
    charging: bool | None,
    at: datetime,
    **kwargs: Any,
) -> None:
    """The connector's open sessions follow its status: ``charging`` feeds their idle time;
    ``Available`` after a reboot closes the sessions it interrupted. Most statuses say neither,
    or find no session open (one plain statement)."""
    follows = charging is not None or status == "Available"
    if not follows or not transactions_open_exist(
        charge_point=charge_point, connector_id=connector_id, evse_id=evse_id
    ):
        return
    if charging is not None:
        transaction_charging_state_set(
            charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, charging=charging, at=at
        )
    if status == "Available":
        transactions_close_after_reboot(charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, at=at)
