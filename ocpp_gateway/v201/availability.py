"""OCPP 2.0.1 Availability block: StatusNotification."""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201.enums import Action

from chargepoints import services
from chargepoints.connector_ids import connector_ids_refusal, names_no_connector
from kernel.ocpp_package import on_payload
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.group_commit import in_commit_group


class AvailabilityHandlers:
    id: str

    @on_payload(Action.status_notification)
    async def on_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{timestamp, connectorStatus, evseId, connectorId}`` -> ``{}``; of EVSE or connector 0, no
        connector's (``names_no_connector``): acknowledged, kept nowhere."""
        if names_no_connector(evse_id=payload["evseId"], connector_id=payload["connectorId"]):
            return {}
        if refusal := connector_ids_refusal(evse_id=payload["evseId"], connector_id=payload["connectorId"]):
            raise PropertyConstraintViolationError(description=refusal)
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            evse_id=payload["evseId"],
            connector_id=payload["connectorId"],
            status=payload["connectorStatus"],
            timestamp=parse_ocpp_time(payload["timestamp"]),
        )
        return {}
