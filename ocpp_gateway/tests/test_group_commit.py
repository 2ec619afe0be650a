"""Group commit on PostgreSQL: batches form under load, a failing message loses only itself, a
batch that is not committed acknowledges nothing, and every result follows its commit."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import (
    DEFAULT_DB_ALIAS,
    IntegrityError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from psycopg import pq

from chargepoints.models import ChargePoint, Heartbeat
from conftest import _test_database_url, charger_row_held
from kernel.plain_sql import CommitOutcomeUnknown, rows_copied
from ocpp_gateway import group_commit
from ocpp_gateway.group_commit import CommitGroup, UnitAbandoned, _batch_begun, _Unit, batch_committed
from ocpp_gateway.tests.batches import COMMIT_LOSSES, Refused, commit_lost_in_flight, one_batch

pytestmark = pytest.mark.django_db(transaction=True)


def _register(charge_point_id: str, *, fail: bool = False) -> int:
    """Writes a row; returns the id of the database transaction that wrote it."""
    ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    if fail:
        raise Refused(charge_point_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT txid_current()")
        return cursor.fetchone()[0]


async def _registered_now() -> set[str]:
    return {cp async for cp in ChargePoint.objects.values_list("charge_point_id", flat=True)}


async def test_messages_that_arrive_together_share_a_transaction():
    group = CommitGroup(max_units=64)
    transactions = await asyncio.gather(*(group.run(_register, charge_point_id=f"CP-GC-{n}") for n in range(30)))
    assert await _registered_now() == {f"CP-GC-{n}" for n in range(30)}
    # The first starts a batch at once; the 29 that arrive while it is written go in the next one.
    assert len(set(transactions)) < 30


async def test_a_failing_message_loses_only_itself():
    group = CommitGroup(max_units=64)
    outcomes = await asyncio.gather(
        *(group.run(_register, charge_point_id=f"CP-GC-F{n}", fail=n == 3) for n in range(6)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[3], Refused)
    assert all(isinstance(outcome, int) for n, outcome in enumerate(outcomes) if n != 3)
    assert await _registered_now() == {f"CP-GC-F{n}" for n in range(6) if n != 3}


def _heartbeat_of_no_charger(*, deferred: bool = False) -> None:
    """A row whose foreign key is broken; ``deferred`` postpones the check to COMMIT, as Django
    declares its foreign keys (the batch makes them immediate)."""
    if deferred:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    Heartbeat.objects.create(charge_point_id=2**40, received_at=timezone.now())


async def test_a_broken_foreign_key_fails_only_its_message():
    outcomes = await one_batch(
        CommitGroup(max_units=64),
        (_register, {"charge_point_id": "CP-GC-FK"}),
        (_heartbeat_of_no_charger, {}),
    )
    assert isinstance(outcomes[0], int)
    assert isinstance(outcomes[1], IntegrityError)
    assert await _registered_now() == {"CP-GC-FK"}


async def test_a_batch_whose_commit_fails_acknowledges_none_of_its_messages():
    outcomes = await one_batch(
        CommitGroup(max_units=64),
        (_register, {"charge_point_id": "CP-GC-OK"}),
        (_heartbeat_of_no_charger, {"deferred": True}),
    )
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)
    assert await _registered_now() == set()


def _interval_set(charge_point_id: str) -> None:
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(heartbeat_interval=30)


async def test_a_row_locked_elsewhere_fails_only_the_message_that_needs_it(settings):
    settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS = 200
    await ChargePoint.objects.acreate(charge_point_id="CP-GC-LOCKED", heartbeat_interval=60)
    async with charger_row_held("CP-GC-LOCKED"):  # an admin's long transaction
        outcomes = await one_batch(
            CommitGroup(max_units=64),
            (_interval_set, {"charge_point_id": "CP-GC-LOCKED"}),
            (_register, {"charge_point_id": "CP-GC-FREE"}),
        )
    assert isinstance(outcomes[0], OperationalError)
    assert isinstance(outcomes[1], int)
    assert await _registered_now() == {"CP-GC-LOCKED", "CP-GC-FREE"}


async def test_a_result_is_handed_back_only_once_its_rows_are_visible_to_others():
    group = CommitGroup(max_units=8)
    seen: list[bool] = []

    def register_and_check(charge_point_id: str) -> None:
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
        transaction.on_commit(lambda: seen.append(True))

    for n in range(10):
        await group.run(register_and_check, charge_point_id=f"CP-GC-V{n}")
        # Read on the test's own connection, outside the batch's transaction.
        assert f"CP-GC-V{n}" in await _registered_now()
    assert len(seen) == 10


def _register_twice(charge_point_id: str) -> None:
    """Catches the second insert's error, as a get_or_create race does: only a savepoint keeps the
    transaction usable, so the batch is written again with one per unit."""
    ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    try:
        with transaction.atomic():
            ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    except IntegrityError:
        pass
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(heartbeat_interval=30)


async def test_a_message_that_caught_a_database_error_keeps_its_rows_and_the_others():
    outcomes = await one_batch(
        CommitGroup(max_units=64),
        (_register, {"charge_point_id": "CP-GC-BEFORE"}),
        (_register_twice, {"charge_point_id": "CP-GC-TWICE"}),
        (_register, {"charge_point_id": "CP-GC-AFTER"}),
    )
    assert isinstance(outcomes[0], int) and outcomes[1] is None and isinstance(outcomes[2], int)
    assert await _registered_now() == {"CP-GC-BEFORE", "CP-GC-TWICE", "CP-GC-AFTER"}
    assert await ChargePoint.objects.filter(charge_point_id="CP-GC-TWICE", heartbeat_interval=30).aexists()


async def test_a_batch_of_messages_that_succeed_sets_no_savepoint():
    def savepoints_of_a_nested_block() -> list:
        with transaction.atomic():
            return list(connection.savepoint_ids)

    outcomes = await one_batch(CommitGroup(max_units=64), (savepoints_of_a_nested_block, {}))
    assert outcomes == [[None]]


async def test_a_message_in_its_own_savepoint_fails_alone_and_the_batch_is_written_once():
    runs: list[str] = []

    def register_counted(charge_point_id: str, fail: bool = False) -> None:
        runs.append(charge_point_id)
        _register(charge_point_id, fail=fail)

    group = CommitGroup(max_units=64)
    release = threading.Event()
    first = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    queued = [
        asyncio.ensure_future(group.run(register_counted, charge_point_id="CP-GC-S1")),
        asyncio.ensure_future(group.run(register_counted, in_savepoint=True, charge_point_id="CP-GC-S2", fail=True)),
        asyncio.ensure_future(group.run(register_counted, charge_point_id="CP-GC-S3")),
    ]
    release.set()
    await first
    outcomes = await asyncio.gather(*queued, return_exceptions=True)
    assert outcomes[0] is None and isinstance(outcomes[1], Refused) and outcomes[2] is None
    assert runs == ["CP-GC-S1", "CP-GC-S2", "CP-GC-S3"]
    assert await _registered_now() == {"CP-GC-S1", "CP-GC-S3"}


async def test_a_unit_queued_ahead_runs_first_in_the_next_batch_in_its_order():
    runs: list[str] = []

    def noted(name: str) -> None:
        runs.append(name)

    group = CommitGroup(max_units=64)
    release = threading.Event()
    first = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    queued = [
        asyncio.ensure_future(group.run(noted, name="waiting 1")),
        asyncio.ensure_future(group.run(noted, in_savepoint=True, ahead=True, name="ahead 1")),
        asyncio.ensure_future(group.run(noted, name="waiting 2")),
        asyncio.ensure_future(group.run(noted, in_savepoint=True, ahead=True, name="ahead 2")),
    ]
    release.set()
    await first
    await asyncio.gather(*queued)
    assert runs == ["ahead 1", "ahead 2", "waiting 1", "waiting 2"]


def _heartbeat_gathered(*, charge_point_pk: int) -> int:
    """A row copied with ``may_gather``; returns how many heartbeats this transaction sees then."""
    rows_copied(Heartbeat, ("charge_point_id", "received_at"), [(charge_point_pk, timezone.now())], may_gather=True)
    return Heartbeat.objects.count()


@pytest.mark.parametrize("how", COMMIT_LOSSES)
async def test_a_batch_whose_connection_is_lost_with_its_commit_in_flight_is_not_written_again(monkeypatch, how):
    pk = (await ChargePoint.objects.acreate(charge_point_id="CP-GC-LOST", heartbeat_interval=60)).pk
    lost = commit_lost_in_flight(monkeypatch, how)
    with pytest.raises(CommitOutcomeUnknown):  # the message is not acknowledged: its charger sends it again
        await CommitGroup(max_units=64).run(_heartbeat_gathered, charge_point_pk=pk)
    assert await Heartbeat.objects.filter(charge_point_id=pk).acount() == 1  # stored once, not written again
    assert len(lost) == 1 and lost[0].closed  # however it looked, the connection is not used again


async def test_rows_gathered_by_a_batchs_messages_are_written_together_before_it_commits():
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-GC-G{n}", heartbeat_interval=60)).pk for n in range(3)
    ]
    outcomes = await one_batch(
        CommitGroup(max_units=64), *((_heartbeat_gathered, {"charge_point_pk": pk}) for pk in pks)
    )
    assert outcomes == [0, 0, 0]  # gathered, not yet written, while the units ran
    assert await Heartbeat.objects.filter(charge_point_id__in=pks).acount() == 3


async def test_a_gathered_row_the_database_refuses_fails_only_its_message():
    pks = [
        (await ChargePoint.objects.acreate(charge_point_id=f"CP-GC-R{n}", heartbeat_interval=60)).pk for n in range(2)
    ]
    outcomes = await one_batch(
        CommitGroup(max_units=64),
        (_heartbeat_gathered, {"charge_point_pk": pks[0]}),
        (_heartbeat_gathered, {"charge_point_pk": 2**40}),  # no such charger
        (_heartbeat_gathered, {"charge_point_pk": pks[1]}),
    )
    assert isinstance(outcomes[0], int) and isinstance(outcomes[1], IntegrityError) and isinstance(outcomes[2], int)
    assert {hb async for hb in Heartbeat.objects.values_list("charge_point_id", flat=True)} == set(pks)


async def test_a_skippable_unit_given_up_before_its_batch_started_is_not_written():
    """``abandoned``: a unit whose caller was cancelled, or whose ``abandoned()`` became true,
    before its batch started is skipped (``UnitAbandoned``); one whose batch had started is
    written; a unit that did not ask to be skippable is written whatever became of its caller."""
    group = CommitGroup(max_units=64)
    gone = False
    release = threading.Event()
    running = asyncio.ensure_future(
        group.run(lambda: (release.wait(5), _register("CP-GC-RUNNING"))[1], abandoned=lambda: gone)
    )
    await asyncio.sleep(0.05)  # its batch started: the writer waits on ``release``
    cancelled = asyncio.ensure_future(group.run(_register, abandoned=lambda: False, charge_point_id="CP-GC-CANCELLED"))
    flagged = asyncio.ensure_future(group.run(_register, abandoned=lambda: gone, charge_point_id="CP-GC-FLAGGED"))
    kept = asyncio.ensure_future(group.run(_register, abandoned=lambda: False, charge_point_id="CP-GC-KEPT"))
    needed = asyncio.ensure_future(group.run(_register, charge_point_id="CP-GC-NEEDED"))
    await asyncio.sleep(0)
    cancelled.cancel()
    needed.cancel()
    gone = True
    release.set()
    assert isinstance(await running, int)  # given up on after its batch started: written
    with pytest.raises(UnitAbandoned):
        await flagged
    assert isinstance(await kept, int)
    assert cancelled.cancelled() and needed.cancelled()
    await one_batch(group)  # every queued unit was decided
    assert await _registered_now() == {"CP-GC-RUNNING", "CP-GC-KEPT", "CP-GC-NEEDED"}


async def test_a_batch_whose_metrics_cannot_be_recorded_is_still_acknowledged(monkeypatch):
    def unwritable(**_: object) -> None:
        raise OSError("metrics directory not writable")

    monkeypatch.setattr("kernel.metrics.group_commit_batch", unwritable)
    group = CommitGroup(max_units=64)
    transactions = await asyncio.gather(*(group.run(_register, charge_point_id=f"CP-GM-{n}") for n in range(3)))
    assert all(isinstance(txid, int) for txid in transactions)
    assert await _registered_now() == {f"CP-GM-{n}" for n in range(3)}


def _sent_until_answered(trace_path: Path, block: Callable[[], None]) -> tuple[list[str], list[str]]:
    """The frontend messages libpq sent while ``block`` ran on Django's connection, as
    ``type text`` (libpq's trace), split at the first backend answer: (sent before it, after it)."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    with open(trace_path, "w+b") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            block()
        finally:
            pgconn.untrace()
        trace.seek(0)
        lines = [line.split("\t") for line in trace.read().decode().splitlines()]
    first_answer = next(index for index, line in enumerate(lines) if line[0] == "B")
    sent = [f"{line[2]} {line[3].strip() if len(line) > 3 else ''}".strip() for line in lines if line[0] == "F"]
    before = sum(1 for line in lines[:first_answer] if line[0] == "F")
    return sent[:before], sent[before:]


def test_a_batch_sends_its_begin_and_settings_with_its_first_statement(tmp_path) -> None:
    def batch() -> None:
        with transaction.atomic(), _batch_begun(first_pass=True), connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "100ms"

    before_answer, _ = _sent_until_answered(tmp_path / "libpq.trace", batch)
    parsed = [message for message in before_answer if message.startswith("Parse")]
    assert [text.split('"')[3] for text in parsed] == [
        "BEGIN",
        "SET CONSTRAINTS ALL IMMEDIATE",
        "SET LOCAL lock_timeout = 100",
        "SHOW lock_timeout",
    ]
    assert "Sync" in before_answer  # one round trip for the four: all sent before the first answer


def test_a_batch_whose_begin_goes_before_a_copy_sends_it_alone_first(tmp_path) -> None:
    ChargePoint.objects.create(charge_point_id="CP-GC-BEGIN-COPY", heartbeat_interval=60)
    pk = ChargePoint.objects.get(charge_point_id="CP-GC-BEGIN-COPY").pk

    def batch() -> None:
        with transaction.atomic(), _batch_begun(first_pass=True):
            rows_copied(Heartbeat, ("charge_point_id", "received_at"), [(pk, timezone.now())])

    before_answer, _ = _sent_until_answered(tmp_path / "libpq.trace", batch)
    assert before_answer == ['Query "BEGIN; SET CONSTRAINTS ALL IMMEDIATE; SET LOCAL lock_timeout = 100"']
    assert Heartbeat.objects.filter(charge_point_id=pk).count() == 1


@pytest.mark.parametrize("first", ["a statement", "a COPY"])
def test_a_batch_whose_begin_fails_raises_django_s_operational_error(first: str) -> None:
    connection.ensure_connection()
    backend_pid = connection.connection.info.backend_pid
    with psycopg.connect(connection.connection.info.dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
    with pytest.raises(OperationalError), transaction.atomic(), _batch_begun(first_pass=True):
        if first == "a COPY":
            rows_copied(Heartbeat, ("charge_point_id", "received_at"), [(1, timezone.now())])
        else:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
    connection.close()  # the terminated connection; the test database's teardown opens another


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _connections_taken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The threads that take a connection from the pool from now on, one entry each time."""
    taken: list[str] = []
    backend = type(connections[DEFAULT_DB_ALIAS])
    get_new_connection = backend.get_new_connection

    def counted(self: Any, params: Any) -> Any:
        taken.append(threading.current_thread().name)
        return get_new_connection(self, params)

    monkeypatch.setattr(backend, "get_new_connection", counted)
    return taken


async def _two_batches_back_to_back(group: CommitGroup) -> tuple[int, int]:
    """The backend pids of two batches of ``group``, the second's unit queued while the first is written."""
    release = threading.Event()
    first = asyncio.ensure_future(group.run(lambda: release.wait(timeout=5) and _backend_pid()))
    await asyncio.sleep(0.05)
    second = asyncio.ensure_future(group.run(_backend_pid))  # waits: the next batch
    await _queued(group)
    release.set()
    return await first, await second


async def _queued(group: CommitGroup) -> None:
    """Once a unit waits in ``group``'s queue (a task's ``run`` has queued it)."""
    while not group._pending:
        await asyncio.sleep(0)


async def test_a_lane_keeps_its_connection_between_back_to_back_batches_and_gives_it_back_when_idle(monkeypatch):
    taken = _connections_taken(monkeypatch)
    group = CommitGroup(max_units=64)
    # The first batch ended with a unit waiting: the next batch, on the same lane, used its connection.
    first, second = await _two_batches_back_to_back(group)
    assert first == second
    assert len(taken) == 1
    await group.run(_backend_pid)  # the lane was idle in between: a connection from the pool again
    assert len(taken) == 2
    lane_connection = group._lane_threads[0].submit(lambda: connection.connection).result(timeout=5)
    assert lane_connection is None  # nothing waits: back in the pool (asked after the lane's release)


async def test_a_lane_kept_for_units_that_went_elsewhere_gives_its_connection_back():
    group = CommitGroup(max_units=64)
    release = threading.Event()
    first = asyncio.ensure_future(group.run(lambda: release.wait(timeout=5)))
    await asyncio.sleep(0.05)
    # Waiting when the batch ends (its lane keeps its connection), skipped when the next would start.
    gave_up = asyncio.ensure_future(group.run(_backend_pid, abandoned=lambda: True))
    await _queued(group)
    release.set()
    await first
    with pytest.raises(UnitAbandoned):
        await gave_up
    lane_connection = group._lane_threads[0].submit(lambda: connection.connection).result(timeout=5)
    assert lane_connection is None  # no batch followed: given back (asked after the lane's release)


async def test_a_lane_gives_its_connection_back_once_kept_long_enough(monkeypatch):
    monkeypatch.setattr(group_commit, "_KEPT_AT_MOST_SECONDS", 0.0)
    taken = _connections_taken(monkeypatch)
    await _two_batches_back_to_back(CommitGroup(max_units=64))
    assert len(taken) == 2  # each batch took one from the pool: the pool's lifetime and checks apply


async def test_a_kept_connection_whose_session_ended_is_replaced_before_the_next_batch(monkeypatch):
    loop = asyncio.get_running_loop()
    lane = ThreadPoolExecutor(max_workers=1)
    second_passes: list[int] = []  # batches written again, each unit in a savepoint, after a failed first pass
    in_savepoints = group_commit._outcomes_in_savepoints
    monkeypatch.setattr(
        group_commit, "_outcomes_in_savepoints", lambda batch: second_passes.append(1) or in_savepoints(batch)
    )

    def batch() -> Any:
        unit = _Unit(_backend_pid, {}, loop.create_future(), contextvars.copy_context())
        [(ok, value)] = batch_committed([unit], loop, keep_connection=lambda: True)
        assert ok, value
        return value

    try:
        pid = await loop.run_in_executor(lane, batch)
        with psycopg.connect(_test_database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            for _ in range(100):  # the session gone, its connection's socket closed
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                    break
                await asyncio.sleep(0.02)
        assert await loop.run_in_executor(lane, batch) != pid
        assert second_passes == []  # replaced before the batch: its first pass did not fail on it
    finally:
        lane.submit(close_old_connections).result(timeout=5)
        lane.shutdown()
