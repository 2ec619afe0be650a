"""A socket closed while its charger's row is held elsewhere (round 41's probe: the disconnect's write
timed out once and was never tried again, the charger `connected` until the heartbeat sweep, up to
ten minutes). A real daphne, a raw socket, PostgreSQL, the row held by a transaction of its own."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.utils import timezone

from chargepoints.models import ChargePoint
from conftest import charger_row_held, eventually, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def quick_lock_timeout_daphne(daphne_factory):
    return daphne_factory(CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS="300")


async def test_a_disconnect_the_database_refused_is_written_again_once_it_can_be(daphne, quick_lock_timeout_daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-HELD-CLOSE", heartbeat_interval=3600)
    async with raw_socket(quick_lock_timeout_daphne, "1.6", "CP-HELD-CLOSE") as websocket:
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await websocket.recv())[0] == 3
        assert (await ChargePoint.objects.aget(charge_point_id="CP-HELD-CLOSE")).connected
        async with charger_row_held("CP-HELD-CLOSE", at_most=4):
            await websocket.close()
            await asyncio.sleep(1.5)  # the disconnect's write waits 0.3 s, and fails
            assert (await ChargePoint.objects.aget(charge_point_id="CP-HELD-CLOSE")).connected
            released_at = timezone.now()

    async def offline() -> bool:
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-HELD-CLOSE")
        return not charge_point.connected and charge_point.connection_channel == ""

    assert await eventually(offline, timeout=15, interval=0.2)
    assert "could not record disconnect; trying again" in quick_lock_timeout_daphne.log()
    # Offline since the close, not since the write the database took once the row was free
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP-HELD-CLOSE")
    assert charge_point.offline_since is not None and charge_point.offline_since < released_at
