"""The meter ledger: every sampled value kept as received, and what the session learns from it.

MeterValues come here (``meter_values_record``); starts and stops store the samples they carry
with ``samples_store``. A charger's times are judged by ``chargepoints.clock`` first.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import transaction as db_transaction
from django.utils import timezone

from chargepoints import clock
from chargepoints.models import ChargePoint
from charging import metering
from charging.metering import Anomaly
from charging.models import (
    MeterSample,
    ReconciliationItem,
    Transaction,
    TransactionStatus,
)
from charging.services.ledger_reads import CLOCK_SLACK, register_samples
from charging.services.open_sessions import open_session_on_connector
from charging.services.session_rows import (
    anomaly_flag,
    anomaly_unflag,
    charging_state_apply,
    column_int,
    event_late,
    evse_told,
    evse_told_another,
    seq_no_seen,
    seq_nos_contain,
    time_spent_charging_apply,
    transaction_kept,
    transaction_named,
    transaction_remember,
    transaction_save_changes,
    transactions_open_on_connector,
    withheld_state_apply,
)
from charging.services.transaction_end import transaction_finish
from charging.signals import charger_draw_changed
from kernel.plain_sql import (
    column_of,
    gathered_rows_of,
    gathering,
    instances_copied,
    rows_copied,
)
from kernel.storable_text import unstorable_numbers_replaced


@dataclass(slots=True)
class SampleRow:
    """A ledger row to write (``MeterSample``'s columns by attribute name): built for every sampled
    value, so not a model instance, whose construction cost more than the rest of the row's
    write (issue 15). ``sample_rows_stored`` writes it; ``metering.register_readings`` reads it."""

    charge_point_id: int
    transaction_id: int | None
    evse_id: int | None
    connector_id: int | None
    source: str
    timestamp: datetime
    charger_timestamp: datetime | None
    measurand: str
    phase: str
    unit: str
    multiplier: int
    context: str
    location: str
    format: str
    raw_value: str
    signed_data: dict[str, Any] | None
    value: Decimal | None
    received_at: datetime
    reconciliation_item_id: int | None = None


@dataclass(slots=True)
class SampledValue:
    """One sampled value as the charger sent it, in version-neutral terms. Never changed once
    built (a judged one is a copy: ``dataclasses.replace``); not frozen, because a frozen
    dataclass's ``__init__`` sets each of its 12 fields through ``object.__setattr__``, three times
    the cost of this one's, for every sampled value of every message (issue 15)."""

    timestamp: datetime
    raw_value: str
    measurand: str = metering.ENERGY_REGISTER
    phase: str = ""
    unit: str = "Wh"
    multiplier: int = 0
    context: str = ""
    location: str = ""
    format: str = ""
    signed_data: dict[str, Any] | None = None
    charger_timestamp: datetime | None = None  # as sent, when ``timestamp`` is its receipt instead
    clock_implausible: bool = False  # the time sent was implausible (chargepoints.clock)


def meter_values_record(
    *,
    charge_point_id: str,
    samples: Sequence[SampledValue],
    connector_id: int | None = None,
    evse_id: int | None = None,
    ocpp_transaction_id: str = "",
) -> Transaction | None:
    """Store MeterValues, with the session they name, else the one session open on their
    connector (1.6 leaves the id out, names one the CSMS never issued, 0 included, or names an
    ended session on readings from after its end), else none: kept all the same. Implausible
    sample times are replaced by their receipt (``samples_judged``)."""
    samples = samples_judged(samples, timezone.now())
    if gathering():  # a batch's first pass: one transaction without savepoints, an atomic block adds nothing
        return _meter_values_applied(charge_point_id, samples, connector_id, evse_id, ocpp_transaction_id)
    with db_transaction.atomic():
        return _meter_values_applied(charge_point_id, samples, connector_id, evse_id, ocpp_transaction_id)


def _meter_values_applied(
    charge_point_id: str,
    samples: list[SampledValue],
    connector_id: int | None,
    evse_id: int | None,
    ocpp_transaction_id: str,
) -> Transaction | None:
    """``meter_values_record``'s work, in its caller's transaction."""
    session = (
        transaction_named(charge_point_id, ocpp_transaction_id, with_charge_point=False)
        if ocpp_transaction_id
        else None
    )
    if session is None or _after_its_end(session, samples):
        kept = _kept_on_connector(connector_id, evse_id, samples)
        if kept is not None:
            session = kept
        else:
            charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
            session = _open_on_connector(charge_point, connector_id, evse_id, samples) or session
    if session is not None and _resent(session, samples):
        return session  # acknowledged again, nothing stored twice
    if session is not None and _of_another_connector(session, connector_id, evse_id):
        anomaly_flag(session, Anomaly.EVSE_CHANGED)  # stored and billed with it, for review
    charge_point_pk = session.charge_point_id if session else charge_point.pk
    billed = (session.meter_start_wh, session.needs_review) if session is not None else None
    samples_store(
        charge_point_pk,
        session,
        samples,
        source="MeterValues",
        connector_id=connector_id,
        evse_id=evse_id,
        may_gather=True,  # a ledger read in the batch adds them to what it reads (gathered_rows_of)
    )
    if session is not None:
        _latest_sample_noted(session, samples)
        repriced = _closes_evidence(session, samples) or _bill_changed(session, billed)
        transaction_save_changes(session, may_gather=not repriced)  # its last save, unless it is repriced
        if repriced:
            _ended_session_repriced(session)
        charger_draw_changed.send(sender=Transaction, charge_point_id=charge_point_id)
    return session


def _of_another_connector(session: Transaction, connector_id: int | None, evse_id: int | None) -> bool:
    """Whether 1.6 MeterValues naming ``session``'s transaction are another connector's (a firmware
    that tags every connector's readings with its one transaction), as a 2.0.1 event naming another
    EVSE (``evse_told_another``): its meter's readings, not the session's. Connector 0 is the
    charger's main meter, no other connector; no statement."""
    if evse_id is not None or not connector_id or session.evse_id is not None:
        return False
    return evse_told_another(session, None, column_int(connector_id))


def _closes_evidence(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Whether readings of a session the CSMS closed itself (``closed_by_csms``: Reboot, Superseded) are
    evidence its close did not have: its charger's queue, delivered after the close (a charger back from a
    reboot reports its connector before it empties its queue), stamped no later than the close. Readings
    after it count for no bill; a session its charger stopped is billed by its own meter stop."""
    if session.status != TransactionStatus.ENDED or not session.closed_by_csms or session.stopped_at is None:
        return False
    end = session.stopped_at
    return any(sample.measurand == metering.ENERGY_REGISTER and sample.timestamp <= end for sample in samples)


def _bill_changed(session: Transaction, billed: tuple[Decimal | None, bool] | None) -> bool:
    """Whether readings of an ended session changed what its bill was made of (``billed``: its meter
    start and review flag before them): a Transaction.Begin in place of a meter start of 0
    (``samples_learned``), a flag that needs a look (an unreadable value, an implausible clock).
    Its billing record then said otherwise than the session (8 kWh, billed 9; a session to review, its
    record not)."""
    return session.status == TransactionStatus.ENDED and (session.meter_start_wh, session.needs_review) != billed


def _ended_session_repriced(session: Transaction) -> None:
    """An ended session billed again with the readings its charger's queue brought, as a 2.0.1 event
    of its queue re-prices it (``transaction_start``). One the CSMS closed: its energy up to its last
    register reading, its time up to its last evidence; its close stands (the charger's late stop
    replaces it). One its charger stopped: up to its own meter stop (of a 2.0.1 Ended without a reading of
    its own: its last reading up to the stop, these ones too), from the meter start it has now."""
    assert session.stopped_at is not None
    transaction_finish(
        session=session,
        stopped_at=session.stopped_at,
        # A close has none: the last reading stands in, these ones too
        meter_stop_wh=None if session.closed_by_csms else session.meter_stop_wh,
        reason=session.stop_reason,
        stop_id_tag=session.stop_id_tag,
        closed_by_csms=session.closed_by_csms,
    )


def _latest_sample_noted(session: Transaction, samples: Sequence[SampledValue]) -> None:
    """``last_sample_at`` moved to the message's latest reading (sent times only: a receipt standing
    in differs from copy to copy), for ``_resent``; written with the session's save, which a
    session the connection keeps makes for every message."""
    sent = [sample.timestamp for sample in samples if sample.charger_timestamp is None]
    if sent and (session.last_sample_at is None or max(sent) > session.last_sample_at):
        session.last_sample_at = max(sent)


def _resent(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Whether MeterValues ``samples`` of ``session`` are a copy of one it stored (OCPP-J: a CALL
    whose CALLRESULT was lost is sent again, the same message): their energy register is read no
    later than the session's latest reading (``last_register_at``; a new message's is later, and
    reads nothing, unless it reads another register than the session's, ``samples_learned``,
    which moved nothing: rare), and the ledger holds each of them, as a MeterValues of the session stored it
    (same time, measurand, phase, location, context, value and unit): one statement, for such a
    message only. A message without a register reading is told likewise by the latest reading of
    any measurand (``last_sample_at``): read only when it is no later. One with a time its receipt
    stands in for (which differs from copy to copy) is stored."""
    last = session.last_register_at
    register = [sample for sample in samples if sample.measurand == metering.ENERGY_REGISTER]
    if not register:
        latest = session.last_sample_at
        return (
            bool(samples)
            and latest is not None
            and all(s.timestamp <= latest for s in samples)
            and _held(session, samples)
        )
    if last is None:
        return False
    newest = max(sample.timestamp for sample in register)
    if newest > last and (
        session.last_register_scope is None
        or metering.scope_comparable(
            metering.sent_scope(sample for sample in register if sample.timestamp == newest),
            session.last_register_scope,
        )
    ):
        return False  # a new reading of the session's register (a copy's would not have moved it: the ledger's)
    return _held(session, samples)


# A copy's rows at its times: its own, once or twice (a copy taken for new, an answer lost), and
# other messages' of other phases or locations at the same times; the read of ``_held`` stops past these.
_HELD_READ_FACTOR = 4
_HELD_READ_SLACK = 100


def _held(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Whether the ledger holds each of ``samples`` as a MeterValues of ``session`` stored it (read
    only when each time was sent). At most ``_HELD_READ_FACTOR`` times as many rows as the message
    has samples are read, on the ledger's index (session, measurand, time): a copy finds its own
    among them. Every row at the message's times was read: a charger sending thousands of new
    values under one old time, message after message, made each read all the earlier ones (2 s a
    message at 200 000 rows, in the batch the other chargers' messages wait for); past the bound
    the message is not a copy, and stored."""
    if any(sample.charger_timestamp is not None for sample in samples):
        return False
    rows = MeterSample.objects.filter(
        transaction_id=session.pk,
        source="MeterValues",
        measurand__in={sample.measurand for sample in samples},
        timestamp__in={sample.timestamp for sample in samples},
    )
    held = set(
        rows.order_by().values_list(
            "timestamp", "measurand", "phase", "location", "context", "raw_value", "unit", "multiplier"
        )[: _HELD_READ_FACTOR * len(samples) + _HELD_READ_SLACK]
    )
    return all(
        (s.timestamp, s.measurand, s.phase, s.location, s.context, s.raw_value, s.unit, s.multiplier) in held
        for s in samples
    )


def _after_its_end(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Readings naming an ended session, all from after its end: the id of the session before."""
    end = session.stopped_at
    return end is not None and bool(samples) and all(s.timestamp > end for s in samples)


def _open_on_connector(
    charge_point: ChargePoint, connector_id: int | None, evse_id: int | None, samples: Sequence[SampledValue]
) -> Transaction | None:
    """The one session open on a 1.6 connector, if the readings are not from before it."""
    connector = _connector_16(connector_id, evse_id)
    if connector is None:
        return None
    open_sessions = transactions_open_on_connector(charge_point, connector, None)
    if len(open_sessions) == 1 and _not_before(open_sessions[0], samples):
        return open_sessions[0]
    return None


def _kept_on_connector(
    connector_id: int | None, evse_id: int | None, samples: Sequence[SampledValue]
) -> Transaction | None:
    """``_open_on_connector`` from what the connection keeps (``open_sessions``): no statement,
    its saves guarded; None when the connection cannot tell (the caller reads the rows)."""
    connector = _connector_16(connector_id, evse_id)
    if connector is None:
        return None
    kept = open_session_on_connector(connector)
    if kept is None or not _not_before(kept, samples):
        return None  # lent all the same: a batch that fails or is written again forgets it
    return transaction_remember(kept)


def _connector_16(connector_id: int | None, evse_id: int | None) -> int | None:
    """The 1.6 connector (not 0, no EVSE) that readings without a session are matched on, else None."""
    return connector_id if connector_id and evse_id is None else None


def _not_before(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """No reading is from before ``session`` started (beyond the clock slack)."""
    earliest = session.started_at - CLOCK_SLACK
    return all(s.timestamp >= earliest for s in samples)


def charger_time_judged(sent: datetime | None, received_at: datetime) -> clock.ChargerTime:
    """``clock.charger_time`` with the configured tolerance; a time it keeps as sent whatever the
    tolerance (``kept_as_sent``: most) without reading the setting (every start, stop, event)."""
    if sent is not None and clock.kept_as_sent(sent, received_at):
        return clock.ChargerTime(at=sent, sent=sent, implausible=False)
    return clock.charger_time(sent, received_at=received_at, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)


def samples_judged(samples: Sequence[SampledValue], received_at: datetime) -> list[SampledValue]:
    """``samples`` judged: a time replaced by ``received_at`` is kept in ``charger_timestamp``."""
    judged = []
    for sample in samples:
        if clock.kept_as_sent(sample.timestamp, received_at):  # as charger_time_judged would keep it
            judged.append(sample)
            continue
        at = charger_time_judged(sample.timestamp, received_at)
        if at.kept is not None:
            sample = dataclasses.replace(
                sample, timestamp=at.at, charger_timestamp=at.kept, clock_implausible=at.implausible
            )
        judged.append(sample)
    return judged


def meter_bounded(value: Decimal | None) -> Decimal | None:
    """A meter value, or None when it is beyond any meter (garbled)."""
    return value if value is not None and value.is_finite() and abs(value) < metering.MAX_VALUE else None


def meter_value_notes(raw: Decimal | None, bounded: Decimal | None) -> list[str]:
    """The anomalies of a 1.6 meterStart or meterStop sent as ``raw``, ``bounded`` as it counts."""
    if raw is not None and bounded is None:
        return [Anomaly.UNPARSEABLE_VALUE, Anomaly.UNREADABLE_METER_START_OR_STOP]
    return []


def readings_of(samples: Sequence[SampledValue]) -> list[metering.Reading]:
    now = timezone.now()
    return metering.register_readings([_sample_row(0, None, None, None, "", sample, now) for sample in samples])


def reads_fewer_phases(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Whether the first register reading of ``samples`` (a late 2.0.1 Started's Begin) reads fewer
    phases than the register ``session`` holds: a sum missing a phase, no meter start (as in
    ``samples_learned``)."""
    if session.last_register_scope is None:
        return False
    now = timezone.now()
    rows = [_sample_row(0, None, None, None, "", sample, now) for sample in samples]
    readings = metering.register_readings(rows)
    return bool(readings) and not _of_every_phase_held(session, rows, readings[0])


def has_begin_reading(samples: Sequence[SampledValue]) -> bool:
    return any(s.measurand == metering.ENERGY_REGISTER and s.context == "Transaction.Begin" for s in samples)


def samples_store(
    charge_point_pk: int,
    session: Transaction | None,
    samples: Iterable[SampledValue],
    *,
    source: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
    parked: ReconciliationItem | None = None,
    may_gather: bool = False,
) -> None:
    """Keep every sampled value as received (with the parked stop they came in, if any); move the
    session's live register and baseline. The caller saves ``session``. ``may_gather``: the rows
    may be written with the rest of the group commit's batch (``kernel.plain_sql.rows_copied``).
    """
    samples = list(samples)
    rows = sample_rows(charge_point_pk, session, samples, source=source, connector_id=connector_id, evse_id=evse_id)
    if parked is not None:
        for row in rows:
            row.reconciliation_item_id = parked.pk
    sample_rows_stored(rows, may_gather=may_gather)
    if session is not None:
        samples_learned(session, samples, rows)


def sample_rows(
    charge_point_pk: int,
    session: Transaction | None,
    samples: Iterable[SampledValue],
    *,
    source: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> list[SampleRow]:
    """The ledger rows of ``samples`` (to write; for a session not yet inserted, their
    ``transaction_id`` is set once it is)."""
    now = timezone.now()
    if session is None:
        transaction_id, evse_id, connector_id = None, column_int(evse_id), column_int(connector_id)
    else:  # the session's own, looked up once for all its rows
        transaction_id, evse_id, connector_id = session.pk, session.evse_id, session.connector_id
    return [
        _sample_row(charge_point_pk, transaction_id, evse_id, connector_id, source, sample, now) for sample in samples
    ]


def sample_rows_stored(rows: Sequence[SampleRow], *, may_gather: bool = False) -> None:
    """``rows`` written: one COPY on PostgreSQL (gathered into the batch's with ``may_gather``);
    none, no statement (a 1.6 stop without transactionData)."""
    if not rows:
        return
    if connection.vendor == "postgresql":
        plain = [_copy_row(row) for row in rows]
        if all(values is not None for values in plain):
            rows_copied(MeterSample, _COPY_COLUMNS, plain, may_gather=may_gather)  # type: ignore[arg-type]  # none is None
        else:  # one odd row: all of them the general way, so that the ledger keeps their order
            instances_copied(MeterSample, rows, may_gather=may_gather)
    else:
        MeterSample.objects.bulk_create(
            [MeterSample(**{name: getattr(row, name) for name in SampleRow.__slots__}) for row in rows]
        )


# ``MeterSample``'s columns as ``instances_copied`` writes them (every concrete field but the key,
# in order: the same gathered COPY).
_COPY_FIELDS = [field for field in MeterSample._meta.concrete_fields if not field.primary_key]
_COPY_COLUMNS = tuple(column_of(field) for field in _COPY_FIELDS)
_row_values = operator.attrgetter(*(field.attname for field in _COPY_FIELDS))
# By column, the one type of a value that goes as it is (``instances_copied`` passes it unchanged;
# signed data, a JSON column's, never: it is wrapped), and every type-tuple of a row that goes as it
# is: each column's type, or None's where the column may be NULL.
_NULL = type(None)
_COPY_TYPES: tuple[type, ...] = (
    int, int, int, int, int, str, datetime, datetime, str, str, str, int, str, str, str, str, _NULL, Decimal, datetime
)  # fmt: skip
_PLAIN_ROWS = frozenset(
    itertools.product(
        *({kind, _NULL} if field.null else {kind} for field, kind in zip(_COPY_FIELDS, _COPY_TYPES, strict=True))
    )
)


def _copy_row(row: SampleRow) -> tuple[Any, ...] | None:
    """``row``'s values as its COPY takes them, when each is what ``instances_copied`` would send
    unchanged (its column's own type, or None where the column may be NULL; times aware; no
    signed data to wrap as JSON): most rows, without a conversion call per value (19 a row, the
    larger part of a reading's row; issue 15). None for any other row (``instances_copied``
    prepares it)."""
    values = _row_values(row)
    if tuple(map(type, values)) not in _PLAIN_ROWS:
        return None
    at = row.charger_timestamp
    if row.timestamp.tzinfo is None or row.received_at.tzinfo is None or (at is not None and at.tzinfo is None):
        return None
    return values if row.value is None or row.value.is_finite() else None


def _bound_unread(rows: Sequence[SampleRow]) -> bool:
    """Whether the session's start or end reading among ``rows`` (a Transaction.Begin/End energy
    register value) is no number, with no readable one of the same context beside it (another
    location's, another phase's) to take its place."""
    bounds = ("Transaction.Begin", "Transaction.End")
    registers = [row for row in rows if row.measurand == metering.ENERGY_REGISTER and row.context in bounds]
    unread = {row.context for row in registers if row.value is None and row.format != metering.SIGNED_DATA}
    return bool(unread - {row.context for row in registers if row.value is not None})


def samples_learned(
    session: Transaction, samples: Sequence[SampledValue], rows: Sequence[SampleRow], *, stood_in: bool = False
) -> None:
    """What the session learns from its new ledger ``rows``: unreadable values and implausible
    clocks flagged, its baseline, live register and energy so far (the caller saves it). The live
    register follows only a reading of the register the session holds (``last_register_scope``:
    ``metering.scope_comparable``), known from the session as kept: no statement.

    The baseline is the meter start the session has (1.6 ``meterStart``, the 2.0.1 Started's
    ``Transaction.Begin``): a Begin reading sent again later (a StopTransaction's
    ``transactionData``, an Ended repeating it, often rounded to kWh) never moves it. A Begin takes
    its place only when there is none, it is 0 (a charger that does not know its register at the
    start), or it was the first reading standing in (``missing_baseline``; ``stood_in``: one the
    caller found, ``meter_start_stood_in``)."""
    if any(row.value is None and row.format != metering.SIGNED_DATA for row in rows):
        anomaly_flag(session, Anomaly.UNPARSEABLE_VALUE)
        if _bound_unread(rows):
            anomaly_flag(session, Anomaly.UNREADABLE_METER_START_OR_STOP)
    if any(sample.clock_implausible for sample in samples):
        anomaly_flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
    readings = metering.register_readings(rows)  # the rows themselves: no Sample built per row
    if not readings:
        return
    begin = [reading for reading in readings if reading.context == "Transaction.Begin"]
    if (
        begin
        and (not session.meter_start_wh or Anomaly.MISSING_BASELINE in session.anomalies or stood_in)
        and (session.last_register_scope is None or _of_every_phase_held(session, rows, begin[0]))
    ):
        session.meter_start_wh = begin[0].wh
        anomaly_unflag(session, Anomaly.MISSING_BASELINE)
    elif session.meter_start_wh is None:
        session.meter_start_wh = readings[0].wh
    # The live register moves to the message's latest reading of the register the session holds
    # (``metering.scope_comparable``: no phase fewer, no location further from the outlet), as its
    # billing reads the ledger; a message's phases alone, or its one value, may be another's.
    before_wh, before_at, moved = session.last_register_wh, session.last_register_at, None
    for reading in reversed(readings):
        if session.last_register_at is not None and reading.at < session.last_register_at:
            break
        scope = metering.register_scope(rows, reading)
        if metering.scope_comparable(scope, session.last_register_scope):
            if _phases_added(scope, session.last_register_scope):
                _baseline_of_fewer_phases_replaced(session, rows, readings, scope)
            session.last_register_wh, session.last_register_at = reading.wh, reading.at
            session.last_register_scope = scope
            moved = reading
            break
    if session.status == TransactionStatus.ACTIVE and session.last_register_wh is not None:
        session.energy_wh = _live_energy(session, before_wh, before_at, moved)


def meter_start_stood_in(session: Transaction, rows: Sequence[SampleRow]) -> bool:
    """Whether the meter start of 2.0.1 ``session`` is the first reading standing in for a
    Transaction.Begin that ``rows`` (an event's, before they are stored) bring: they read one below it,
    and the session's ledger holds none (its Started, online, carried no reading: nothing flagged it).
    An Ended carries the readings of the whole transaction (J02, SampledDataTxEndedMeasurands), its
    Begin among them. One statement, for such rows only (a Begin that repeats the meter start reads none)."""
    if session.ocpp_version != "2.0.1" or not session.meter_start_wh or session.pk is None:
        return False
    if not any(row.context == "Transaction.Begin" and row.measurand == metering.ENERGY_REGISTER for row in rows):
        return False
    begin = [reading for reading in metering.register_readings(rows) if reading.context == "Transaction.Begin"]
    if not begin or begin[0].wh >= session.meter_start_wh:
        return False
    gathered = gathered_rows_of(MeterSample, ("measurand", "context"), ("transaction_id", session.pk))
    if [metering.ENERGY_REGISTER, "Transaction.Begin"] in gathered:
        return False  # an earlier event's of the batch, not yet written
    return not MeterSample.objects.filter(
        transaction_id=session.pk, measurand=metering.ENERGY_REGISTER, context="Transaction.Begin"
    ).exists()


def _live_energy(
    session: Transaction, before_wh: Decimal | None, before_at: datetime | None, moved: metering.Reading | None
) -> Decimal:
    """The session's energy so far (``energy_wh`` while it charges), its live register having moved to
    ``moved`` (None: it did not) from ``before_wh`` read at ``before_at``: the register minus the meter
    start. A register below its meter start (by its resolution or more) is no longer counted from it:
    the meter was reset, replaced or zeroed by a reboot (or a garbled reading): what was counted so far
    stands, and the climb from such a reading adds its plausible steps (within ``CSMS_METER_MAX_POWER_KW``
    over their time plus ``CSMS_METER_JUMP_TOLERANCE_WH``), as the session's billing counts them
    (``metering.derive_energy``). Back at its meter start or above (a glitch), it is counted from it again.
    """
    assert session.last_register_wh is not None and session.meter_start_wh is not None
    plain = session.last_register_wh - session.meter_start_wh
    counted = session.energy_wh if session.energy_wh is not None else Decimal(0)
    if moved is None or plain > -moved.resolution_wh or before_wh is None or before_at is None:
        return max(plain, Decimal(0)) if moved is not None or plain >= 0 else counted
    step = moved.wh - before_wh
    hours = Decimal(max((moved.at - before_at).total_seconds(), 0)) / 3600
    bound = Decimal(settings.CSMS_METER_MAX_POWER_KW) * 1000 * hours + settings.CSMS_METER_JUMP_TOLERANCE_WH
    return counted + step if 0 < step <= bound and before_wh < session.meter_start_wh else counted


def _of_every_phase_held(session: Transaction, rows: Sequence[SampleRow], reading: metering.Reading) -> bool:
    """Whether ``reading`` (of ``rows``) read every phase of the register the session holds
    (``metering.scope_comparable``): a Begin reading of fewer phases (one repeated by a later
    message) is no meter start."""
    return metering.scope_comparable(metering.register_scope(rows, reading), session.last_register_scope)


def _phases_added(scope: int, held: int | None) -> bool:
    """Whether a reading of ``scope`` reads phases the held register's readings (``held``) did not,
    at the same location (``metering.register_scope``): those were a sum of fewer phases. Held
    readings of one phase are not (a single-phase meter labelling its phase, whose total, read
    without one, is the same register: its meter start stays)."""
    return held is not None and scope // 8 == held // 8 and scope != held and (held % 8).bit_count() >= 2


def _baseline_of_fewer_phases_replaced(
    session: Transaction, rows: Sequence[SampleRow], readings: Sequence[metering.Reading], scope: int
) -> None:
    """The register reads more phases (``scope``) than before: when the session's meter start was
    read over fewer (a 2.0.1 Transaction.Begin, or the first reading standing in, that left a phase
    out), it is no meter start (a sum missing a phase, it would bill that phase's lifetime): the
    first reading of every phase stands in, flagged ``missing_baseline``, as when none was sent.
    Rare (once a session at most): one ledger read, of the readings up to this message's."""
    since = session.started_at - CLOCK_SLACK
    earlier = register_samples(session, since, max(readings[0].at, since))
    at_start = next((r for r in _instants_read(earlier) if r[0].wh == session.meter_start_wh), None)
    if at_start is None or not _phases_added(scope, at_start[1]):
        return
    session.meter_start_wh = next(r.wh for r in readings if metering.register_scope(rows, r) == scope)
    anomaly_flag(session, Anomaly.MISSING_BASELINE)


def _instants_read(samples: Sequence[metering.Sampled]) -> Iterator[tuple[metering.Reading, int]]:
    """Each instant's register reading among ``samples`` (in time order), read alone (as its message
    read it), with its scope (``metering.register_scope``)."""

    def instant_of(sample: metering.Sampled) -> tuple[datetime, str]:
        return sample.timestamp, sample.context

    for _, instant in itertools.groupby(sorted(samples, key=instant_of), key=instant_of):
        grouped = list(instant)
        for reading in metering.register_readings(grouped):
            yield reading, metering.register_scope(grouped, reading)


def _sample_row(
    charge_point_pk: int,
    transaction_id: int | None,
    evse_id: int | None,
    connector_id: int | None,
    source: str,
    sample: SampledValue,
    received_at: datetime,
) -> SampleRow:
    """``sample``'s ledger row (its session's ids, or its charger's and the message's connector's,
    as their columns keep them): built positionally, for every sampled value (issue 15)."""
    # 1.6 SignedData is a blob, not a number, however much it may look like one; a 2.0.1 value is
    # the reading whether or not a signedMeterValue comes beside it (2.0.1 SampledValueType).
    number = None if sample.format == metering.SIGNED_DATA else metering.parse_decimal(sample.raw_value)
    value = metering.normalise(number, sample.unit, sample.multiplier) if number is not None else None
    multiplier = sample.multiplier
    return SampleRow(
        charge_point_pk,
        transaction_id,
        evse_id,
        connector_id,
        source,
        sample.timestamp,
        sample.charger_timestamp,
        sample.measurand,
        sample.phase,
        sample.unit,
        multiplier if -32768 <= multiplier <= 32767 else max(min(multiplier, 32767), -32768),
        sample.context,
        sample.location,
        sample.format,
        sample.raw_value,
        # as received, but for the NaN and infinities PostgreSQL's JSON refuses (as their text)
        None if sample.signed_data is None else unstorable_numbers_replaced(sample.signed_data),
        value,
        received_at,
    )


def transaction_updated_record(
    *,
    ocpp_transaction_id: str,
    seq_no: int,
    at: datetime,
    samples: Sequence[SampledValue],
    evse_id: int | None = None,
    connector_id: int | None = None,
    charging: bool | None = None,
    withheld: bool = False,
    time_spent_charging: int | None = None,
) -> bool:
    """A 2.0.1 TransactionEvent(Updated) without idToken, remoteStartId or reservationId, of an
    open session its connection keeps (``open_sessions``, a batch's first pass), at a plausible
    time not before the session's start: recorded as ``transaction_start`` records it (E02: a new
    seqNo adds its readings, charging state and time spent charging, and fills the EVSE and
    connector the session lacks; a replayed seqNo adds nothing), without the start's lookups,
    judgements and atomic block (a fleet's every reading of 2.0.1; issue 15). False, having
    done nothing, for any other event, and for a seqNo the session saw that brings readings or a
    state (a counter its charger's reboot restarted, or a resend: ``transaction_start`` tells them apart):
    the caller takes ``transaction_start``'s way."""
    if not gathering() or len(ocpp_transaction_id) > _START_KEY_LENGTH:
        return False
    received_at = timezone.now()
    if not clock.kept_as_sent(at, received_at):
        return False
    session = transaction_kept(lambda kept: kept.start_key == ocpp_transaction_id)  # as transaction_start finds it
    if session is None or at < session.started_at:  # an event before its start may move it: the full way judges
        return False
    if session.evse_id is None and column_int(evse_id) is not None:  # it closes what was open on it: the full way
        return False
    if evse_told_another(session, column_int(evse_id), column_int(connector_id)):  # flagged the full way
        return False
    if seq_nos_contain(session.seq_nos, seq_no):
        # A replay adds nothing; one with readings, or telling a state, may be an event whose
        # seqNo its charger's reboot restarted, which only the full way judges
        # (``_seq_no_restarted``: one statement, for such an event only).
        return not samples and charging is None and not withheld and time_spent_charging is None
    seq_no_seen(session, seq_no)
    evse_told(session, evse_id, connector_id)
    samples = samples_judged(samples, received_at)
    # 2.0.1: the readings of its Started and Updated events, stored as the message they came in
    rows = sample_rows(session.charge_point_id, session, samples, source="TransactionEvent")
    samples_learned(session, samples, rows)
    if charging is not None or withheld:  # a kept session is active
        late = event_late(session, seq_no)
        withheld_state_apply(session, withheld=withheld, at=at, late=late)
        if charging is not None:
            charging_state_apply(session, charging=charging, at=at, late=late, sequenced=True)
    time_spent_charging_apply(session, time_spent_charging)
    sample_rows_stored(rows, may_gather=True)
    transaction_save_changes(session, may_gather=True)
    if samples:  # its site recomputes at once, as for a MeterValues (not at its next beat)
        charger_draw_changed.send(sender=Transaction, charge_point_pk=session.charge_point_id)
    return True


# A 2.0.1 session's start key is its transactionId, kept as sent when it fits its column.
_START_KEY_LENGTH: int = Transaction._meta.get_field("start_key").max_length  # type: ignore[assignment]
