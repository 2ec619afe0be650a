"""OCPP 2.0.1 notifications the CSMS acknowledges (monitoring reports, events, limits), and
DataTransfer. NotifyReport is stored (``device_model``); firmware and log status are tracked (``firmware``)."""

from __future__ import annotations

import logging

from ocpp.v201 import call_result
from ocpp.v201.enums import Action, DataTransferStatusEnumType

from ocpp_gateway.acknowledge import acknowledging_handler


class NotificationHandlers:
    on_notify_event = acknowledging_handler(Action.notify_event, call_result.NotifyEvent)
    on_notify_monitoring_report = acknowledging_handler(
        Action.notify_monitoring_report, call_result.NotifyMonitoringReport
    )
    on_notify_charging_limit = acknowledging_handler(Action.notify_charging_limit, call_result.NotifyChargingLimit)
    on_cleared_charging_limit = acknowledging_handler(Action.cleared_charging_limit, call_result.ClearedChargingLimit)
    on_notify_customer_information = acknowledging_handler(
        Action.notify_customer_information, call_result.NotifyCustomerInformation
    )
    on_notify_display_messages = acknowledging_handler(
        Action.notify_display_messages, call_result.NotifyDisplayMessages
    )
    on_report_charging_profiles = acknowledging_handler(
        Action.report_charging_profiles, call_result.ReportChargingProfiles
    )
    on_publish_firmware_status_notification = acknowledging_handler(
        Action.publish_firmware_status_notification, call_result.PublishFirmwareStatusNotification
    )
    on_security_event_notification = acknowledging_handler(
        Action.security_event_notification, call_result.SecurityEventNotification, level=logging.WARNING
    )
    on_data_transfer = acknowledging_handler(
        Action.data_transfer, lambda: call_result.DataTransfer(status=DataTransferStatusEnumType.unknown_vendor_id)
    )
