"""A group-commit batch's stops' ledgers, read together (issue 15).

A stop (1.6 StopTransaction, 2.0.1 TransactionEvent Ended) derives its session's energy from the
session's register readings: one statement per stop (``ledger_readings``). A batch
written without savepoints reads them once for all its stops whose session their connection keeps
(``open_sessions``), before its units run (``ledgers_read_together``): one statement for every such
session's energy register samples. Each stop then takes its session's (``ledger_read_taken``)
instead of reading, and adds what its batch gathered for it, as a read does.

Only a session kept by its connection (its saves guarded: a change since it was kept fails the
batch's first pass) and only for the first unit of its charger in the batch (the group commit
chooses): a unit of that charger before it may store readings of the session. What is read and
not taken is dropped once its unit ran (``ledger_read_dropped``). A batch holds at most
``ROWS_READ_AT_MOST`` readings: beyond, none is answered. The readings are as of the
batch's start, as ``start_reads``' answers are; a session kept is read without its lock anyway.

Likewise the sessions a batch's ``Available`` statuses close after a reboot (round 16): read
locked by the batch's one read of their connectors' sessions (``status_reads``), not kept by any
connection, their ledgers are read by one statement right after (``locked_ledgers_read_together``)
and each close takes its session's; what its status's unit left is dropped once it ran
(``locked_ledger_dropped``). PostgreSQL only; the batch's second pass (each unit in its
savepoint) keeps no sessions, and reads each ledger the unit's way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import Context
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

from charging import metering
from charging.models import MeterSample, Transaction
from charging.services.open_sessions import open_session_peeked
from charging.services.session_rows import named_by
from kernel.plain_sql import array_text, bound_cursor, gathered_rows_of
from kernel.rows_ahead import RowsAhead, UnitKind

# metering.Sample's fields, the columns a reading needs (the last three: its resolution)
READING_COLUMNS = ("timestamp", "measurand", "value", "phase", "context", "location", "raw_value", "unit", "multiplier")

# How far a charger's reading may stand outside its session's time and still belong to it.
CLOCK_SLACK = timedelta(minutes=10)


@dataclass(frozen=True)
class StopLookup:
    """The session a stop names: its charger and the transactionId it sent (1.6: our id)."""

    charge_point_id: str
    ocpp_transaction_id: str


_units: UnitKind[StopLookup] = UnitKind()
stopping_unit_register = _units.register  # ``func``'s units may stop a session: ``lookup_of(**arguments)`` says which
stop_lookup_of = _units.lookup_of
_ledgers: RowsAhead[int, list[metering.Sample]] = RowsAhead(fewest=1)  # session pk -> its samples
_pks: RowsAhead[StopLookup, int] = RowsAhead(fewest=1)  # lookup -> its session's pk
_locked: RowsAhead[int, list[metering.Sample]] = RowsAhead(fewest=1)  # as ``_ledgers``, for the sessions locked


@contextmanager
def ledgers_read_together(stops: Sequence[tuple[StopLookup, Context]]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), the ledger of each stop's session
    that its connection (the unit's ``Context``) keeps is answered (``ledger_read_taken``) from
    one statement made now. None kept, or not PostgreSQL: no statement, no answer."""
    with _ledgers.kept() as ledgers, _pks.kept() as pks:
        if _ledgers.enough(stops):
            for lookup, context in stops:
                pk = context.run(open_session_peeked, named_by(lookup.ocpp_transaction_id))
                if pk is not None:
                    pks[lookup] = pk
            if pks:
                ledgers.update(_ledgers_read(sorted(set(pks.values()))))
        yield


def ledger_read_taken(session: Transaction) -> list[metering.Sample] | None:
    """The energy register samples of ``session`` read for its batch, in the ledger's order (taken:
    no other unit gets them), when ``session`` is the copy its connection kept, or a session its
    batch locked and read the ledger of (``locked_ledgers_read_together``); else None."""
    if getattr(session, "_csms_guard", None) is not None:
        samples = _ledgers.taken(session.pk)
        if samples is not None:
            return samples
    return _locked.taken(session.pk)


def ledger_read_dropped(lookup: StopLookup | None) -> None:
    """Its unit ran: what was read for ``lookup``'s session, if it was left, is no later unit's."""
    _ledgers.dropped(_pks.dropped(lookup))


@contextmanager
def locked_ledgers_read_together(pks: Sequence[int]) -> Iterator[None]:
    """Within the block, the ledgers of the sessions ``pks`` (open sessions the batch's pass holds
    locked: no other transaction writes them before it ends) are answered (``ledger_read_taken``)
    from one statement made now. None, or not PostgreSQL: no statement, no answer."""
    with _locked.kept() as locked:
        if _locked.enough(pks):
            locked.update(_ledgers_read(sorted(set(pks))))
        yield


def locked_ledger_dropped(pk: int) -> None:
    """The unit that could take session ``pk``'s ledger read ahead ran: it is no later unit's."""
    _locked.dropped(pk)


# At most this many readings held for one batch: beyond it (sessions of days of one-second readings)
# none is answered, and each stop reads its own session's, one at a time.
ROWS_READ_AT_MOST = 20_000


def _ledgers_read(pks: list[int]) -> dict[int, list[metering.Sample]]:
    """Every energy register sample of the sessions ``pks``, each session's in the ledger's order;
    empty (each stop reads its own) when they are more than ``ROWS_READ_AT_MOST``."""
    ledgers: dict[int, list[metering.Sample]] = {pk: [] for pk in pks}
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT transaction_id, {', '.join(READING_COLUMNS)}"
            f" FROM {connection.ops.quote_name(MeterSample._meta.db_table)}"
            " WHERE transaction_id = ANY(%s::bigint[]) AND measurand = %s"
            " ORDER BY transaction_id, timestamp, id LIMIT %s",  # the model's ordering, per session
            [array_text(pks), metering.ENERGY_REGISTER, ROWS_READ_AT_MOST + 1],
        )
        rows = cursor.fetchall()
    if len(rows) > ROWS_READ_AT_MOST:
        return {}
    for pk, *sample in rows:
        ledgers[pk].append(metering.Sample(*sample))
    return ledgers


def ledger_readings(session: Transaction) -> list[metering.Reading]:
    """The session's register readings in time order, its meter start first (the Begin readings
    sent besides it left out: the meter start is the baseline, and so is every reading stamped
    before it: the previous session's, which an offline charger's queue delivered while this one
    was open, billed there already).

    Readings a little outside the session's time (a Transaction.End sample a second after the
    stop event; before a meter start of 0, which a charger that does not know its register sends,
    the readings that tell where it stood) count; a queued reading from another day does not.
    """
    end = max(session.stopped_at or session.started_at, session.started_at)
    window = (session.started_at - CLOCK_SLACK, end + CLOCK_SLACK)
    readings = metering.register_readings(register_samples(session, *window))
    if session.meter_start_wh is not None:  # it stands for every Begin reading (``samples_learned``)
        start = metering.meter_bound_reading(session.started_at, session.meter_start_wh, "Transaction.Begin", readings)
        since = session.started_at if session.meter_start_wh else window[0]
        readings = [r for r in readings if r.context != "Transaction.Begin" and r.at >= since]
        readings.insert(0, start)
    return readings


_STORED_VALUE = Decimal(1).scaleb(-MeterSample._meta.get_field("value").decimal_places)


def _as_stored(value: Decimal | None) -> Decimal | None:
    """A gathered row's value as its column will hold it (PostgreSQL rounds numeric half away
    from zero), so a stop reads the same energy before and after the batch's COPY."""
    return None if value is None else value.quantize(_STORED_VALUE, rounding=ROUND_HALF_UP)


def register_samples(session: Transaction, since: datetime, until: datetime) -> list[metering.Sample]:
    """The session's energy register samples stamped within [since, until], in the ledger's
    order: on PostgreSQL one plain statement of the columns a reading needs (every stop
    reads them; issue 15), not model instances, or what its batch read with its other stops
    (``ledger_reads``), then the session's rows the group commit's batch
    gathered for its COPY (the stop's own readings, an earlier MeterValues): written after, so
    last among equal times, as their ids will be."""
    if connection.vendor != "postgresql":
        rows = MeterSample.objects.filter(
            transaction=session,
            measurand=metering.ENERGY_REGISTER,
            timestamp__gte=since,
            timestamp__lte=until,
        )
        return [metering.Sample.of(row) for row in rows]
    read = ledger_read_taken(session)  # read with its batch's other stops, if it was
    if read is not None:
        samples = [sample for sample in read if since <= sample.timestamp <= until]
    else:
        with bound_cursor() as cursor:
            cursor.execute(
                f"SELECT {', '.join(READING_COLUMNS)}"
                f" FROM {connection.ops.quote_name(MeterSample._meta.db_table)} WHERE transaction_id = %s"
                " AND measurand = %s AND timestamp >= %s AND timestamp <= %s"
                " ORDER BY timestamp, id",  # the model's ordering
                [session.pk, metering.ENERGY_REGISTER, since, until],
            )
            samples = [metering.Sample(*row) for row in cursor.fetchall()]
    gathered = [
        metering.Sample(row[0], row[1], _as_stored(row[2]), *row[3:])
        for row in gathered_rows_of(MeterSample, READING_COLUMNS, ("transaction_id", session.pk))
        if row[1] == metering.ENERGY_REGISTER and since <= row[0] <= until
    ]
    return sorted(samples + gathered, key=lambda sample: sample.timestamp) if gathered else samples
