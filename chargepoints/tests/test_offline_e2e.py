"""Offline detection with a real Celery worker and beat on Redis, and a real charger on daphne."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints import services
from chargepoints.models import ChargePoint
from commands.tests.conftest import answering_charger
from conftest import ahttp, eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_silent_charger_with_an_open_socket_is_marked_offline_by_the_sweep(daphne, api_key, celery_worker):
    celery_worker(CSMS_OFFLINE_CHECK_INTERVAL="1")
    await ChargePoint.objects.acreate(charge_point_id="CP-SILENT", heartbeat_interval=2)
    url = f"{daphne.http_url}/api/v1/installer/charge-points/CP-SILENT/connection-status"

    async def connected_is(expected: bool) -> bool:
        status, body = await ahttp(url, api_key=api_key)
        return status == 200 and body["connected"] is expected

    async with ocpp_charger(daphne, "1.6", "CP-SILENT") as charger:
        await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call.Heartbeat())
        assert await connected_is(True)
        await eventually(lambda: connected_is(False), timeout=15, interval=0.25)  # socket still open
        await charger.call(call.Heartbeat())
        assert await connected_is(True)


_V16_PUSH_TAKEN = answering_charger(V16Client, {"ChangeConfiguration": result16.ChangeConfiguration(status="Accepted")})
_V201_PUSH_TAKEN = answering_charger(
    V201Client,
    {
        "SetVariables": result201.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": "Accepted",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        )
    },
)


@pytest.mark.parametrize(
    ("version", "client_class", "boot", "reading"),
    [
        (
            "1.6",
            _V16_PUSH_TAKEN,
            call.BootNotification(charge_point_vendor="V", charge_point_model="M"),
            lambda: call.DataTransfer(vendor_id="V", message_id="reading"),
        ),
        (
            "2.0.1",
            _V201_PUSH_TAKEN,
            call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp"),
            lambda: call201.DataTransfer(vendor_id="V", message_id="reading"),
        ),
    ],
)
async def test_a_charger_that_took_a_shorter_interval_and_sends_messages_but_no_heartbeat_stays_online(
    daphne, api_key, version, client_class, boot, reading
):
    """OCPP 1.6 §4.6 and 2.0.1 B04: a charger need not heartbeat while other messages flow (the
    interval is one of inactivity); any message proves it alive. After it accepted a push of a
    shorter interval (1.6 ChangeConfiguration HeartbeatInterval, 2.0.1 SetVariables
    OCPPCommCtrlr.HeartbeatInterval) its messages still refresh ``last_seen`` often enough for the
    sweep's 2x the new interval: it was marked offline and back online every few seconds while a
    message came every half second, as ``last_seen`` was refreshed at the pace of the interval it
    had when it connected."""
    await ChargePoint.objects.acreate(charge_point_id="CP-CHATTY", heartbeat_interval=300)
    async with ocpp_charger(daphne, version, "CP-CHATTY", client_class=client_class) as charger:
        await charger.call(boot)
        status, body = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-CHATTY",
            method="PATCH",
            api_key=api_key,
            body={"heartbeat_interval": 2},
        )
        assert (status, body["heartbeat_interval_push"]["state"]) == (200, "accepted")
        went_offline: list[str] = []
        for _ in range(16):  # 8 s: twice the sweep's 4 s, past the 5 s CSMS_LAST_SEEN_WRITE_SECONDS
            await charger.call(reading())
            await asyncio.sleep(0.5)
            went_offline += await sync_to_async(services.mark_offline_stale_charge_points)()
        assert went_offline == []
