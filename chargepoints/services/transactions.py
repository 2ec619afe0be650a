"""Charging sessions for both OCPP versions: start, meter values, charging state, stop.

1.6 StartTransaction and 2.0.1 TransactionEvent(Started) both end in ``transaction_start``;
StopTransaction and TransactionEvent(Ended) in ``transaction_stop``. Chargers replay queued
messages after a reconnect, lose transaction ids and reboot mid-session: every path here
answers, keeps what it received, and parks what it cannot apply as a reconciliation item.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction as db_transaction
from django.db.models import Q
from django.utils import timezone

from chargepoints import metering, selectors
from chargepoints.metering import Anomaly
from chargepoints.models import (
    ChargePoint,
    MeterSample,
    ReconciliationItem,
    ReconciliationReason,
    Reservation,
    ReservationStatus,
    Transaction,
    TransactionStatus,
)
from chargepoints.selectors import IdTagInfo
from webhooks.models import EventType
from webhooks.services import iso_utc, webhook_event_emit

# Anomalies found by deriving the energy at the end; recomputed whenever a session is finished again.
_DERIVED_ANOMALIES = frozenset(
    {Anomaly.NON_MONOTONIC_REGISTER, Anomaly.IMPLAUSIBLE_JUMP, Anomaly.ZERO_BASELINE, Anomaly.CLOSED_BY_CSMS}
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


@dataclass(frozen=True)
class StartResult:
    transaction: Transaction
    id_tag_info: IdTagInfo | None
    replayed: bool


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
) -> StartResult:
    """Open a session, or find the one a replayed start (same ``start_key``) opened.

    ``authorize``: answer with the id tag's authorization (1.6 always; 2.0.1 when an idToken
    came). 2.0.1 has no meter start in the message: it comes from the register readings among
    ``samples`` (Transaction.Begin first). A session without one is flagged.
    """
    with db_transaction.atomic():
        charge_point = _locked_charge_point(charge_point_id)
        existing = Transaction.objects.filter(charge_point=charge_point, start_key=start_key).first()
        if existing is not None:
            if seq_no is not None and not _seen(existing, seq_no):
                # A 2.0.1 Started that arrived after other events of its session: its start wins.
                existing.started_at = min(existing.started_at, started_at)
                _samples_store(charge_point, existing, samples, source="TransactionStart")
                existing.save()
            info = IdTagInfo(status=existing.id_tag_status) if existing.id_tag_status else None
            return StartResult(existing, info, replayed=True)
        info = selectors.id_tag_authorize(id_tag=id_tag, token_type=id_token_type) if authorize else None
        session = Transaction.objects.create(
            charge_point=charge_point,
            ocpp_version=ocpp_version,
            ocpp_transaction_id=ocpp_transaction_id,
            start_key=start_key,
            evse_id=evse_id,
            connector_id=connector_id,
            id_tag=id_tag,
            id_token_type=id_token_type,
            id_tag_status=info.status if info else "",
            started_at=started_at,
            meter_start_wh=meter_start_wh,
            remote_start_id=remote_start_id,
            seq_nos=[seq_no] if seq_no is not None else [],
            idle_since=started_at if charging is False else None,
            anomalies=[Anomaly.FRACTIONAL_WH] if _fractional(meter_start_wh) else [],
        )
        _consume_reservation(session, reservation_id)
        _samples_store(charge_point, session, samples, source="TransactionStart")
        if session.meter_start_wh is None:
            _flag(session, Anomaly.MISSING_BASELINE)
        session.save()
        webhook_event_emit(event_type=EventType.TRANSACTION_STARTED, data=transaction_event_data(session))
    return StartResult(session, info, replayed=False)


def transaction_update(
    *,
    charge_point_id: str,
    ocpp_transaction_id: str,
    seq_no: int | None,
    samples: Sequence[SampledValue] = (),
    charging: bool | None = None,
    at: datetime | None = None,
    time_spent_charging: int | None = None,
) -> Transaction | None:
    """Apply a 2.0.1 TransactionEvent(Updated) to a known session; a repeated seqNo changes nothing.

    Returns None when the session is unknown (the caller opens it).
    """
    with db_transaction.atomic():
        session = _transaction_for(charge_point_id, ocpp_transaction_id)
        if session is None or _seen(session, seq_no):
            return session
        _samples_store(session.charge_point, session, samples, source="TransactionEvent")
        if charging is not None and at is not None and session.status == TransactionStatus.ACTIVE:
            _charging_state_apply(session, charging=charging, at=at)
        if time_spent_charging is not None:
            session.time_spent_charging = time_spent_charging
        session.save()
    return session


def meter_values_record(
    *,
    charge_point_id: str,
    samples: Sequence[SampledValue],
    connector_id: int | None = None,
    evse_id: int | None = None,
    ocpp_transaction_id: str = "",
) -> Transaction | None:
    """Store MeterValues; they belong to the named session, or to none (kept all the same)."""
    with db_transaction.atomic():
        session = _transaction_for(charge_point_id, ocpp_transaction_id) if ocpp_transaction_id else None
        charge_point = session.charge_point if session else ChargePoint.objects.get(charge_point_id=charge_point_id)
        _samples_store(charge_point, session, samples, source="MeterValues", connector_id=connector_id, evse_id=evse_id)
        if session is not None:
            session.save()
    return session


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
    A session the CSMS closed itself (reboot) takes the charger's late stop as the real one.
    """
    with db_transaction.atomic():
        info = selectors.id_tag_authorize(id_tag=id_tag, token_type=id_token_type) if id_tag else None
        session = _transaction_for(charge_point_id, ocpp_transaction_id)
        charge_point = session.charge_point if session else ChargePoint.objects.get(charge_point_id=charge_point_id)
        park = _Parker(charge_point, action, ocpp_transaction_id, payload, meter_stop_wh, stopped_at, reason, id_tag)
        if ocpp_transaction_id.lstrip("-").isdigit() and int(ocpp_transaction_id) < 0:
            _samples_store(charge_point, None, samples, source=action)
            return StopResult(None, info, park(ReconciliationReason.INVALID_TRANSACTION_ID))
        if session is None:
            _samples_store(charge_point, None, samples, source=action)
            return StopResult(None, info, park(ReconciliationReason.UNKNOWN_TRANSACTION))
        if _seen(session, seq_no):
            return StopResult(session, info)
        _samples_store(charge_point, session, samples, source=action)
        if session.status == TransactionStatus.ENDED and not session.closed_by_csms:
            session.save()
            return StopResult(session, info, park(ReconciliationReason.ALREADY_STOPPED, session))
        session.ended_seq_no = seq_no
        if time_spent_charging is not None:
            session.time_spent_charging = time_spent_charging
        transaction_finish(
            session=session, stopped_at=stopped_at, meter_stop_wh=meter_stop_wh, reason=reason, stop_id_tag=id_tag
        )
        item = park(ReconciliationReason.NULL_ID_TAG, session) if id_tag_null else None
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
    Energy is what the last register reading shows; the session is flagged for review.
    """
    if charge_point.last_boot_at is None:
        return []
    closed = []
    for session in _active_on_connector(charge_point, connector_id, evse_id):
        if session.started_at >= charge_point.last_boot_at:
            continue
        transaction_finish(
            session=session, stopped_at=at, meter_stop_wh=None, reason="Reboot", stop_id_tag="", closed_by_csms=True
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
    """End ``session``: derive its energy from the ledger, check the meter, write its billing record."""
    from billing.services import billing_record_write

    session.status = TransactionStatus.ENDED
    session.stopped_at = stopped_at
    session.stop_reason = reason
    session.stop_id_tag = stop_id_tag
    session.closed_by_csms = closed_by_csms
    if session.idle_since is not None:
        session.idle_seconds += _seconds_between(session.idle_since, stopped_at)
        session.idle_since = None
    if _fractional(meter_stop_wh):  # a 1.6 meterStop (integer Wh in the spec)
        _flag(session, Anomaly.FRACTIONAL_WH)
    readings = _ledger_readings(session)
    if meter_stop_wh is None and readings:
        meter_stop_wh = readings[-1].wh
    session.meter_stop_wh = meter_stop_wh
    if meter_stop_wh is not None:
        readings.append(metering.Reading(max(stopped_at, session.started_at), meter_stop_wh, "Transaction.End"))
    result = metering.derive_energy(
        readings,
        max_power_w=Decimal(settings.CSMS_METER_MAX_POWER_KW) * 1000,
        jump_tolerance_wh=Decimal(settings.CSMS_METER_JUMP_TOLERANCE_WH),
    )
    session.energy_wh = result.energy_wh
    session.anomalies = [code for code in session.anomalies if code not in _DERIVED_ANOMALIES]
    for code in result.anomalies + ((Anomaly.CLOSED_BY_CSMS,) if closed_by_csms else ()):
        _flag(session, code)
    session.save()
    webhook_event_emit(event_type=EventType.TRANSACTION_ENDED, data=transaction_event_data(session))
    billing_record_write(transaction=session)
    return session


def transaction_event_data(session: Transaction) -> dict[str, Any]:
    """The ``data`` of transaction.* webhook events."""
    return {
        "transaction_id": session.pk,
        "ocpp_transaction_id": session.ocpp_id,
        "charge_point_id": session.charge_point.charge_point_id,
        "evse_id": session.evse_id,
        "connector_id": session.connector_id,
        "id_tag": session.id_tag,
        "status": session.status,
        "started_at": iso_utc(session.started_at),
        "stopped_at": iso_utc(session.stopped_at) if session.stopped_at else None,
        "stop_reason": session.stop_reason or None,
        "energy_wh": metering.wh_number(session.energy_wh),
        "anomalies": session.anomalies,
    }


# --- Internals --------------------------------------------------------------------------------


def _locked_charge_point(charge_point_id: str) -> ChargePoint:
    """The charger's row, locked: two copies of one start (a replay racing the original) are
    serialised, so the second finds the session the first opened."""
    return ChargePoint.objects.select_for_update().get(charge_point_id=charge_point_id)


def _transaction_for(charge_point_id: str, ocpp_transaction_id: str) -> Transaction | None:
    """The session a charger names (our integer id in 1.6, its own transactionId in 2.0.1), locked:
    messages about one session are applied one at a time."""
    by_id = Q(ocpp_transaction_id=ocpp_transaction_id)
    if ocpp_transaction_id.isdigit():
        by_id |= Q(pk=int(ocpp_transaction_id), ocpp_transaction_id="")
    return (
        Transaction.objects.select_for_update(of=("self",))
        .select_related("charge_point")
        .filter(by_id, charge_point__charge_point_id=charge_point_id)
        .order_by()
        .first()
    )


def _active_on_connector(charge_point: ChargePoint, connector_id: int, evse_id: int | None) -> list[Transaction]:
    where = Q(evse_id=evse_id) if evse_id is not None else Q(connector_id=connector_id, evse_id__isnull=True)
    return list(
        Transaction.objects.select_for_update()
        .select_related("charge_point")
        .filter(where, charge_point=charge_point, status=TransactionStatus.ACTIVE)
    )


def _seen(session: Transaction, seq_no: int | None) -> bool:
    """Whether this 2.0.1 seqNo was processed already (a replay); records it otherwise."""
    if seq_no is None:
        return False
    if seq_no in session.seq_nos:
        return True
    session.seq_nos = [*session.seq_nos, seq_no]
    return False


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
    reservation = Reservation.objects.filter(charge_point=session.charge_point, reservation_id=reservation_id).first()
    if reservation is None:
        return
    reservation.status = ReservationStatus.USED
    reservation.save(update_fields=["status", "updated_at"])
    session.reservation = reservation


def _samples_store(
    charge_point: ChargePoint,
    session: Transaction | None,
    samples: Iterable[SampledValue],
    *,
    source: str,
    connector_id: int | None = None,
    evse_id: int | None = None,
) -> None:
    """Keep every sampled value as received; move the session's live register and baseline.

    The caller saves ``session``.
    """
    now = timezone.now()
    rows = [_sample_row(charge_point, session, sample, source, connector_id, evse_id, now) for sample in samples]
    MeterSample.objects.bulk_create(rows)
    if session is None:
        return
    if any(row.value is None and not row.signed_data for row in rows):
        _flag(session, Anomaly.UNPARSEABLE_VALUE)
    readings = metering.register_readings(_as_metering_sample(row) for row in rows)
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
    charge_point: ChargePoint,
    session: Transaction | None,
    sample: SampledValue,
    source: str,
    connector_id: int | None,
    evse_id: int | None,
    received_at: datetime,
) -> MeterSample:
    number = metering.parse_decimal(sample.raw_value)
    value = metering.normalise(number, sample.unit, sample.multiplier)[0] if number is not None else None
    return MeterSample(
        charge_point=charge_point,
        transaction=session,
        evse_id=evse_id if session is None else session.evse_id,
        connector_id=connector_id if session is None else session.connector_id,
        source=source,
        timestamp=sample.timestamp,
        measurand=sample.measurand,
        phase=sample.phase,
        unit=sample.unit,
        multiplier=sample.multiplier,
        context=sample.context,
        location=sample.location,
        format=sample.format,
        raw_value=sample.raw_value,
        signed_data=sample.signed_data,
        value=value,
        received_at=received_at,
    )


def _as_metering_sample(row: MeterSample) -> metering.Sample:
    return metering.Sample(
        timestamp=row.timestamp,
        measurand=row.measurand,
        value=row.value,
        phase=row.phase,
        context=row.context,
        location=row.location,
    )


def _ledger_readings(session: Transaction) -> list[metering.Reading]:
    """The session's register readings within its time window, its meter start first."""
    assert session.stopped_at is not None
    end = max(session.stopped_at, session.started_at)
    rows = MeterSample.objects.filter(
        transaction=session,
        measurand=metering.ENERGY_REGISTER,
        timestamp__gte=session.started_at,
        timestamp__lte=end,
    )
    readings = metering.register_readings(_as_metering_sample(row) for row in rows)
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
    ) -> None:
        self.fields = {
            "charge_point": charge_point,
            "action": action,
            "ocpp_transaction_id": ocpp_transaction_id,
            "payload": payload,
            "meter_stop_wh": meter_stop_wh,
            "stopped_at": stopped_at,
            "stop_reason": reason,
            "id_tag": id_tag,
        }

    def __call__(self, reason: str, session: Transaction | None = None) -> ReconciliationItem:
        return ReconciliationItem.objects.create(
            reason=reason, transaction=session, received_at=timezone.now(), **self.fields
        )
