"""OCPP 1.6 Core profile: StatusNotification."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargepoints import services
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.group_commit import in_commit_group

# What a connector status says about charging, for the idle time of its session (None: nothing).
_CHARGING = {"Charging": True, "SuspendedEV": False, "SuspendedEVSE": False, "Finishing": False}


class AvailabilityHandlers:
    id: str

    @on(Action.status_notification)
    async def on_status_notification(
        self,
        connector_id: int,
        error_code: str,
        status: str,
        info: str = "",
        timestamp: str | None = None,
        vendor_id: str = "",
        vendor_error_code: str = "",
        **_: Any,
    ) -> call_result.StatusNotification:
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            connector_id=connector_id,
            status=status,
            error_code=error_code,
            info=info,
            vendor_id=vendor_id,
            vendor_error_code=vendor_error_code,
            timestamp=parse_ocpp_time(timestamp),
            charging=_CHARGING.get(status),
        )
        return call_result.StatusNotification()
