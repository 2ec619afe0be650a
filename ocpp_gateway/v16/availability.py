"""OCPP 1.6 Core profile: StatusNotification."""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v16.enums import Action

from chargepoints import services
from chargepoints.connector_ids import connector_ids_refusal
from kernel.ocpp_package import on_payload
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.group_commit import in_commit_group

# What a connector status says about charging, for the idle time of its session (None: nothing):
# connected and not charging is idle time; ``Available`` is no EV connected (a session kept open
# after the cable left, StopTransactionOnEVSideDisconnect false), which ends idle time, as charging does.
# ``SuspendedEVSE`` is the charger withholding energy (§4.9: a smart charging restriction, a site's
# pause at 0 A, local supply constraints), not the driver's idle time: it opens none and ends none
# (an EV already idle, then paused, stays idle).
_CHARGING = {"Charging": True, "SuspendedEV": False, "Finishing": False, "Available": True}


class AvailabilityHandlers:
    id: str

    @on_payload(Action.status_notification)
    async def on_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{connectorId, errorCode, status, info?, timestamp?, vendorId?, vendorErrorCode?}`` -> ``{}``."""
        if refusal := connector_ids_refusal(connector_id=payload["connectorId"]):
            raise PropertyConstraintViolationError(description=refusal)
        status = payload["status"]
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            connector_id=payload["connectorId"],
            status=status,
            error_code=payload["errorCode"],
            info=payload.get("info", ""),
            vendor_id=payload.get("vendorId", ""),
            vendor_error_code=payload.get("vendorErrorCode", ""),
            timestamp=parse_ocpp_time(payload.get("timestamp")),
            charging=_CHARGING.get(status),
        )
        return {}
