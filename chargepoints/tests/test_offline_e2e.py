"""Offline detection with a real Celery worker and beat on Redis, and a real charger on daphne."""

from __future__ import annotations

import asyncio
import base64
import json
import os

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
from conftest import ahttp, eventually, ocpp_charger, start_daphne, stop_daphne

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


def _masked_text_frame(text: str) -> bytes:
    """A client's text frame (RFC 6455 5.2, masked; payloads under 126 bytes)."""
    payload, mask = text.encode(), os.urandom(4)
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_charger_that_stops_answering_pings_is_offline_once_the_ping_times_out(tmp_path):
    """What the README's advice for a charger that keeps its socket with pings only (a long heartbeat
    interval) rests on: a socket whose peer no longer answers the gateway's pings (a dead link, a
    stack gone) is closed after ``--ping-interval`` + ``--ping-timeout`` and the charger is offline
    at once, long before 2x its 3600 s interval. The charger is a plain TCP socket that did the
    WebSocket handshake and a boot, then reads nothing and sends no pong."""
    server = await sync_to_async(start_daphne)(tmp_path, daphne_args=("--ping-interval", "1", "--ping-timeout", "2"))
    try:
        await ChargePoint.objects.acreate(charge_point_id="CP-DEAF", heartbeat_interval=3600)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ocpp/1.6/CP-DEAF HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n".encode()
        )
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        boot = json.dumps([2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}])
        writer.write(_masked_text_frame(boot))
        await writer.drain()
        assert b'"Accepted"' in await reader.read(200)
        assert (await ChargePoint.objects.aget(charge_point_id="CP-DEAF")).connected

        async def offline() -> bool:
            return not (await ChargePoint.objects.aget(charge_point_id="CP-DEAF")).connected

        await eventually(offline, timeout=20, interval=0.25)  # a ping within 2 s of silence, 2 s for its pong
        writer.close()
    finally:
        await sync_to_async(stop_daphne)(server)
