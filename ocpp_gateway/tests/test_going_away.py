"""A gateway process stopped (SIGTERM: ``make serve`` stopping, a deploy, a container's stop) while
its chargers send (round 44's probe: daphne cancelled every consumer at once, a message whose batch
was being written was committed and never answered, and the chargers' sockets were dropped without
a WebSocket close frame). A real daphne, a raw socket, PostgreSQL, the charger's row held by a
transaction of its own so that the message is in its batch when the signal comes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from websockets.exceptions import ConnectionClosed

from chargepoints.models import ChargePoint
from conftest import charger_row_held, eventually, raw_socket, start_daphne, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def _someone_waits_for_a_lock() -> bool:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return cursor.fetchone()[0] > 0


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


async def test_a_stop_answers_the_message_being_written_then_closes_with_going_away(tmp_path: Path) -> None:
    await ChargePoint.objects.acreate(charge_point_id="CP-STOPPING", heartbeat_interval=3600)
    server = start_daphne(tmp_path)
    try:
        async with raw_socket(server, "1.6", "CP-STOPPING") as websocket:
            await websocket.send(json.dumps([2, "hb", "Heartbeat", {}]))
            assert json.loads(await websocket.recv())[0] == 3
            async with charger_row_held("CP-STOPPING") as release:
                await websocket.send(json.dumps([2, "st", "StatusNotification", STATUS]))
                assert await eventually(_someone_waits_for_a_lock, timeout=10)  # its batch waits for the row
                server.process.terminate()
                await asyncio.sleep(0.5)  # the stop has begun; then the batch may commit
                release.set()
                answer = json.loads(await websocket.recv())
            assert answer[:2] == [3, "st"]  # committed, and answered before the socket closed
            with pytest.raises(ConnectionClosed) as closed:
                await websocket.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001  # a close frame: going away
        assert server.process.wait(timeout=30) == 0
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-STOPPING")
        assert not charge_point.connected and charge_point.connection_channel == ""
    finally:
        if server.process.poll() is None:
            stop_daphne(server)
