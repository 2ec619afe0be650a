"""Per-process write-behind buffers for rows a charger is never answered about.

The message log and heartbeat rows are collected here and written in one batch every few
hundred milliseconds (or as soon as ``max_batch`` rows wait) instead of one transaction per
OCPP message, each batch a unit of the process's commit group (``ocpp_gateway.group_commit``),
in its own savepoint (but the message log's: ``savepoint``) and ``ahead`` of the units waiting:
first in the next batch, before its units gather rows, which the batch then writes once (a
statement per table) after its last unit.
Acknowledged session data (starts, stops, meter values) never goes through a buffer: it is
committed before its CALLRESULT is sent.

What is pending is written on a clean close: the consumer flushes on disconnect, and the
process flushes at exit (``atexit``, after the server's event loop has stopped). A crash loses
at most one window and the write in progress.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

from kernel.plain_sql import CommitOutcomeUnknown
from ocpp_gateway.group_commit import commit_group, lock_not_available, lost_a_race

logger = logging.getLogger(__name__)

Row = TypeVar("Row")


# A window written again row by row waits at most this long for each lock held elsewhere, and
# gives up on its remaining rows after this many such waits (a table lock: every row would wait).
_LOCK_WAIT_MS = 100
_LOCK_WAITS_AT_MOST = 4


class _RowsRefused(Exception):
    """The database refused a buffer's rows written at once (one of them broke a constraint...), or
    one of them waited past the batch's lock timeout for a row held elsewhere."""


class WriteBehindBuffer(Generic[Row]):
    def __init__(
        self,
        *,
        name: str,
        write: Callable[[list[Row]], Any],
        flush_seconds: Callable[[], float],
        max_batch: int,
        locks: Callable[[list[Row]], frozenset[str]] | None = None,
        savepoint: bool = True,
    ) -> None:
        """``write(rows)`` stores a window's rows (at most ``max_batch``); ``locks(rows)`` names the
        chargers whose rows it locks (none: it locks no charger's row), so that the commit group
        writes it beside batches of other chargers (``CommitGroup.run``'s ``locks``). Without
        ``locks`` it may lock any charger's rows, and each write is a batch written alone.

        ``savepoint``: each write in its own savepoint, even in a batch's first pass (written
        without them): for rows that may wait for a lock held elsewhere or be refused, which then
        fail alone. Without (rows only a failing database refuses, that lock nothing: the message
        log's), a write joins its batch's first pass as a charger's message does: no SAVEPOINT nor
        RELEASE round trip (round 35), its rows gathered with the batch's last writes
        (``kernel.plain_sql.rows_copied(may_gather=)``: up to ``PIPELINED_COPY_ROWS`` in the
        COMMIT's round trip, more by a COPY just before it; the commit group runs the buffers' units
        in their savepoints first, which would write them at once). Refused all the same, it sends
        its batch to the second pass, where every unit has its savepoint and it fails alone."""
        self.name = name
        self._write = write
        self._locks = locks
        self._savepoint = savepoint
        self._flush_seconds = flush_seconds
        self._max_batch = max_batch
        self._pending: list[Row] = []
        self._flusher: asyncio.Task[None] | None = None
        self._full: asyncio.Future[None] | None = None  # resolved when the window ends: its time, or max_batch rows
        # One batch at a time: two transactions updating the same rows in another order deadlock.
        self._writing = asyncio.Lock()
        atexit.register(self.flush_at_exit)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, row: Row) -> None:
        self._pending.append(row)
        loop = asyncio.get_running_loop()
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            # (a task left on a closed event loop, a test's, is no window of this one)
            self._full = None
            # A fresh context: the batch is every charger's, its log lines must not name the one that started it.
            self._flusher = loop.create_task(self._flushed_by_window(), context=contextvars.Context())
        elif self._full is not None and len(self._pending) >= self._max_batch and not self._full.done():
            self._full.set_result(None)  # the window ends now

    async def _flushed_by_window(self) -> None:
        """While rows are pending: wait a window (``flush_seconds``, cut short once ``max_batch``
        rows wait), then write the rows pending at that moment. Rows added while those are written
        wait for the next window: a busy process writes a buffer once a window, not again as soon
        as its unit committed (each write costs the batch it joins, and the chargers' messages in
        it wait for it: they would many times a second)."""
        loop = asyncio.get_running_loop()
        while self._pending:
            if len(self._pending) < self._max_batch:
                self._full = loop.create_future()
                window = loop.call_later(self._flush_seconds(), _resolved, self._full)
                try:
                    await self._full
                finally:
                    window.cancel()
                    self._full = None
            await self.flush()

    async def flush(self) -> None:
        """Write the rows pending once the buffer's previous flush is done (in units of at most
        ``max_batch`` rows); rows added while they are written wait for the next. Never raises: a batch whose
        commit fails (the database went away) is logged, like the rows the database refuses, so
        that a closing connection still clears its presence.

        Each batch of rows is one unit, written in the unit's own savepoint (``in_savepoint``; in a
        batch's first pass, only with ``savepoint``). When the database refuses it
        (``_RowsRefused``), the unit's savepoint is rolled back (without ``savepoint``: the batch's
        first pass, the batch written again, each unit in its savepoint) and its rows are written
        again one by one in the next batch, each in its own savepoint, so that a refused row loses
        only itself."""
        async with self._writing:
            for _ in range(-(-len(self._pending) // self._max_batch)):  # those pending now, not those added meanwhile
                batch = self._take()
                try:
                    await commit_group.run(
                        self._rows_written,
                        in_savepoint=self._savepoint,
                        ahead=True,
                        locks=self._chargers_locked(batch),
                        rows=batch,
                    )
                except _RowsRefused:
                    await self._stored_one_by_one(batch)
                except CommitOutcomeUnknown:
                    self._maybe_stored(batch)
                except Exception:  # the database is away, or the batch's commit failed
                    logger.exception("Could not store %d %s rows: the batch was not committed", len(batch), self.name)

    async def _stored_one_by_one(self, batch: list[Row]) -> None:
        """``batch``, refused as a whole, written again row by row in the next commit batch."""
        if len(batch) == 1:
            logger.exception("Could not store a %s row: %.300r", self.name, batch[0])
            return
        logger.exception("Could not store %d %s rows at once; storing them one by one", len(batch), self.name)
        try:
            await commit_group.run(
                self._rows_written_one_by_one,
                in_savepoint=True,
                ahead=True,
                locks=self._chargers_locked(batch),
                rows=batch,
            )
        except CommitOutcomeUnknown:
            self._maybe_stored(batch)
        except Exception:
            logger.exception("Could not store %d %s rows: the batch was not committed", len(batch), self.name)

    def _maybe_stored(self, batch: list[Row]) -> None:
        """``batch``'s unit was in a batch whose connection was lost with its COMMIT in flight:
        PostgreSQL may have stored its rows, or not; they are not written again."""
        logger.exception(
            "%d %s rows may or may not be stored: the connection was lost with their batch's COMMIT in flight",
            len(batch),
            self.name,
        )

    def _rows_written(self, rows: list[Row]) -> None:
        """One write of ``rows`` (a commit group's unit, in its own savepoint but in a batch's first
        pass without ``savepoint``); ``_RowsRefused`` when
        the database refuses them, or when a row they lock is held elsewhere past the batch's lock
        timeout (an admin's long transaction on one charger: the others' rows are written again
        without it). Its other ``OperationalError`` as it is: a lost race is written again by the
        commit group, and a database gone away is no row's fault."""
        try:
            self._write(rows)
        except OperationalError as error:
            if lock_not_available(error):
                raise _RowsRefused(len(rows)) from error
            raise
        except InterfaceError:
            raise
        except Exception as error:
            raise _RowsRefused(len(rows)) from error

    def flush_at_exit(self) -> None:
        """Write what is pending from a process whose event loop has stopped."""
        while self._pending:
            self._write_batch(self._take())

    def _write_batch(self, batch: list[Row]) -> None:
        """One INSERT; if the batch fails, row by row, so that a row the database refuses
        loses only itself, never the other chargers' rows of the same window."""
        try:
            self._write_retrying(batch)
            return
        except (OperationalError, InterfaceError):  # the database is away: row by row would not help
            logger.exception("Could not store %d %s rows", len(batch), self.name)
            return
        except Exception:
            if len(batch) == 1:
                logger.exception("Could not store a %s row: %.300r", self.name, batch[0])
                return
            logger.exception("Could not store %d %s rows at once; storing them one by one", len(batch), self.name)
        self._rows_written_one_by_one(batch)

    def _rows_written_one_by_one(self, rows: list[Row]) -> None:
        """Each of ``rows`` in its own savepoint: a refused row is logged and loses only itself.
        In a batch, each waits at most ``_LOCK_WAIT_MS`` for a lock held elsewhere; the later rows
        of a charger whose row waited in vain are lost without waiting (only the held charger's
        rows are lost), and after ``_LOCK_WAITS_AT_MOST`` such waits the rows left are logged as
        lost: the batch's other units wait for this one, and a table held elsewhere would make every
        row wait."""
        waits, held = 0, set[str]()
        with _lock_waits_bounded():
            for done, row in enumerate(rows):
                if waits >= _LOCK_WAITS_AT_MOST:
                    logger.error(
                        "Could not store %d %s rows: they wait for locks held elsewhere", len(rows) - done, self.name
                    )
                    return
                chargers = self._chargers_locked([row]) or frozenset()
                if chargers & held:
                    logger.error("Could not store a %s row: its charger is held elsewhere: %.300r", self.name, row)
                    continue
                try:
                    self._write_atomically([row])
                except Exception as error:
                    if isinstance(error, OperationalError) and lock_not_available(error):
                        waits += 1
                        held |= chargers
                    logger.exception("Could not store a %s row: %.300r", self.name, row)

    def _write_retrying(self, rows: list[Row]) -> None:
        """Once more when the first attempt was a deadlock victim (its savepoint was rolled back)."""
        try:
            self._write_atomically(rows)
        except OperationalError as error:
            if not lost_a_race(error):
                raise
            self._write_atomically(rows)

    def _write_atomically(self, rows: list[Row]) -> None:
        """In a savepoint within the commit group's batch: a refused row leaves the batch usable."""
        with transaction.atomic():
            self._write(rows)

    def _chargers_locked(self, rows: list[Row]) -> frozenset[str] | None:
        """The chargers whose rows writing ``rows`` locks; None: any charger's (``locks`` not given)."""
        return None if self._locks is None else self._locks(rows)

    def _take(self) -> list[Row]:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        return batch


def _resolved(window: asyncio.Future[None]) -> None:
    if not window.done():
        window.set_result(None)


@contextmanager
def _lock_waits_bounded() -> Iterator[None]:
    """Within the block, statements of the batch's transaction (PostgreSQL) wait at most
    ``_LOCK_WAIT_MS`` for a lock (less when the batch's own timeout is shorter); the transaction's
    timeout again after it. Outside a transaction (at exit), or off PostgreSQL: nothing changes."""
    if connection.vendor != "postgresql" or not connection.in_atomic_block:
        yield
        return
    wait_ms = min(_LOCK_WAIT_MS, int(settings.CSMS_GROUP_COMMIT_LOCK_TIMEOUT_MS))
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('lock_timeout'), set_config('lock_timeout', %s, true)", [f"{wait_ms}ms"])
        ((previous, _),) = cursor.fetchall()
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
