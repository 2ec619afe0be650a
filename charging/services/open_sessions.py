"""The open sessions of a connected charger, kept on its connection (issue 15, design 1).

The process holding a charger's socket is the only one its messages reach, so a MeterValues or
2.0.1 TransactionEvent of a session it saw open needs no ``SELECT ... FOR UPDATE`` of that
session: the connection (``open_sessions_bind``, a context variable every unit of its messages
inherits) keeps each open session as last committed, keyed by its id. A unit gets a copy
(``open_session_cached``) and its saves are guarded: the UPDATE holds only while the row's
``updated_at`` is what the copy had (``kernel.plain_sql.instance_updated``'s ``guard``), so a
change from the API, the admin or another process (a reconciliation, an edit, a close) makes the
write fail instead of being overwritten.

Only in a batch's first pass (``kernel.plain_sql.gathering``): a failed guard fails that pass, and
the second pass (each unit in its savepoint) reads every session the full way. The entries lent
to a batch that goes to its second pass or fails are forgotten (``open_sessions_lent``); a copy
is kept again only after a commit (``open_session_noted``, on ``transaction.on_commit``), so a
rolled-back batch leaves each connection with what PostgreSQL holds.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection, transaction
from django.db.models.base import ModelState

from charging.models import Transaction, TransactionStatus
from kernel.plain_sql import gathering

# pk -> the session as last committed by this connection's units (active sessions only).
_Sessions = dict[int, Transaction]

_connection_sessions: ContextVar[_Sessions | None] = ContextVar("csms_open_sessions", default=None)

_batch = threading.local()  # .lent: (sessions, pk) handed out in this thread's batch, None outside one


def open_sessions_bind() -> None:
    """Keep open sessions for the connection whose context this runs in (its handshake)."""
    _connection_sessions.set({})


@contextmanager
def open_sessions_lent() -> Iterator[Callable[[], None]]:
    """A group-commit batch: yields ``forget``, which drops from their connections the sessions
    lent so far (the batch failed, or is written again), so that they are read again."""
    _batch.lent = []

    def forget() -> None:
        for sessions, pk in _batch.lent:
            sessions.pop(pk, None)
        _batch.lent.clear()

    try:
        yield forget
    finally:
        _batch.lent = None


def open_session_cached(match: Callable[[Transaction], bool]) -> Transaction | None:
    """A copy of this connection's open session that ``match`` accepts, its saves guarded (the
    caller remembers its values: ``session_rows.transaction_kept``); None outside a batch's first
    pass, without a connection, or when none matches."""
    sessions = _connection_sessions.get()
    lent: list[tuple[_Sessions, int]] | None = getattr(_batch, "lent", None)
    if not sessions or lent is None or not gathering():
        return None
    for pk, kept in sessions.items():
        if match(kept):
            lent.append((sessions, pk))
            session = _copied(kept)
            session._csms_guard = session.updated_at  # type: ignore[attr-defined]
            return session
    return None


def open_session_noted(session: Transaction) -> None:
    """``session`` was just written: once committed, the connection keeps it (open) or forgets it
    (ended). The copy is taken now: what the unit changes after its last save is not the row."""
    sessions = _connection_sessions.get()
    if sessions is None or connection.vendor != "postgresql" or session.pk is None:
        return
    pk = session.pk
    kept = _copied(session) if session.status == TransactionStatus.ACTIVE else None

    def keep() -> None:
        if kept is None:
            sessions.pop(pk, None)
        else:
            sessions[pk] = kept

    transaction.on_commit(keep)


def _copied(session: Transaction) -> Transaction:
    """A copy that shares nothing mutable with ``session`` and carries no related row (a cached
    charger row would go stale: its tariff, its boot time)."""
    duplicate = Transaction.__new__(Transaction)
    duplicate.__dict__.update(
        (name, copy.copy(value) if isinstance(value, (list, dict)) else value)
        for name, value in session.__dict__.items()
        if name not in ("_state", "_csms_guard", "_csms_loaded")
    )
    duplicate._state = ModelState()
    duplicate._state.adding, duplicate._state.db = False, session._state.db
    return duplicate
