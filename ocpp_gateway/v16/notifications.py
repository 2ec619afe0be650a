"""OCPP 1.6 security notifications (recorded: ``ocpp_gateway.security_events``) and DataTransfer
(acknowledged)."""

from __future__ import annotations

from ocpp.v16 import call_result
from ocpp.v16.enums import Action, DataTransferStatus

from ocpp_gateway.acknowledge import acknowledging_handler
from ocpp_gateway.security_events import security_event_handler


class NotificationHandlers:
    on_security_event_notification = security_event_handler(Action.security_event_notification)
    # No vendor extensions are implemented; the spec's answer for an unknown vendorId.
    on_data_transfer = acknowledging_handler(
        Action.data_transfer, lambda: call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
    )
