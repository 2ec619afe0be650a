"""OCPP 2.0.1 Availability block: StatusNotification."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoints import services
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.group_commit import in_commit_group


class AvailabilityHandlers:
    id: str

    @on(Action.status_notification)
    async def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> call_result.StatusNotification:
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            evse_id=evse_id,
            connector_id=connector_id,
            status=connector_status,
            timestamp=parse_ocpp_time(timestamp),
        )
        return call_result.StatusNotification()
