"""Notifications a charger sends after a command are answered, not refused with NotImplemented."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint, Connector, OcppMessage
from conftest import ahttp, eventually, ocpp_charger, raw_socket
from ocpp_gateway.tests.conftest import RoundTrip
from ocpp_gateway.v201.notifications import NotificationHandlers

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


def _availability(timestamp: str, state: str, component: dict) -> dict:
    return {
        "eventId": 1,
        "timestamp": timestamp,
        "trigger": "Delta",
        "actualValue": state,
        "eventNotificationType": "HardWiredNotification",
        "component": component,
        "variable": {"name": "AvailabilityState"},
    }


async def test_v201_a_connectors_availability_state_event_is_its_status(daphne):
    """G01/N07: a Connector's AvailabilityState told by NotifyEvent is set as a StatusNotification
    sets it, by the same rules of time (an older one, replayed, changes nothing); an EVSE's own, one
    without its connector and other variables are only acknowledged."""
    await ChargePoint.objects.acreate(charge_point_id="CP201-AV", heartbeat_interval=60)
    connector1 = {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    async with ocpp_charger(daphne, "2.0.1", "CP201-AV") as charger:
        await charger.call(
            call201.StatusNotification(
                timestamp="2026-11-25T10:00:00Z", connector_status="Available", evse_id=1, connector_id=1
            )
        )
        await charger.call(
            call201.NotifyEvent(
                generated_at="2026-11-25T10:05:00Z",
                seq_no=0,
                event_data=[
                    _availability("2026-11-25T10:05:00Z", "Faulted", connector1),
                    _availability("2026-11-25T10:05:00Z", "Occupied", {"name": "Connector", "evse": {"id": 2}}),
                    _availability("2026-11-25T10:05:00Z", "Unavailable", {"name": "EVSE", "evse": {"id": 2}}),
                    {**_availability("2026-11-25T10:05:00Z", "Reserved", connector1), "variable": {"name": "Other"}},
                    _availability(
                        "2026-11-25T10:05:00Z", "Occupied", {"name": "Connector", "evse": {"id": 1, "connectorId": 2}}
                    ),
                ],
            )
        )
        statuses = {
            (c.evse_id, c.connector_id): c.status
            async for c in Connector.objects.filter(charge_point__charge_point_id="CP201-AV")
        }
        assert statuses == {(1, 1): "Faulted", (1, 2): "Occupied"}

        replayed = _availability("2026-11-25T10:01:00Z", "Available", connector1)  # older than the Faulted
        await charger.call(call201.NotifyEvent(generated_at="2026-11-25T10:06:00Z", seq_no=1, event_data=[replayed]))
        assert (
            await Connector.objects.aget(charge_point__charge_point_id="CP201-AV", connector_id=1)
        ).status == "Faulted"
        await charger.call(
            call201.StatusNotification(
                timestamp="2026-11-25T10:03:00Z", connector_status="Available", evse_id=1, connector_id=1
            )
        )  # a StatusNotification older than the event's state: a replay, as between two StatusNotifications
        recovered = _availability("2026-11-25T10:10:00Z", "Available", connector1)
        assert (
            await Connector.objects.aget(charge_point__charge_point_id="CP201-AV", connector_id=1)
        ).status == "Faulted"
        await charger.call(call201.NotifyEvent(generated_at="2026-11-25T10:10:00Z", seq_no=2, event_data=[recovered]))

    connector = await Connector.objects.aget(charge_point__charge_point_id="CP201-AV", connector_id=1)
    assert (connector.status, connector.status_timestamp.isoformat()) == ("Available", "2026-11-25T10:10:00+00:00")


async def test_v201_iso15118_charging_needs_and_schedules_are_answered_per_k15_k17(daphne):
    """Were ``NotSupported`` CALLERRORs: a station on ISO 15118 sends NotifyEVChargingNeeds (K15) and
    NotifyEVChargingSchedule (K17) and the CSMS SHALL answer them. The CSMS computes no schedule from an
    EV's needs: K15's ``Rejected`` (the station goes on with the limits it holds); the EV's schedule is
    ``Accepted`` (the CSMS sent it no ISO 15118 schedule it could break)."""
    await ChargePoint.objects.acreate(charge_point_id="CP201-EV", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CP201-EV") as charger:
        needs = await charger.call(
            call201.NotifyEVChargingNeeds(
                evse_id=1,
                charging_needs={
                    "requestedEnergyTransfer": "AC_three_phase",
                    "departureTime": "2026-11-25T18:00:00Z",
                    "acChargingParameters": {
                        "energyAmount": 30000,
                        "evMinCurrent": 6,
                        "evMaxCurrent": 32,
                        "evMaxVoltage": 230,
                    },
                },
            )
        )
        assert needs.status == "Rejected"
        schedule = await charger.call(
            call201.NotifyEVChargingSchedule(
                time_base="2026-11-25T10:00:00Z",
                evse_id=1,
                charging_schedule={
                    "id": 1,
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                },
            )
        )
        assert schedule.status == "Accepted"
        await charger.call(call201.NotifyChargingLimit(charging_limit={"chargingLimitSource": "EMS"}, evse_id=1))
        await charger.call(call201.ClearedChargingLimit(charging_limit_source="EMS", evse_id=1))
        await charger.call(
            call201.ReportChargingProfiles(
                request_id=1,
                charging_limit_source="CSO",
                evse_id=1,
                tbc=False,
                charging_profile=[
                    {
                        "id": 1,
                        "stackLevel": 0,
                        "chargingProfilePurpose": "TxDefaultProfile",
                        "chargingProfileKind": "Absolute",
                        "chargingSchedule": [
                            {
                                "id": 1,
                                "chargingRateUnit": "A",
                                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
                            }
                        ],
                    }
                ],
            )
        )

    assert not await OcppMessage.objects.filter(message_type=4).aexists()


async def _rate_to_spare(items: list[Any], what: str) -> list[Any]:
    """A connection's ``frame_work_kept`` with the frame rate not reached: all of the work at once."""
    return items


async def test_v201_a_notify_event_s_connector_states_are_written_in_one_batch(round_trips: list[RoundTrip]):
    """A NotifyEvent telling many connectors' AvailabilityState (one frame within the size limit
    holds some 230) was one group-commit batch per state, one after the other: 230 COMMITs and
    0.8 s of the database for a frame a StatusNotification's 5 ms answers, and as many connectors.
    Its states are now one unit of work, one batch, each still applied in order by the rules of a
    StatusNotification (the latest of a connector stands, a replayed older one changes nothing)."""
    await ChargePoint.objects.acreate(charge_point_id="CP201-MANY", heartbeat_interval=60)
    handlers = SimpleNamespace(id="CP201-MANY", frame_work_kept=_rate_to_spare)
    states = [
        _availability(
            f"2026-11-25T10:{n:02d}:00Z", "Occupied", {"name": "Connector", "evse": {"id": n, "connectorId": 1}}
        )
        for n in range(1, 41)
    ]
    states.append(
        _availability("2026-11-25T10:50:00Z", "Faulted", {"name": "Connector", "evse": {"id": 1, "connectorId": 1}})
    )
    states.append(
        _availability("2026-11-25T10:00:30Z", "Available", {"name": "Connector", "evse": {"id": 2, "connectorId": 1}})
    )
    del round_trips[:]
    answer = await NotificationHandlers.on_notify_event(
        handlers, {"generatedAt": "2026-11-25T10:50:00Z", "seqNo": 0, "eventData": states}
    )
    assert answer == {}
    assert len([trip for trip in round_trips if trip.kind == "_commit_gen"]) == 1
    statuses = {
        (c.evse_id, c.connector_id): c.status
        async for c in Connector.objects.filter(charge_point__charge_point_id="CP201-MANY")
    }
    assert statuses == {(n, 1): "Occupied" for n in range(2, 41)} | {(1, 1): "Faulted"}


async def test_v201_a_status_of_evse_or_connector_0_is_acknowledged_and_kept_as_no_connector(daphne, api_key):
    """2.0.1 numbers EVSEs and their connectors from 1 and has no connector of the whole station: a
    StatusNotification of EVSE 0 or connector 0 was kept as a connector row and listed among the
    station's connectors. It is acknowledged, as NotifyEvent's AvailabilityState of such ids is, and kept
    nowhere; a 1.6 charger's connector 0 (the charger as a whole) is still kept."""
    await ChargePoint.objects.acreate(charge_point_id="CP201-ZERO", heartbeat_interval=60)
    await ChargePoint.objects.acreate(charge_point_id="CP16-ZERO", heartbeat_interval=60)
    status = {"timestamp": "2026-11-25T10:00:00Z", "connectorStatus": "Unavailable"}
    async with raw_socket(daphne, "2.0.1", "CP201-ZERO") as websocket:
        answers = []
        for n, (evse_id, connector_id) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
            ids = {"evseId": evse_id, "connectorId": connector_id}
            await websocket.send(json.dumps([2, f"s{n}", "StatusNotification", {**status, **ids}]))
            answers.append(json.loads(await asyncio.wait_for(websocket.recv(), timeout=5)))
    async with raw_socket(daphne, "1.6", "CP16-ZERO") as websocket:
        station = {"connectorId": 0, "errorCode": "NoError", "status": "Available"}
        await websocket.send(json.dumps([2, "z", "StatusNotification", station]))
        answers.append(json.loads(await asyncio.wait_for(websocket.recv(), timeout=5)))
    assert answers == [[3, f"s{n}", {}] for n in range(4)] + [[3, "z", {}]]
    listed = {}
    for charge_point_id in ("CP201-ZERO", "CP16-ZERO"):
        status_code, body = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/{charge_point_id}/connectors", api_key=api_key
        )
        assert status_code == 200
        listed[charge_point_id] = [(row["evse_id"], row["connector_id"], row["status"]) for row in body]
    assert listed == {"CP201-ZERO": [(1, 1, "Unavailable")], "CP16-ZERO": [(None, 0, "Available")]}
