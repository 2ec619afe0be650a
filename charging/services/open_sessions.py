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

Loaded at connect (``open_sessions_load``, in the handshake's unit), the connection knows *every*
session open on its charger (``complete``) until it forgets one: then the one session open on a
1.6 connector (a MeterValues without transactionId) is read from it too (``open_session_on_connector``).
A session opened elsewhere meanwhile is a start of this charger on another connection, which
supersedes (writes) the one kept here on that connector: the kept copy's guarded write fails.
Where no copy is kept there is no guard to fail: "none kept on this connector"
(``open_sessions_none_on``) only spares a read whose miss costs idle time, never a close.
"""

from __future__ import annotations

import copy
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection, transaction
from django.db.models import JSONField
from django.db.models.base import ModelState

from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from kernel.plain_sql import array_text, columns_of, gathering, model_rows, model_rows_with
from kernel.rows_ahead import RowsAhead


class _Sessions(dict[int, Transaction]):
    """pk -> the session as last committed by this connection's units (active sessions only);
    ``complete``: every session open on the charger is here (loaded at connect, none forgotten).
    Slotted: one per idle connection (issue 15's memory per connection)."""

    __slots__ = ("complete",)

    def __init__(self) -> None:
        super().__init__()
        self.complete = False


_connection_sessions: ContextVar[_Sessions | None] = ContextVar("csms_open_sessions", default=None)

_batch = threading.local()  # .lent: (sessions, pk) handed out in this thread's batch, None outside one
# charge point id -> its open sessions read ahead for its handshake (``open_sessions_read_together``)
_read: RowsAhead[str, list[Transaction]] = RowsAhead(fewest=1)


def open_sessions_bind() -> None:
    """Keep open sessions for the connection whose context this runs in (its handshake)."""
    _connection_sessions.set(_Sessions())


def open_sessions_condition() -> tuple[str, list[str]]:
    """PostgreSQL: an SQL boolean over a charger's row (alias ``cp``), true when a session is open
    on it, and its parameters: asked in the handshake's presence write (``charge_point_connect``'s
    ``condition``) so that a charger with none (most) needs no read to load them. It sees what was
    committed when that statement began: a start on the charger's older connection committed while
    the write waited for the charger's row is that case of "a session opened elsewhere meanwhile"
    (module docstring)."""
    return (
        f"EXISTS (SELECT 1 FROM {connection.ops.quote_name(Transaction._meta.db_table)} t"
        " WHERE t.charge_point_id = cp.id AND t.status = %s)",
        [TransactionStatus.ACTIVE],
    )


@functools.cache
def _open_sessions_of(*, many: bool) -> str:
    """The statement reading the sessions open on a charger (parameters: its charge point id, the
    status) or, ``many``, on each of several (their ids as an array, the status): each session's
    columns, then its charge point id. Many are looked up charger by charger (the index on the
    session's charger and status), whatever the planner believes of the open sessions' number."""
    quote = connection.ops.quote_name
    sessions, charge_points = quote(Transaction._meta.db_table), quote(ChargePoint._meta.db_table)
    if many:
        return (
            f"SELECT {columns_of(Transaction, 't')}, c.charge_point_id FROM unnest(%s::text[]) AS v(charge_point_id)"
            f" JOIN {charge_points} c ON c.charge_point_id = v.charge_point_id CROSS JOIN LATERAL"
            f" (SELECT * FROM {sessions} s WHERE s.charge_point_id = c.id AND s.status = %s) t"
        )
    return (
        f"SELECT {columns_of(Transaction, 't')}, c.charge_point_id FROM {sessions} t"
        f" JOIN {charge_points} c ON c.id = t.charge_point_id WHERE c.charge_point_id = %s AND t.status = %s"
    )


def open_sessions_load(charge_point_id: str, *, any_open: bool | None = None) -> None:
    """Once this unit commits, the connection keeps every session open on its charger (read now,
    one statement, or taken from its batch's read, ``open_sessions_read_together``; none when
    ``any_open`` is False, as ``open_sessions_condition`` found in this unit) and knows it keeps
    them all: the handshake's unit loads them, so a reconnected charger's first reading reads no
    session. Nothing outside a bound connection."""
    sessions = _connection_sessions.get()
    if sessions is None or connection.vendor != "postgresql":
        return
    found = [] if any_open is False else _open_sessions_read_taken(charge_point_id)
    if found is None:
        found = model_rows(Transaction, _open_sessions_of(many=False), [charge_point_id, TransactionStatus.ACTIVE])

    def keep() -> None:
        sessions.clear()
        if found:  # most chargers connect with none: their dict stays empty (no table allocated)
            sessions.update((session.pk, session) for session in found)
        sessions.complete = True

    transaction.on_commit(keep)


@contextmanager
def open_sessions_read_together(charge_point_ids: Sequence[str]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), the sessions open on each of
    ``charge_point_ids`` (the chargers whose handshake the batch attached ahead and found one
    open: ``attach_writes.attaches_written_held``) are read by one statement made now, right
    after that attach's statement, and each handshake's ``open_sessions_load`` takes its
    charger's instead of a read of its own (``open_sessions_read_dropped`` once its unit ran).
    None given, or not PostgreSQL: no statement."""
    with _read.kept() as read:
        if _read.enough(charge_point_ids):
            read.update((charge_point_id, []) for charge_point_id in charge_point_ids)
            params = [array_text(list(read)), TransactionStatus.ACTIVE]
            for session, (charge_point_id,) in model_rows_with(Transaction, _open_sessions_of(many=True), params):
                read[charge_point_id].append(session)
        yield


def _open_sessions_read_taken(charge_point_id: str) -> list[Transaction] | None:
    """The sessions the batch read for this charger's handshake (taken: no other unit gets them), or None."""
    return _read.taken(charge_point_id)


def open_sessions_read_dropped(charge_point_id: str | None) -> None:
    """The first unit of this charger in the batch ran: what was read for its handshake, if it
    was left, is no later unit's (a later handshake of the charger reads its own)."""
    _read.dropped(charge_point_id)


@contextmanager
def open_sessions_lent() -> Iterator[Callable[[], None]]:
    """A group-commit batch: yields ``forget``, which drops from their connections the sessions
    lent so far (the batch failed, or is written again), so that they are read again."""
    _batch.lent = []
    _batch.noted = []

    def forget() -> None:
        for sessions, pk in _batch.lent:
            sessions.pop(pk, None)
            sessions.complete = False  # read the full way until the connection loads them again
        _batch.lent.clear()
        _batch.noted = []  # what the pass noted: its commit callback, if it registered one, is dropped with it

    try:
        yield forget
    finally:
        _batch.lent = _batch.noted = None


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
            session = _session_copied(kept)
            session._csms_guard = session.updated_at  # type: ignore[attr-defined]
            return session
    return None


def open_session_peeked(match: Callable[[Transaction], bool]) -> int | None:
    """The id of this connection's open session that ``match`` accepts, without a copy (nothing
    lent): what a batch reads ahead for its unit (``ledger_reads``); None as ``open_session_cached``."""
    sessions = _connection_sessions.get()
    if not sessions or getattr(_batch, "lent", None) is None or not gathering():
        return None
    return next((pk for pk, kept in sessions.items() if match(kept)), None)


def open_session_on_connector(connector_id: int) -> Transaction | None:
    """A copy of the one session open on this 1.6 connector (no EVSE), as ``open_session_cached``,
    when the connection keeps every session open on its charger and exactly one is on it; else
    None (none or several: the caller reads the rows)."""
    pk = _one_on_connector(_connection_sessions.get(), connector_id)
    return None if pk is None else open_session_cached(lambda session: session.pk == pk)


def open_session_charging_on_connector(connector_id: int) -> bool | None:
    """Whether the session ``open_session_on_connector`` would lend is charging (no idle time
    running), read without its copy (nothing lent: most charging statuses change nothing of it);
    None when it would lend none."""
    if getattr(_batch, "lent", None) is None or not gathering():
        return None
    sessions = _connection_sessions.get()
    pk = _one_on_connector(sessions, connector_id)
    return None if sessions is None or pk is None else sessions[pk].idle_since is None


def _one_on_connector(sessions: _Sessions | None, connector_id: int) -> int | None:
    """The id of the one session kept on this 1.6 connector when ``sessions`` holds every session
    open on its charger and exactly one is on it, else None."""
    if sessions is None or not sessions.complete:
        return None
    on_it = [pk for pk, kept in sessions.items() if kept.connector_id == connector_id and kept.evse_id is None]
    return on_it[0] if len(on_it) == 1 else None


def open_sessions_none_on(*, connector_id: int, evse_id: int | None) -> bool:
    """True when the connection keeps every session open on its charger and none is on this
    connector (``evse_id`` None: a 1.6 connector) or 2.0.1 EVSE: a StatusNotification then has no
    session to follow and reads none. False when it cannot tell (the caller reads the rows)."""
    sessions = _connection_sessions.get()
    if sessions is None or not sessions.complete:
        return False
    if evse_id is not None:
        return all(kept.evse_id != evse_id for kept in sessions.values())
    return all(kept.connector_id != connector_id or kept.evse_id is not None for kept in sessions.values())


def open_session_noted(session: Transaction) -> None:
    """``session`` was just written: once committed, the connection keeps it (open) or forgets it
    (ended). The copy is taken now: what the unit changes after its last save is not the row.

    In a batch's first pass (no savepoints: its units commit together or not at all) the notes
    wait in the pass's list, kept by one ``on_commit`` callback for the pass, in the order noted
    (a callback per save was a few µs of every session message; issue 15). Elsewhere (the second
    pass, where a unit's savepoint may roll back its own callbacks) one callback per save."""
    sessions = _connection_sessions.get()
    if sessions is None or session.pk is None or connection.vendor != "postgresql":
        return
    kept = _session_copied(session) if session.status == TransactionStatus.ACTIVE else None
    noted: list[tuple[_Sessions, int, Transaction | None]] | None = getattr(_batch, "noted", None)
    if noted is not None and gathering():
        if not noted:
            transaction.on_commit(functools.partial(_noted_kept, noted))
        noted.append((sessions, session.pk, kept))
        return
    transaction.on_commit(functools.partial(_noted_kept, [(sessions, session.pk, kept)]))


def _noted_kept(noted: list[tuple[_Sessions, int, Transaction | None]]) -> None:
    """Committed: each noted session kept by its connection (open) or forgotten (ended), in order."""
    for sessions, pk, kept in noted:
        if kept is None:
            sessions.pop(pk, None)
        else:
            sessions[pk] = kept


# A session's attributes whose values are never changed in place (strings, numbers, times), and
# those that may be (JSON columns): ``_session_copied`` copies the latter and any other attribute's list
# or dict, without a look at each of the thirty-odd columns.
_MAY_BE_MUTABLE = frozenset(
    field.attname for field in Transaction._meta.concrete_fields if isinstance(field, JSONField)
)
_IMMUTABLE = frozenset(field.attname for field in Transaction._meta.concrete_fields) - _MAY_BE_MUTABLE
_COLUMNS_AND_STATE = _IMMUTABLE | _MAY_BE_MUTABLE | {"_state"}
_MUTABLE_NAMES = tuple(sorted(_MAY_BE_MUTABLE))


def _session_copied(session: Transaction) -> Transaction:
    """A copy that shares nothing mutable with ``session`` and carries no related row (a cached
    charger row would go stale: its tariff, its boot time)."""
    duplicate = Transaction.__new__(Transaction)
    values = session.__dict__.copy()
    values.pop("_csms_guard", None)
    values.pop("_csms_loaded", None)
    # Most sessions hold their columns and ``_state`` alone: only their JSON columns are looked at
    # (a tuple of them, made once: no set built per copy).
    names = (
        _MUTABLE_NAMES if _COLUMNS_AND_STATE.issuperset(values) else _MAY_BE_MUTABLE.union(values.keys() - _IMMUTABLE)
    )
    for name in names:
        value = values.get(name)
        if type(value) is list or type(value) is dict:  # exactly these: their own copy() is copy.copy's
            values[name] = value.copy()
        elif isinstance(value, (list, dict)):
            values[name] = copy.copy(value)
    duplicate.__dict__ = values
    state = duplicate._state = ModelState()
    state.adding, state.db = False, session._state.db
    return duplicate
