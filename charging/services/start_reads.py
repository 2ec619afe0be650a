"""A group-commit batch's session starts, read together (issue 15).

A start (1.6 StartTransaction, 2.0.1 TransactionEvent Started) locks its charger's row, then reads
the sessions its key opened and those open on its connector and whether a stop is parked under
its transactionId (``session_rows.transactions_started_or_open``: two statements), and its id tag
(``selectors.id_tag_find``: one). A batch written without savepoints makes those reads once for
all its starts, before its units run (``starts_read_together``): one statement locks every
start's charger that no other transaction holds, in the order of their primary keys, waiting for
none (``SKIP LOCKED``: a charger held elsewhere, say by its other connection's batch, is left to
its start, which waits for it and reads after it at its turn, as a start always did) and sets
their ``last_seen``; one reads the locked starts' sessions and parked stops (a statement after
the locks, as for one start: those of the chargers whose row version is this transaction's) and
hands each a primary key for the session it may open (its INSERT is then gathered with the
batch's others: one statement); one reads their id tags. The three go in one round trip, a
pipeline (round 33; they were three). Each start then takes its answer (``start_read_taken``)
instead of reading. The rows of the limits of sessions at once its id tags count under (a card's,
its group's) are then locked by one statement, in the order of their primary keys, where each
start locked its own at its turn: two batches with starts of two limited groups in opposite orders
deadlocked (round 51). None to lock (most batches): no statement.

Only the first unit of a charger in its batch may have an answer (the group commit chooses): a
unit of that charger before it (another start, a stop, a status that closes a session) may change
what was read. The id tags read are as of the batch's start for every unit of it, as
``kernel.batch_memo``'s answers are. PostgreSQL only; the batch's second pass (each unit in its
savepoint) reads every start the unit's way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.utils import timezone

from chargepoints.models import ChargePoint
from chargepoints.services.status_writes import CHARGERS_SEEN
from charging import selectors
from charging.models import (
    IdTag,
    Transaction,
)
from charging.services.authorization import id_tags_locked_for_start
from charging.services.session_rows import (
    SessionsKey,
    charge_point_named,
    column_int,
    sessions_found,
    sessions_started_or_open_read,
)
from kernel.plain_sql import array_text, rows_current, rows_pipelined
from kernel.rows_ahead import RowsAhead, UnitKind


@dataclass(frozen=True)
class StartLookup:
    """What a start reads under its charger's lock, as ``transactions_started_or_open``'s arguments
    (its start key as stored, its connector and EVSE as their columns keep them, the 2.0.1
    transactionId a stop may be parked under, "" in 1.6), and its id tag ("": none to authorize;
    not part of the lookup's identity)."""

    charge_point_id: str
    start_key: str
    connector_id: int | None
    evse_id: int | None
    parked_under: str
    id_tag: str = field(default="", compare=False)


@dataclass(frozen=True)
class StartRead:
    """A start's answer: its charger's row (locked; its id and identity, the rest deferred), the
    sessions it read (locked; not yet remembered: ``session_rows.started_or_open_among``), whether
    a stop is parked under it, the primary key of the session it may open (its INSERT then
    gathered with the batch's other new sessions: ``session_rows.transaction_inserted``), and
    whether its charger holds an active reservation (``session_rows.SessionsFound.reserved``)."""

    charge_point: ChargePoint
    sessions: list[Transaction]
    parked: bool
    new_id: int | None
    reserved: bool


def start_lookup(
    *,
    charge_point_id: str,
    start_key: str,
    connector_id: int | None,
    evse_id: int | None,
    parked_under: str,
    id_tag: str = "",
) -> StartLookup | None:
    """The lookup of a start with these values (``start_key`` as stored); None for one naming
    neither connector nor EVSE (it reads no open sessions: read the unit's way)."""
    connector, evse = column_int(connector_id), column_int(evse_id)
    if connector is None and evse is None:
        return None
    return StartLookup(charge_point_id, start_key, connector, evse, parked_under, id_tag)


_units: UnitKind[StartLookup] = UnitKind()
starting_unit_register = _units.register  # ``func``'s units may start a session: ``lookup_of(**arguments)`` says which
start_lookup_of = _units.lookup_of
_reads: RowsAhead[StartLookup, StartRead] = RowsAhead(fewest=1)
# id tag as sent -> the tag, None: not registered (not folded: the database folds, ``selectors.id_tags_found``)
_tags: RowsAhead[str, IdTag | None] = RowsAhead(fewest=1)
# id tag primary key -> True: the row of a limit of sessions at once (a tag's or its group's) this pass locked
_limits: RowsAhead[int, bool] = RowsAhead(fewest=1)


@contextmanager
def starts_read_together(lookups: Sequence[StartLookup]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), each of ``lookups`` is answered
    (``start_read_taken``) from three statements made now, in one round trip: the chargers locked,
    the sessions and parked stops read, the id tags read. A charger not found, or held by another
    transaction, has no answer (its unit reads, and waits or fails as it does). Nothing to read, or
    not PostgreSQL: no statement, no answer."""
    with _reads.kept() as reads, _tags.kept() as tags_read, _limits.kept() as limits_locked:
        if _reads.enough(lookups):
            tags = sorted({lookup.id_tag for lookup in lookups if lookup.id_tag})  # as sent: the database folds case
            found, tags_found = _read(lookups, tags)
            reads.update(found)
            tags_read.update((tag, tags_found.get(tag)) for tag in tags)
            # Only the starts whose charger this pass locked: another's locks its charger at its turn,
            # which must come before its limits (the order every start takes).
            read_tags = (tags_found.get(lookup.id_tag) for lookup in found if lookup.id_tag)
            limits_locked.update((pk, True) for pk in _limits_locked(tag for tag in read_tags if tag is not None))
        yield


def start_read_taken(lookup: StartLookup | None) -> StartRead | None:
    """The answer read for ``lookup`` in this pass (taken: a second unit with the same lookup reads
    its own way), or None."""
    return _reads.taken(lookup)


def id_tag_limits_locked(pks: Sequence[int]) -> bool:
    """Whether this pass locked the id tags' rows ``pks`` (limits of sessions at once) already."""
    locked = _limits.left()
    return bool(locked) and all(pk in locked for pk in pks)


def _limits_locked(tags: Iterable[IdTag]) -> list[int]:
    """The rows of the limits of sessions at once that ``tags`` count under (each tag's, its
    group's: ``selectors.IdTagInfo.limits``), locked by one statement in the order of their primary
    keys (``authorization.id_tags_locked_for_start``); their primary keys. Each start locked its own
    at its turn: two batches holding starts of two limited groups in opposite orders each held one
    group and waited for the other's, a deadlock until PostgreSQL chose a victim. No limit: no
    statement."""
    pks = sorted(
        {
            row.pk
            for tag in tags
            for row in (tag, tag.parent)
            if row is not None and row.max_concurrent_sessions is not None
        }
    )
    if pks:
        id_tags_locked_for_start(pks)
    return pks


def id_tag_read(id_tag: str) -> tuple[bool, IdTag | None]:
    """(True, the tag or None when not registered) when this pass read ``id_tag``; else (False, None)."""
    tags = _tags.left()
    if id_tag not in tags:
        return False, None
    return True, tags[id_tag]


def _read(lookups: Sequence[StartLookup], tags: list[str]) -> tuple[dict[StartLookup, StartRead], dict[str, IdTag]]:
    """The chargers locked, those held elsewhere skipped, not waited for (their start reads and
    locks its own way, at its turn in the batch: no batch-wide wait), and written
    (``status_writes.CHARGERS_SEEN``: ``last_seen``, a start is a sign of life), then the sessions
    and parked stops of the starts whose charger was (``session_rows.sessions_started_or_open_read``,
    ``seen_at``: a statement after the locks, which reads what committed before them), for two
    or more with a primary key handed out for the session each may open (one new session is
    written by its own INSERT at no more cost than a gathered one), and ``tags`` (as sent): one
    round trip (``rows_pipelined``: each statement reads as of its start, after the locks). The
    chargers are read as their id and identity alone (``session_rows.charge_point_named``: what a
    start uses of them)."""
    keys = [
        SessionsKey(lookup.charge_point_id, lookup.start_key, lookup.connector_id, lookup.evse_id, lookup.parked_under)
        for lookup in lookups
    ]
    now = timezone.now()
    sessions_read = sessions_started_or_open_read(keys, new_ids=len(lookups) > 1, seen_at=now)
    chargers = array_text(sorted({lookup.charge_point_id for lookup in lookups}))
    statements = [(CHARGERS_SEEN, [now, chargers]), sessions_read]
    if tags:
        statements.append(selectors.id_tags_read(tags))
    _, sessions_rows, *tag_rows = rows_pipelined(statements)
    found = sessions_found(rows_current(Transaction, sessions_rows, *sessions_read))
    reads = {
        lookup: StartRead(charge_point_named(read.charge_point_pk, lookup.charge_point_id), *read[:3], read.reserved)
        for n, lookup in enumerate(lookups)
        if (read := found.get(n)) is not None
    }
    return reads, selectors.id_tags_of_rows(tag_rows[0]) if tag_rows else {}
