"""A pending charger: told what it may use, and woken by commissioning (raw-frame chargers, real daphne)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from chargepoints.models import ChargePoint, LifecycleState
from commands.models import Command
from conftest import ahttp, eventually, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

BOOT = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "A1"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "A1"}},
}
AUTHORIZE = {"1.6": {"idTag": "TAG-1"}, "2.0.1": {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}}


async def exchange(websocket, frame: list) -> list:
    await websocket.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=5))


async def booted_pending(websocket, version: str) -> None:
    boot = await exchange(websocket, [2, "b1", "BootNotification", BOOT[version]])
    assert boot[2]["status"] == "Pending"


async def woken_and_accepted(websocket, version: str) -> None:
    """The CSMS asks for a Boot at once; the Boot it gets is Accepted."""
    trigger = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
    assert trigger[0::2] == [2, "TriggerMessage"] and trigger[3] == {"requestedMessage": "BootNotification"}
    await websocket.send(json.dumps([3, trigger[1], {"status": "Accepted"}]))
    boot = await exchange(websocket, [2, "b2", "BootNotification", BOOT[version]])
    assert boot[2]["status"] == "Accepted"
    command = await eventually(lambda: Command.objects.filter(action="TriggerMessage", state="accepted").afirst())
    assert command.request == {"requested_message": "BootNotification"}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_pending_charger_is_told_every_action_it_may_use(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-WAIT", heartbeat_interval=60, lifecycle_state="pending")
    async with raw_socket(daphne, version, "CP-WAIT") as websocket:
        await booted_pending(websocket, version)
        refused = await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE[version]])
    served = {
        "1.6": "BootNotification, DiagnosticsStatusNotification, FirmwareStatusNotification, Heartbeat, "
        "LogStatusNotification, StatusNotification",
        "2.0.1": "BootNotification, FirmwareStatusNotification, Heartbeat, LogStatusNotification, "
        "NotifyReport, StatusNotification",
    }[version]
    assert refused[:4] == [4, "a1", "SecurityError", f"The charge point is not commissioned; only {served} are served."]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_pending_charger_may_send_the_upload_statuses_a_trigger_asks_for(daphne, version):
    """1.6 §4.2 / 2.0.1 B02.FR.02: a Pending charger sends what a TriggerMessage asks, and is answered;
    its meter values are not taken (nobody commissioned it)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-TRIG", heartbeat_interval=60, lifecycle_state="pending")
    reading = {"sampledValue": [{"value": "1000"}], "timestamp": "2026-12-06T03:00:00Z"}
    meter_values = {"connectorId" if version == "1.6" else "evseId": 1, "meterValue": [reading]}
    async with raw_socket(daphne, version, "CP-TRIG") as websocket:
        await booted_pending(websocket, version)
        assert await exchange(websocket, [2, "f1", "FirmwareStatusNotification", {"status": "Idle"}]) == [3, "f1", {}]
        assert (await exchange(websocket, [2, "m1", "MeterValues", meter_values]))[:3] == [4, "m1", "SecurityError"]


async def test_a_pending_2_0_1_charger_may_send_the_report_it_was_asked_for(daphne):
    """B02.FR.01: in Pending the CSMS may ask GetBaseReport/GetReport; their NotifyReport is served."""
    await ChargePoint.objects.acreate(charge_point_id="CP-REPORT", heartbeat_interval=60, lifecycle_state="pending")
    report = {
        "requestId": 7,
        "generatedAt": "2026-12-06T03:00:00Z",
        "seqNo": 0,
        "tbc": False,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [{"type": "Actual", "value": "60"}],
            }
        ],
    }
    async with raw_socket(daphne, "2.0.1", "CP-REPORT") as websocket:
        await booted_pending(websocket, "2.0.1")
        answered = await exchange(websocket, [2, "r1", "NotifyReport", report])
        refused = await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE["2.0.1"]])
    assert answered == [3, "r1", {}]
    assert refused[:3] == [4, "a1", "SecurityError"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_commissioning_through_the_api_wakes_the_pending_charger(daphne, api_key, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-NEW", heartbeat_interval=300, lifecycle_state="pending")
    async with raw_socket(daphne, version, "CP-NEW") as websocket:
        await booted_pending(websocket, version)
        status, body = await ahttp(  # answered before the charger answers the trigger
            f"{daphne.http_url}/api/v1/chargepoints/CP-NEW",
            method="PATCH",
            api_key=api_key,
            body={"lifecycle_state": "commissioned"},
        )
        assert (status, body["lifecycle_state"]) == (200, "commissioned")
        await woken_and_accepted(websocket, version)
        assert (await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE[version]]))[0] == 3


async def test_commissioning_in_the_admin_wakes_the_pending_charger(daphne):
    charge_point = await ChargePoint.objects.acreate(
        charge_point_id="CP-ADMIN", heartbeat_interval=300, lifecycle_state="pending"
    )

    def commission() -> int:
        client = Client()
        client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
        return client.post(f"/admin/chargepoints/chargepoint/{charge_point.pk}/lifecycle/commissioned/").status_code

    async with raw_socket(daphne, "2.0.1", "CP-ADMIN") as websocket:
        await booted_pending(websocket, "2.0.1")
        assert await sync_to_async(commission)() == 302
        await woken_and_accepted(websocket, "2.0.1")


async def test_commissioning_an_offline_charger_succeeds_and_sends_nothing(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-AWAY", heartbeat_interval=60, lifecycle_state="pending")
    status, body = await ahttp(
        f"{daphne.http_url}/api/v1/chargepoints/CP-AWAY",
        method="PATCH",
        api_key=api_key,
        body={"lifecycle_state": "commissioned"},
    )
    assert (status, body["lifecycle_state"]) == (200, LifecycleState.COMMISSIONED)
    assert not await Command.objects.aexists()


async def test_a_silent_charger_does_not_hold_up_its_commissioning(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-MUTE", heartbeat_interval=60, lifecycle_state="pending")
    async with raw_socket(daphne, "1.6", "CP-MUTE") as websocket:
        await booted_pending(websocket, "1.6")
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-MUTE",
            method="PATCH",
            api_key=api_key,
            body={"lifecycle_state": "commissioned"},
        )
        assert status == 200
        trigger = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
        assert trigger[2] == "TriggerMessage"  # never answered
    assert (await ChargePoint.objects.aget(charge_point_id="CP-MUTE")).lifecycle_state == "commissioned"
