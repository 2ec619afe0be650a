"""The last_seen a connection writes at once, before it answers: only when the offline sweep may
have marked its charger offline. Real daphne, real sockets, PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async

from chargepoints import services
from chargepoints.models import ChargePoint
from conftest import raw_socket, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_charger_heartbeating_on_time_is_answered_without_a_last_seen_write_of_its_own(daphne, tmp_path):
    """A Heartbeat an interval after the last (as chargers send them) came after "a silence of a
    heartbeat interval", and each cost a ``charge_point_seen`` transaction before its answer, beside
    the heartbeat batch's own write: the idle fleet's every message. The sweep waits 2 intervals;
    only a message 1.5 intervals after the last refresh is written at once, and the charger the
    sweep marked offline is still online again before that message is answered."""
    count = tmp_path / "seen"
    count.write_text("")
    server = await sync_to_async(start_daphne)(
        tmp_path, "ocpp_gateway.tests.seen_counted_app:application", CSMS_TEST_SEEN_COUNT_FILE=str(count)
    )
    try:
        await ChargePoint.objects.acreate(charge_point_id="CP-ON-TIME", heartbeat_interval=2)
        async with raw_socket(server, "1.6", "CP-ON-TIME") as websocket:
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            await websocket.send(json.dumps([2, "b", "BootNotification", boot]))
            await websocket.recv()
            for beat in range(4):
                await asyncio.sleep(2.1)  # a charger's timer: an interval after its last message, a little late
                await websocket.send(json.dumps([2, f"h{beat}", "Heartbeat", {}]))
                await websocket.recv()
            assert count.read_text() == ""
            await asyncio.sleep(4.5)  # past the sweep's 2 intervals
            assert await sync_to_async(services.mark_offline_stale_charge_points)() == ["CP-ON-TIME"]
            await websocket.send(json.dumps([2, "late", "Heartbeat", {}]))
            await websocket.recv()
            assert count.read_text() == "CP-ON-TIME\n"
            assert (await ChargePoint.objects.aget(charge_point_id="CP-ON-TIME")).connected
    finally:
        await sync_to_async(stop_daphne)(server)
