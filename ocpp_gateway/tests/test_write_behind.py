"""Heartbeats and the message log are written behind, in batches: none is lost on a clean close."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint, Heartbeat, OcppMessage
from conftest import eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


async def heartbeats_of(charge_point_id: str) -> int:
    return await Heartbeat.objects.filter(charge_point__charge_point_id=charge_point_id).acount()


async def test_heartbeats_are_written_within_the_flush_interval_while_connected(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-HB-TICK", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CP-HB-TICK") as charger:
        answer = await charger.call(call201.Heartbeat())
        assert answer.current_time.endswith("Z")
        await charger.call(call201.Heartbeat())
        assert await eventually(lambda: heartbeats_of("CP-HB-TICK"), timeout=5) == 2
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-HB-TICK")
        assert charge_point.last_heartbeat is not None and charge_point.last_seen >= charge_point.last_heartbeat


async def test_pending_heartbeats_are_written_when_the_charger_disconnects(daphne_factory):
    server = daphne_factory(CSMS_HEARTBEAT_FLUSH_MS="600000")  # never by time within this test
    await ChargePoint.objects.acreate(charge_point_id="CP-HB-CLOSE", heartbeat_interval=60)
    async with ocpp_charger(server, "1.6", "CP-HB-CLOSE") as charger:
        for _ in range(3):
            await charger.call(call16.Heartbeat())
        await asyncio.sleep(0.3)
        assert await heartbeats_of("CP-HB-CLOSE") == 0  # still buffered
    assert await eventually(lambda: heartbeats_of("CP-HB-CLOSE"), timeout=20) == 3

    async def offline_after_its_heartbeats() -> bool:
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-HB-CLOSE")
        return charge_point.last_heartbeat is not None and not charge_point.connected

    await eventually(offline_after_its_heartbeats, timeout=20)
    await asyncio.sleep(0.3)  # written before presence was cleared: nothing brings it back online
    assert not (await ChargePoint.objects.aget(charge_point_id="CP-HB-CLOSE")).connected


async def test_pending_heartbeats_and_log_frames_are_written_when_the_server_stops(daphne_factory):
    server = daphne_factory(CSMS_HEARTBEAT_FLUSH_MS="600000", CSMS_MESSAGE_LOG_FLUSH_MS="600000")
    await ChargePoint.objects.acreate(charge_point_id="CP-HB-STOP", heartbeat_interval=60)
    async with ocpp_charger(server, "1.6", "CP-HB-STOP") as charger:
        await charger.call(call16.Heartbeat())
        server.process.terminate()
        await asyncio.to_thread(server.process.wait, 15)
    assert await heartbeats_of("CP-HB-STOP") == 1
    logged = OcppMessage.objects.filter(charge_point__charge_point_id="CP-HB-STOP", action="Heartbeat")
    assert await logged.acount() == 2  # the CALL and its CALLRESULT


async def test_the_channel_layer_pool_makes_a_burst_wait_instead_of_failing(settings):
    from redis.asyncio import BlockingConnectionPool

    from ocpp_gateway.channel_layer import BlockingPoolRedisChannelLayer

    layer = BlockingPoolRedisChannelLayer(hosts=[{"address": settings.REDIS_URL, "max_connections": 2, "timeout": 5}])
    pool = layer.create_pool(0)
    assert isinstance(pool, BlockingConnectionPool) and pool.max_connections == 2
    channels = [await layer.new_channel() for _ in range(20)]
    await asyncio.gather(*(layer.send(channel, {"type": "ping"}) for channel in channels))
    assert [(await layer.receive(channel))["type"] for channel in channels] == ["ping"] * 20
    await layer.flush()
