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
connectors' rows by the same rule. Each status then takes what was written for it
(``status_write_taken``) and sends its signal and its webhook event at its turn, as before.

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
from kernel.plain_sql import array_text, bound_cursor, instance_of_row, instance_saved
from kernel.rows_ahead import RowsAhead, UnitKind

STATUS_COLUMNS = ("status", "error_code", "info", "vendor_id", "vendor_error_code", "status_timestamp",
                  "charger_timestamp", "updated_at")  # fmt: skip
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
_writes: RowsAhead[StatusLookup, StatusWrite] = RowsAhead()


@contextmanager
def statuses_written_together(
    lookups: Sequence[StatusLookup], *, asked: str = "NULL"
) -> Iterator[list[tuple[StatusLookup, StatusWrite]]]:
    """Within the block (a batch's pass without savepoints), each of ``lookups`` whose charger was
    found and not held elsewhere is written now (two statements) and answered
    (``status_write_taken``); the block is given those whose status was written (their signal is
    to be sent). ``asked``: an SQL boolean without parameters over each status's row ``v`` (``cp``
    its charger's pk, ``status``), evaluated in the write's statement, after the chargers' locks,
    into ``StatusWrite.condition_held``: what a higher app asks of a status without a statement of
    its own. Fewer than ``FEWEST``, or not PostgreSQL: no statement, no answer."""
    with _writes.kept() as writes:
        if _writes.enough(lookups):
            now = timezone.now()
            chargers = _chargers_seen(sorted({lookup.charge_point_id for lookup in lookups}), now)
            found = [lookup for lookup in lookups if lookup.charge_point_id in chargers]
            if found:
                writes.update(_connectors_written(found, chargers, now, asked))
        yield [(lookup, write) for lookup, write in writes.items() if write.written]


def status_write_taken(lookup: StatusLookup) -> StatusWrite | None:
    """What was written ahead for ``lookup`` in this pass (taken: no other unit gets it), or None."""
    return _writes.taken(lookup)


def status_write_dropped(lookup: StatusLookup | None) -> None:
    """Its unit ran: what was written for ``lookup``, if it was left, is no later unit's."""
    _writes.dropped(lookup)


_CHARGERS_SEEN = (
    f"UPDATE {ChargePoint._meta.db_table} cp SET last_seen = %s"
    f" FROM (SELECT id FROM {ChargePoint._meta.db_table} WHERE charge_point_id = ANY(%s::text[])"
    " ORDER BY id FOR NO KEY UPDATE SKIP LOCKED) locked WHERE cp.id = locked.id"
    " RETURNING cp.charge_point_id, cp.id, cp.last_boot_at"
)


def _chargers_seen(charge_point_ids: list[str], now: datetime) -> dict[str, ChargePoint]:
    """The chargers' ``last_seen`` set to ``now``, their rows locked in the order of their primary
    keys, those held by another transaction skipped: charger id -> (id, charger id, last boot)."""
    with bound_cursor() as cursor:
        cursor.execute(_CHARGERS_SEEN, [now, array_text(charge_point_ids)])
        rows = cursor.fetchall()
    return {
        charge_point_id: instance_of_row(
            ChargePoint, ("id", "charge_point_id", "last_boot_at"), (pk, charge_point_id, last_boot_at)
        )
        for charge_point_id, pk, last_boot_at in rows
    }


_TABLE = Connector._meta.db_table
# ``fleet._STATUS_WRITTEN`` for many connectors of locked chargers (at most one per charger): each
# row's values one array; the old rows locked in the order of their ids; a row written unless its
# stored status supersedes the new one (``fleet._status_superseded``), created when there is none.
_CONNECTORS_WRITTEN = (
    "WITH v AS (SELECT * FROM unnest(%(cp)s::bigint[], %(evse)s::int[], %(connector)s::int[],"
    " %(status)s::text[], %(error_code)s::text[], %(info)s::text[], %(vendor_id)s::text[],"
    " %(vendor_error_code)s::text[], %(status_timestamp)s::timestamptz[], %(charger_timestamp)s::timestamptz[],"
    " %(last_boot_at)s::timestamptz[]) WITH ORDINALITY AS v(cp, evse, connector, status, error_code, info,"
    " vendor_id, vendor_error_code, status_timestamp, charger_timestamp, last_boot_at, n)),"
    f" old AS (SELECT v.n, {', '.join(f'c.{column}' for column in CONNECTOR_COLUMNS)} FROM {_TABLE} c"
    " JOIN v ON c.charge_point_id = v.cp AND c.connector_id = v.connector"
    " AND c.evse_id IS NOT DISTINCT FROM v.evse ORDER BY c.id FOR UPDATE OF c),"
    f" written AS (UPDATE {_TABLE} c SET"
    f" {', '.join(f'{column} = v.{column}' for column in STATUS_COLUMNS[:-1])}, updated_at = %(now)s"
    " FROM old JOIN v ON v.n = old.n WHERE c.id = old.id AND (old.status_timestamp IS NULL"
    " OR v.status_timestamp >= old.status_timestamp OR (v.last_boot_at IS NOT NULL"
    " AND old.updated_at < v.last_boot_at)) RETURNING v.n),"
    f" created AS (INSERT INTO {_TABLE} (charge_point_id, evse_id, connector_id, {', '.join(STATUS_COLUMNS)})"
    f" SELECT v.cp, v.evse, v.connector, {', '.join(f'v.{column}' for column in STATUS_COLUMNS[:-1])}, %(now)s"
    " FROM v WHERE NOT EXISTS (SELECT 1 FROM old WHERE old.n = v.n) ORDER BY v.n"
    " ON CONFLICT DO NOTHING RETURNING id, charge_point_id, evse_id, connector_id)"
    " SELECT v.n, EXISTS (SELECT 1 FROM written WHERE written.n = v.n), created.id, ({asked}),"
    f" {', '.join(f'old.{column}' for column in CONNECTOR_COLUMNS)}"
    " FROM v LEFT JOIN old ON old.n = v.n LEFT JOIN created ON created.charge_point_id = v.cp"
    " AND created.connector_id = v.connector AND created.evse_id IS NOT DISTINCT FROM v.evse ORDER BY v.n"
)


@cache
def _connectors_written_sql(asked: str) -> str:
    """``_CONNECTORS_WRITTEN`` with ``asked`` in its select list (``{`` and ``}`` in it kept)."""
    return _CONNECTORS_WRITTEN.replace("{asked}", asked)


def _connectors_written(
    lookups: list[StatusLookup], chargers: dict[str, ChargePoint], now: datetime, asked: str
) -> dict[StatusLookup, StatusWrite]:
    """``_CONNECTORS_WRITTEN`` for ``lookups`` (their chargers locked): lookup -> what it found. A
    first status whose row is there but was not seen (created by a transaction that committed
    after this statement began) has none: its unit writes it its own way."""
    tolerance = settings.CSMS_CLOCK_SKEW_TOLERANCE
    judged = [clock.charger_time(lookup.timestamp, received_at=now, tolerance_s=tolerance) for lookup in lookups]
    boots = [chargers[lookup.charge_point_id] for lookup in lookups]
    params: dict[str, Any] = {
        "now": now,
        "cp": array_text([charge_point.pk for charge_point in boots]),
        "evse": array_text([lookup.evse_id for lookup in lookups]),
        "connector": array_text([lookup.connector_id for lookup in lookups]),
        "status": array_text([lookup.status for lookup in lookups]),
        "error_code": array_text([lookup.error_code for lookup in lookups]),
        "info": array_text([lookup.info for lookup in lookups]),
        "vendor_id": array_text([lookup.vendor_id for lookup in lookups]),
        "vendor_error_code": array_text([lookup.vendor_error_code for lookup in lookups]),
        "status_timestamp": array_text([time.at for time in judged]),
        "charger_timestamp": array_text([time.kept for time in judged]),
        "last_boot_at": array_text([charge_point.last_boot_at for charge_point in boots]),
    }
    with bound_cursor() as cursor:
        cursor.execute(_connectors_written_sql(asked), params)
        rows = cursor.fetchall()
    writes = {}
    for n, written, created, held, *old in rows:
        lookup, charge_point = lookups[n - 1], boots[n - 1]  # WITH ORDINALITY counts from 1
        if created is not None:
            connector = Connector(
                id=created, charge_point_id=charge_point.pk, evse_id=lookup.evse_id, connector_id=lookup.connector_id
            )
            instance_saved(connector)
            writes[lookup] = StatusWrite(now, charge_point, connector, True, held)
        elif old[0] is not None:
            connector = instance_of_row(Connector, CONNECTOR_COLUMNS, old)
            writes[lookup] = StatusWrite(now, charge_point, connector, written, held)
    return writes
