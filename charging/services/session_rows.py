"""How the session services read, lock, flag and save a transaction row (the steps they share).

One lock order holds for every session write: the charger's row (``charge_point_locked``), then
the session's. A session read through ``transaction_remember`` is saved with only the columns
that changed (``transaction_save_changes``).
"""

from __future__ import annotations

import copy
import operator
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any, NamedTuple, overload

from django.conf import settings
from django.db import connection
from django.db.models import JSONField, Model, Q

from chargepoints.models import ChargePoint
from chargepoints.services.status_writes import CHARGERS_SEEN_HERE
from charging.metering import Anomaly
from charging.models import (
    AuthorizationStatus,
    ReconciliationItem,
    ReconciliationReason,
    ReconciliationState,
    Reservation,
    ReservationStatus,
    Transaction,
    TransactionStatus,
)
from charging.services.open_sessions import open_session_cached, open_session_noted
from kernel.plain_sql import (
    array_text,
    column_of,
    columns_of,
    instance_inserted,
    instance_of,
    instance_of_row,
    instance_updated,
    model_rows,
    rows_of,
)


def charge_point_locked(charge_point_id: str) -> ChargePoint:
    """The charger's row, locked: two copies of one start (a replay racing the original), or of
    one unknown stop, are serialised, so the second finds what the first wrote.

    FOR NO KEY UPDATE: rows that merely refer to the charger (samples, billing records) take
    KEY SHARE locks, which this does not block, so one lock order (charger row, then session)
    holds for every session write.
    """
    if connection.vendor != "postgresql":
        return ChargePoint.objects.select_for_update(no_key=True).get(charge_point_id=charge_point_id)
    found = model_rows(
        ChargePoint,
        f"SELECT {columns_of(ChargePoint, 'c')} FROM {_table(ChargePoint)} c WHERE c.charge_point_id = %s"
        " FOR NO KEY UPDATE",
        [charge_point_id],
    )
    if not found:
        raise ChargePoint.DoesNotExist(f"No charge point {charge_point_id!r}")
    return found[0]


def charge_point_named(pk: int, charge_point_id: str) -> ChargePoint:
    """The charger's row known by its id and identity alone, read from nothing: its other columns
    are deferred (Django reads them on first use, one statement). What a stop needs of it is its
    id and identity; its tariff is chosen where it is priced (``billing.selectors.tariff_for``:
    the charger's ``tariff_id`` from billing's own read, or what a gateway process keeps and
    forgets on every change), never from this row. Built as ``from_db`` builds it, without
    ``Model.__init__``'s walk over every field (``kernel.plain_sql.instance_of_row``)."""
    return instance_of_row(ChargePoint, ("id", "charge_point_id"), (pk, charge_point_id))


def _charge_point_cached(session: Transaction, charge_point: ChargePoint) -> None:
    """``session.charge_point = charge_point``, the charger ``session.charge_point_id`` names
    (both in the default database): its cache set, without the descriptor's checks and its
    write of the same id."""
    Transaction.charge_point.field.set_cached_value(session, charge_point)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def transaction_named(
    charge_point_id: str, ocpp_transaction_id: str, *, with_charge_point: bool = True
) -> Transaction | None:
    """The session a charger names (our integer id in 1.6, its own transactionId in 2.0.1), locked:
    messages about one session are applied one at a time. ``with_charge_point=False`` leaves the
    charger's row out (meter values only need its id; reading ~25 more columns costs more than
    the rest of the query). An open session the connection keeps (``open_sessions``) is not read
    at all; its charger, if asked, is ``charge_point_named`` (no statement either)."""
    numeric = _OUR_ID.fullmatch(ocpp_transaction_id) is not None
    kept = transaction_kept(named_by(ocpp_transaction_id))
    if kept is not None:
        if with_charge_point:
            _charge_point_cached(kept, charge_point_named(kept.charge_point_id, charge_point_id))
        return kept
    if connection.vendor == "postgresql":
        condition, params = "t.ocpp_transaction_id = %s", list[Any]([ocpp_transaction_id])
        if numeric:
            condition += " OR (t.id = %s AND t.ocpp_transaction_id = '')"
            params.append(int(ocpp_transaction_id))
        return transaction_remember(
            transaction_locked_where(charge_point_id, condition, params, with_charge_point=with_charge_point)
        )
    by_id = Q(ocpp_transaction_id=ocpp_transaction_id)
    if numeric:
        by_id |= Q(pk=int(ocpp_transaction_id), ocpp_transaction_id="")
    sessions = Transaction.objects.select_for_update(of=("self",))
    if with_charge_point:
        sessions = sessions.select_related("charge_point")
    sessions = sessions.filter(by_id, charge_point__charge_point_id=charge_point_id)
    return transaction_remember(sessions.order_by("status", "-pk").first())  # a reused 2.0.1 id: the open session


def named_by(ocpp_transaction_id: str) -> Callable[[Transaction], bool]:
    """Whether a session is the one a charger names by ``ocpp_transaction_id`` (its own 2.0.1
    transactionId, or our id in 1.6), among its charger's sessions."""
    our_id = int(ocpp_transaction_id) if _OUR_ID.fullmatch(ocpp_transaction_id) else None

    def named(session: Transaction) -> bool:
        return session.ocpp_transaction_id == ocpp_transaction_id or (
            our_id is not None and not session.ocpp_transaction_id and session.pk == our_id
        )

    return named


_OUR_ID = re.compile(r"[0-9]{1,18}")  # a transactionId that may be our session's id (1.6)


def transaction_kept(match: Callable[[Transaction], bool]) -> Transaction | None:
    """The open session the connection keeps that ``match`` accepts (``open_sessions``), remembered
    as read: no statement; its saves are guarded. None outside a batch's first pass."""
    return transaction_remember(open_session_cached(match))


def transaction_locked_where(
    charge_point_id: str, condition: str, params: list[Any], *, with_charge_point: bool = False
) -> Transaction | None:
    """The charger's session meeting ``condition`` (SQL on ``t``), locked, the open one first, then
    the latest (with its charger's row if asked): on PostgreSQL, the ORM queries of
    ``transaction_named`` and a start's lookup by its key as one plain statement
    (``kernel.plain_sql``), which every MeterValues, stop and 2.0.1 TransactionEvent makes."""
    charger = f", {columns_of(ChargePoint, 'c')}" if with_charge_point else ""
    sessions = model_rows(
        Transaction,
        f"SELECT {columns_of(Transaction, 't')}{charger} FROM {_table(Transaction)} t"
        f" JOIN {_table(ChargePoint)} c ON c.id = t.charge_point_id WHERE c.charge_point_id = %s"
        f" AND ({condition}) ORDER BY t.status, t.id DESC LIMIT 1 FOR UPDATE OF t",  # "active" before "ended"
        [charge_point_id, *params],
        related=("charge_point", ChargePoint) if with_charge_point else None,
    )
    return sessions[0] if sessions else None


def transactions_open_on_connector(
    charge_point: ChargePoint, connector_id: int | None, evse_id: int | None
) -> list[Transaction]:
    """The sessions open on a connector (a 2.0.1 EVSE), locked."""
    if connection.vendor == "postgresql":
        on_connector = "t.evse_id = %s" if evse_id is not None else "t.connector_id = %s AND t.evse_id IS NULL"
        return [
            transaction_remember(session)
            for session in model_rows(
                Transaction,
                f"SELECT {columns_of(Transaction, 't')}, {columns_of(ChargePoint, 'c')} FROM {_table(Transaction)} t"
                f" JOIN {_table(ChargePoint)} c ON c.id = t.charge_point_id"
                f" WHERE t.charge_point_id = %s AND t.status = %s AND {on_connector}"
                " ORDER BY t.started_at DESC, t.id DESC FOR UPDATE OF t",  # the model's ordering
                [charge_point.pk, TransactionStatus.ACTIVE, evse_id if evse_id is not None else connector_id],
                related=("charge_point", ChargePoint),
            )
        ]
    where = Q(evse_id=evse_id) if evse_id is not None else Q(connector_id=connector_id, evse_id__isnull=True)
    sessions = (
        Transaction.objects.select_for_update(of=("self",))
        .select_related("charge_point")
        .filter(where, charge_point=charge_point, status=TransactionStatus.ACTIVE)
    )
    return [transaction_remember(session) for session in sessions]


def transactions_started_or_open(
    charge_point_id: str, start_key: str, connector_id: int | None, evse_id: int | None, parked_under: str = ""
) -> tuple[ChargePoint, Transaction | None, list[Transaction], bool, bool]:
    """The charger's row, locked (``charge_point_locked``), then its session a start with
    ``start_key`` opened (the open one, else the latest) and the sessions open on its connector
    (a 2.0.1 EVSE) in the model's order, locked, whether a stop of an unknown session is parked
    open under the 2.0.1 transactionId ``parked_under`` (False for ""), and whether the charger
    holds an active reservation (``SessionsFound.reserved``): a start's reads under the
    charger's lock as two plain statements (PostgreSQL). The sessions are read by a statement of
    their own after the lock: one statement's snapshot is taken before it waits for a lock, so it
    would miss a session (or a parked stop) the lock's holder (the charger's other connection)
    committed meanwhile. ``ChargePoint.DoesNotExist`` for an unknown charger."""
    charge_point = charge_point_locked(charge_point_id)
    ((sessions, parked, _, _, reserved),) = sessions_started_or_open(
        [SessionsKey(charge_point.pk, start_key, connector_id, evse_id, parked_under)]
    )
    existing, open_on_it = started_or_open_among(charge_point, sessions, start_key, connector_id, evse_id)
    return charge_point, existing, open_on_it, parked, reserved


class SessionsKey(NamedTuple):
    """What ``sessions_started_or_open`` reads for one start: its charger (its primary key; with
    ``written_here``, its charger id), its start key as stored, its connector and EVSE as their
    columns keep them (an EVSE, when given, decides), and the 2.0.1 transactionId a stop may be
    parked under ("": none)."""

    charger: int | str
    start_key: str
    connector_id: int | None
    evse_id: int | None
    parked_under: str


class SessionsFound(NamedTuple):
    """``sessions_started_or_open``'s answer for one key: the sessions read (locked, not yet
    remembered), whether a stop is parked under its transactionId, the primary key handed out
    for the session it may open (``new_ids``; else None), its charger's primary key, and whether
    the charger holds an active reservation (one a start without reservationId may use: few do,
    so most starts look for none, ``reservations.reservation_of_the_start``)."""

    sessions: list[Transaction]
    parked: bool
    new_id: int | None
    charge_point_pk: int
    reserved: bool


def sessions_started_or_open(keys: Sequence[SessionsKey], *, new_ids: bool = False) -> list[SessionsFound]:
    """For each of ``keys`` (their chargers' primary keys), in order, in one statement
    (PostgreSQL): the sessions its start key opened and those open on its connector (EVSE), locked
    (``FOR UPDATE``), not yet remembered (``started_or_open_among``), and whether a stop of an
    unknown session is parked open under its transactionId; with ``new_ids``, a primary key from
    the sessions' sequence per key (``nextval``, once per key: a start that opens no session leaves
    a gap, as a rolled-back INSERT does). Read after the chargers' locks, by a statement of its own
    (see ``transactions_started_or_open``)."""
    sql, params = sessions_started_or_open_read(keys, new_ids=new_ids)
    found = sessions_found(rows_of(Transaction, sql, params))
    return [found[n] for n in range(len(keys))]


def sessions_started_or_open_read(
    keys: Sequence[SessionsKey], *, new_ids: bool, seen_at: datetime | None = None
) -> tuple[str, list[Any]]:
    """``sessions_started_or_open``'s statement and parameters, for ``sessions_found``. With
    ``seen_at`` the keys name their chargers by charger id, and only the keys whose charger's row
    this transaction locked by ``status_writes.CHARGERS_SEEN`` at ``seen_at`` are read
    (``CHARGERS_SEEN_HERE``), so that the statement can follow that one in its round trip (a
    pipeline)."""
    written_here = seen_at is not None
    params: list[Any] = [
        array_text(range(len(keys))),
        array_text([key.charger for key in keys]),
        array_text([key.start_key for key in keys]),
        array_text([key.connector_id for key in keys]),
        array_text([key.evse_id for key in keys]),
        array_text([key.parked_under for key in keys]),
        *([seen_at] if written_here else []),
        ReconciliationReason.UNKNOWN_TRANSACTION,
        ReconciliationState.OPEN,
        TransactionStatus.ACTIVE,
    ]
    return _sessions_started_or_open_sql(new_ids, written_here), params


def sessions_found(rows: list[tuple[Any, ...]]) -> dict[int, SessionsFound]:
    """The rows of ``sessions_started_or_open_read``'s statement: key's index -> its answer (a key
    not read, its charger not written here, absent)."""
    width = len(Transaction._meta.concrete_fields)
    pk_index = [field.primary_key for field in Transaction._meta.concrete_fields].index(True)
    found: dict[int, SessionsFound] = {}
    for row in rows:
        n, parked, new_id, charge_point_pk, reserved = row[width : width + 5]
        sessions = found[n].sessions if n in found else []
        if row[pk_index] is not None:  # the LEFT JOIN found a session
            sessions.append(instance_of(Transaction, row[:width]))
        found[n] = SessionsFound(sessions, bool(parked), new_id, charge_point_pk, reserved)
    return found


@cache
def _sessions_started_or_open_sql(new_ids: bool, written_here: bool) -> str:
    """``sessions_started_or_open``'s statement: ``q`` is one row per key (numbered ``n``), its new
    primary key made in a subquery of its own (not flattened: ``nextval`` is volatile), so once per
    key whatever the number of sessions joined to it."""
    meta = Transaction._meta
    assert meta.pk is not None
    new_id = (
        f"nextval(pg_get_serial_sequence('{meta.db_table}', '{column_of(meta.pk)}'))" if new_ids else "NULL::bigint"
    )
    if written_here:  # the chargers ``CHARGERS_SEEN`` locked in this transaction
        keys = (
            f"SELECT u.*, ch.id AS cp, {new_id} AS new_id FROM unnest(%s::int[], %s::text[], %s::text[], %s::int[],"
            " %s::int[], %s::text[]) AS u(n, charge_point_id, start_key, connector_id, evse_id, parked_under)"
            f" JOIN {_table(ChargePoint)} ch ON ch.charge_point_id = u.charge_point_id"
            f" WHERE {CHARGERS_SEEN_HERE.format(now='%s')}"
        )
    else:
        keys = (
            f"SELECT u.*, {new_id} AS new_id FROM unnest(%s::int[], %s::bigint[], %s::text[], %s::int[], %s::int[],"
            " %s::text[]) AS u(n, cp, start_key, connector_id, evse_id, parked_under)"
        )
    return (
        f"SELECT {columns_of(Transaction, 't')}, q.n, one.parked, q.new_id, q.cp, one.reserved FROM ({keys}) q"
        " CROSS JOIN LATERAL (SELECT q.parked_under <> '' AND EXISTS"
        f" (SELECT 1 FROM {_table(ReconciliationItem)} r WHERE r.charge_point_id = q.cp AND r.reason = %s"
        " AND r.state = %s AND r.ocpp_transaction_id = q.parked_under) AS parked,"
        f" EXISTS (SELECT 1 FROM {_table(Reservation)} rv WHERE rv.charge_point_id = q.cp"
        f" AND rv.status = '{ReservationStatus.ACTIVE}') AS reserved) one LEFT JOIN LATERAL (SELECT *"
        f" FROM {_table(Transaction)} t WHERE t.charge_point_id = q.cp AND (t.start_key = q.start_key OR"
        " (t.status = %s AND CASE WHEN q.evse_id IS NOT NULL THEN t.evse_id = q.evse_id"
        " ELSE t.connector_id = q.connector_id AND t.evse_id IS NULL END)) FOR UPDATE OF t) t ON true"
    )


def started_or_open_among(
    charge_point: ChargePoint,
    sessions: list[Transaction],
    start_key: str,
    connector_id: int | None,
    evse_id: int | None,
) -> tuple[Transaction | None, list[Transaction]]:
    """Of a start's ``sessions`` read under its charger's lock (``transactions_started_or_open``'s
    or ``start_reads``'s statement): the one its ``start_key`` opened (the open one, else the
    latest) and those open on its connector (a 2.0.1 EVSE) in the model's order, each remembered
    (``transaction_remember``) with ``charge_point`` attached."""
    rows = []
    for session in sessions:
        session.charge_point = charge_point
        rows.append(transaction_remember(session))
    started = [session for session in rows if session.start_key == start_key]
    existing = min(started, key=lambda session: (session.status, -session.pk), default=None)  # "active" first

    def on_it(session: Transaction) -> bool:
        if evse_id is not None:
            return session.evse_id == evse_id
        return session.connector_id == connector_id and session.evse_id is None

    open_on_it = [session for session in rows if session.status == TransactionStatus.ACTIVE and on_it(session)]
    open_on_it.sort(key=lambda session: (session.started_at, session.pk), reverse=True)  # the model's ordering
    return existing, open_on_it


def transaction_inserted(session: Transaction) -> Transaction:
    """``session.save()`` of a new session, remembered (``transaction_remember``): on PostgreSQL
    one plain ``INSERT ... RETURNING id`` (``kernel.plain_sql``), which every new session makes,
    with every column it starts with (no second write of what its checks found). A session whose
    primary key its batch handed out (``start_reads``) is gathered with the batch's other new
    sessions into one INSERT (``instance_inserted``'s ``may_gather``), written before anything
    in the batch names its table."""
    if connection.vendor != "postgresql":
        session.save()
        return transaction_remember(session)
    instance_inserted(session, may_gather=session.pk is not None)
    open_session_noted(session)
    return transaction_remember(session)


# Columns a session's save compares with what was read; the timestamps are Django's to set.
_TRACKED = [
    field.attname
    for field in Transaction._meta.concrete_fields
    if not field.primary_key and field.name not in ("created_at", "updated_at")
]

# What open-session lookups match on: a gathered change of these would hide the row from a lookup
# in the same batch (model_rows re-reads only rows its stale answer found), so they are written now.
_IDENTITY = frozenset(
    {"charge_point_id", "connector_id", "evse_id", "ocpp_transaction_id", "start_key", "id_tag"}
) & frozenset(_TRACKED)


@overload
def transaction_remember(session: Transaction) -> Transaction: ...


@overload
def transaction_remember(session: None) -> None: ...


def transaction_remember(session: Transaction | None) -> Transaction | None:
    """Note the values ``session`` holds now, so that ``transaction_save_changes`` writes only what changes."""
    if session is not None:
        _remember_values(session, _tracked_values(session))
    return session


def _remember_values(session: Transaction, values: tuple[Any, ...]) -> None:
    """Keep ``values`` (``_tracked_values(session)``, read now) as the session's values as read:
    on the instance (not a model field, hence the ignore), its JSON columns copied."""
    loaded = list(values)
    for index in _TRACKED_JSON:
        loaded[index] = _copied(loaded[index])
    session._csms_loaded = loaded  # type: ignore[attr-defined]


# The values of ``_TRACKED``, in order, with one C call (a session is remembered twice a message),
# and where the JSON columns are among them: the only values code may change in place.
_tracked_values = operator.attrgetter(*_TRACKED)
_TRACKED_JSON = [
    _TRACKED.index(field.attname) for field in Transaction._meta.concrete_fields if isinstance(field, JSONField)
]


def _copied(value: Any) -> Any:
    """JSON columns are lists and dicts, which code may change in place; the rest are immutable."""
    if type(value) is list or type(value) is dict:  # exactly these (most): their own copy() is copy.copy's
        return value.copy()
    return copy.copy(value) if isinstance(value, (list, dict)) else value


def transaction_save_changes(session: Transaction, *, may_gather: bool = False) -> None:
    """Save the columns that changed since the session was read, if any (building an UPDATE of
    30 columns costs several times one of three); a session read elsewhere is saved whole.
    ``may_gather``: the message's last save of the session, which may be written with the rest of
    the group commit's batch (``kernel.plain_sql.instance_updated``), unless it changes what an
    open-session lookup matches on (``_IDENTITY``). A session the connection kept
    (``open_sessions``) is written only while its row is as kept: else ``DatabaseError``, and the
    batch reads it again."""
    loaded = getattr(session, "_csms_loaded", None)
    if loaded is None:
        session.save()
        return
    values = _tracked_values(session)  # remembered once written: a write changes none of them (only updated_at)
    changed = [  # a value still the one read is unchanged: no comparison (a Decimal's, a datetime's) for it
        name for name, now, was in zip(_TRACKED, values, loaded, strict=True) if now is not was and now != was
    ]
    guard = getattr(session, "_csms_guard", None)  # a session the connection kept: written only if unchanged
    if changed or guard is not None:  # a kept session is always checked, if only by touching updated_at
        if connection.vendor == "postgresql":
            gather = may_gather and not _IDENTITY.intersection(changed)
            instance_updated(  # and updated_at
                session, changed, may_gather=gather, guard=("updated_at", guard) if guard is not None else None
            )
            if guard is not None:
                session._csms_guard = session.updated_at  # type: ignore[attr-defined]  # what the row holds now
        else:
            session.save(update_fields=[*changed, "updated_at"])
        _remember_values(session, values)
        open_session_noted(session)


def transaction_touched(session: Transaction) -> None:
    """Write ``session``'s ``updated_at`` alone (read under its lock): a copy another connection
    keeps fails its guard, and that connection reads the rows again (``open_sessions``)."""
    if connection.vendor == "postgresql":
        instance_updated(session, [])
    else:
        session.save(update_fields=["updated_at"])
    open_session_noted(session)


def seq_no_seen(session: Transaction, seq_no: int | None) -> bool:
    """Whether this 2.0.1 seqNo was processed already (a replay: a charger resends an event with
    its seqNo, OCPP 2.0.1 E01-E07); records it otherwise. ``session.seq_nos`` holds the seqNos
    seen in their compact form (``seq_nos_with``), so what an event writes is bounded by the
    session's gaps, not its length."""
    if seq_no is None:
        return False
    if seq_nos_contain(session.seq_nos, seq_no):
        return True
    session.seq_nos = seq_nos_with(session.seq_nos, seq_no)
    return False


def seq_nos_contain(seq_nos: list[Any], seq_no: int) -> bool:
    """Whether ``seq_no`` is among ``seq_nos`` (the compact form, ``seq_nos_with``)."""
    for entry in reversed(seq_nos):  # the latest seqNos last: an event's is mostly above them all
        if entry == seq_no if isinstance(entry, int) else entry[0] <= seq_no <= entry[1]:
            return True
    return False


def seq_no_late(seq_nos: list[Any], seq_no: int | None) -> bool:
    """Whether a seqNo above ``seq_no`` is among ``seq_nos`` (the compact form, ascending): its
    event arrived after a later one of its session."""
    if seq_no is None or not seq_nos:
        return False
    last = seq_nos[-1]
    return (last if isinstance(last, int) else last[1]) > seq_no


def event_late(session: Transaction, seq_no: int | None) -> bool:
    """Whether a 2.0.1 event of ``session`` arrived after a later one (``seq_no_late``), unless the
    session reached the CSMS before its charger's last boot: the boot may have restarted the seqNo
    counter (README Imperfect chargers), so a seqNo below one seen before it tells nothing of the
    order. The boot is read only for an event whose seqNo is below the highest seen (an event in
    order reads nothing)."""
    return seq_no_late(session.seq_nos, seq_no) and not booted_since_opened(session)


def booted_since_opened(session: Transaction) -> bool:
    """Whether the CSMS heard of ``session`` before its charger's last boot (as
    ``status_reads.opened_before_boot`` judges it): from the charger's row when that is at hand,
    else by a statement that compares the row's boot time alone (no charger row loaded)."""
    if Transaction.charge_point.is_cached(session):
        last_boot_at = session.charge_point.last_boot_at
        return last_boot_at is not None and session.created_at < last_boot_at
    return ChargePoint.objects.filter(pk=session.charge_point_id, last_boot_at__gt=session.created_at).exists()


def seq_no_lowest(seq_nos: list[Any], seq_no: int) -> bool:
    """Whether no seqNo among ``seq_nos`` (the compact form, ``seq_nos_with``) is below ``seq_no``:
    its event is the first of its session's seen in the charger's sequence."""
    return all(seq_no <= (entry if isinstance(entry, int) else entry[0]) for entry in seq_nos)


def seq_nos_with(seq_nos: list[Any], seq_no: int) -> list[Any]:
    """``seq_nos`` with ``seq_no`` added, as a new list in the compact form: ascending, each entry
    a seqNo alone (``n``) or a run of two or more consecutive ones (``[first, last]``, both
    included), runs merged when ``seq_no`` fills the gap between them. A session whose seqNos
    count up from 0 (the spec's increments of one) is one run, ``[[0, last]]``, however long;
    each gap (an event lost, or still to come from the charger's offline queue) adds one entry
    until it is filled."""
    if seq_nos:  # the common cases: one more than the last seen, or above it (a gap)
        last = seq_nos[-1]
        first, end = (last, last) if isinstance(last, int) else last
        if seq_no == end + 1:
            return [*seq_nos[:-1], [first, seq_no]]
        if seq_no > end + 1:
            return _seq_nos_bounded([*seq_nos, seq_no])
    runs = sorted(
        [*((entry, entry) if isinstance(entry, int) else tuple(entry) for entry in seq_nos), (seq_no, seq_no)]
    )
    merged: list[list[int]] = []
    for first, last in runs:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return _seq_nos_bounded([first if first == last else [first, last] for first, last in merged])


def _seq_nos_bounded(seq_nos: list[Any]) -> list[Any]:
    """``seq_nos`` with at most ``CSMS_MAX_SEQ_NO_ENTRIES`` entries: its first (the lowest seqNo seen,
    ``seq_no_lowest``) and the newest. Every event reads and writes the list, and a station whose
    seqNos leave a gap each time (one counter for all its transactions, or a hostile one) grew it
    by one entry an event: 10000 events in, each cost 17 ms of CPU and a 64 KB row. A resent event
    whose seqNo was among the entries left out is taken for a new one."""
    maximum = settings.CSMS_MAX_SEQ_NO_ENTRIES
    if len(seq_nos) <= maximum:
        return seq_nos
    return [seq_nos[0], *seq_nos[len(seq_nos) - maximum + 1 :]]


def anomaly_flag(session: Transaction, code: str) -> None:
    if code not in session.anomalies:
        session.anomalies = [*session.anomalies, code]
    session.needs_review = any(flagged in Anomaly.REVIEW for flagged in session.anomalies)


def anomaly_unflag(session: Transaction, code: str) -> None:
    session.anomalies = [flagged for flagged in session.anomalies if flagged != code]
    session.needs_review = any(flagged in Anomaly.REVIEW for flagged in session.anomalies)


def time_spent_charging_apply(session: Transaction, seconds: int | None) -> None:
    """A 2.0.1 ``timeSpentCharging`` (s) the charger reported for ``session``: a running total
    (E01 to E07), so the largest one heard stands, whatever order the events came in (a late Updated
    carrying an earlier total does not shrink the charging time, nor grow the idle time billed)."""
    seconds = column_int(seconds)
    if seconds is not None and (session.time_spent_charging is None or seconds > session.time_spent_charging):
        session.time_spent_charging = seconds


def session_token_apply(
    session: Transaction, *, id_tag: str, token_type: str, status: str, started: bool = False
) -> None:
    """A token a later 2.0.1 event tells for ``session`` (an Updated's, tapped after plug-in; an
    Ended's, tapped to stop a session started without one): it is the session's, and its bill's,
    when the session has none (``status`` then flags it, as at a start), or when the CSMS refused
    the one it has and accepts this one (a card tried after a refused one): the
    ``unauthorized_token`` flag then goes. A token the CSMS accepted is never replaced; a refused
    one is not replaced by another refused one, nor by itself (its idToken and type, ``_same_token``)
    told again by an event after the Started (``started``: the event is the Started, which judges the
    token the session started with at its start): the card refused ConcurrentTx on EVSE 2 is Accepted
    at its Ended once its session on EVSE 1 ended, the session it started no less refused; an ISO14443
    card of the string of the refused eMAID is another token. ``status``: the CSMS's
    authorization of it ('' when not asked). 1.6's stop idTag is only who stopped it: 1.6 has no
    such later token."""
    if not id_tag or not session_token_open(session):
        return
    replaced = bool(session.id_tag)
    if replaced and status != AuthorizationStatus.ACCEPTED:
        return
    if replaced and not started and _same_token(session, id_tag, token_type):
        return
    session.id_tag, session.id_token_type, session.id_tag_status = stored_id_tag(id_tag), token_type, status
    if replaced:
        anomaly_unflag(session, Anomaly.UNAUTHORIZED_TOKEN)
    elif status and status != AuthorizationStatus.ACCEPTED:
        anomaly_flag(session, Anomaly.UNAUTHORIZED_TOKEN)


def _same_token(session: Transaction, id_tag: str, token_type: str) -> bool:
    """Whether ``id_tag`` of ``token_type`` is the token ``session`` has: its idToken (ignoring case)
    and its type (2.0.1 IdTokenType: an eMAID and an ISO14443 card of the same string are two tokens;
    a type not known, "", may be either)."""
    if stored_id_tag(id_tag).casefold() != session.id_tag.casefold():
        return False
    return not token_type or not session.id_token_type or token_type == session.id_token_type


def session_token_open(session: Transaction) -> bool:
    """Whether a later token may still become ``session``'s (``session_token_apply``): it has none,
    or one the CSMS refused (Invalid, Blocked, Expired, ...)."""
    status = session.id_tag_status
    return not session.id_tag or bool(status and status != AuthorizationStatus.ACCEPTED)


def column_int(value: int | None) -> int | None:
    """An id or count from a charger that fits the column (an absurd one is dropped, not fatal)."""
    return value if value is not None and 0 <= value < 2**31 else None


def evse_told(session: Transaction, evse_id: int | None, connector_id: int | None) -> None:
    """The EVSE and connector a 2.0.1 event of ``session`` names: they fill what the session lacks
    (E01.FR.16: the first event after plug-in names them); another EVSE, or another connector of its
    EVSE, than the session's is no move (a transaction stays on the EVSE it began on, OCPP 2.0.1 E01,
    and its id names it): the session keeps its own, flagged ``evse_changed`` for review (the event's
    readings, stored and billed with it, may be another meter's)."""
    evse_id, connector_id = column_int(evse_id), column_int(connector_id)
    if evse_told_another(session, evse_id, connector_id):
        anomaly_flag(session, Anomaly.EVSE_CHANGED)
        return
    if session.evse_id is None:
        session.evse_id = evse_id
    if session.connector_id is None and (evse_id is None or evse_id == session.evse_id):
        session.connector_id = connector_id


def evse_told_another(session: Transaction, evse_id: int | None, connector_id: int | None) -> bool:
    """Whether an event naming ``evse_id`` and ``connector_id`` names another EVSE or connector than
    ``session``'s (a name left out names none)."""
    if evse_id is not None and session.evse_id is not None and evse_id != session.evse_id:
        return True
    return connector_id is not None and session.connector_id is not None and connector_id != session.connector_id


def fractional(value: Decimal | None) -> bool:
    return value is not None and value != value.to_integral_value()


def seconds_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds()), 0)


def charging_state_apply(
    session: Transaction, *, charging: bool, at: datetime, late: bool = False, sequenced: bool = False
) -> None:
    """Idle time (connected, not charging) opened by a state at ``at`` that is not ``charging``,
    closed into ``idle_seconds`` by one that is; it never starts before the session does (a status
    stamped before the start, sent after it).

    ``late``: a 2.0.1 event that arrived after a later one of its session (``seq_no_late``). It
    opens no idle time (the later events, applied, may have resumed charging: it billed idle time
    to the end), and closes none that began after it (it ended the idle time a later event opened).
    ``sequenced``: a 2.0.1 event's state, whose time the session keeps (``charging_state_at``, the
    latest told): a late one stamped no earlier than every state told is the latest state (the
    events that overtook it told none after it: an EV full at 10:10, its event overtaken by a
    periodic one of 10:20), applied as in order."""
    if sequenced:
        told, was_charging = session.charging_state_at, session.charging_state_charging
        if told is None or at >= told:
            late, session.charging_state_at, session.charging_state_charging = False, at, charging
            ended_idle = _ended_idle_until(session, at) if charging and was_charging is False else None
            if ended_idle is not None:
                session.idle_seconds = max(session.idle_seconds - seconds_between(at, ended_idle), 0)
                return
    if not charging and session.idle_since is None:
        if not late:
            session.idle_since = max(at, session.started_at)
    elif charging and session.idle_since is not None and not (late and at < session.idle_since):
        session.idle_seconds += seconds_between(session.idle_since, at)
        session.idle_since = None


def withheld_state_apply(session: Transaction, *, withheld: bool, at: datetime, late: bool) -> None:
    """A 2.0.1 chargingState of open ``session`` told at ``at``: ``withheld`` (SuspendedEVSE, the
    station withholding energy: a site's pause at 0 A) opens a withheld time, unless the EV is idle
    already (it stays idle, ``charging_state_apply``); any other state closes it into
    ``withheld_seconds``. The charger's ``timeSpentCharging`` counts no such time, and an idle time
    taken from it leaves it out (``transaction_end``), as the states do. ``late``: an event that
    arrived after a later one of its session (``event_late``) opens and closes nothing."""
    if late or session.status != TransactionStatus.ACTIVE:
        return
    if withheld:
        if session.withheld_since is None and session.idle_since is None:
            session.withheld_since = max(at, session.started_at)
    elif session.withheld_since is not None and at >= session.withheld_since:
        session.withheld_seconds += seconds_between(session.withheld_since, at)
        session.withheld_since = None


def _ended_idle_until(session: Transaction, at: datetime) -> datetime | None:
    """The end of ``session`` when it ended idle (its charger's stop billed the idle time a state told
    opened up to the end: ``transaction_finish``) and ``at`` is before it, else None: a Charging state
    arriving late, after the Ended, ends the idle time at ``at``, not at the end (an EV idle at 10:10
    and charging again at 10:30, both events overtaken by the Ended of 11:00, is idle 20 minutes, not 50)."""
    stopped_at = session.stopped_at
    # A session whose charger counts its charging time (2.0.1 timeSpentCharging) had its idle time
    # from that count, not from its states: its re-pricing takes the count again.
    ended = session.status == TransactionStatus.ENDED and session.idle_since is None
    counted = session.time_spent_charging is not None
    return stopped_at if ended and not counted and stopped_at is not None and at < stopped_at else None


def stored_id_tag(id_tag: str) -> str:
    """An over-long id tag (accepted, never authorized: no registered tag is longer) as the column keeps it."""
    return id_tag[:_ID_TAG_LENGTH]


_ID_TAG_LENGTH = Transaction._meta.get_field("id_tag").max_length  # looked up once: every start and 2.0.1 event
