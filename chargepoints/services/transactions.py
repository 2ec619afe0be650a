"""Charging sessions for both OCPP versions: start, meter values, charging state, stop.

1.6 StartTransaction and 2.0.1 TransactionEvent(Started) both end in ``transaction_start``;
StopTransaction and TransactionEvent(Ended) in ``transaction_stop``. Chargers replay queued
messages after a reconnect, lose transaction ids and reboot mid-session: every path here
answers, keeps what it received, and parks what it cannot apply as a reconciliation item.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import transaction as db_transaction
from django.db.models import Model, Q
from django.utils import timezone

from chargepoints import clock, events, metering, selectors
from chargepoints.metering import Anomaly
from chargepoints.models import (
    AuthorizationStatus,
    ChargePoint,
    MeterSample,
    ReconciliationItem,
    ReconciliationReason,
    ReconciliationState,
    Reservation,
    ReservationStatus,
    Transaction,
    TransactionStatus,
)
from chargepoints.selectors import IdTagInfo
from kernel.plain_sql import columns_of, instance_updated, instances_copied, model_rows
from sites.triggers import site_recompute_on_commit
from webhooks.models import EventType
from webhooks.services import webhook_event_emit

# How far a charger's reading may stand outside its session's time and still belong to it.
_CLOCK_SLACK = timedelta(minutes=10)
# Anomalies found by deriving the energy at the end; recomputed whenever a session is finished again.
_DERIVED_ANOMALIES = frozenset(
    {
        Anomaly.NON_MONOTONIC_REGISTER,
        Anomaly.IMPLAUSIBLE_JUMP,
        Anomaly.ZERO_BASELINE,
        Anomaly.CLOSED_BY_CSMS,
        Anomaly.ENDED_BEFORE_STARTED,
        Anomaly.MISSING_READINGS,
    }
)


@dataclass(frozen=True)
class SampledValue:
    """One sampled value as the charger sent it, in version-neutral terms."""

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


@dataclass(frozen=True)
class StartResult:
    transaction: Transaction
    id_tag_info: IdTagInfo | None


@dataclass(frozen=True)
class StopResult:
    transaction: Transaction | None
    id_tag_info: IdTagInfo | None
    reconciliation_item: ReconciliationItem | None = None


def transaction_start(
    *,
    charge_point_id: str,
    ocpp_version: str,
    start_key: str,
    started_at: datetime,
    connector_id: int | None = None,
    evse_id: int | None = None,
    id_tag: str = "",
    id_token_type: str = "",
    authorize: bool = True,
    charging: bool | None = None,
    meter_start_wh: Decimal | None = None,
    ocpp_transaction_id: str = "",
    reservation_id: int | None = None,
    remote_start_id: int | None = None,
    samples: Sequence[SampledValue] = (),
    seq_no: int | None = None,
    time_spent_charging: int | None = None,
    baseline_expected: bool = True,
    started_event: bool = False,
) -> StartResult:
    """Open a session, or find the one a replayed start (same ``start_key``) opened.

    2.0.1 Started and Updated events both come here: an event with a new seqNo for a known
    session adds to it (readings, charging state, and whatever it knew that the session did not:
    an earlier start, EVSE, id token, reservation); one for an unknown session opens it (events
    arrive out of order). 2.0.1 has no meter start in the message: it is the Transaction.Begin
    register reading, or the first one. ``baseline_expected``: a session without a meter start
    is flagged for review (an offline start, or one first seen through a later event).
    ``authorize``: answer with the id tag's authorization (1.6 always; 2.0.1 when an idToken came).
    A new session on a connector closes the older one still open there (its stop was lost).
    ``started_at`` is the charger's time, judged by ``chargepoints.clock``: when its receipt stands
    in for it, it is kept in ``charger_started_at``; an implausible one flags the session
    ``clock_implausible``. A key that matches an ended session may be reused, not replayed
    (``_reused``): then it opens a new session. ``started_event``: a 2.0.1 Started event.
    """
    now = timezone.now()
    start = _judged(started_at, now)
    started_at = start.at
    samples = _samples_judged(samples, now)
    with db_transaction.atomic():
        info = selectors.id_tag_authorize(id_tag=id_tag, token_type=id_token_type) if authorize else None
        id_tag, start_key = _stored_id_tag(id_tag), _stored_start_key(start_key)
        # A known 2.0.1 session (every Updated event) is locked on its own row; only a start that
        # may open one takes the charger's lock, then looks (again) under it.
        existing = _started_by(charge_point_id, start_key) if seq_no is not None else None
        if existing is None or _reused(existing, seq_no, started_event, started_at):
            charge_point = _locked_charge_point(charge_point_id)
            existing = _started_by(charge_point_id, start_key)
            if existing is not None and _reused(existing, seq_no, started_event, started_at):
                existing = None
        if existing is not None:
            if seq_no is not None and not _seen(existing, seq_no):
                if start.implausible:
                    _flag(existing, Anomaly.CLOCK_IMPLAUSIBLE)
                _event_merge(existing, started_at, samples, baseline_expected)
                _fill_blanks(existing, evse_id, connector_id, id_tag, id_token_type, info, remote_start_id)
                _consume_reservation(existing, reservation_id)
                _event_apply(existing, samples, charging, started_at, time_spent_charging, source="TransactionStart")
                _save(existing)
                if existing.status == TransactionStatus.ENDED:  # it changes what the ended session cost
                    transaction_finish(
                        session=existing,
                        stopped_at=existing.stopped_at or started_at,
                        meter_stop_wh=existing.meter_stop_wh,
                        reason=existing.stop_reason,
                        stop_id_tag=existing.stop_id_tag,
                        closed_by_csms=existing.closed_by_csms,
                    )
            if info is None and existing.id_tag_status:
                info = IdTagInfo(status=existing.id_tag_status)
            return StartResult(existing, info)
        meter_start = _bounded(meter_start_wh)
        session = _remember(
            Transaction.objects.create(
                charge_point=charge_point,
                ocpp_version=ocpp_version,
                ocpp_transaction_id=ocpp_transaction_id,
                start_key=start_key,
                evse_id=_small(evse_id),
                connector_id=_small(connector_id),
                id_tag=id_tag,
                id_token_type=id_token_type,
                id_tag_status=info.status if info else "",
                started_at=started_at,
                charger_started_at=start.kept,
                meter_start_wh=meter_start,
                remote_start_id=_small(remote_start_id),
                seq_nos=[seq_no] if seq_no is not None else [],
            )
        )
        for code in _meter_value_notes(meter_start_wh, meter_start):
            _flag(session, code)
        if start.implausible:
            _flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
        _token_check(session)
        if _fractional(meter_start):  # a 1.6 meterStart (integer Wh in the spec)
            _flag(session, Anomaly.FRACTIONAL_WH)
        _close_superseded(session)
        _consume_reservation(session, reservation_id)
        _event_apply(session, samples, charging, started_at, time_spent_charging, source="TransactionStart")
        if meter_start is None and baseline_expected and not _has_begin_reading(samples):
            _flag(session, Anomaly.MISSING_BASELINE)
        _save(session)
        webhook_event_emit(event_type=EventType.TRANSACTION_STARTED, data=events.transaction_event(session))
        site_recompute_on_commit(charge_point_id=charge_point_id)
        _apply_parked_end(session)
    return StartResult(session, info)


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
    sample times are replaced by their receipt (``_samples_judged``)."""
    samples = _samples_judged(samples, timezone.now())
    with db_transaction.atomic():
        session = (
            _transaction_for(charge_point_id, ocpp_transaction_id, with_charge_point=False)
            if ocpp_transaction_id
            else None
        )
        if session is None or _after_its_end(session, samples):
            charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
            session = _open_on_connector(charge_point, connector_id, evse_id, samples) or session
        charge_point_pk = session.charge_point_id if session else charge_point.pk
        _samples_store(
            charge_point_pk, session, samples, source="MeterValues", connector_id=connector_id, evse_id=evse_id
        )
        if session is not None:
            _save(session)
            site_recompute_on_commit(charge_point_id=charge_point_id)
    return session


def _after_its_end(session: Transaction, samples: Sequence[SampledValue]) -> bool:
    """Readings naming an ended session, all from after its end: the id of the session before."""
    end = session.stopped_at
    return end is not None and bool(samples) and all(s.timestamp > end for s in samples)


def _open_on_connector(
    charge_point: ChargePoint, connector_id: int | None, evse_id: int | None, samples: Sequence[SampledValue]
) -> Transaction | None:
    """The one session open on a 1.6 connector, if the readings are not from before it."""
    if not connector_id or evse_id is not None:
        return None
    open_sessions = _active_on_connector(charge_point, connector_id, None)
    if len(open_sessions) == 1 and all(s.timestamp >= open_sessions[0].started_at - _CLOCK_SLACK for s in samples):
        return open_sessions[0]
    return None


def transaction_stop(
    *,
    charge_point_id: str,
    ocpp_transaction_id: str,
    stopped_at: datetime,
    action: str,
    payload: dict[str, Any],
    meter_stop_wh: Decimal | None = None,
    reason: str = "",
    id_tag: str = "",
    id_tag_null: bool = False,
    id_token_type: str = "",
    samples: Sequence[SampledValue] = (),
    seq_no: int | None = None,
    time_spent_charging: int | None = None,
) -> StopResult:
    """End a session (StopTransaction, TransactionEvent Ended). Always answerable.

    Parked for reconciliation: transactionId -1 (or any negative id), an unknown session, a
    second stop for an ended session, and (after ending the session) an explicit null idTag.
    A resent copy of the stop that ended a session is acknowledged and changes nothing. A
    session the CSMS closed itself (reboot, superseded) takes the charger's late stop as the
    real one. Without a meterStop (2.0.1) the stop's last register reading is its meter stop.
    ``stopped_at`` is the charger's time, judged as in ``transaction_start``.
    """
    now = timezone.now()
    stop = _judged(stopped_at, now)
    stopped_at = stop.at
    samples = _samples_judged(samples, now)
    with db_transaction.atomic():
        info = selectors.id_tag_authorize(id_tag=id_tag, token_type=id_token_type) if id_tag else None
        id_tag = _stored_id_tag(id_tag)
        session = _transaction_for(charge_point_id, ocpp_transaction_id)
        # An unknown session's stop is parked under the charger's lock: resent copies park once.
        charge_point = session.charge_point if session else _locked_charge_point(charge_point_id)
        meter_stop = _bounded(meter_stop_wh)
        if meter_stop is None:
            meter_stop = _last_register_wh(samples)
        park = _Parker(
            charge_point, action, ocpp_transaction_id, payload, meter_stop, stopped_at, reason, id_tag, seq_no
        )
        if session is None:
            negative = re.fullmatch(r"-[0-9]+", ocpp_transaction_id)
            reason_parked = (
                ReconciliationReason.INVALID_TRANSACTION_ID if negative else ReconciliationReason.UNKNOWN_TRANSACTION
            )
            item, new = park(reason_parked)
            if new:  # a resent copy brings the same samples again
                _samples_store(charge_point.pk, None, samples, source=action, parked=item)
            return StopResult(None, info, item)
        if _seen(session, seq_no) or _is_resent_stop(session, meter_stop, stop.sent):
            _save(session)
            return StopResult(session, info)
        _samples_store(charge_point.pk, session, samples, source=action)
        if session.status == TransactionStatus.ENDED and not session.closed_by_csms:
            _save(session)
            return StopResult(session, info, park(ReconciliationReason.ALREADY_STOPPED, session)[0])
        if time_spent_charging is not None:
            session.time_spent_charging = _small(time_spent_charging)
        for code in _meter_value_notes(meter_stop_wh, meter_stop):
            _flag(session, code)
        session.charger_stopped_at = stop.kept
        if stop.implausible:
            _flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
        transaction_finish(
            session=session, stopped_at=stopped_at, meter_stop_wh=meter_stop, reason=reason, stop_id_tag=id_tag
        )
        item = park(ReconciliationReason.NULL_ID_TAG, session)[0] if id_tag_null else None
    return StopResult(session, info, item)


def transaction_charging_state_set(
    *, charge_point: ChargePoint, connector_id: int, evse_id: int | None, charging: bool, at: datetime
) -> None:
    """Track idle time (connected, not charging) of the connector's active session, for idle fees."""
    for session in _active_on_connector(charge_point, connector_id, evse_id):
        _charging_state_apply(session, charging=charging, at=at)
        session.save(update_fields=["idle_since", "idle_seconds", "updated_at"])


def transactions_close_after_reboot(
    *, charge_point: ChargePoint, connector_id: int, evse_id: int | None, at: datetime
) -> list[Transaction]:
    """The connector is Available after a reboot: its sessions from before the boot are over.

    The charger never sent their stop (or sends it later: then that stop replaces this close).
    It ends at ``at``, or at the boot when ``at`` is before its start (a clock the reboot set
    back). Energy is what the last register reading shows; the session is flagged for review.
    """
    if charge_point.last_boot_at is None:
        return []
    closed = []
    for session in _active_on_connector(charge_point, connector_id, evse_id):
        if session.started_at >= charge_point.last_boot_at:
            continue
        stopped_at = at if at >= session.started_at else charge_point.last_boot_at
        transaction_finish(
            session=session,
            stopped_at=stopped_at,
            meter_stop_wh=None,
            reason="Reboot",
            stop_id_tag="",
            closed_by_csms=True,
        )
        closed.append(session)
    return closed


def transaction_finish(
    *,
    session: Transaction,
    stopped_at: datetime,
    meter_stop_wh: Decimal | None,
    reason: str,
    stop_id_tag: str,
    closed_by_csms: bool = False,
) -> Transaction:
    """End ``session``: derive its energy from the ledger, check the meter, write its billing record.

    An end before the start (both plausible clock readings) is flagged ``ended_before_started``;
    its duration counts as 0 s.
    """
    from billing.services import billing_record_write

    session.status = TransactionStatus.ENDED
    session.stopped_at = stopped_at
    session.stop_reason = reason
    session.stop_id_tag = stop_id_tag
    session.closed_by_csms = closed_by_csms
    if session.idle_since is not None:
        session.idle_seconds += _seconds_between(session.idle_since, stopped_at)
        session.idle_since = None
    if session.ocpp_version == "1.6" and _fractional(meter_stop_wh):  # 1.6 says integer Wh
        _flag(session, Anomaly.FRACTIONAL_WH)
    readings = _ledger_readings(session)
    if meter_stop_wh is None and readings:
        meter_stop_wh = readings[-1].wh
    session.meter_stop_wh = meter_stop_wh
    if meter_stop_wh is not None:
        readings.append(metering.Reading(stopped_at, meter_stop_wh, "Transaction.End"))
    result = metering.derive_energy(
        readings,
        max_power_w=Decimal(settings.CSMS_METER_MAX_POWER_KW) * 1000,
        jump_tolerance_wh=Decimal(settings.CSMS_METER_JUMP_TOLERANCE_WH),
    )
    session.energy_wh = result.energy_wh
    for code in _DERIVED_ANOMALIES:  # found again below if they still hold
        _unflag(session, code)
    for code in result.anomalies + ((Anomaly.CLOSED_BY_CSMS,) if closed_by_csms else ()):
        _flag(session, code)
    if stopped_at < session.started_at:
        _flag(session, Anomaly.ENDED_BEFORE_STARTED)
    if not readings:  # no meter start, no register reading, no meter stop: the 0 Wh is not measured
        _flag(session, Anomaly.MISSING_READINGS)
    _save(session)
    webhook_event_emit(event_type=EventType.TRANSACTION_ENDED, data=events.transaction_event(session))
    site_recompute_on_commit(charge_point_pk=session.charge_point_id)
    billing_record_write(transaction=session)
    return session


# --- Internals --------------------------------------------------------------------------------


def _locked_charge_point(charge_point_id: str) -> ChargePoint:
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


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _transaction_for(
    charge_point_id: str, ocpp_transaction_id: str, *, with_charge_point: bool = True
) -> Transaction | None:
    """The session a charger names (our integer id in 1.6, its own transactionId in 2.0.1), locked:
    messages about one session are applied one at a time. ``with_charge_point=False`` leaves the
    charger's row out (meter values only need its id; reading ~25 more columns costs more than
    the rest of the query)."""
    if connection.vendor == "postgresql":
        condition, params = "t.ocpp_transaction_id = %s", [ocpp_transaction_id]
        if re.fullmatch(r"[0-9]{1,18}", ocpp_transaction_id):
            condition += " OR (t.id = %s AND t.ocpp_transaction_id = '')"
            params.append(int(ocpp_transaction_id))
        return _remember(_session_locked(charge_point_id, condition, params, with_charge_point=with_charge_point))
    by_id = Q(ocpp_transaction_id=ocpp_transaction_id)
    if re.fullmatch(r"[0-9]{1,18}", ocpp_transaction_id):
        by_id |= Q(pk=int(ocpp_transaction_id), ocpp_transaction_id="")
    sessions = Transaction.objects.select_for_update(of=("self",))
    if with_charge_point:
        sessions = sessions.select_related("charge_point")
    sessions = sessions.filter(by_id, charge_point__charge_point_id=charge_point_id)
    return _remember(sessions.order_by("status", "-pk").first())  # a reused 2.0.1 id: the open session


def _session_locked(
    charge_point_id: str, condition: str, params: list[Any], *, with_charge_point: bool = False
) -> Transaction | None:
    """The charger's session meeting ``condition`` (SQL on ``t``), locked, the open one first, then
    the latest (with its charger's row if asked): the ORM queries of ``_transaction_for`` and
    ``_started_by`` as one plain statement (``kernel.plain_sql``), which every MeterValues, stop
    and 2.0.1 TransactionEvent makes."""
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


def _started_by(charge_point_id: str, start_key: str) -> Transaction | None:
    """The session a start with ``start_key`` opened (replays and 2.0.1 events share it), locked:
    the open one, else the latest ended. Without the charger's row: an event for a known session
    needs only its id."""
    if connection.vendor == "postgresql":
        return _remember(_session_locked(charge_point_id, "t.start_key = %s", [start_key]))
    return _remember(
        Transaction.objects.select_for_update(of=("self",))
        .filter(charge_point__charge_point_id=charge_point_id, start_key=start_key)
        .order_by("status", "-pk")  # "active" sorts before "ended"
        .first()
    )


def _reused(session: Transaction, seq_no: int | None, started_event: bool, at: datetime) -> bool:
    """Whether a start naming ended ``session`` is a new session that reuses its key.

    1.6: when the charger stopped that session itself (it had its id, so it is not resending
    its start), or its start time was not used as sent (keys repeat when clocks stand at 1970);
    a session the CSMS closed may still see its start resent. 2.0.1: a Started event later than
    the session's end (ids that are counters restart); a late event of the session is within it.
    """
    if session.status != TransactionStatus.ENDED:
        return False
    if seq_no is None:
        return not session.closed_by_csms or session.charger_started_at is not None
    return started_event and session.stopped_at is not None and at > session.stopped_at


def _active_on_connector(charge_point: ChargePoint, connector_id: int, evse_id: int | None) -> list[Transaction]:
    if connection.vendor == "postgresql":
        where = "t.evse_id = %s" if evse_id is not None else "t.connector_id = %s AND t.evse_id IS NULL"
        return [
            _remember(session)
            for session in model_rows(
                Transaction,
                f"SELECT {columns_of(Transaction, 't')}, {columns_of(ChargePoint, 'c')} FROM {_table(Transaction)} t"
                f" JOIN {_table(ChargePoint)} c ON c.id = t.charge_point_id"
                f" WHERE t.charge_point_id = %s AND t.status = %s AND {where}"
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
    return [_remember(session) for session in sessions]


# Columns a session's save compares with what was read; the timestamps are Django's to set.
_TRACKED = [
    field.attname
    for field in Transaction._meta.concrete_fields
    if not field.primary_key and field.name not in ("created_at", "updated_at")
]


def _remember(session: Transaction | None) -> Transaction | None:
    """Note the values ``session`` holds now, so that ``_save`` writes only what changes."""
    if session is not None:
        session._csms_loaded = {name: _copied(getattr(session, name)) for name in _TRACKED}
    return session


def _copied(value: Any) -> Any:
    """JSON columns are lists and dicts, which code may change in place; the rest are immutable."""
    return copy.copy(value) if isinstance(value, (list, dict)) else value


def _save(session: Transaction) -> None:
    """Save the columns that changed since the session was read, if any (building an UPDATE of
    30 columns costs several times one of three); a session read elsewhere is saved whole."""
    loaded = getattr(session, "_csms_loaded", None)
    if loaded is None:
        session.save()
        return
    changed = [name for name in _TRACKED if getattr(session, name) != loaded[name]]
    if changed:
        if connection.vendor == "postgresql":
            instance_updated(session, changed)  # and updated_at
        else:
            session.save(update_fields=[*changed, "updated_at"])
        _remember(session)


def _seen(session: Transaction, seq_no: int | None) -> bool:
    """Whether this 2.0.1 seqNo was processed already (a replay); records it otherwise."""
    if seq_no is None:
        return False
    if seq_no in session.seq_nos:
        return True
    session.seq_nos = [*session.seq_nos, seq_no]
    return False


def _fill_blanks(
    session: Transaction,
    evse_id: int | None,
    connector_id: int | None,
    id_tag: str,
    id_token_type: str,
    info: IdTagInfo | None,
    remote_start_id: int | None,
) -> None:
    """What a later 2.0.1 event knows that the session does not yet (a token tapped after plug-in)."""
    if session.evse_id is None:
        session.evse_id = _small(evse_id)
    if session.connector_id is None:
        session.connector_id = _small(connector_id)
    if not session.id_tag and id_tag:
        session.id_tag, session.id_token_type = id_tag, id_token_type
        session.id_tag_status = info.status if info else ""
        _token_check(session)
    if session.remote_start_id is None:
        session.remote_start_id = _small(remote_start_id)


def _event_apply(
    session: Transaction,
    samples: Sequence[SampledValue],
    charging: bool | None,
    at: datetime,
    time_spent_charging: int | None,
    *,
    source: str,
) -> None:
    _samples_store(session.charge_point_id, session, samples, source=source)
    if charging is not None and session.status == TransactionStatus.ACTIVE:
        _charging_state_apply(session, charging=charging, at=at)
    if time_spent_charging is not None:
        session.time_spent_charging = _small(time_spent_charging)


def _close_superseded(session: Transaction) -> None:
    """Sessions still open on the new session's connector from before it lost their stop."""
    if session.connector_id is None and session.evse_id is None:
        return
    for older in _active_on_connector(session.charge_point, session.connector_id, session.evse_id):
        if older.pk != session.pk and older.started_at <= session.started_at:
            transaction_finish(
                session=older,
                stopped_at=session.started_at,
                meter_stop_wh=None,
                reason="Superseded",
                stop_id_tag="",
                closed_by_csms=True,
            )


def _apply_parked_end(session: Transaction) -> None:
    """A 2.0.1 Ended that overtook its Started was parked as unknown: it ends this session now."""
    from chargepoints.services.reconciliation import ReconciliationError, reconciliation_item_attach

    if not session.ocpp_transaction_id:
        return
    parked = ReconciliationItem.objects.filter(
        charge_point=session.charge_point,
        reason=ReconciliationReason.UNKNOWN_TRANSACTION,
        state=ReconciliationState.OPEN,
        ocpp_transaction_id=session.ocpp_transaction_id,
    ).first()
    # Ids that are counters repeat after a reset: an old stop never ends a session it predates.
    if parked is None or parked.stopped_at is None or parked.stopped_at < session.started_at:
        return
    if parked.seq_no is not None:
        _seen(session, parked.seq_no)
        session.save(update_fields=["seq_nos", "updated_at"])
    with contextlib.suppress(ReconciliationError):  # an operator resolved it a moment ago
        reconciliation_item_attach(item=parked, transaction=session, user_id=None)


def _is_resent_stop(session: Transaction, meter_stop: Decimal | None, sent_at: datetime | None) -> bool:
    """The very stop that ended the session, sent again (its answer got lost): same meter stop
    and the same time as the charger sent it."""
    return (
        session.status == TransactionStatus.ENDED
        and not session.closed_by_csms
        and session.meter_stop_wh == meter_stop
        and (session.charger_stopped_at or session.stopped_at) == sent_at
    )


def _judged(sent: datetime | None, received_at: datetime) -> clock.ChargerTime:
    return clock.charger_time(sent, received_at=received_at, tolerance_s=settings.CSMS_CLOCK_SKEW_TOLERANCE)


def _samples_judged(samples: Sequence[SampledValue], received_at: datetime) -> list[SampledValue]:
    """``samples`` judged: a time replaced by ``received_at`` is kept in ``charger_timestamp``."""
    judged = []
    for sample in samples:
        at = _judged(sample.timestamp, received_at)
        if at.kept is not None:
            sample = dataclasses.replace(
                sample, timestamp=at.at, charger_timestamp=at.kept, clock_implausible=at.implausible
            )
        judged.append(sample)
    return judged


def _bounded(value: Decimal | None) -> Decimal | None:
    """A meter value, or None when it is beyond any meter (garbled)."""
    return value if value is not None and value.is_finite() and abs(value) < metering.MAX_VALUE else None


def _meter_value_notes(raw: Decimal | None, bounded: Decimal | None) -> list[str]:
    return [Anomaly.UNPARSEABLE_VALUE] if raw is not None and bounded is None else []


def _stored_id_tag(id_tag: str) -> str:
    """An over-long id tag (accepted, never authorized: no registered tag is longer) as the column keeps it."""
    return id_tag[: Transaction._meta.get_field("id_tag").max_length]


def _stored_start_key(start_key: str) -> str:
    """A start key that fits its column: one built from an over-long id tag becomes its SHA-256."""
    if len(start_key) <= Transaction._meta.get_field("start_key").max_length:
        return start_key
    return "sha256:" + hashlib.sha256(start_key.encode()).hexdigest()


def _small(value: int | None) -> int | None:
    """An id or count from a charger that fits the column (an absurd one is dropped, not fatal)."""
    return value if value is not None and 0 <= value < 2**31 else None


def _readings_of(samples: Sequence[SampledValue]) -> list[metering.Reading]:
    rows = [_sample_row(None, None, sample, "", None, None, timezone.now()) for sample in samples]
    return metering.register_readings(metering.Sample.of(row) for row in rows)


def _last_register_wh(samples: Sequence[SampledValue]) -> Decimal | None:
    readings = _readings_of(samples)
    return readings[-1].wh if readings else None


def _has_begin_reading(samples: Sequence[SampledValue]) -> bool:
    return any(s.measurand == metering.ENERGY_REGISTER and s.context == "Transaction.Begin" for s in samples)


def _event_merge(session: Transaction, at: datetime, samples: Sequence[SampledValue], baseline_expected: bool) -> None:
    """A 2.0.1 event earlier than anything seen of its session (its late Started) starts it:
    its time is the start, its first register reading the meter start."""
    if at >= session.started_at:
        return
    session.started_at = at
    readings = _readings_of(samples)
    if readings:
        session.meter_start_wh = readings[0].wh
    if readings or not baseline_expected:
        _unflag(session, Anomaly.MISSING_BASELINE)


def _token_check(session: Transaction) -> None:
    """A session on a token the CSMS answered Invalid, Blocked, Expired, ... is billed, and flagged."""
    if session.id_tag and session.id_tag_status and session.id_tag_status != AuthorizationStatus.ACCEPTED:
        _flag(session, Anomaly.UNAUTHORIZED_TOKEN)


def _flag(session: Transaction, code: str) -> None:
    if code not in session.anomalies:
        session.anomalies = [*session.anomalies, code]
    session.needs_review = any(flagged in Anomaly.REVIEW for flagged in session.anomalies)


def _unflag(session: Transaction, code: str) -> None:
    session.anomalies = [flagged for flagged in session.anomalies if flagged != code]
    session.needs_review = any(flagged in Anomaly.REVIEW for flagged in session.anomalies)


def _fractional(value: Decimal | None) -> bool:
    return value is not None and value != value.to_integral_value()


def _seconds_between(start: datetime, end: datetime) -> int:
    return max(int((end - start).total_seconds()), 0)


def _charging_state_apply(session: Transaction, *, charging: bool, at: datetime) -> None:
    if not charging and session.idle_since is None:
        session.idle_since = at
    elif charging and session.idle_since is not None:
        session.idle_seconds += _seconds_between(session.idle_since, at)
        session.idle_since = None


def _consume_reservation(session: Transaction, reservation_id: int | None) -> None:
    if reservation_id is None:
        return
    reservation = Reservation.objects.filter(
        charge_point_id=session.charge_point_id, reservation_id=reservation_id, status=ReservationStatus.ACTIVE
    ).first()
    if reservation is None:
        return
    reservation.status = ReservationStatus.USED
    reservation.save(update_fields=["status", "updated_at"])
    session.reservation = reservation


def _samples_store(
    charge_point_pk: int,
    session: Transaction | None,
    samples: Iterable[SampledValue],
    *,
    source: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
    parked: ReconciliationItem | None = None,
) -> None:
    """Keep every sampled value as received (with the parked stop they came in, if any); move the
    session's live register and baseline. The caller saves ``session``.
    """
    now = timezone.now()
    rows = [_sample_row(charge_point_pk, session, sample, source, connector_id, evse_id, now) for sample in samples]
    for row in rows:
        row.reconciliation_item = parked
    if connection.vendor == "postgresql":
        instances_copied(MeterSample, rows)
    else:
        MeterSample.objects.bulk_create(rows)
    if session is None:
        return
    if any(row.value is None and not row.signed_data for row in rows):
        _flag(session, Anomaly.UNPARSEABLE_VALUE)
    if any(sample.clock_implausible for sample in samples):
        _flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
    readings = metering.register_readings(metering.Sample.of(row) for row in rows)
    if not readings:
        return
    begin = [reading for reading in readings if reading.context == "Transaction.Begin"]
    if begin:
        session.meter_start_wh = begin[0].wh
        _unflag(session, Anomaly.MISSING_BASELINE)
    elif session.meter_start_wh is None:
        session.meter_start_wh = readings[0].wh
    latest = readings[-1]
    if session.last_register_at is None or latest.at >= session.last_register_at:
        session.last_register_wh, session.last_register_at = latest.wh, latest.at
    if session.status == TransactionStatus.ACTIVE:
        session.energy_wh = max(session.last_register_wh - session.meter_start_wh, Decimal(0))


def _sample_row(
    charge_point_pk: int | None,
    session: Transaction | None,
    sample: SampledValue,
    source: str,
    connector_id: int | None,
    evse_id: int | None,
    received_at: datetime,
) -> MeterSample:
    # Signed data is a blob, not a number, however much it may look like one.
    number = None if sample.signed_data else metering.parse_decimal(sample.raw_value)
    value = metering.normalise(number, sample.unit, sample.multiplier) if number is not None else None
    return MeterSample(
        charge_point_id=charge_point_pk,
        transaction=session,
        evse_id=_small(evse_id) if session is None else session.evse_id,
        connector_id=_small(connector_id) if session is None else session.connector_id,
        source=source,
        timestamp=sample.timestamp,
        charger_timestamp=sample.charger_timestamp,
        measurand=sample.measurand,
        phase=sample.phase,
        unit=sample.unit,
        multiplier=max(min(sample.multiplier, 32767), -32768),
        context=sample.context,
        location=sample.location,
        format=sample.format,
        raw_value=sample.raw_value,
        signed_data=sample.signed_data,
        value=value,
        received_at=received_at,
    )


def _ledger_readings(session: Transaction) -> list[metering.Reading]:
    """The session's register readings in time order, its meter start first.

    Readings a little outside the session's time (a Transaction.End sample a second after the
    stop event) count; a queued reading from another day does not.
    """
    end = max(session.stopped_at or session.started_at, session.started_at)
    rows = MeterSample.objects.filter(
        transaction=session,
        measurand=metering.ENERGY_REGISTER,
        timestamp__gte=session.started_at - _CLOCK_SLACK,
        timestamp__lte=end + _CLOCK_SLACK,
    )
    readings = metering.register_readings(metering.Sample.of(row) for row in rows)
    if session.meter_start_wh is not None:
        readings.insert(0, metering.Reading(session.started_at, session.meter_start_wh, "Transaction.Begin"))
    return readings


class _Parker:
    """Parks a stop that could not simply be applied, with what it said."""

    def __init__(
        self,
        charge_point: ChargePoint,
        action: str,
        ocpp_transaction_id: str,
        payload: dict[str, Any],
        meter_stop_wh: Decimal | None,
        stopped_at: datetime,
        reason: str,
        id_tag: str,
        seq_no: int | None,
    ) -> None:
        self.fields = {
            "charge_point": charge_point,
            "action": action,
            "ocpp_transaction_id": ocpp_transaction_id[:36],
            "payload": _json_safe(payload),
            "meter_stop_wh": meter_stop_wh,
            "stop_reason": reason,
            "id_tag": id_tag,
            "seq_no": seq_no if seq_no is None or abs(seq_no) < 2**63 else None,
        }
        self.stopped_at = stopped_at

    def __call__(self, reason: str, session: Transaction | None = None) -> tuple[ReconciliationItem, bool]:
        """The open item for this stop, and whether it is new: a resent copy is not parked twice.
        A copy is recognised by what it said (the payload has the charger's time); ``stopped_at``
        may be its receipt (an implausible clock), which differs from copy to copy."""
        open_item = dict(reason=reason, transaction=session, state=ReconciliationState.OPEN, **self.fields)
        item = ReconciliationItem.objects.filter(**open_item).first()
        if item is not None:
            return item, False
        created = ReconciliationItem.objects.create(received_at=timezone.now(), stopped_at=self.stopped_at, **open_item)
        return created, True


def _json_safe(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as JSON can store it: NaN and Infinity (which Python's JSON allows) as text."""
    return json.loads(json.dumps(payload, default=str), parse_constant=str)
