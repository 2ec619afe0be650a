"""Heartbeats and the message log are written behind, in batches: none is lost on a clean close, and
a flush goes first in its group-commit batch."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint, Heartbeat, OcppMessage
from chargepoints.services import ReceivedHeartbeat, charge_point_heartbeats_record
from conftest import charger_row_held, eventually, ocpp_charger
from kernel.plain_sql import rows_copied
from ocpp_gateway.buffers import WriteBehindBuffer
from ocpp_gateway.group_commit import commit_group

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


async def test_a_window_queued_behind_a_batch_held_by_a_row_lock_is_written_when_the_server_stops(daphne_factory):
    """A flush took its window and queued its unit behind another charger's batch, which waits for
    a row held elsewhere, when the server is told to stop (SIGTERM). The window is no longer
    pending, so the exit's flush would not write it: daphne's stop waits for its cancelled consumers
    to end, and their disconnects are written behind that batch, so the loop runs until it is."""
    server = daphne_factory(CSMS_HEARTBEAT_FLUSH_MS="20", CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS="4000")
    for name in ("CP-HB-HELD", "CP-HB-FLIGHT"):
        await ChargePoint.objects.acreate(charge_point_id=name, heartbeat_interval=60)
    async with (
        ocpp_charger(server, "1.6", "CP-HB-HELD") as held,
        ocpp_charger(server, "1.6", "CP-HB-FLIGHT") as beating,
        charger_row_held("CP-HB-HELD") as release,  # once both are connected (a handshake writes its row)
    ):
        now = timezone.now().isoformat()
        waiting = asyncio.ensure_future(
            held.call(call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=0, timestamp=now))
        )
        await asyncio.sleep(0.5)  # its batch waits for the row (the second pass: up to 4 s)
        await beating.call(call16.Heartbeat())
        await asyncio.sleep(0.3)  # the heartbeat's window taken, its unit queued behind that batch
        server.process.terminate()
        await asyncio.sleep(0.5)
        release.set()  # the held batch ends; the process exits
        await asyncio.to_thread(server.process.wait, 15)
        waiting.cancel()
    assert await heartbeats_of("CP-HB-FLIGHT") == 1


def _heartbeat_gathered(*, charge_point_pk: int) -> None:
    """An acknowledged unit's row, gathered until the batch's last unit ran (``may_gather``)."""
    rows_copied(Heartbeat, ("charge_point_id", "received_at"), [(charge_point_pk, timezone.now())], may_gather=True)


async def test_a_flush_goes_first_in_its_batch_and_the_rows_its_units_gathered_are_written_once():
    """A buffer's unit queued between two units that gather rows runs before both (``ahead``):
    nothing is gathered yet when its savepoint starts, so both gathered rows go in the batch's one
    COPY, after the buffer's row (ids in the order written); not one before it and one after."""
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-WB-G{n}", heartbeat_interval=60)).pk for n in range(3)
    ]
    buffer = WriteBehindBuffer(
        name="test heartbeat",
        write=lambda rows: rows_copied(Heartbeat, ("charge_point_id", "received_at"), rows),
        flush_seconds=lambda: 60,
        max_batch=10,
    )
    release = threading.Event()
    first = asyncio.ensure_future(commit_group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    gathered_before = asyncio.ensure_future(commit_group.run(_heartbeat_gathered, charge_point_pk=pks[0]))
    buffer.add((pks[1], timezone.now()))
    flushed = asyncio.ensure_future(buffer.flush())
    await asyncio.sleep(0.05)
    gathered_after = asyncio.ensure_future(commit_group.run(_heartbeat_gathered, charge_point_pk=pks[2]))
    release.set()
    await asyncio.gather(first, gathered_before, flushed, gathered_after)
    written = Heartbeat.objects.filter(charge_point_id__in=pks).order_by("id").values_list("charge_point_id", flat=True)
    assert [pk async for pk in written] == [pks[1], pks[0], pks[2]]


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


def _heartbeat_buffer(written_in: list[list[str]] | None = None) -> WriteBehindBuffer[tuple[int, object]]:
    """A heartbeat buffer; ``written_in`` gets the savepoints open at each of its writes."""

    def write(rows: list[tuple[int, object]]) -> None:
        if written_in is not None:
            written_in.append(list(connection.savepoint_ids))
        rows_copied(Heartbeat, ("charge_point_id", "received_at"), rows)

    return WriteBehindBuffer(name="test heartbeat", write=write, flush_seconds=lambda: 60, max_batch=10)


async def test_a_flush_writes_its_rows_in_its_units_one_savepoint():
    """A buffer's write costs its batch one SAVEPOINT and its RELEASE (the unit's own), not two."""
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-WB-S{n}", heartbeat_interval=60)).pk for n in range(2)
    ]
    written_in: list[list[str]] = []
    buffer = _heartbeat_buffer(written_in)
    for pk in pks:
        buffer.add((pk, timezone.now()))
    await buffer.flush()
    assert [len(savepoints) for savepoints in written_in] == [1]
    assert await Heartbeat.objects.filter(charge_point_id__in=pks).acount() == 2


async def test_a_row_the_database_refuses_loses_only_itself_the_flush_s_others_are_written():
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-WB-R{n}", heartbeat_interval=60)).pk for n in range(2)
    ]
    buffer = _heartbeat_buffer()
    for pk in (pks[0], -1, pks[1]):  # -1: no such charger, its foreign key refused
        buffer.add((pk, timezone.now()))
    await buffer.flush()
    written = Heartbeat.objects.filter(charge_point_id__in=pks).values_list("charge_point_id", flat=True)
    assert sorted([pk async for pk in written]) == sorted(pks)
    assert len(buffer) == 0


async def test_a_charger_row_locked_elsewhere_loses_at_most_its_own_heartbeat_the_window_s_others_are_written(
    settings, caplog
):
    """An admin's long transaction holds chargers' rows past the batch's lock timeout: the
    heartbeats of the window's other chargers are written all the same (row by row), not dropped
    with them, however many heartbeats the held chargers sent in the window (round 41's probe: a
    held charger's two heartbeats used up the waits, and every other charger's were lost)."""
    settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS = 200
    for n in range(4):
        await ChargePoint.objects.acreate(charge_point_id=f"CP-WB-L{n}", heartbeat_interval=60)
    buffer = WriteBehindBuffer(
        name="test heartbeat",
        write=lambda rows: charge_point_heartbeats_record(heartbeats=rows),
        flush_seconds=lambda: 60,
        max_batch=10,
        locks=lambda rows: frozenset(heartbeat.charge_point_id for heartbeat in rows),  # as the gateway's
    )
    async with charger_row_held("CP-WB-L0"), charger_row_held("CP-WB-L3"):
        for n in (0, 0, 3, 1, 3, 0, 2):
            buffer.add(ReceivedHeartbeat(f"CP-WB-L{n}", timezone.now()))
        await buffer.flush()
    assert [await heartbeats_of(f"CP-WB-L{n}") for n in range(4)] == [0, 1, 1, 0]
    assert len(buffer) == 0
    lost = [r.getMessage() for r in caplog.records if "CP-WB-L" in r.getMessage()]
    assert len(lost) == 5 and all(line.startswith("Could not store a test heartbeat row") for line in lost)
    assert all("CP-WB-L0" in line or "CP-WB-L3" in line for line in lost)


async def test_a_window_waiting_for_a_table_held_elsewhere_gives_up_after_four_lock_waits(settings, caplog):
    """A table held elsewhere (a migration's lock) would make every row of the window written again
    wait the lock timeout in turn, holding the batch's other units: after four waits the rows left
    are logged as lost."""
    settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS = 5000
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-WB-T{n}", heartbeat_interval=60)).pk for n in range(6)
    ]
    locked, release = threading.Event(), threading.Event()

    def hold_the_table() -> None:  # on its own connection
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Heartbeat._meta.db_table} IN SHARE MODE")
            locked.set()
            release.wait(30)
        connection.close()

    buffer = _heartbeat_buffer()
    holder = threading.Thread(target=hold_the_table)
    holder.start()
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        for pk in pks:
            buffer.add((pk, timezone.now()))
        await buffer.flush()
    finally:
        release.set()
        await asyncio.to_thread(holder.join)
    assert await Heartbeat.objects.filter(charge_point_id__in=pks).acount() == 0
    lost = [r.getMessage() for r in caplog.records if "wait for locks held elsewhere" in r.getMessage()]
    assert lost == ["Could not store 2 test heartbeat rows: they wait for locks held elsewhere"]
