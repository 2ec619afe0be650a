"""A transaction's BEGIN sent with its first statement, in one round trip (PostgreSQL; issue 15).

psycopg begins a transaction by sending its BEGIN alone, before the first statement, and waits
for the answer: a round trip of its own in every group commit batch (a batch of MeterValues made
5: BEGIN, the session UPDATE, COPY's two, COMMIT). Inside ``begun_with_first_statement`` the
BEGIN and the statements that set the transaction up (``SET LOCAL ...``) wait for the block's first
statement and go with it in one pipeline (psycopg's ``pipeline()``): one round trip for them all.

The paths a batch's statements take: Django's cursors (``execute``, ``executemany``, savepoints;
an execute wrapper), ``kernel.plain_sql``'s pipelined writes (``begin_for_pipeline``: they send
the BEGIN at their head) and its COPYs (``begun_alone``: a COPY cannot be pipelined, so the BEGIN
goes alone first, as before). A statement that takes none of them (psycopg used directly) gets
psycopg's own BEGIN, and the settings after it, by themselves, at the block's next statement.

For the pipeline, psycopg's own BEGIN is switched off (``autocommit`` on while the connection is
idle, ``_psycopg_begin_off``): psycopg begins a transaction only on an idle connection, and its
``commit()`` and ``rollback()`` look at the transaction's status, never at ``autocommit``, so
Django's COMMIT or ROLLBACK at the end of its atomic block is sent as before (and Django sets
``autocommit`` there again). A pipeline that leaves the connection idle (committed, or failed before
its BEGIN) switches it back (``in_pipeline``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import pq

Result = TypeVar("Result")

_pending = threading.local()  # .statements: the BEGIN and its settings not sent yet (None: none)


@contextmanager
def begun_with_first_statement(statements: Sequence[str]) -> Iterator[None]:
    """Within the block, ``statements`` (``BEGIN`` and its settings, each one statement) are sent
    with the first statement of the block, in one round trip, instead of psycopg's BEGIN alone.
    A refusal of them (the connection lost) is raised by that statement, as Django's error.

    For the default connection inside Django's outermost atomic block, before its transaction has
    begun (PostgreSQL, psycopg idle and not in autocommit): the caller checks
    (``begins_plainly``). A block whose first statement never comes sends none of them (its
    transaction is empty: Django's COMMIT is then nothing to psycopg)."""
    db = connections[DEFAULT_DB_ALIAS]
    _pending.statements = tuple(statements)
    db.execute_wrappers.insert(0, _begun_first)  # outermost: a wrapper that sends a statement first goes after it
    try:
        yield
    finally:
        _pending.statements = None
        if _begun_first in db.execute_wrappers:
            db.execute_wrappers.remove(_begun_first)


def begins_plainly(raw: psycopg.Connection[Any]) -> bool:
    """Whether psycopg would begin ``raw``'s next transaction with a bare ``BEGIN`` before its next
    statement: idle, outside a pipeline, not in autocommit, no isolation level, read-only or
    deferrable of its own."""
    return (
        raw._pipeline is None
        and not raw.autocommit
        and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE
        and raw.isolation_level is None
        and raw.read_only is None
        and raw.deferrable is None
    )


def begin_for_pipeline(raw: psycopg.Connection[Any]) -> tuple[str, ...]:
    """The statements waiting, if any, now the caller's to send at the head of the pipeline it is
    about to enter on ``raw`` (psycopg's own BEGIN switched off until it ends: ``in_pipeline``
    with ``begun``). On a connection whose transaction began otherwise they are sent first, alone
    (``begun_alone``), and none is returned."""
    statements = _taken()
    if statements and not begins_plainly(raw):
        _sent_alone(connections[DEFAULT_DB_ALIAS], raw, statements)
        return ()
    if statements:
        _psycopg_begin_off(raw)
    return statements


def begun_alone() -> None:
    """Send the statements waiting, if any, now and alone (before a COPY, which no pipeline takes)."""
    statements = _taken()
    if statements:
        db = connections[DEFAULT_DB_ALIAS]
        _sent_alone(db, db.connection, statements)


def in_pipeline(raw: psycopg.Connection[Any], send: Callable[[], Result], *, begun: bool = False) -> Result:
    """``send()`` (statements sent by cursors of ``raw``) in one pipeline of ``raw``: one round trip
    for them all; its result, or the error of the first statement refused. ``begun``: ``send``
    sends ``begin_for_pipeline``'s statements first; psycopg's own BEGIN is switched on again
    when the pipeline leaves the connection idle (committed, or refused before its BEGIN).

    A statement's refusal may be read while a later one is sent (psycopg reads the answers that
    arrived): it is raised there, no further statement is sent, and the pipeline's end then fails
    again ("pipeline aborted"), which psycopg would log as a warning beside our error; the block
    is left without an error so that the refusal is raised here, alone."""
    refused: DatabaseError | None = None
    try:
        with raw.pipeline():
            try:
                result = send()
            except DatabaseError as error:
                refused = error
    except psycopg.errors.PipelineAborted:
        if refused is None:
            raise
    finally:
        if begun and raw.autocommit and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE:
            raw.autocommit = False  # as Django left it: a statement until its atomic block ends begins one
    if refused is not None:
        raise refused
    return result


def _taken() -> tuple[str, ...]:
    """The statements waiting in this thread, taken (none: nothing waits); the execute wrapper
    goes with them (the block's later statements pass no wrapper of ours)."""
    statements: tuple[str, ...] | None = getattr(_pending, "statements", None)
    if not statements:
        return ()
    _pending.statements = None
    wrappers = connections[DEFAULT_DB_ALIAS].execute_wrappers
    if _begun_first in wrappers:
        wrappers.remove(_begun_first)
    return statements


def _psycopg_begin_off(raw: psycopg.Connection[Any]) -> None:
    """psycopg sends no BEGIN of its own on ``raw`` (idle): it would send it alone and wait for it."""
    raw.autocommit = True


def _begun_first(execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Django's execute wrapper while the BEGIN waits: the first statement goes in one pipeline
    after it. Its results are the statement's, read after the pipeline's end as ever. A named
    (server-side) cursor, which no pipeline takes, goes after the BEGIN sent alone."""
    db: BaseDatabaseWrapper = context["connection"]
    raw = db.connection
    cursor = context["cursor"].cursor  # psycopg's, under Django's wrapper
    if isinstance(cursor, psycopg.ServerCursor):
        begun_alone()
        return execute(sql, params, many, context)
    statements = begin_for_pipeline(raw)
    if not statements:
        return execute(sql, params, many, context)

    def sent() -> Any:
        for statement in statements:
            cursor.execute(statement)
        return execute(sql, params, many, context)

    with db.wrap_database_errors:  # an error read at the pipeline's end is psycopg's
        return in_pipeline(raw, sent, begun=True)


def _sent_alone(db: BaseDatabaseWrapper, raw: psycopg.Connection[Any], statements: Sequence[str]) -> None:
    """``statements`` as one text by the simple query protocol: one round trip. On a connection
    whose transaction began otherwise meanwhile, only its settings, each by itself. Raises Django's
    ``OperationalError`` (and the other ``DatabaseError`` classes) with PostgreSQL's SQLSTATE, as a
    cursor would."""
    with db.wrap_database_errors:
        if not begins_plainly(raw):
            for statement in statements:
                if statement != "BEGIN":
                    raw.execute(statement)
            return
        result = raw.pgconn.exec_("; ".join(statements).encode())
        if raw.pgconn.status == pq.ConnStatus.BAD:  # the connection is lost, as psycopg says it
            raise psycopg.OperationalError(raw.pgconn.get_error_message())
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
