"""Open sessions kept on the connection (issue 15, design 1), through the real commit group on
PostgreSQL: a known session's MeterValues or 2.0.1 event reads no session row, a change made
elsewhere meanwhile is never overwritten, and a batch that fails or is written again leaves the
connection with what PostgreSQL holds."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint, Heartbeat
from chargepoints.services import connector_status_set
from charging.models import MeterSample, Transaction, TransactionStatus
from charging.services import open_sessions
from charging.services.meter_ledger import meter_values_record
from charging.services.open_sessions import open_sessions_bind
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.handshake_auth import _attached_with_sessions
from ocpp_gateway.tests.batches import Refused, one_batch, reading16, refused, register_reading, start16

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _session_reads(func: Any, **kwargs: Any) -> list[str]:
    """Run a unit, answering the statements it issued that read a session row with its lock."""
    with CaptureQueriesContext(connection) as queries:
        func(**kwargs)
    table = Transaction._meta.db_table
    return [query["sql"] for query in queries if "FOR UPDATE" in query["sql"] and table in query["sql"]]


def _start16(charge_point_id: str, meter_start: int, started_at: datetime = T0) -> int:
    return transaction_start(start16(charge_point_id, meter_start, started_at)).transaction.pk


def _event201(charge_point_id: str, kind: str, seq_no: int, wh: int, at: datetime) -> None:
    transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="2.0.1",
            start_key="TX-OPEN",
            ocpp_transaction_id="TX-OPEN",
            started_at=at,
            evse_id=1,
            connector_id=1,
            authorize=False,
            samples=register_reading(wh, at, "Transaction.Begin" if kind == "Started" else "Sample.Periodic"),
            seq_no=seq_no,
            started_event=kind == "Started",
        )
    )


def _heartbeat_of_no_charger() -> None:
    """A row whose foreign key, checked at COMMIT, is broken: the whole batch fails."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    Heartbeat.objects.create(charge_point_id=2**40, received_at=timezone.now())


@sync_to_async
def _session(pk: int) -> Transaction:
    return Transaction.objects.get(pk=pk)


@sync_to_async
def _samples(pk: int) -> int:
    return MeterSample.objects.filter(transaction_id=pk).count()


@sync_to_async
def _admin_edit(pk: int, **fields: Any) -> None:
    """An edit from the admin or the API: the ORM's save of the whole row, in its own transaction."""
    session = Transaction.objects.get(pk=pk)
    for name, value in fields.items():
        setattr(session, name, value)
    session.save()


async def test_a_known_sessions_meter_values_read_no_session_row(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-1")
    open_sessions_bind()  # as the connection's handshake does
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-1", meter_start=1000)
    for minute, wh in ((1, 1500), (2, 2100)):
        reads = await group.run(
            _session_reads,
            func=meter_values_record,
            **reading16("CP-OS-1", pk, wh, T0 + timedelta(minutes=minute)),
        )
        assert reads == []
    session = await _session(pk)
    assert (session.last_register_wh, session.energy_wh) == (Decimal(2100), Decimal(1100))
    assert await _samples(pk) == 2


async def test_an_edit_made_elsewhere_is_kept_and_the_reading_applied_on_top(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-2")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-2", meter_start=1000)
    await group.run(
        meter_values_record,
        **reading16("CP-OS-2", pk, 1500, T0 + timedelta(minutes=1)),
    )
    # An operator corrects the meter start while the connection keeps the session as it was.
    await _admin_edit(pk, meter_start_wh=Decimal(400), needs_review=True)
    reads = await group.run(
        _session_reads,
        func=meter_values_record,
        **reading16("CP-OS-2", pk, 1800, T0 + timedelta(minutes=2)),
    )
    assert reads  # the kept copy's write failed: read again, with its lock
    session = await _session(pk)
    assert (session.meter_start_wh, session.needs_review) == (Decimal(400), True)
    assert (session.last_register_wh, session.energy_wh) == (Decimal(1800), Decimal(1400))
    assert await _samples(pk) == 2  # stored once, by the pass that committed
    # The connection keeps the row as now committed: the next reading reads no session again.
    reads = await group.run(
        _session_reads,
        func=meter_values_record,
        **reading16("CP-OS-2", pk, 2000, T0 + timedelta(minutes=3)),
    )
    assert reads == []
    session = await _session(pk)
    assert (session.meter_start_wh, session.energy_wh) == (Decimal(400), Decimal(1600))


async def test_a_session_ended_elsewhere_is_not_reopened_by_a_kept_copy(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-3")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-3", meter_start=1000)
    await _admin_edit(pk, status=TransactionStatus.ENDED, stopped_at=T0 + timedelta(minutes=5))
    await group.run(
        meter_values_record,
        **reading16("CP-OS-3", pk, 1300, T0 + timedelta(minutes=1)),
    )
    session = await _session(pk)
    assert session.status == TransactionStatus.ENDED
    assert session.stopped_at == T0 + timedelta(minutes=5)


async def test_a_resent_start_of_a_session_stopped_elsewhere_opens_a_new_one(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-7")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-7", meter_start=1000)
    assert await group.run(_start16, charge_point_id="CP-OS-7", meter_start=1000) == pk  # a replay
    # The charger's stop was parked and attached by an operator: the session ended, not by the CSMS.
    await _admin_edit(pk, status=TransactionStatus.ENDED, stopped_at=T0 + timedelta(minutes=5))
    # The same start again (keys repeat): a new session, as the row says, whatever the connection kept.
    again = await group.run(_start16, charge_point_id="CP-OS-7", meter_start=1000)
    assert again != pk
    assert (await _session(again)).status == TransactionStatus.ACTIVE


async def test_an_event_in_a_batch_written_again_counts_once_and_its_resend_is_a_replay(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-4")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    await group.run(_event201, charge_point_id="CP-OS-4", kind="Started", seq_no=0, wh=1000, at=T0)
    await group.run(
        _event201, charge_point_id="CP-OS-4", kind="Updated", seq_no=1, wh=1200, at=T0 + timedelta(minutes=1)
    )
    # Another charger's message fails the first pass: the batch is written again, unit by unit.
    outcomes = await one_batch(
        group,
        (
            _event201,
            {"charge_point_id": "CP-OS-4", "kind": "Updated", "seq_no": 2, "wh": 1500, "at": T0 + timedelta(minutes=2)},
        ),
        (refused, {}),
    )
    assert outcomes[0] is None and isinstance(outcomes[1], Refused)
    session = await sync_to_async(Transaction.objects.get)(ocpp_transaction_id="TX-OPEN")
    assert (session.seq_nos, session.energy_wh) == ([[0, 2]], Decimal(500))
    # Resent (its answer was lost): a replay, whatever the connection kept.
    await group.run(
        _event201, charge_point_id="CP-OS-4", kind="Updated", seq_no=2, wh=1500, at=T0 + timedelta(minutes=2)
    )
    assert await _samples(session.pk) == 3


async def test_a_batch_that_fails_keeps_nothing_and_the_resend_counts_once(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-5")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    await group.run(_event201, charge_point_id="CP-OS-5", kind="Started", seq_no=0, wh=1000, at=T0)
    outcomes = await one_batch(
        group,
        (
            _event201,
            {"charge_point_id": "CP-OS-5", "kind": "Updated", "seq_no": 1, "wh": 1400, "at": T0 + timedelta(minutes=1)},
        ),
        (_heartbeat_of_no_charger, {}),
    )
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)  # nothing acknowledged
    session = await sync_to_async(Transaction.objects.get)(ocpp_transaction_id="TX-OPEN")
    assert (session.seq_nos, session.energy_wh) == ([0], Decimal(0))
    # The charger resends it (it got a CALLERROR): applied once, from the cached path or not.
    for _ in range(2):
        await group.run(
            _event201, charge_point_id="CP-OS-5", kind="Updated", seq_no=1, wh=1400, at=T0 + timedelta(minutes=1)
        )
    session = await _session(session.pk)
    assert (session.seq_nos, session.energy_wh) == ([[0, 1]], Decimal(400))
    assert await _samples(session.pk) == 2


def test_a_new_session_is_written_once(register_charge_point):
    register_charge_point("CP-OS-6")
    table = f'"{Transaction._meta.db_table}"'
    with CaptureQueriesContext(connection) as queries:
        _event201("CP-OS-6", "Started", 0, 1000, T0)  # its begin reading counted in the INSERT
        first = _start16("CP-OS-6", 5000)
        second = _start16("CP-OS-6", 6000)  # closes the first, open on its connector (its stop was lost)
    writes = [q["sql"].split()[0] for q in queries if table in q["sql"].split("WHERE")[0]]
    assert [verb for verb in writes if verb in ("INSERT", "UPDATE")] == ["INSERT", "INSERT", "UPDATE", "INSERT"]
    started = Transaction.objects.get(ocpp_transaction_id="TX-OPEN")
    assert (started.meter_start_wh, started.last_register_wh, started.energy_wh) == (Decimal(1000),) * 2 + (0,)
    assert MeterSample.objects.filter(transaction=started).count() == 1
    superseded = Transaction.objects.get(pk=first)
    assert (superseded.status, superseded.stop_reason) == (TransactionStatus.ENDED, "Superseded")
    assert Transaction.objects.get(pk=second).status == TransactionStatus.ACTIVE


def _stop16(charge_point_id: str, pk: int, meter_stop: int, minutes: int) -> None:
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=str(pk),
            stopped_at=T0 + timedelta(minutes=minutes),
            action="StopTransaction",
            payload={"transactionId": pk, "meterStop": meter_stop},
            meter_stop_wh=Decimal(meter_stop),
            reason="Local",
        )
    )


def _stop_reads(charge_point_id: str, pk: int, meter_stop: int, minutes: int) -> list[str]:
    """Run a 1.6 stop, answering the statements it issued that read the session or the charger
    row (other than the tariff's read of the charger's tariff_id)."""
    with CaptureQueriesContext(connection) as queries:
        _stop16(charge_point_id, pk, meter_stop, minutes)
    sessions, chargers = f'"{Transaction._meta.db_table}"', f'"{ChargePoint._meta.db_table}"'
    return [
        query["sql"]
        for query in queries
        if query["sql"].startswith("SELECT")
        and (sessions in query["sql"].split("WHERE")[0] or chargers in query["sql"].split("WHERE")[0])
    ]


async def _kept_session(charge_point_id: str, group: CommitGroup, meter_start: int = 1000) -> int:
    """A session started and read once by this connection: kept."""
    pk = await group.run(_start16, charge_point_id=charge_point_id, meter_start=meter_start)
    await group.run(
        meter_values_record,
        **reading16(charge_point_id, pk, meter_start + 500, T0 + timedelta(minutes=1)),
    )
    return pk


@sync_to_async
def _billing(pk: int) -> list[tuple[str, Decimal, Decimal]]:
    return [
        (record.tariff.name if record.tariff else "", record.energy_wh, record.total)
        for record in BillingRecord.objects.filter(transaction_id=pk).select_related("tariff")
    ]


@sync_to_async
def _tariff_assigned(charge_point_id: str, name: str, price_per_kwh: str) -> None:
    """An operator gives the charger its own tariff (the admin's save, elsewhere)."""
    tariff = Tariff.objects.create(name=name, currency="EUR", price_per_kwh=Decimal(price_per_kwh))
    charger = ChargePoint.objects.get(charge_point_id=charge_point_id)
    charger.tariff = tariff
    charger.save()


async def test_a_known_sessions_stop_reads_neither_the_session_nor_the_charger_and_bills_the_tariff_as_committed(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-8")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-8", group)
    # The tariff assigned after the connection kept the session prices the sessions started after it:
    # this one started under none and stays unpriced.
    await _tariff_assigned("CP-OS-8", "own", "0.50")
    reads = await group.run(_stop_reads, charge_point_id="CP-OS-8", pk=pk, meter_stop=3000, minutes=10)
    assert reads == []
    session = await _session(pk)
    assert (session.status, session.energy_wh, session.stop_reason) == (TransactionStatus.ENDED, Decimal(2000), "Local")
    assert await _billing(pk) == [("", Decimal(2000), Decimal("0.00"))]
    # Ended: the connection keeps it no more; the resent stop reads the row and is a replay.
    reads = await group.run(_stop_reads, charge_point_id="CP-OS-8", pk=pk, meter_stop=3000, minutes=10)
    assert reads
    assert await _billing(pk) == [("", Decimal(2000), Decimal("0.00"))]
    # The connection's next session bills the tariff as committed, not as the connection first saw it.
    following = await group.run(
        _start16, charge_point_id="CP-OS-8", meter_start=4000, started_at=T0 + timedelta(minutes=20)
    )
    await group.run(_stop_reads, charge_point_id="CP-OS-8", pk=following, meter_stop=6000, minutes=30)
    assert await _billing(following) == [("own", Decimal(2000), Decimal("1.00"))]


async def test_a_stop_after_the_csms_closed_the_kept_session_replaces_that_close(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-9")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-9", group)
    # Closed elsewhere (a reboot's close, an operator): the kept copy is stale.
    await _admin_edit(
        pk,
        status=TransactionStatus.ENDED,
        stopped_at=T0 + timedelta(minutes=5),
        closed_by_csms=True,
        stop_reason="Reboot",
    )
    reads = await group.run(_stop_reads, charge_point_id="CP-OS-9", pk=pk, meter_stop=2600, minutes=8)
    assert reads  # the guarded write matched nothing: the batch read the row again
    session = await _session(pk)
    assert (session.stop_reason, session.closed_by_csms, session.stopped_at) == (
        "Local",
        False,
        T0 + timedelta(minutes=8),
    )
    assert [(energy, total) for _, energy, total in await _billing(pk)] == [(Decimal(1600), Decimal("0.00"))]


async def test_a_stop_in_a_failed_batch_writes_nothing_and_its_resend_ends_the_session_once(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-10")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-10", group)
    outcomes = await one_batch(
        group,
        (_stop16, {"charge_point_id": "CP-OS-10", "pk": pk, "meter_stop": 2200, "minutes": 6}),
        (_heartbeat_of_no_charger, {}),
    )
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)  # nothing acknowledged
    assert (await _session(pk)).status == TransactionStatus.ACTIVE
    assert await _billing(pk) == []
    for _ in range(2):  # resent after its CALLERROR, then resent again (its answer lost)
        await group.run(_stop16, charge_point_id="CP-OS-10", pk=pk, meter_stop=2200, minutes=6)
    session = await _session(pk)
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(1200))
    assert len(await _billing(pk)) == 1


async def test_a_stop_kept_by_a_connection_the_charger_left_meets_what_its_new_connection_wrote(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-11")
    open_sessions_bind()  # the first connection
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-11", group)

    async def reconnected() -> None:  # another connection (another process): its own kept sessions
        open_sessions_bind()
        await group.run(
            meter_values_record,
            **reading16("CP-OS-11", pk, 2400, T0 + timedelta(minutes=4)),
        )

    await asyncio.create_task(reconnected())
    # The stop reaches the first connection's copy (a socket not yet seen closed): it is stale.
    reads = await group.run(_stop_reads, charge_point_id="CP-OS-11", pk=pk, meter_stop=2500, minutes=5)
    assert reads
    session = await _session(pk)
    assert (session.status, session.last_register_wh, session.energy_wh) == (
        TransactionStatus.ENDED,
        Decimal(2400),  # the new connection's reading, kept
        Decimal(1500),
    )
    assert await _samples(pk) == 2


def _handshake(charge_point_id: str) -> Any:
    """The handshake's unit: admission, presence, then the open sessions loaded onto the connection."""
    return _attached_with_sessions(
        charge_point_id=charge_point_id,
        password=None,
        ocpp_version="1.6",
        channel_name=f"test.{charge_point_id}.{threading.get_ident()}",
        may_hash=False,
    )


def _reading_without_id(charge_point_id: str, wh: int, minutes: int) -> list[str]:
    """A 1.6 MeterValues without transactionId, answering the statements that read a session or
    the charger row."""
    with CaptureQueriesContext(connection) as queries:
        meter_values_record(
            charge_point_id=charge_point_id,
            connector_id=1,
            samples=register_reading(wh, T0 + timedelta(minutes=minutes)),
        )
    sessions, chargers = f'"{Transaction._meta.db_table}"', f'"{ChargePoint._meta.db_table}"'
    return [
        query["sql"]
        for query in queries
        if query["sql"].startswith("SELECT")
        and (sessions in query["sql"].split("WHERE")[0] or chargers in query["sql"].split("WHERE")[0])
    ]


async def _connected(charge_point_id: str, group: CommitGroup) -> None:
    """A new connection (this task's context): bound, then its handshake's unit."""
    open_sessions_bind()
    assert not isinstance(await group.run(_handshake, charge_point_id=charge_point_id), str)


async def test_a_reconnected_chargers_readings_with_or_without_its_id_read_no_session(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-12")
    group = CommitGroup(max_units=64)

    async def first_connection() -> int:
        await _connected("CP-OS-12", group)
        return await group.run(_start16, charge_point_id="CP-OS-12", meter_start=1000)

    pk = await asyncio.create_task(first_connection())
    await _connected("CP-OS-12", group)  # the charger reconnects (this process or another)
    reads = await group.run(
        _session_reads,
        func=meter_values_record,
        **reading16("CP-OS-12", pk, 1200, T0 + timedelta(minutes=1)),
    )
    assert reads == []
    assert await group.run(_reading_without_id, charge_point_id="CP-OS-12", wh=1500, minutes=2) == []
    session = await _session(pk)
    assert (session.last_register_wh, session.energy_wh) == (Decimal(1500), Decimal(500))
    assert await _samples(pk) == 2


async def test_a_reading_without_id_meets_a_session_closed_or_superseded_elsewhere(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-13")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-13", group)
    pk = await group.run(_start16, charge_point_id="CP-OS-13", meter_start=1000)
    # Closed elsewhere (an operator): the kept copy is stale; the reading finds no open session.
    await _admin_edit(pk, status=TransactionStatus.ENDED, stopped_at=T0 + timedelta(seconds=30))
    reads = await group.run(_reading_without_id, charge_point_id="CP-OS-13", wh=1200, minutes=1)
    assert reads  # the guarded write failed: the rows were read
    assert await _samples(pk) == 0
    assert (await _session(pk)).last_register_wh is None  # the reading did not reach it

    # Connected again (the failed guard left the connection not knowing all), a new session,
    # then one started from the charger's other connection supersedes it.
    await _connected("CP-OS-13", group)
    newer = await group.run(_start16, charge_point_id="CP-OS-13", meter_start=2000)
    assert await group.run(_reading_without_id, charge_point_id="CP-OS-13", wh=2100, minutes=1) == []

    async def other_connection() -> int:
        await _connected("CP-OS-13", group)
        return await group.run(_start16, charge_point_id="CP-OS-13", meter_start=3000)

    newest = await asyncio.create_task(other_connection())
    assert (await _session(newer)).status == TransactionStatus.ENDED
    reads = await group.run(_reading_without_id, charge_point_id="CP-OS-13", wh=3300, minutes=2)
    assert reads
    assert (await _samples(newer), await _samples(newest)) == (1, 1)
    assert (await _session(newest)).energy_wh == Decimal(300)


async def test_after_a_failed_batch_a_reading_without_id_reads_the_rows_until_the_next_connect(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-14")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-14", group)
    pk = await group.run(_start16, charge_point_id="CP-OS-14", meter_start=1000)
    outcomes = await one_batch(
        group,
        (_reading_without_id, {"charge_point_id": "CP-OS-14", "wh": 1200, "minutes": 1}),
        (_heartbeat_of_no_charger, {}),
    )
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)  # nothing acknowledged
    assert await _samples(pk) == 0
    # The connection no longer knows it keeps every open session: the resend reads the rows.
    assert await group.run(_reading_without_id, charge_point_id="CP-OS-14", wh=1200, minutes=1)
    assert await _samples(pk) == 1
    await _connected("CP-OS-14", group)  # loaded again at the next connect
    assert await group.run(_reading_without_id, charge_point_id="CP-OS-14", wh=1400, minutes=2) == []
    session = await _session(pk)
    assert (session.last_register_wh, session.energy_wh) == (Decimal(1400), Decimal(400))


async def test_a_reading_without_id_meets_an_earlier_session_started_late_by_the_connection_the_charger_left(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-15")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-15", group)
    newer = await group.run(_start16, charge_point_id="CP-OS-15", meter_start=2000)

    async def left_connection() -> int:  # its queued start, from before ``newer``, commits only now
        await _connected("CP-OS-15", group)
        return await group.run(
            _start16, charge_point_id="CP-OS-15", meter_start=1000, started_at=T0 - timedelta(minutes=5)
        )

    earlier = await asyncio.create_task(left_connection())
    assert (await _session(newer)).status == TransactionStatus.ACTIVE  # not superseded: it started later
    # Two sessions open on the connector: the reading names neither, so it goes to neither.
    reads = await group.run(_reading_without_id, charge_point_id="CP-OS-15", wh=2100, minutes=1)
    assert reads  # the kept copy of ``newer`` failed its guard: the rows were read
    assert (await _samples(newer), await _samples(earlier)) == (0, 0)
    assert (await _session(newer)).last_register_wh is None


async def test_a_reading_and_the_stop_of_its_session_in_one_batch_end_it_with_that_reading(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-16")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-16", group)  # meter start 1000, a reading of 1500

    def stop_without_meter_stop() -> None:  # as a 2.0.1 Ended without readings: the ledger's last one
        transaction_stop(
            StopRequest(
                charge_point_id="CP-OS-16",
                ocpp_transaction_id=str(pk),
                stopped_at=T0 + timedelta(minutes=6),
                action="StopTransaction",
                payload={"transactionId": pk},
                reason="Local",
            )
        )

    reading = reading16("CP-OS-16", pk, 2500, T0 + timedelta(minutes=5))
    outcomes = await one_batch(group, (meter_values_record, reading), (stop_without_meter_stop, {}))
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
    session = await _session(pk)
    assert (session.status, session.meter_stop_wh, session.energy_wh) == (
        TransactionStatus.ENDED,
        Decimal(2500),  # the reading gathered earlier in the batch, not yet written when the stop read
        Decimal(1500),
    )
    assert await _samples(pk) == 2
    assert [energy for _, energy, _ in await _billing(pk)] == [Decimal(1500)]


async def test_the_sessions_a_batch_noted_are_kept_once_it_commits_and_not_if_it_fails(
    register_charge_point,
):
    """A batch's first pass keeps its units' sessions by one callback at its commit (fails when
    that callback is not registered: the reading's copy is never kept), none when it fails, and a
    session ended in a batch is forgotten."""
    await sync_to_async(register_charge_point)("CP-OS-17")
    open_sessions_bind()
    kept = open_sessions._connection_sessions.get()
    assert kept is not None
    group = CommitGroup(max_units=64)
    pk = await _kept_session("CP-OS-17", group)  # meter start 1000, a reading of 1500
    assert kept[pk].last_register_wh == Decimal(1500)
    failed = await one_batch(
        group,
        (meter_values_record, reading16("CP-OS-17", pk, 1700, T0 + timedelta(minutes=2))),
        (_heartbeat_of_no_charger, {}),
    )
    assert all(isinstance(outcome, IntegrityError) for outcome in failed)
    assert kept.get(pk) is None or kept[pk].last_register_wh == Decimal(1500)  # forgotten or as committed
    await group.run(meter_values_record, **reading16("CP-OS-17", pk, 1800, T0 + timedelta(minutes=3)))
    assert kept[pk].last_register_wh == Decimal(1800)  # read again, and kept
    stop = StopRequest(
        charge_point_id="CP-OS-17",
        ocpp_transaction_id=str(pk),
        stopped_at=T0 + timedelta(minutes=6),
        action="StopTransaction",
        payload={"transactionId": pk},
        reason="Local",
        meter_stop_wh=Decimal(2600),
    )
    done = await one_batch(
        group,
        (meter_values_record, reading16("CP-OS-17", pk, 2500, T0 + timedelta(minutes=5))),
        (transaction_stop, {"request": stop}),
    )
    assert not any(isinstance(outcome, Exception) for outcome in done)
    assert pk not in kept  # its end, noted last, is what the connection keeps of it


def _handshake_session_reads(charge_point_id: str) -> list[str]:
    """The handshake's unit, answering the statements it issued that read the session rows (not the
    presence write's question whether any is open)."""
    with CaptureQueriesContext(connection) as queries:
        assert not isinstance(_handshake(charge_point_id), str)
    table = f'"{Transaction._meta.db_table}"'
    return [query["sql"] for query in queries if query["sql"].startswith("SELECT") and table in query["sql"]]


def _status_session_reads(charge_point_id: str, connector_id: int, status: str, charging: bool | None) -> list[str]:
    """A 1.6 StatusNotification, answering the statements it issued that read the session table
    (on its own, or as an EXISTS in another statement)."""
    with CaptureQueriesContext(connection) as queries:
        connector_status_set(
            charge_point_id=charge_point_id,
            connector_id=connector_id,
            status=status,
            error_code="NoError",
            timestamp=timezone.now(),
            charging=charging,
        )
    return [query["sql"] for query in queries if f'"{Transaction._meta.db_table}"' in query["sql"]]


async def test_a_handshake_reads_the_open_sessions_only_of_a_charger_that_has_some(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-15")
    group = CommitGroup(max_units=64)
    open_sessions_bind()
    assert await group.run(_handshake_session_reads, charge_point_id="CP-OS-15") == []
    pk = await group.run(_start16, charge_point_id="CP-OS-15", meter_start=1000)
    open_sessions_bind()  # it reconnects, a session open: loaded at connect
    assert len(await group.run(_handshake_session_reads, charge_point_id="CP-OS-15")) == 1
    reads = await group.run(
        _session_reads,
        func=meter_values_record,
        **reading16("CP-OS-15", pk, 1200, T0 + timedelta(minutes=1)),
    )
    assert reads == []


async def test_a_status_of_a_connector_without_a_kept_session_reads_no_session_and_one_with_follows_it(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-16")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-16", group)
    for charging in (False, True, False):  # a status that only feeds idle time: none kept, none read
        assert (
            await group.run(
                _status_session_reads,
                charge_point_id="CP-OS-16",
                connector_id=1,
                status="SuspendedEV" if charging is False else "Charging",
                charging=charging,
            )
            == []
        )
    # Available may close a session: one the charger's previous connection committed after this
    # connection's handshake is not kept here, so the rows are asked (one statement).
    reads = await group.run(
        _status_session_reads, charge_point_id="CP-OS-16", connector_id=1, status="Available", charging=None
    )
    assert len(reads) == 1
    pk = await group.run(_start16, charge_point_id="CP-OS-16", meter_start=1000)
    # Another connector of the charger: still nothing to read.
    assert (
        await group.run(
            _status_session_reads, charge_point_id="CP-OS-16", connector_id=2, status="SuspendedEV", charging=False
        )
        == []
    )
    # The session's connector: its idle time follows the status, from the kept copy (no statement
    # of the unit reads the session; its write is gathered with the batch's, guarded).
    assert (
        await group.run(
            _status_session_reads, charge_point_id="CP-OS-16", connector_id=1, status="SuspendedEV", charging=False
        )
        == []
    )
    assert (await _session(pk)).idle_since is not None
    assert (
        await group.run(
            _status_session_reads, charge_point_id="CP-OS-16", connector_id=1, status="Charging", charging=True
        )
        == []
    )
    assert (await _session(pk)).idle_since is None
    touched = (await _session(pk)).updated_at
    await group.run(_status_session_reads, charge_point_id="CP-OS-16", connector_id=1, status="Charging", charging=True)
    assert (await _session(pk)).updated_at == touched  # already charging: no idle time changed, nothing written


async def test_a_charging_status_that_changes_nothing_lends_no_copy_a_failed_batch_would_forget(
    register_charge_point,
):
    await sync_to_async(register_charge_point)("CP-OS-19")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-19", group)
    pk = await group.run(_start16, charge_point_id="CP-OS-19", meter_start=1000)
    status = {"charge_point_id": "CP-OS-19", "connector_id": 1, "status": "Charging", "charging": True}
    outcomes = await one_batch(group, (_status_session_reads, status), (_heartbeat_of_no_charger, {}))
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)  # nothing acknowledged
    # Already charging: the status read the kept session without lending it, so the failed batch
    # had nothing of the connection's to forget, and a reading without id still reads no row.
    assert await group.run(_reading_without_id, charge_point_id="CP-OS-19", wh=1200, minutes=1) == []
    session = await _session(pk)
    assert (session.idle_since, session.last_register_wh) == (None, Decimal(1200))


async def test_a_status_meets_a_kept_session_edited_or_ended_elsewhere(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-18")
    group = CommitGroup(max_units=64)
    await _connected("CP-OS-18", group)
    pk = await group.run(_start16, charge_point_id="CP-OS-18", meter_start=1000)
    # An operator flags the session while the connection keeps it as it was.
    await _admin_edit(pk, needs_review=True)
    reads = await group.run(
        _status_session_reads, charge_point_id="CP-OS-18", connector_id=1, status="SuspendedEV", charging=False
    )
    assert reads  # the kept copy's write failed: the batch read the rows again
    session = await _session(pk)
    assert session.needs_review and session.idle_since is not None
    # A batch written again leaves the connection not knowing every session: rows until it reconnects.
    assert await group.run(
        _status_session_reads, charge_point_id="CP-OS-18", connector_id=1, status="Charging", charging=True
    )
    assert (await _session(pk)).idle_since is None
    await _connected("CP-OS-18", group)
    # Ended elsewhere: a status of the kept copy neither reopens it nor counts its idle time.
    await _admin_edit(pk, status=TransactionStatus.ENDED, stopped_at=T0 + timedelta(minutes=5))
    assert await group.run(
        _status_session_reads, charge_point_id="CP-OS-18", connector_id=1, status="SuspendedEV", charging=False
    )
    session = await _session(pk)
    assert (session.status, session.idle_since) == (TransactionStatus.ENDED, None)


async def test_a_status_of_a_connection_that_does_not_know_every_session_asks_the_database(register_charge_point):
    await sync_to_async(register_charge_point)("CP-OS-17")
    group = CommitGroup(max_units=64)
    open_sessions_bind()  # bound, never loaded (as off a handshake): the connection cannot tell
    reads = await group.run(
        _status_session_reads, charge_point_id="CP-OS-17", connector_id=1, status="Available", charging=None
    )
    assert len(reads) == 1


async def test_a_kept_sessions_meter_values_resent_is_stored_once_and_a_new_one_reads_nothing_more(
    register_charge_point,
):
    """A MeterValues resent after its answer was lost, on the connection that keeps its session:
    stored once (round 45); the next new reading still reads no session row and no ledger row."""
    await sync_to_async(register_charge_point)("CP-OS-R45")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-R45", meter_start=1000)
    first = reading16("CP-OS-R45", pk, 1500, T0 + timedelta(minutes=1))
    await group.run(meter_values_record, **first)
    await group.run(meter_values_record, **first)  # the copy
    assert await _samples(pk) == 1

    def reads(**kwargs: Any) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            meter_values_record(**kwargs)
        return [query["sql"] for query in queries if "SELECT" in query["sql"]]

    assert await group.run(reads, **reading16("CP-OS-R45", pk, 2100, T0 + timedelta(minutes=2))) == []
    assert await _samples(pk) == 2
    assert (await _session(pk)).energy_wh == Decimal(1100)


async def test_a_kept_sessions_readings_without_a_register_resent_are_stored_once_and_new_ones_read_nothing(
    register_charge_point,
):
    """Power alone, no energy register: a copy was stored twice (round 49); told now by the
    session's latest reading time, with no read for a new message on the connection that keeps it."""
    from charging.services.meter_ledger import SampledValue

    await sync_to_async(register_charge_point)("CP-OS-R49")
    open_sessions_bind()
    group = CommitGroup(max_units=64)
    pk = await group.run(_start16, charge_point_id="CP-OS-R49", meter_start=1000)

    def power(minute: int) -> dict[str, Any]:
        at = T0 + timedelta(minutes=minute)
        sample = SampledValue(timestamp=at, raw_value="7200", measurand="Power.Active.Import", unit="W")
        return {"charge_point_id": "CP-OS-R49", "connector_id": 1, "ocpp_transaction_id": str(pk), "samples": [sample]}

    def reads(**kwargs: Any) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            meter_values_record(**kwargs)
        return [query["sql"] for query in queries if "SELECT" in query["sql"]]

    assert await group.run(reads, **power(1)) == []
    await group.run(meter_values_record, **power(1))  # the copy
    assert await group.run(reads, **power(2)) == []
    assert await _samples(pk) == 2
