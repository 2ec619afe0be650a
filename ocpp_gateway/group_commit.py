"""Group commit: what chargers are answered about is written in batches, one transaction each.

Issue 15 (design 2). A handler hands its unit of work (a service call such as
``transaction_start`` or ``connector_status_set``) to the process's commit group and awaits it.
Units that arrive while a batch is being written wait and go together in the next one, up to
``CSMS_GROUP_COMMIT_MAX_UNITS``; an idle process starts a batch at once, so nothing waits for a
timer. A batch is one transaction on one pooled connection, and one hop to a database thread
instead of one per message. A lane's thread keeps its connection for the next batch while units wait
(at most 60 s, then it takes another from the pool), and gives it back when none follows.

At most ``CSMS_GROUP_COMMIT_LANES`` batches at once per process (two on PostgreSQL), each on its
own thread and connection, and never two holding units of one charger: a batch holds the rows of
its chargers until it commits, and two transactions of one process locking the same charger rows
in different orders would deadlock. A unit names its chargers (its connection's, its arguments');
a batch started beside another takes only the queued units of chargers no batch being written
holds, so a charger's units are written one batch after the other, in the order they came.
The write-behind buffers (``ocpp_gateway.buffers``) are written as units too, and they update many
chargers' rows: such a unit names the chargers whose rows it locks (``locks``: a window's
heartbeats' or sightings' chargers; none for logged frames, which lock no charger's row) and is
written beside other batches as a charger's unit is (round 35: a buffer's batch was written alone,
and the chargers' messages that came meanwhile, a tenth of them at 1,000 msgs/s, waited for it and
made most of the slowest 1 %). A unit that names no charger and no ``locks`` may lock any
charger's rows: it is written in a batch alone. Chargers held by different processes are different
rows. A buffer's unit goes ``ahead``: at the front of the next batch, before any unit gathers
rows, so that its savepoint does not make the batch write what its units gathered before it and
again after it (a statement per table twice).

A batch is first written without savepoints (SAVEPOINT and RELEASE were a third of a status
change's statements, the services' own ``transaction.atomic`` blocks included): when every unit
returns and the transaction is sound, it commits. When a unit raises, or leaves the transaction
failed or marked for rollback, the whole transaction is rolled back and the batch written again,
each unit in its own savepoint: a unit that raises is rolled back alone and its caller gets the
exception (the router answers it with a CALLERROR); the others commit. A unit chosen as a
deadlock victim is retried once. A unit may thus run twice (and a unit held by a lock wait
twice): only the committed run's result and ``on_commit`` callbacks count, so a unit keeps its
effects in the database or hands them to ``on_commit``. A unit that must fail alone (a
write-behind buffer's heartbeats or sightings, refused as a whole and written again row by row)
asks for its own savepoint (``in_savepoint``) and fails alone in a batch without them. A caller's result is
handed back only after its batch committed, so no CALLRESULT is sent for a row that is not in
PostgreSQL; when the commit itself fails (the database went away) every unit of the batch gets
the error: nothing is acknowledged, nothing half-written.
``transaction.on_commit`` callbacks of every unit run after that commit.
A unit is written even when its caller is gone, except one run with ``abandoned`` (a handshake's
attach): that one is skipped when its caller gave up before its batch started (``CommitGroup.run``).

Before the units of a pass without savepoints run, the batch's session starts are read together
(``charging.services.start_reads``): their chargers locked by one statement, in the order of their
primary keys, then their sessions and parked stops by one, their id tags by one, the three in one
round trip; each start takes its answer. Likewise the register readings of its stops' sessions that
their connections keep, by one statement (``charging.services.ledger_reads``). And its
StatusNotifications are written together, their chargers locked as the starts' are, in one round
trip (``chargepoints.services.status_writes``; the write also tells which connectors of its
``Available`` statuses have a session open), then the sessions open on the connectors of those
``Available`` among them read by one statement (``charging.services.status_reads``). Its handshakes'
attaches admitted without hashing are written together too, their chargers locked the same way
(``chargepoints.services.attach_writes``), and its BootNotifications
(``chargepoints.services.boot_writes``); the sessions open on the attached chargers that have some
are read by one statement (``charging.services.open_sessions.open_sessions_read_together``), the
configuration reads after its chargers' boots (``configuration.refresh_writes``), its 2.0.1
NotifyReport parts stored (``configuration.report_writes``), and the completions of its commands
answered with what their routes store together (outcomes, and a GetConfiguration's keys or a report
request's report tied: ``commands.outcome_writes``).
Only a start, stop, status, attach, boot, read after a boot, NotifyReport part or completion that
is the first unit of its charger in the batch has one (``_first_of_their_chargers``):
a unit of that charger before it may change what was read or written.

A batch's plain statements (``kernel.plain_sql.bound_cursor``) share one cursor, closed when the
batch is over (``bound_cursors_kept``): psycopg finds each parameter type's dumper and each column
type's loader once per cursor, about 15 µs a statement when each has its own.

On PostgreSQL a batch checks its constraints per statement (``SET CONSTRAINTS ALL IMMEDIATE``):
Django's deferred foreign keys would otherwise fail at COMMIT, taking every unit of the batch
down with the one that broke them. And it waits at most ``CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS``
for a row lock (``SET LOCAL lock_timeout``): a row held by a long admin or API transaction
fails the unit that needs it, not every charger queued behind it. The first pass, without
savepoints, waits at most 100 ms: a longer wait sends the batch to the second pass at once, so a
held row costs its batch one full lock timeout, not two. The BEGIN and both settings go with the
batch's first statement, in one round trip (``kernel.deferred_begin``), and the first pass's
gathered writes carry its COMMIT (``copies_gathered(commit=True)``): a batch of MeterValues is one
round trip.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, close_old_connections, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import pq

from chargepoints.services.attach_writes import (
    AttachLookup,
    attach_lookup_of,
    attach_write_dropped,
    attaches_written_held,
    attaches_written_together,
)
from chargepoints.services.boot_writes import BootLookup, boot_lookup_of, boot_write_dropped, boots_written_together
from chargepoints.services.status_writes import (
    StatusLookup,
    status_lookup_of,
    status_write_dropped,
    statuses_written_together,
)
from charging.services.ledger_reads import StopLookup, ledger_read_dropped, ledgers_read_together, stop_lookup_of
from charging.services.open_sessions import open_sessions_lent, open_sessions_read_dropped, open_sessions_read_together
from charging.services.start_reads import StartLookup, start_lookup_of, start_read_taken, starts_read_together
from charging.services.status_reads import (
    connector_sessions_read_dropped,
    connector_sessions_read_together,
    status_asked,
)
from commands.outcome_writes import (
    CompletionLookup,
    completion_lookup_of,
    outcome_write_dropped,
    outcomes_written_together,
)
from configuration.refresh_writes import refresh_lookup_of, refresh_record_dropped, refreshes_recorded_together
from configuration.report_writes import (
    ReportPart,
    report_lookup_of,
    report_store_dropped,
    report_stored_ahead,
    reports_stored_together,
)
from kernel import metrics
from kernel.batch_memo import batch_memos
from kernel.db_pool import connection_checked
from kernel.deferred_begin import begins_plainly, begun_with_first_statement
from kernel.event_loops import serving
from kernel.log_format import charge_point_id_var
from kernel.plain_sql import CommitOutcomeUnknown, bound_cursors_kept, copies_gathered, gathering_paused

logger = logging.getLogger(__name__)

Result = TypeVar("Result")
Outcome = tuple[bool, Any]  # (True, the unit's return value) or (False, the exception it raised)

# PostgreSQL's deadlock_detected and serialization_failure: the unit lost a race, retrying may succeed.
_RETRYABLE_SQLSTATES = {"40P01", "40001"}


def lost_a_race(error: OperationalError) -> bool:
    """True for a deadlock victim or a serialization failure: the same writes may succeed again."""
    return getattr(error.__cause__, "sqlstate", None) in _RETRYABLE_SQLSTATES


def lock_not_available(error: OperationalError) -> bool:
    """True for PostgreSQL's ``lock_not_available``: a statement waited past ``lock_timeout`` for
    a lock held elsewhere (a row, or a whole table)."""
    return getattr(error.__cause__, "sqlstate", None) == "55P03"


class BatchNotCommitted(Exception):
    """The batch's transaction was rolled back: no unit of it was kept."""


class UnitAbandoned(Exception):
    """The unit was skipped: its caller gave up on it before its batch started (``abandoned``)."""


@dataclass
class _Unit:
    func: Callable[..., Any]
    kwargs: dict[str, Any]
    future: asyncio.Future[Any]
    context: contextvars.Context  # the caller's: log lines name its charger
    in_savepoint: bool = False  # always in its own savepoint: it handles its errors inside atomic blocks
    abandoned: Callable[[], bool] | None = None  # skippable: see CommitGroup.run
    chargers: frozenset[str] = frozenset()  # the chargers whose rows it may lock (those it names, or ``locks``)
    alone: bool = False  # it may lock any charger's rows (it names none and gave no ``locks``): written alone
    background: bool = False  # work of the process's own accord (``CommitGroup.quiet_seconds``)

    def skipped(self) -> bool:
        """Whether a skippable unit's caller gave up on it (cancelled, or ``abandoned()``)."""
        return self.abandoned is not None and (self.future.done() or self.abandoned())


class CommitGroup:
    """The process's batches; one per event loop (the gateway has one).

    ``lanes`` batches at most are written at once, each on its own thread and connection
    (``CSMS_GROUP_COMMIT_LANES``); a lane's thread keeps its connection from one batch to the next
    while units wait, and gives it back to the pool when no batch follows (``batch_committed``).
    With one lane a batch takes the units queued, in order. With more, a batch started while
    others are being written (a side batch) takes only the queued units of chargers none of those
    batches holds, in order, leaving the others queued: a charger's units are written in the order
    they came, never two batches at once holding rows of one charger. The ``ahead`` units go
    first, a write-behind buffer's by the chargers its rows lock (``locks``). A unit that names no
    charger and no ``locks`` goes only in a batch written alone: while one waits, no side batch
    starts, and no batch starts beside it."""

    def __init__(self, *, max_units: int, lanes: int = 1) -> None:
        self._max_units = max_units
        # One thread a lane (its connection kept between back-to-back batches: ``batch_committed``);
        # free lanes last used first, so the next batch goes where a connection was kept.
        self._lane_threads = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"csms-commit-{lane}") for lane in range(lanes)
        ]
        self._free_lanes = list(reversed(range(lanes)))
        self._connection_kept: set[int] = set()  # lanes whose thread may hold its connection (``_released``)
        self._pending: deque[_Unit] = deque()
        self._ahead: deque[_Unit] = deque()  # units run with ``ahead``: the next batch's first
        self._alone = False  # the batch being written holds a unit written ``alone``: none beside it
        self._held: set[str] = set()  # the chargers of the batches being written
        self._alone_queued = 0  # queued units written ``alone`` (not ``ahead``): each holds back side batches
        self._waited_at = 0.0  # time.monotonic() when a charger's unit last stopped waiting for a batch

    @property
    def max_units(self) -> int:
        """Units per batch at most (``CSMS_GROUP_COMMIT_MAX_UNITS``)."""
        return self._max_units

    def quiet_seconds(self) -> float:
        """Seconds since a unit of the chargers' messages last waited for a batch (every lane
        writing, or its charger's rows held by a batch being written); 0 while one waits. Neither
        ``background`` units nor the write-behind buffers' ``ahead`` ones count (a buffer's flush
        comes every few hundred ms, busy or not, and waits at most one batch). Work of the
        process's own accord (``ocpp_gateway.configuration_refresh``) runs as ``background`` units
        and starts once the group has been quiet a while: the chargers' messages come first."""
        if self._foreground_waiting():
            return 0.0
        return time.monotonic() - self._waited_at

    def _foreground_waiting(self) -> bool:
        """Whether a unit of the chargers' messages (not ``background``) waits for a batch."""
        return any(not unit.background for unit in self._pending)

    async def run(
        self,
        func: Callable[..., Result],
        /,
        *,
        in_savepoint: bool = False,
        ahead: bool = False,
        abandoned: Callable[[], bool] | None = None,
        background: bool = False,
        locks: frozenset[str] | None = None,
        **kwargs: Any,
    ) -> Result:
        """``func(**kwargs)`` in the next batch; its result once the batch committed, or what it raised.

        ``in_savepoint``: in its own savepoint even in a batch written without them, for a unit
        that fails alone or catches database errors itself (a write-behind buffer's heartbeats or
        sightings: a batch without savepoints would be written again).
        ``ahead``: before the units already waiting (after the other ``ahead`` ones, but before
        those not ``in_savepoint``), first in the next batch; only for a unit whose writes do not
        depend on the order of the units it overtakes (a write-behind buffer's rows: logged frames,
        heartbeats, sightings, each taken before it was queued; a sighting written before its
        connection's disconnect, never after). One ``in_savepoint`` goes before those without, whose
        gathered rows its savepoint would otherwise write at once (``gathering_paused``), not with
        the batch's last writes.
        ``abandoned``: the unit may be skipped. When its batch starts and this caller was
        cancelled or ``abandoned()`` is true, it is not written (``UnitAbandoned`` is raised
        here); once its batch started it is written all the same. Only for a unit nobody else
        relies on (a handshake's attach: its socket is gone, no answer was sent). Every other
        unit is written even when its caller is gone: a write-behind buffer's rows, a command's
        answer, a disconnect.
        ``background``: work of the process's own accord (a configuration read after a boot): its
        waiting for a batch does not make the group less quiet (``quiet_seconds``).
        ``locks``: the chargers whose rows the unit may lock besides those it names (its
        connection's, its arguments'; an ``ahead`` unit names none): a write-behind buffer's rows
        name their chargers (heartbeats, sightings), or none when they lock no charger's row (logged
        frames). The unit is then written beside other batches, held back only by those holding its
        chargers, as a charger's unit is. A unit that names no charger and gives no ``locks`` may
        lock any charger's rows: it is written in a batch alone, none beside it."""
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        named = frozenset() if ahead else _chargers_named(kwargs, context)
        chargers = named | locks if locks is not None else named
        alone = not chargers and locks is None
        unit = _Unit(func, kwargs, loop.create_future(), context, in_savepoint, abandoned, chargers, alone, background)
        if ahead:
            self._ahead.insert(_savepoints_first(self._ahead, unit), unit)
        else:
            self._pending.append(unit)
        self._alone_queued += alone and not ahead
        self._start_batches(loop)
        return await unit.future

    def _start_batches(self, loop: asyncio.AbstractEventLoop) -> None:
        while self._free_lanes and not self._alone:
            writing = len(self._free_lanes) < len(self._lane_threads)
            batch = self._side_batch() if writing else self._batch()
            if not batch:
                return
            lane = self._free_lanes.pop()
            # A fresh context: the batch is every charger's, not the one whose unit started it.
            loop.create_task(self._write(loop, batch, lane), context=contextvars.Context())

    def _units_waiting(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether units are queued for a batch ``loop`` will start (asked from a lane's thread: a
        deque's length, read under the GIL; a loop that stopped starts none)."""
        return loop.is_running() and bool(self._pending or self._ahead)

    def _batch(self) -> list[_Unit]:
        """The next batch when none is being written: the ``ahead`` units, then the queued, in order."""
        batch: list[_Unit] = []
        while (self._ahead or self._pending) and len(batch) < self._max_units:
            queue = self._ahead or self._pending
            unit = queue.popleft()
            self._alone_queued -= queue is self._pending and unit.alone
            if self._taken(unit):
                batch.append(unit)
        for unit in batch:
            self._alone = self._alone or unit.alone
            self._held.update(unit.chargers)
        return batch

    def _side_batch(self) -> list[_Unit]:
        """A batch beside those being written: the queued units (the ``ahead`` ones first) of
        chargers none of them holds, in order; a unit left queued holds back its chargers' later
        units. None while a unit written ``alone`` waits (it goes once they are written)."""
        if self._alone_queued or any(unit.alone for unit in self._ahead):
            return []
        batch: list[_Unit] = []
        waiting = set(self._held)  # the chargers held, and those of the units left queued
        for queue in (self._ahead, self._pending):
            held: list[_Unit] = []
            while queue and len(batch) < self._max_units:
                unit = queue.popleft()
                if not waiting.isdisjoint(unit.chargers):
                    held.append(unit)
                    waiting.update(unit.chargers)
                elif self._taken(unit):
                    batch.append(unit)
            queue.extendleft(reversed(held))
        for unit in batch:
            self._held.update(unit.chargers)
        return batch

    def _after_batch(self, lane: int) -> None:
        """When no batch went to ``lane`` at once, its connection, if its last batch kept it, goes
        back to the pool from its thread (before the lane's next batch, if one comes meanwhile): an
        idle process holds no connection. And the batch's metrics are written soon
        (``kernel.metrics``). A failure of either (the lane's thread shut down at exit, the metrics
        directory unwritable) is logged, never the batch's outcome: its units may be committed."""
        try:
            if lane in self._free_lanes and lane in self._connection_kept:
                self._connection_kept.discard(lane)
                self._lane_threads[lane].submit(close_old_connections)
            metrics.batches_write_soon()
        except Exception:
            logger.exception("group commit: after a batch, its lane's connection or its metrics not handed on")

    @staticmethod
    def _taken(unit: _Unit) -> bool:
        """Whether ``unit`` is written: a skippable one whose caller gave up is failed here instead."""
        if not unit.skipped():
            return True
        if not unit.future.done():
            unit.future.set_exception(UnitAbandoned())
        return False

    async def _write(self, loop: asyncio.AbstractEventLoop, batch: list[_Unit], lane: int) -> None:
        self._connection_kept.add(lane)
        try:
            outcomes = await loop.run_in_executor(
                self._lane_threads[lane],
                functools.partial(batch_committed, batch, loop, keep_connection=lambda: self._units_waiting(loop)),
            )
        except BaseException as error:  # the executor is shut down (process exit), or this task cancelled
            outcomes = [(False, error)] * len(batch)
        finally:
            self._free_lanes.append(lane)
            self._alone = False  # a batch written alone was the only one
            for unit in batch:
                self._held.difference_update(unit.chargers)
            if self._foreground_waiting():  # they waited until now
                self._waited_at = time.monotonic()
            self._start_batches(loop)
            self._after_batch(lane)
        for unit, (ok, value) in zip(batch, outcomes, strict=True):
            if unit.future.done():  # its caller is gone (the socket closed); the unit is written all the same
                continue
            if ok:
                unit.future.set_result(value)
            else:
                unit.future.set_exception(value)


def _savepoints_first(ahead: deque[_Unit], unit: _Unit) -> int:
    """Where ``unit`` joins the ``ahead`` queue: last, or (``in_savepoint``) before the first unit
    that is not."""
    if unit.in_savepoint:
        for place, queued in enumerate(ahead):
            if not queued.in_savepoint:
                return place
    return len(ahead)


def _chargers_named(kwargs: dict[str, Any], context: contextvars.Context) -> frozenset[str]:
    """The chargers a unit names: its connection's (``charge_point_id_var``) and its arguments'
    (``charge_point_id``, or a ``request``'s)."""
    named = {
        context.get(charge_point_id_var, ""),
        kwargs.get("charge_point_id", ""),
        getattr(kwargs.get("request"), "charge_point_id", ""),
    }
    named.discard("")
    return frozenset(named)


def batch_committed(
    batch: list[_Unit], loop: asyncio.AbstractEventLoop, *, keep_connection: Callable[[], bool] | None = None
) -> list[Outcome]:
    """Run every unit in one transaction, for ``loop`` (its on_commit callbacks may hand work back
    to it: ``kernel.event_loops``): without savepoints, or again each in a savepoint when a unit
    failed that way; the outcomes once committed. Counted in ``kernel.metrics``: its units and its
    thread's CPU.

    The thread's connection goes back to the pool when the batch is over, unless
    ``keep_connection()`` says another batch is coming (units are waiting) and the connection is
    sound (PostgreSQL, idle, no error since its last transaction): a batch after another then takes
    no connection from the pool and gives none back (about 45 µs of the batch thread's CPU each,
    an eighth of a one-statement batch's; issue 15, round 34). A kept connection is checked as the pool checks
    one it hands out (``kernel.db_pool``) before the next batch uses it; the caller gives it back
    when no batch follows (``close_old_connections`` in the same thread)."""
    started = time.thread_time()
    _kept_connection_checked()
    try:
        with serving(loop), batch_memos(), bound_cursors_kept(), open_sessions_lent() as forget_lent:
            try:
                return _in_one_transaction(batch, savepoints=False)
            except _UnitFailed:
                forget_lent()  # the second pass reads every session (and a failed guard's again)
                return _in_one_transaction(batch, savepoints=True)
            except Exception:
                forget_lent()
                raise
    except CommitOutcomeUnknown as error:
        logger.error("A batch of %d units may or may not be committed (not written again): %r", len(batch), error)
        return [(False, error)] * len(batch)
    except Exception as error:
        logger.error("A batch of %d units was not committed: %r", len(batch), error)
        return [(False, error)] * len(batch)
    finally:
        if keep_connection is None or not _connection_sound() or not keep_connection():
            close_old_connections()
        _batch_counted(len(batch), time.thread_time() - started)


# A lane gives its connection back to the pool at least this often (s), busy or not, so that the
# pool's ``max_lifetime`` and its checks still apply to it.
_KEPT_AT_MOST_SECONDS = 60.0


def _connection_sound() -> bool:
    """Whether the thread's connection may serve the next batch as it is: PostgreSQL's, open, idle
    outside any transaction, in Django's autocommit, no error since its last transaction (what
    ``close_if_unusable_or_obsolete`` would otherwise check), taken from the pool less than
    ``_KEPT_AT_MOST_SECONDS`` ago (Django's ``close_at`` is when it was taken: ``CONN_MAX_AGE`` is 0
    with the pool)."""
    db = connections[DEFAULT_DB_ALIAS]
    raw = db.connection
    return (
        raw is not None
        and db.vendor == "postgresql"
        and db.close_at is not None
        and time.monotonic() - db.close_at < _KEPT_AT_MOST_SECONDS
        and not db.in_atomic_block
        and not db.errors_occurred
        and db.get_autocommit() == db.settings_dict["AUTOCOMMIT"]
        and not raw.broken
        and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE
    )


def _kept_connection_checked() -> None:
    """Before a batch: a connection kept from the thread's last batch is checked as the pool checks
    one it hands out (``kernel.db_pool.connection_checked``: a poll of its socket, an empty query
    only when something waits there: PostgreSQL restarted, the session terminated) and given back
    when it fails, the batch then taking another; anything else as Django's
    ``close_old_connections``."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.connection is None or db.vendor != "postgresql":
        close_old_connections()
        return
    try:
        connection_checked(db.connection)
    except Exception:
        db.errors_occurred = True
        close_old_connections()


def _batch_counted(units: int, cpu_seconds: float) -> None:
    """Tally the batch in ``kernel.metrics`` (written by the event loop: ``CommitGroup._after_batch``);
    a metrics failure is logged, never the batch's outcome: its units may be committed already."""
    try:
        metrics.group_commit_batch(units=units, cpu_seconds=cpu_seconds)
    except Exception:
        logger.exception("group commit: the batch's metrics not recorded")


class _UnitFailed(Exception):
    """A unit failed in a batch without savepoints: the batch is rolled back, to be written with them."""


def _in_one_transaction(batch: list[_Unit], *, savepoints: bool) -> list[Outcome]:
    committed = False

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    outcomes: list[Outcome] = []
    try:
        with transaction.atomic():
            transaction.on_commit(mark_committed)  # first: it runs before the units' own callbacks
            with _batch_begun(first_pass=not savepoints):
                outcomes = _outcomes_in_savepoints(batch) if savepoints else _outcomes_without_savepoints(batch)
            if transaction.get_rollback():  # a savepoint could not be rolled back: nothing is kept
                raise BatchNotCommitted("the transaction was marked for rollback")
    except _UnitFailed:
        raise
    except Exception:
        if not committed:
            raise
        # A unit's on_commit callback failed after the commit: the rows are in, the answers stand.
        logger.exception("An on_commit callback of a committed batch failed")
    return outcomes


# The first pass (no savepoints) waits this long at most for a row lock: a unit that would wait
# longer sends the batch to the second pass at once, which waits the full lock timeout once.
_FIRST_PASS_LOCK_TIMEOUT_MS = 100


@contextmanager
def _batch_begun(*, first_pass: bool) -> Iterator[None]:
    """The batch's transaction with per-statement constraint checks and a bounded lock wait
    (PostgreSQL): its BEGIN and both settings sent with its first statement, in one round trip
    (``kernel.deferred_begin``), where psycopg would send its BEGIN alone and wait for it. A
    connection whose transactions begin otherwise (an isolation level, read-only) keeps
    psycopg's BEGIN and gets the two settings after it; so does one outside an atomic block
    (autocommit: a BEGIN of ours would be left open). A refusal of them (the connection lost) is
    raised by the batch's first statement, as Django's ``OperationalError`` (or another
    ``DatabaseError`` class) with PostgreSQL's SQLSTATE."""
    if connection.vendor != "postgresql":
        yield
        return
    lock_timeout_ms = int(settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS)  # validated at start
    if first_pass:
        lock_timeout_ms = min(lock_timeout_ms, _FIRST_PASS_LOCK_TIMEOUT_MS)
    batch_settings = ("SET CONSTRAINTS ALL IMMEDIATE", f"SET LOCAL lock_timeout = {lock_timeout_ms}")
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    if not db.in_atomic_block or not begins_plainly(db.connection):
        with db.cursor() as cursor:
            cursor.execute("; ".join(batch_settings))
        yield
        return
    with begun_with_first_statement(("BEGIN", *batch_settings)):
        yield


def _outcomes_without_savepoints(batch: list[_Unit]) -> list[Outcome]:
    """Every unit's result, run with no savepoint (the services' ``atomic`` blocks included);
    ``_UnitFailed`` at the first unit that raises or leaves the transaction failed or marked for
    rollback (it caught an error inside an ``atomic`` block, which a savepoint would have undone).
    A unit ``in_savepoint`` runs in one all the same: its failure is its own.

    The rows units copy with ``may_gather`` (meter samples) and the rows they update with it (a
    message's last session save) are written after the last unit, with the batch's COMMIT in their
    round trip: one UPDATE per table and set of columns, one INSERT (or COPY, when large) per table
    for the whole batch (``kernel.plain_sql.copies_gathered``); when those fail, so does this pass,
    and the second writes each unit's rows in its own savepoint. But when the connection was lost
    in the round trip that carried the COMMIT (``CommitOutcomeUnknown``: PostgreSQL may have
    committed), the batch is not written again: every unit gets the error, as when Django's own
    COMMIT fails, and nothing is acknowledged twice or stored twice from one message."""
    try:
        with copies_gathered(commit=True):  # the batch transaction's last writes: its COMMIT with them
            lookups = [_lookups_of(unit) for unit in batch]
            firsts = _first_of_their_chargers(batch, lookups)
            if not firsts.chosen():  # nothing made ahead (readings, a buffer's rows): no block has work
                return _units_without_savepoints(batch, lookups)
            with (
                attaches_written_together(firsts.attaches),
                open_sessions_read_together(attaches_written_held()),
                boots_written_together(firsts.boots),
                starts_read_together(firsts.starts),
                ledgers_read_together(firsts.stops),
                statuses_written_together(firsts.statuses, asked=status_asked()) as written,
                connector_sessions_read_together(written),
                refreshes_recorded_together(firsts.refreshes),
                reports_stored_together(firsts.reports),
                outcomes_written_together(_completions_after_their_parts(firsts)),
            ):
                return _units_without_savepoints(batch, lookups)
    except (_UnitFailed, CommitOutcomeUnknown):  # the latter: maybe committed, so never written again
        raise
    except Exception as error:  # the gathered rows were refused
        raise _UnitFailed from error


class _Lookups(NamedTuple):
    """A unit's lookup of each kind of rows a batch makes ahead (None: not of that kind): as a
    start, a stop, a status, an attach, a boot, a read after a boot (its charger's id), a
    NotifyReport part, a command's completion."""

    start: StartLookup | None
    stop: StopLookup | None
    status: StatusLookup | None
    attach: AttachLookup | None
    boot: BootLookup | None
    refresh: str | None
    report: ReportPart | None
    completion: CompletionLookup | None


def _lookups_of(unit: _Unit) -> _Lookups:
    func, kwargs = unit.func, unit.kwargs
    return _Lookups(
        start_lookup_of(func, kwargs),
        stop_lookup_of(func, kwargs),
        status_lookup_of(func, kwargs),
        attach_lookup_of(func, kwargs),
        boot_lookup_of(func, kwargs),
        refresh_lookup_of(func, kwargs),
        report_lookup_of(func, kwargs),
        completion_lookup_of(func, kwargs),
    )


@dataclass
class _Firsts:
    """What a batch reads or writes ahead for the first unit of each charger: starts, stops with the
    unit's context (the connection whose kept session it names), statuses, attaches with the
    unit's function (the condition it asks), boots, reads after a boot (their chargers' ids) and
    NotifyReport parts and commands' completions."""

    starts: list[StartLookup] = field(default_factory=list)
    stops: list[tuple[StopLookup, contextvars.Context]] = field(default_factory=list)
    statuses: list[StatusLookup] = field(default_factory=list)
    attaches: list[tuple[AttachLookup, Callable[..., Any]]] = field(default_factory=list)
    boots: list[BootLookup] = field(default_factory=list)
    refreshes: list[str] = field(default_factory=list)
    reports: list[ReportPart] = field(default_factory=list)
    completions: list[CompletionLookup] = field(default_factory=list)
    after_parts: set[str] = field(default_factory=set)  # chargers whose completion follows their part chosen

    def chosen(self) -> bool:
        """Whether any unit's rows are to be made ahead. When none is, the blocks that make them are
        not entered (empty, each keeps no rows for its units, as in a pass with savepoints): about
        35 µs of the batch thread's CPU, an eighth of a one-statement batch's (issue 15)."""
        return bool(
            self.starts
            or self.stops
            or self.statuses
            or self.attaches
            or self.boots
            or self.refreshes
            or self.reports
            or self.completions
        )


def _first_of_their_chargers(batch: list[_Unit], lookups: list[_Lookups]) -> _Firsts:
    """The lookups (``lookups[i]``: ``batch[i]``'s) of the starts the batch reads together
    (``charging.services.start_reads``), of the stops whose ledgers it reads together
    (``charging.services.ledger_reads``), of the statuses, attaches and boots it writes together
    (``chargepoints.services.status_writes``, ``attach_writes``, ``boot_writes``), and of the reads
    after a boot it records together (``configuration.refresh_writes``), of the NotifyReport parts
    it stores together (``configuration.report_writes``), and of the completions it writes together
    (``commands.outcome_writes``): of each start, stop, status, attach, boot, read, report part or
    completion that is the first unit of its charger
    in the batch. A unit's chargers are the one its connection's context names
    (``charge_point_id_var``) and the one its arguments name (``charge_point_id``, or a
    ``request``'s, or a completed command's); a unit naming none (the write-behind buffers, an id
    tag read) writes no session. A completion after StatusNotifications of its charger is chosen
    too: a status reads and writes no command and no configuration (its apps, and their signals'
    receivers, are below ``commands``); and one after its charger's NotifyReport part chosen (a
    2.0.1 charger's GetBaseReport answer after its part, as the fleet's arrive): the parts are
    stored ahead before the completions are written (``_completions_after_their_parts``), as in order.
    Likewise a status after its charger's read after a boot, NotifyReport part or completion of a
    configuration read (a first connect's, whose statuses arrive beside them): those write a command
    and the configuration store, and lock the charger's row at most, never a connector, a session or
    what a status reads of its charger (its id, its last boot)."""
    chosen = _Firsts()
    chargers: set[str] = set()
    beside_statuses: set[str] = set()  # the chargers of the units that are not statuses (nor parts chosen)
    beside_reads: set[str] = set()  # the chargers of the units that are not reads of their configuration
    parted: set[str] = set()  # the chargers of the parts chosen
    for unit, (start, stop, status, attach, boot, refresh, report, completion) in zip(batch, lookups, strict=True):
        if refresh is not None and refresh not in chargers and not unit.in_savepoint:
            chosen.refreshes.append(refresh)
        part_of = ""  # the charger of a part chosen
        if report is not None and report.charge_point_id not in chargers and not unit.in_savepoint:
            chosen.reports.append(report)
            part_of = report.charge_point_id
            parted.add(part_of)
        if completion is not None and completion.charge_point_id not in beside_statuses and not unit.in_savepoint:
            chosen.completions.append(completion)
            if completion.charge_point_id in parted:
                chosen.after_parts.add(completion.charge_point_id)
        if attach is not None and attach.charge_point_id not in chargers and not unit.in_savepoint:
            chosen.attaches.append((attach, unit.func))
        if boot is not None and boot.charge_point_id not in chargers and not unit.in_savepoint:
            chosen.boots.append(boot)
        if start is not None and start.charge_point_id not in chargers:
            chosen.starts.append(start)
        if stop is not None and stop.charge_point_id not in chargers:
            chosen.stops.append((stop, unit.context))
        if status is not None and status.charge_point_id not in beside_reads and not unit.in_savepoint:
            chosen.statuses.append(status)
        request = unit.kwargs.get("request")
        named = (
            unit.context.get(charge_point_id_var, ""),
            unit.kwargs.get("charge_point_id", ""),
            getattr(request, "charge_point_id", ""),
            start.charge_point_id if start is not None else "",
            stop.charge_point_id if stop is not None else "",
            completion.charge_point_id if completion is not None else "",
        )
        chargers.update(named)
        if status is None:
            beside_statuses.update(name for name in named if name != part_of)
        if refresh is None and report is None and completion is None:
            beside_reads.update(named)
    return chosen


def _completions_after_their_parts(firsts: _Firsts) -> list[CompletionLookup]:
    """The completions to write ahead (inside ``reports_stored_together``'s block): those chosen, but
    one after its charger's part that was not stored ahead (fewer than ``FEWEST`` parts, a
    malformed one): that part is stored at its unit's turn, which must come before the completion."""
    return [
        completion
        for completion in firsts.completions
        if completion.charge_point_id not in firsts.after_parts or report_stored_ahead(completion.charge_point_id)
    ]


def _units_without_savepoints(batch: list[_Unit], lookups: list[_Lookups]) -> list[Outcome]:
    """Each unit's result; what was read or written ahead for its lookups is dropped after it ran,
    taken or not (no later unit takes it)."""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each use of the proxy is a lookup (asgiref's Local)
    features = db.features
    features.uses_savepoints = False  # this thread's connection only: Django then sets no savepoint
    try:
        outcomes: list[Outcome] = []
        for unit, unit_lookups in zip(batch, lookups, strict=True):
            if unit.in_savepoint:
                del features.uses_savepoints
                try:
                    with gathering_paused():
                        outcomes.append(_unit_outcome(unit))
                finally:
                    features.uses_savepoints = False
                continue
            try:
                outcomes.append((True, unit.context.run(unit.func, **unit.kwargs)))
            except Exception as error:
                raise _UnitFailed from error
            finally:
                left = _rows_ahead_dropped(unit_lookups)
            # an attach, a boot, a read after a boot or a completion written ahead and not taken, or
            # transaction.get_rollback() without its lookup
            if left or db.needs_rollback or _transaction_failed(db):
                raise _UnitFailed
        return outcomes
    finally:
        del features.uses_savepoints  # the class's value again


_NO_LOOKUPS = _Lookups(*(None,) * len(_Lookups._fields))


def _rows_ahead_dropped(lookups: _Lookups) -> bool:
    """Its unit ran: what was read or written ahead for it and left is no later unit's. True when
    a row written ahead was left (an attach, a boot, a read after a boot's command, a report part, a
    completion): the batch's pass is to be written again."""
    if lookups == _NO_LOOKUPS:  # a unit of no kind (a reading, a buffer's): nothing was made for it
        return False
    start, stop, status, attach, boot, refresh, report, completion = lookups
    start_read_taken(start)  # the answer read for its start, if it left it: no later unit takes it
    ledger_read_dropped(stop)
    status_write_dropped(status)
    connector_sessions_read_dropped(status)
    left = attach_write_dropped(attach)
    open_sessions_read_dropped(attach.charge_point_id if attach is not None else None)
    left = boot_write_dropped(boot) or left
    left = report_store_dropped(report) or left
    left = outcome_write_dropped(completion) or left
    return refresh_record_dropped(refresh) or left


def _transaction_failed(db: BaseDatabaseWrapper) -> bool:
    """PostgreSQL refuses every statement of ``db``'s transaction until it ends (an error was caught).
    Asked of libpq's connection (``info`` builds an object and an enum at each ask: once per unit)."""
    if db.vendor != "postgresql":
        return False
    return db.connection.pgconn.transaction_status == pq.TransactionStatus.INERROR


def _outcomes_in_savepoints(batch: list[_Unit]) -> list[Outcome]:
    return [_unit_outcome(unit) for unit in batch]


def _unit_outcome(unit: _Unit) -> Outcome:
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                return True, unit.context.run(unit.func, **unit.kwargs)
        except OperationalError as error:
            if attempt == 1 and lost_a_race(error):
                continue
            return False, error
        except Exception as error:
            return False, error
    raise AssertionError("unreachable")


commit_group = CommitGroup(max_units=settings.CSMS_GROUP_COMMIT_MAX_UNITS, lanes=settings.CSMS_GROUP_COMMIT_LANES)


def in_commit_group(func: Callable[..., Result]) -> Callable[..., Awaitable[Result]]:
    """``await in_commit_group(service)(**kwargs)``: the service call in the process's next batch."""

    async def run(**kwargs: Any) -> Result:
        return await commit_group.run(func, **kwargs)

    return run
