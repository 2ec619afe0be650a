"""A group-commit batch's StatusNotifications, written together (issue 15).

A StatusNotification (1.6 and 2.0.1, ``fleet.connector_status_set``) sets its charger's
``last_seen`` (which locks the charger's row first, as every session write does), then locks and
reads its connector's row and writes the status unless the stored one supersedes it, or creates
the row with it (a connector's first status): one statement per status. A batch written without
savepoints writes them once for all its statuses, before its units run
(``statuses_written_together``): one statement locks the statuses' chargers that no other
transaction holds, in the order of their primary keys, waiting for none (``SKIP LOCKED``: a
charger held elsewhere is left to its status, which waits for it at its turn, as a status always
did), and sets their ``last_seen``; one more, after those locks (a statement reads as of its
start: what committed before the locks were taken), locks, reads and writes or creates their
connectors' rows by the same rule, for the chargers the first wrote (their row's version is this
transaction's). The two go in one round trip, a pipeline: PostgreSQL starts the second once the
first is done (round 33; they were two, and a lone status wrote its own way in one statement,
then asked in another whether a session was open: ``asked``, now in the write's round trip; a lone
status is now written ahead too, by its own statement, its question a second one beside it). Each status then
takes what was written for it (``status_write_taken``) and sends its signal and its webhook event
at its turn, as before.

Only the first unit of its charger in the batch is written ahead (the group commit chooses): a
unit of that charger before it (a boot, another status) may change what the write reads. What is
written and not taken is dropped once its unit ran (``status_write_dropped``). PostgreSQL only;
the batch's second pass (each unit in its savepoint) writes each status the unit's way, the first
pass's writes rolled back with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone

from chargepoints import clock
from chargepoints.models import ChargePoint, Connector
from kernel.plain_sql import array_text, instance_of_row, instance_saved, rows_pipelined
from kernel.rows_ahead import RowsAhead, UnitKind

STATUS_COLUMNS = ("status", "error_code", "info", "vendor_id", "vendor_error_code", "status_timestamp",
                  "charger_timestamp", "status_time_received", "updated_at")  # fmt: skip
CONNECTOR_COLUMNS = ("id", "charge_point_id", "evse_id", "connector_id", *STATUS_COLUMNS)


class StatusLookup(NamedTuple):
    """A status as ``connector_status_set``'s keyword arguments (``timestamp`` as sent, None: absent)."""

    charge_point_id: str
    connector_id: int
    status: str
    evse_id: int | None = None
    error_code: str = ""
    info: str = ""
    vendor_id: str = ""
    vendor_error_code: str = ""
    timestamp: datetime | None = None
    charging: bool | None = None


@dataclass(slots=True)
class StatusWrite:
    """What a status written ahead found: the time it was received (``now``), its charger (id,
    charger id, last boot), its connector as it was (a first status: as ``Connector()`` is, with
    the id of the row created), whether the status was written (False: a newer one is stored) and
    the value of the write's ``asked`` condition for it (None: not asked)."""

    now: datetime
    charge_point: ChargePoint
    connector: Connector
    written: bool
    condition_held: bool | None = None


_units: UnitKind[StatusLookup] = UnitKind(StatusLookup)
status_unit_register = _units.register  # ``func``'s units are statuses: their arguments a ``StatusLookup``'s
status_lookup_of = _units.lookup_of
_writes: RowsAhead[StatusLookup, StatusWrite] = RowsAhead(fewest=1)  # one round trip, a lone status's ``asked`` in it


@contextmanager
def statuses_written_together(
    lookups: Sequence[StatusLookup], *, asked: str = "NULL"
) -> Iterator[list[tuple[StatusLookup, StatusWrite]]]:
    """Within the block (a batch's pass without savepoints), each of ``lookups`` whose charger was
    found is written now and answered (``status_write_taken``); the block is given those whose
    status was written (their signal is to be sent). Two or more: two statements in one round
    trip, a charger held by another transaction skipped (its unit waits for it at its turn); one
    alone: its own statement (``status_written``), which waits for its charger as its unit would.
    ``asked``: an SQL boolean without parameters over each status's row ``v`` (``cp`` its charger's
    pk, ``status``, ``evse``, ``connector``), evaluated after the chargers' locks (in the write's
    statement; for a lone status by a second one in its round trip) into
    ``StatusWrite.condition_held``: what a higher app asks of a status without a round trip of its
    own. None, or not PostgreSQL: no statement, no answer."""
    with _writes.kept() as writes:
        if _writes.enough(lookups):
            now = timezone.now()
            if len(lookups) == 1:
                writes.update(_connector_written(lookups[0], now, None if asked == "NULL" else asked))
            else:
                writes.update(_connectors_written(lookups, now, asked))
        yield [(lookup, write) for lookup, write in writes.items() if write.written]


# A StatusNotification as one statement (PostgreSQL, issue 15): the charger's ``last_seen`` (its
# row locked first, as every session write locks it), the connector's row locked and read as it
# was, and written unless the stored status supersedes this one (``fleet._status_superseded``); a
# connector's first status creates its row with the status in it. One round trip instead of three
# (five for a first status). The ORM's path, and a first status whose row another transaction
# created while this one waited for the charger's lock (the INSERT finds the conflict, the
# snapshot missed the row), keep the steps.
_STATUS_WRITTEN = (
    f"WITH cp AS (UPDATE {ChargePoint._meta.db_table} SET last_seen = %(now)s"
    " WHERE charge_point_id = %(charge_point_id)s RETURNING id, last_boot_at),"
    f" old AS (SELECT {', '.join(f'c.{column}' for column in CONNECTOR_COLUMNS)}"
    f" FROM {Connector._meta.db_table} c JOIN cp ON c.charge_point_id = cp.id"
    " WHERE c.connector_id = %(connector_id)s AND c.evse_id IS NOT DISTINCT FROM %(evse_id)s FOR UPDATE OF c),"
    f" written AS (UPDATE {Connector._meta.db_table} c"
    f" SET {', '.join(f'{column} = %({column})s' for column in STATUS_COLUMNS)}"
    " FROM old, cp WHERE c.id = old.id AND (old.status_timestamp IS NULL OR old.status_time_received"
    " OR %(status_timestamp)s >= old.status_timestamp OR (cp.last_boot_at IS NOT NULL"
    " AND old.updated_at < cp.last_boot_at)) RETURNING c.id),"
    f" created AS (INSERT INTO {Connector._meta.db_table} (charge_point_id, evse_id, connector_id,"
    f" {', '.join(STATUS_COLUMNS)}) SELECT cp.id, %(evse_id)s, %(connector_id)s,"
    f" {', '.join(f'%({column})s' for column in STATUS_COLUMNS)} FROM cp"
    " WHERE NOT EXISTS (SELECT 1 FROM old) ON CONFLICT DO NOTHING RETURNING id)"
    " SELECT cp.id, cp.last_boot_at, EXISTS (SELECT 1 FROM written), (SELECT id FROM created),"
    f" {', '.join(f'old.{column}' for column in CONNECTOR_COLUMNS)}"
    " FROM cp LEFT JOIN old ON true"
)
# ``statuses_written_together``'s ``asked`` for one status, over its row ``v`` (as ``_CONNECTORS_WRITTEN``'s).
_ASKED_OF_ONE = (
    "SELECT ({asked}) FROM (SELECT ch.id AS cp, %(status)s::text AS status, %(evse_id)s::int AS evse,"
    f" %(connector_id)s::int AS connector FROM {ChargePoint._meta.db_table} ch"
    " WHERE ch.charge_point_id = %(charge_point_id)s) v"
)


def status_written(
    charge_point_id: str,
    evse_id: int | None,
    connector_id: int,
    now: datetime,
    values: tuple[Any, ...],
    *,
    asked: str | None = None,
) -> tuple[ChargePoint | None, Connector | None, bool, bool | None]:
    """``_STATUS_WRITTEN`` (PostgreSQL; ``values``: ``STATUS_COLUMNS`` but ``updated_at``, which is
    ``now``): the charger (id, charger id, last boot; None: not found), the connector as it was (a
    first status: as ``Connector()`` is, with the id of the row created; None: its row is there
    but was not seen), whether the new status was written, and ``asked`` (as
    ``statuses_written_together`` takes it) evaluated by a second statement after the first's
    lock, in the same round trip (None: not asked)."""
    params = dict(zip(STATUS_COLUMNS, (*values, now), strict=True))
    params.update(now=now, charge_point_id=charge_point_id, connector_id=connector_id, evse_id=evse_id)
    statements = [(_STATUS_WRITTEN, params)]
    if asked is not None:
        statements.append((_asked_of_one_sql(asked), params))
    found = rows_pipelined(statements)
    if not found[0]:
        return None, None, False, None
    held = found[1][0][0] if asked is not None and found[1] else None
    pk, last_boot_at, written, created, *connector_row = found[0][0]
    charge_point = instance_of_row(
        ChargePoint, ("id", "charge_point_id", "last_boot_at"), (pk, charge_point_id, last_boot_at)
    )
    if created is not None:
        connector = Connector(id=created, charge_point_id=pk, evse_id=evse_id, connector_id=connector_id)
        instance_saved(connector)
        return charge_point, connector, True, held
    if connector_row[0] is None:
        return charge_point, None, False, held
    return charge_point, instance_of_row(Connector, CONNECTOR_COLUMNS, connector_row), written, held


@cache
def _asked_of_one_sql(asked: str) -> str:
    return _ASKED_OF_ONE.replace("{asked}", asked)


def _connector_written(lookup: StatusLookup, now: datetime, asked: str | None) -> dict[StatusLookup, StatusWrite]:
    """One status written ahead (``status_written``, one round trip; its lock waited for, as its
    unit would): lookup -> what it found, or nothing (its unit goes its own way)."""
    judged = clock.charger_time(lookup.timestamp, received_at=now, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)
    values = (lookup.status, lookup.error_code, lookup.info, lookup.vendor_id, lookup.vendor_error_code, judged.at,
              judged.kept, judged.received)  # fmt: skip
    charge_point, connector, written, held = status_written(
        lookup.charge_point_id, lookup.evse_id, lookup.connector_id, now, values, asked=asked
    )
    if charge_point is None or connector is None:
        return {}
    return {lookup: StatusWrite(now, charge_point, connector, written, held)}


def status_write_taken(lookup: StatusLookup) -> StatusWrite | None:
    """What was written ahead for ``lookup`` in this pass (taken: no other unit gets it), or None."""
    return _writes.taken(lookup)


def status_write_dropped(lookup: StatusLookup | None) -> None:
    """Its unit ran: what was written for ``lookup``, if it was left, is no later unit's."""
    _writes.dropped(lookup)


# Chargers' ``last_seen`` set (parameters: the time, their charger ids), their rows locked in the
# order of their primary keys, those held by another transaction skipped: a batch's statuses'
# (``_connectors_written`` then writes only the others) and its starts' (``charging.services.start_reads``).
# A statement after it in the transaction tells the chargers it wrote by ``CHARGERS_SEEN_HERE``.
CHARGERS_SEEN = (
    f"UPDATE {ChargePoint._meta.db_table} cp SET last_seen = %s"
    f" FROM (SELECT id FROM {ChargePoint._meta.db_table} WHERE charge_point_id = ANY(%s::text[])"
    " ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) locked WHERE cp.id = locked.id"
)
# Over a charger's row ``ch``, in a later statement of the transaction (parameter: the time given
# to ``CHARGERS_SEEN``): whether ``CHARGERS_SEEN`` wrote it, so holds its lock (its row's version is
# this transaction's, with that time; none inside a savepoint, whose writes are the savepoint's).
CHARGERS_SEEN_HERE = "ch.xmin = pg_current_xact_id_if_assigned()::xid AND ch.last_seen = {now}"


_TABLE = Connector._meta.db_table
# ``_STATUS_WRITTEN`` for many connectors of locked chargers (at most one per charger): each
# row's values one array; the old rows locked in the order of their ids; a row written unless its
# stored status supersedes the new one (``fleet._status_superseded``), created when there is none.
_CONNECTORS_WRITTEN = (
    "WITH given AS (SELECT * FROM unnest(%(charge_point_id)s::text[], %(evse)s::int[], %(connector)s::int[],"
    " %(status)s::text[], %(error_code)s::text[], %(info)s::text[], %(vendor_id)s::text[],"
    " %(vendor_error_code)s::text[], %(status_timestamp)s::timestamptz[], %(charger_timestamp)s::timestamptz[],"
    " %(status_time_received)s::bool[]) WITH ORDINALITY AS given(charge_point_id, evse, connector, status,"
    " error_code, info, vendor_id, vendor_error_code, status_timestamp, charger_timestamp, status_time_received, n)),"
    " v AS (SELECT given.*, ch.id AS cp, ch.last_boot_at FROM given"
    f" JOIN {ChargePoint._meta.db_table} ch ON ch.charge_point_id = given.charge_point_id"
    f" WHERE {CHARGERS_SEEN_HERE.format(now='%(now)s')}),"
    f" old AS (SELECT v.n, {', '.join(f'c.{column}' for column in CONNECTOR_COLUMNS)} FROM {_TABLE} c"
    " JOIN v ON c.charge_point_id = v.cp AND c.connector_id = v.connector"
    " AND c.evse_id IS NOT DISTINCT FROM v.evse ORDER BY c.id FOR UPDATE OF c),"
    f" written AS (UPDATE {_TABLE} c SET"
    f" {', '.join(f'{column} = v.{column}' for column in STATUS_COLUMNS[:-1])}, updated_at = %(now)s"
    " FROM old JOIN v ON v.n = old.n WHERE c.id = old.id AND (old.status_timestamp IS NULL"
    " OR old.status_time_received OR v.status_timestamp >= old.status_timestamp OR (v.last_boot_at IS NOT NULL"
    " AND old.updated_at < v.last_boot_at)) RETURNING v.n),"
    f" created AS (INSERT INTO {_TABLE} (charge_point_id, evse_id, connector_id, {', '.join(STATUS_COLUMNS)})"
    f" SELECT v.cp, v.evse, v.connector, {', '.join(f'v.{column}' for column in STATUS_COLUMNS[:-1])}, %(now)s"
    " FROM v WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.n = v.n) ORDER BY v.n"
    " ON CONFLICT DO NOTHING RETURNING id, charge_point_id, evse_id, connector_id)"
    " SELECT v.n, v.cp, v.last_boot_at, EXISTS (SELECT 1 FROM written WHERE written.n = v.n), created.id, ({asked}),"
    f" {', '.join(f'old.{column}' for column in CONNECTOR_COLUMNS)}"
    " FROM v LEFT JOIN old ON old.n = v.n LEFT JOIN created ON created.charge_point_id = v.cp"
    " AND created.connector_id = v.connector AND created.evse_id IS NOT DISTINCT FROM v.evse ORDER BY v.n"
)


@cache
def _connectors_written_sql(asked: str) -> str:
    """``_CONNECTORS_WRITTEN`` with ``asked`` in its select list (``{`` and ``}`` in it kept)."""
    return _CONNECTORS_WRITTEN.replace("{asked}", asked)


def _connectors_written(lookups: Sequence[StatusLookup], now: datetime, asked: str) -> dict[StatusLookup, StatusWrite]:
    """``CHARGERS_SEEN`` then ``_CONNECTORS_WRITTEN`` for ``lookups``, in one round trip (the
    second reads as of its own start, after the first's locks: ``rows_pipelined``): lookup ->
    what it found. A charger not found or held elsewhere has none, nor has a first status whose
    row is there but was not seen (created by a transaction that committed after the write
    began): its unit writes it its own way."""
    tolerance = settings.CSMS_CLOCK_SKEW_TOLERANCE
    judged = [clock.charger_time(lookup.timestamp, received_at=now, tolerance_s=tolerance) for lookup in lookups]
    params: dict[str, Any] = {
        "now": now,
        "charge_point_id": array_text([lookup.charge_point_id for lookup in lookups]),
        "evse": array_text([lookup.evse_id for lookup in lookups]),
        "connector": array_text([lookup.connector_id for lookup in lookups]),
        "status": array_text([lookup.status for lookup in lookups]),
        "error_code": array_text([lookup.error_code for lookup in lookups]),
        "info": array_text([lookup.info for lookup in lookups]),
        "vendor_id": array_text([lookup.vendor_id for lookup in lookups]),
        "vendor_error_code": array_text([lookup.vendor_error_code for lookup in lookups]),
        "status_timestamp": array_text([time.at for time in judged]),
        "charger_timestamp": array_text([time.kept for time in judged]),
        "status_time_received": array_text([time.received for time in judged]),
    }
    chargers = array_text(sorted({lookup.charge_point_id for lookup in lookups}))
    _, rows = rows_pipelined([(CHARGERS_SEEN, [now, chargers]), (_connectors_written_sql(asked), params)])
    writes = {}
    for n, pk, last_boot_at, written, created, held, *old in rows:
        lookup = lookups[n - 1]  # WITH ORDINALITY counts from 1
        charge_point = instance_of_row(
            ChargePoint, ("id", "charge_point_id", "last_boot_at"), (pk, lookup.charge_point_id, last_boot_at)
        )
        if created is not None:
            connector = Connector(
                id=created, charge_point_id=pk, evse_id=lookup.evse_id, connector_id=lookup.connector_id
            )
            instance_saved(connector)
            writes[lookup] = StatusWrite(now, charge_point, connector, True, held)
        elif old[0] is not None:
            connector = instance_of_row(Connector, CONNECTOR_COLUMNS, old)
            writes[lookup] = StatusWrite(now, charge_point, connector, written, held)
    return writes
