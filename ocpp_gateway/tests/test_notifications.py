"""Notifications a charger sends after a command are answered, not refused with NotImplemented."""

from __future__ import annotations

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint, OcppMessage
from conftest import eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


async def test_v16_firmware_diagnostics_security_and_data_transfer_are_answered(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP16-N", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP16-N") as charger:
        await charger.call(call16.FirmwareStatusNotification(status="Installed"))
        await charger.call(call16.DiagnosticsStatusNotification(status="Uploaded"))
        await charger.call(
            call16.SecurityEventNotification(
                type="TamperDetectionActivated", timestamp="2026-11-25T10:00:00Z", tech_info="lid"
            )
        )
        transfer = await charger.call(call16.DataTransfer(vendor_id="com.example", message_id="x", data="1"))
        assert transfer.status == "UnknownVendorId"

    answers = OcppMessage.objects.filter(charge_point__charge_point_id="CP16-N", direction="out", message_type=3)

    async def all_answers_logged() -> bool:  # the message log is written in batches
        return await answers.acount() == 4

    await eventually(all_answers_logged, timeout=10)
    assert sorted([m.action async for m in answers]) == [
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "SecurityEventNotification",
    ]
    assert not await OcppMessage.objects.filter(message_type=4).aexists()


async def test_v201_reports_events_and_firmware_status_are_answered(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP201-N", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CP201-N") as charger:
        await charger.call(call201.FirmwareStatusNotification(status="Installed"))
        await charger.call(call201.NotifyReport(request_id=1, generated_at="2026-11-25T10:00:00Z", seq_no=0, tbc=False))
        await charger.call(
            call201.NotifyEvent(
                generated_at="2026-11-25T10:00:00Z",
                seq_no=0,
                event_data=[
                    {
                        "eventId": 1,
                        "timestamp": "2026-11-25T10:00:00Z",
                        "trigger": "Delta",
                        "actualValue": "Faulted",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "Connector"},
                        "variable": {"name": "AvailabilityState"},
                    }
                ],
            )
        )
        transfer = await charger.call(call201.DataTransfer(vendor_id="com.example"))
        assert transfer.status == "UnknownVendorId"

    assert not await OcppMessage.objects.filter(message_type=4).aexists()
