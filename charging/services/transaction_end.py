"""How a session ends: its energy derived from the ledger, its meter checked, its bill written.

A charger's stop (``transaction_stop``), a parked stop attached by an operator, a reboot or a newer
session on the connector all end in ``transaction_finish``. Idle time is tracked here too.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.conf import settings

from chargepoints.models import ChargePoint
from charging import events, metering
from charging.metering import Anomaly
from charging.models import Transaction, TransactionStatus
from charging.selectors import transactions_open_exist
from charging.services.ledger_reads import ledger_readings
from charging.services.open_sessions import (
    open_session_charging_on_connector,
    open_session_on_connector,
    open_sessions_none_on,
)
from charging.services.session_rows import (
    anomaly_flag,
    charging_state_apply,
    fractional,
    seconds_between,
    transaction_remember,
    transaction_save_changes,
    transaction_touched,
    transactions_open_on_connector,
)
from charging.services.status_reads import CLOSING_STATUSES, connector_sessions_taken, opened_before_boot
from charging.signals import charger_draw_changed, transaction_ended
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_event_may_have_subscribers

# Anomalies found by deriving the energy at the end; recomputed whenever a session is finished again.
_DERIVED_ANOMALIES = frozenset(
    {
        Anomaly.NON_MONOTONIC_REGISTER,
        Anomaly.IMPLAUSIBLE_JUMP,
        Anomaly.ZERO_BASELINE,
        Anomaly.CLOSED_BY_CSMS,
        Anomaly.ENDED_BEFORE_STARTED,
        Anomaly.MISSING_READINGS,
        Anomaly.LONG_DURATION,
    }
)


def transaction_charging_state_set(
    *, charge_point: ChargePoint, connector_id: int, evse_id: int | None, charging: bool, at: datetime
) -> None:
    """Track idle time (connected, not charging) of the connector's active session, for idle fees."""
    for session in transactions_open_on_connector(charge_point, connector_id, evse_id):
        charging_state_apply(session, charging=charging, at=at)
        transaction_save_changes(session)  # a status that changes no idle time writes nothing


def _charging_state_kept(*, connector_id: int, evse_id: int | None, charging: bool, at: datetime) -> bool:
    """``transaction_charging_state_set`` on the one session the connection keeps on this 1.6
    connector (``open_session_on_connector``): no statement; a change of idle time written guarded and
    gathered with the batch's (a row changed elsewhere fails the batch's first pass, which reads the rows again). False
    when the connection cannot tell (a 2.0.1 EVSE, none or several kept): the caller reads the rows."""
    if evse_id is not None or not connector_id:
        return False
    charging_now = open_session_charging_on_connector(connector_id)  # without a copy
    if charging_now is None:
        return False
    if charging_now == charging:  # already charging, or already idle: nothing to write, nothing lent
        return True
    kept = open_session_on_connector(connector_id)
    if kept is None:
        return False
    session = transaction_remember(kept)
    charging_state_apply(session, charging=charging, at=at)
    transaction_save_changes(session, may_gather=True)
    return True


def connector_sessions_follow(
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    status: str,
    charging: bool | None,
    at: datetime,
) -> None:
    """The connector's open sessions follow its status: ``charging`` feeds their idle time;
    a closing status after a reboot (``Available``, ``Preparing``, ``Reserved``: no transaction on
    the connector) closes the sessions it interrupted. Most statuses say neither,
    or find no session open: one plain statement tells, or, for a status that only feeds idle time,
    the connection's kept sessions (``open_sessions_none_on``; the one kept on a 1.6 connector takes
    the idle time without a statement, ``_charging_state_kept``). A closing status always reads the
    rows (or takes its batch's one read of them, ``status_reads``, which its close then takes too): a
    session the charger's previous connection committed after this one's handshake is not kept here,
    and only the rows can close it."""
    closes = status in CLOSING_STATUSES
    if not (closes or charging is not None):
        return
    if not closes and (
        open_sessions_none_on(connector_id=connector_id, evse_id=evse_id)
        or (
            charging is not None
            and _charging_state_kept(connector_id=connector_id, evse_id=evse_id, charging=charging, at=at)
        )
    ):
        return
    read = connector_sessions_taken(charge_point.pk, connector_id, evse_id)
    if read is None:
        if not transactions_open_exist(charge_point=charge_point, connector_id=connector_id, evse_id=evse_id):
            return
    elif not read:
        return
    # The close first: the closing status is no state of the sessions it closes (their idle time ends at
    # their last evidence, ``_last_evidence``, not at a status sent after the reboot); the others take it.
    closed: list[Transaction] = []
    if closes:
        closed = transactions_close_after_reboot(
            charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, at=at, sessions=read
        )
    if charging is not None and not (read is not None and len(closed) == len(read)):  # none left open: no read
        transaction_charging_state_set(
            charge_point=charge_point, connector_id=connector_id, evse_id=evse_id, charging=charging, at=at
        )


def connector_sessions_replay_follow(
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    charging: bool,
    at: datetime,
    newer_received_at: datetime,
) -> None:
    """A status the connector did not take, older than its stored one (received at
    ``newer_received_at``), still feeds the idle time of the sessions open there: an offline
    charger back online sends its current status, then its queue (the session's start, Charging,
    SuspendedEV, Finishing, its stop, all stamped hours back), whose statuses are its session's
    states in the order the charger sent them. A session the CSMS heard of before the stored status
    arrived took that status as its state: a replay is behind it (``charging_state_apply``'s
    ``late``: it opens no idle time, and closes none begun after it). It reads the rows unless the
    connection keeps none open there (a replay is rare: no status in order comes here)."""
    if open_sessions_none_on(connector_id=connector_id, evse_id=evse_id):
        return
    for session in transactions_open_on_connector(charge_point, connector_id, evse_id):
        charging_state_apply(session, charging=charging, at=at, late=session.created_at < newer_received_at)
        transaction_save_changes(session)


def transactions_close_after_reboot(
    *,
    charge_point: ChargePoint,
    connector_id: int,
    evse_id: int | None,
    at: datetime,
    sessions: list[Transaction] | None = None,
) -> list[Transaction]:
    """The connector has no transaction after a reboot (a closing status): its sessions from before the boot are over.
    ``sessions``: those open on it, locked, newest first, as its batch read them (``status_reads``);
    None: read now.

    The charger never sent their stop (or sends it later: then that stop replaces this close).
    It ends at ``at``, or at the boot when ``at`` is before its start (a clock the reboot set
    back). Energy is what the last register reading shows, its time is billed up to its last
    evidence (``_last_evidence``); the session is flagged for review.
    A 2.0.1 session on another connector of the EVSE stays open: only its own connector tells.
    """
    if charge_point.last_boot_at is None:
        return []
    closed = []
    if sessions is None:
        sessions = transactions_open_on_connector(charge_point, connector_id, evse_id)
    else:
        sessions = [transaction_remember(session) for session in sessions]
    for session in sessions:
        if not opened_before_boot(session, charge_point.last_boot_at) or _on_another_connector(session, connector_id):
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


def _on_another_connector(session: Transaction, connector_id: int) -> bool:
    """Whether a 2.0.1 session is known to be on another connector of its EVSE than ``connector_id``."""
    return session.evse_id is not None and session.connector_id not in (None, connector_id)


def transactions_superseded_close(older: list[Transaction], started_at: datetime, charge_point: ChargePoint) -> None:
    """Sessions still open on a new session's connector from before it lost their stop. Looked
    up before the new session's row exists, so that the lookup finds only the older ones.

    A session that started after this one (a start queued on a connection the charger since left)
    stays open, and is touched: the connector now has two, so a copy of it that another
    connection keeps as "the one open on the connector" fails its guard (``open_sessions``).
    Unless it reached the CSMS before the charger's last boot (the CSMS's clock, as for a session a
    reboot interrupted): a start stamped before it is then one a reboot set the clock back for,
    and it ends at the boot (it stayed open beside the new session, its stop lost for good). The
    charger's boot is read only then (a batch's lock defers the column: most starts never read it).
    A closed session's time is billed up to its last evidence (``transaction_end._last_evidence``)."""
    for session in older:
        stopped_at = started_at
        if session.started_at > started_at:
            last_boot_at = charge_point.last_boot_at
            if not opened_before_boot(session, last_boot_at):
                transaction_touched(session)
                continue
            assert last_boot_at is not None  # opened before it
            stopped_at = max(last_boot_at, session.started_at)
        transaction_finish(
            session=session,
            stopped_at=stopped_at,
            meter_stop_wh=None,
            reason="Superseded",
            stop_id_tag="",
            closed_by_csms=True,
        )


def transactions_superseded_on_its_evse_close(session: Transaction) -> None:
    """A 2.0.1 session whose EVSE a later event told (E01: authorized before the cable, its Started
    named none; E01.FR.16, the first event after plug-in names it) closes the sessions still open on
    that EVSE from before it, as a Started naming it would have (``transactions_superseded_close``): their Ended
    was lost, and one EVSE holds one transaction. One statement, for such an event only (once a session)."""
    evse_id = session.evse_id
    assert evse_id is not None
    on_it = transactions_open_on_connector(ChargePoint(pk=session.charge_point_id), None, evse_id)
    older = [other for other in on_it if other.pk != session.pk]
    if older:
        transactions_superseded_close(older, session.started_at, older[0].charge_point)


def transaction_finish(
    *,
    session: Transaction,
    stopped_at: datetime,
    meter_stop_wh: Decimal | None,
    reason: str,
    stop_id_tag: str,
    closed_by_csms: bool = False,
    time_spent_charging_final: bool = False,
    end_unknown: bool = False,
) -> Decimal | None:
    """End ``session``: derive its energy from the ledger, check the meter; its billing record is
    written by billing, on ``charging.signals.transaction_ended``, in this transaction. Returns the
    total cost its receivers report (in the currency's units; None: none priced it).

    An end before the start (both plausible clock readings) is flagged ``ended_before_started``;
    its duration counts as 0 s. A session ended before (a late event, a stop after the CSMS closed
    it) is ``repriced``: billing keeps the tariff that priced it and sends its record again when it
    changed. ``transaction.ended`` is sent at the first end, and once more when the charger's own
    stop (or one an operator attached) replaces a close the CSMS made (``closed_by_csms``: Reboot,
    Superseded), whose end was provisional: its receivers learn the real end, stop reason and
    energy (README, "Webhooks"). A late event of an ended session does not send it again.

    A close the CSMS made (``closed_by_csms``) keeps the session's open idle and withheld time open
    from the end it billed them to (``idle_since``, ``withheld_since``): a 1.6 reset or power-loss stop,
    or a 2.0.1 Ended, that replaces the close bills them on to its own end, as it would have without
    the close (an EV idle from 10:40, its charger's reset stop at 11:00: 20 idle minutes, not none).

    ``end_unknown``: the charger's stop tells no time of its end (``stopped_at`` is an upper bound,
    its charger's boot: ``transaction_stop``): its time is billed up to its last evidence, as a close
    the CSMS made is; kept on the session (``Transaction.end_unknown``), so that a late event that
    re-prices it bills it so too.

    2.0.1 ``timeSpentCharging`` is a running total: the stop's (``time_spent_charging_final``) is
    the session's charging time; one only an earlier event sent (a Started's 0) counts up to that
    event, so it bills no more idle time than the session's charging states did (``_idle_seconds``).
    """
    repriced = session.status == TransactionStatus.ENDED
    close_replaced = repriced and session.closed_by_csms and not closed_by_csms
    # A late event re-pricing a session whose stop told no end bills it to its evidence still, not the boot
    end_unknown = end_unknown or (repriced and session.end_unknown and not closed_by_csms)
    session.end_unknown = end_unknown and not closed_by_csms
    session.status = TransactionStatus.ENDED
    session.stopped_at = stopped_at
    session.stop_reason = reason
    session.stop_id_tag = stop_id_tag
    session.closed_by_csms = closed_by_csms
    if session.ocpp_version == "1.6" and fractional(meter_stop_wh):  # 1.6 says integer Wh
        anomaly_flag(session, Anomaly.FRACTIONAL_WH)
    # The meter stop is the last reading: one stamped after the stop adds nothing (a late event's),
    # unless it is the stop's own (a Transaction.End reading stamped a second after its event).
    end = max(stopped_at, session.started_at)
    readings = [r for r in ledger_readings(session) if r.at <= end or r.context == "Transaction.End"]
    billed_until = _last_evidence(session, readings, stopped_at) if closed_by_csms or end_unknown else stopped_at
    # Idle (and withheld) to its end. A close the CSMS made keeps them open from there: the charger's
    # stop replacing it (or its queue re-pricing it) bills them on to its own end, as without the close.
    if session.idle_since is not None:
        session.idle_seconds += seconds_between(session.idle_since, billed_until)
        session.idle_since = max(session.idle_since, billed_until) if closed_by_csms else None
    if session.withheld_since is not None:  # withheld to its end (2.0.1 SuspendedEVSE)
        session.withheld_seconds += seconds_between(session.withheld_since, billed_until)
        session.withheld_since = max(session.withheld_since, billed_until) if closed_by_csms else None
    if session.time_spent_charging is not None:  # 2.0.1: the charger's count, as billing takes it
        session.idle_seconds = _idle_seconds(session, billed_until, final=time_spent_charging_final)
    # A 1.6 stop that measured nothing: no meterStop (absorbed, ``leniency``), no reading but the meter
    # start (a close the CSMS made is flagged for review as such)
    unmeasured = (
        meter_stop_wh is None
        and not closed_by_csms
        and session.ocpp_version == "1.6"
        and _meter_start_only(session, readings)
    )
    if repriced and _meter_stop_stood_in(session, meter_stop_wh, readings):
        meter_stop_wh = None  # the last reading up to the stop stands in again, a late event's too
    if meter_stop_wh is None and readings:
        meter_stop_wh = readings[-1].wh
    session.meter_stop_wh = meter_stop_wh
    ends = [r for r in readings if r.context == "Transaction.End"]
    if meter_stop_wh == 0 and ends:
        # A meter stop of 0 (a charger that does not know its register) gives way to the End readings
        # sent beside it, as a meter start of 0 gives way to a Begin.
        session.meter_stop_wh = ends[-1].wh
    elif meter_stop_wh is not None:
        # It stands for the End readings sent beside it (a 1.6 transactionData's, in kWh).
        stop = metering.meter_bound_reading(stopped_at, meter_stop_wh, "Transaction.End", readings[::-1])
        readings = [r for r in readings if r.at <= end and r.context != "Transaction.End"]
        readings.append(stop)
    result = metering.derive_energy(
        readings,
        max_power_w=Decimal(settings.CSMS_METER_MAX_POWER_KW) * 1000,
        jump_tolerance_wh=Decimal(settings.CSMS_METER_JUMP_TOLERANCE_WH),
    )
    session.energy_wh = result.energy_wh
    _derived_anomalies_unflagged(session)  # found again below if they still hold
    for code in result.anomalies + ((Anomaly.CLOSED_BY_CSMS,) if closed_by_csms else ()):
        anomaly_flag(session, code)
    if stopped_at < session.started_at:
        anomaly_flag(session, Anomaly.ENDED_BEFORE_STARTED)
    elif stopped_at - session.started_at > metering.LONG_SESSION:
        anomaly_flag(session, Anomaly.LONG_DURATION)
    if not readings or unmeasured:  # no meter start, no register reading, no meter stop: the 0 Wh is not measured
        anomaly_flag(session, Anomaly.MISSING_READINGS)
    transaction_save_changes(session, may_gather=True)  # read back only through model_rows, which writes it first
    # Sent at the first end, and at the real one that replaces a CSMS close; its data built only for a subscriber.
    if (not repriced or close_replaced) and webhook_event_may_have_subscribers(event_type=EventType.TRANSACTION_ENDED):
        webhook_event_emit(event_type=EventType.TRANSACTION_ENDED, data=events.transaction_event(session))
    charger_draw_changed.send(sender=Transaction, charge_point_pk=session.charge_point_id)
    ended = transaction_ended.send(
        sender=Transaction, transaction=session, repriced=repriced, billed_until=billed_until
    )
    for _receiver, cost in ended:
        if isinstance(cost, Decimal):
            return cost
    return None


def _meter_stop_stood_in(session: Transaction, meter_stop_wh: Decimal | None, readings: list[metering.Reading]) -> bool:
    """Whether the meter stop a 2.0.1 session is re-priced with (a late event or reading of its
    charger's queue) is its last reading when its Ended came, which brought none of its own (no
    Transaction.End reading: 2.0.1 sends no meter stop): a reading of an Updated the Ended overtook
    (an offline queue delivered out of order) may be later, and stands in for it now. An Ended's own
    End reading stays the meter stop (a later one, of an event after the Ended, counts for nothing)."""
    return (
        session.ocpp_version == "2.0.1"
        and meter_stop_wh is not None
        and not any(reading.context == "Transaction.End" for reading in readings)
    )


def _meter_start_only(session: Transaction, readings: list[metering.Reading]) -> bool:
    """Whether the session's only register reading is its meter start (``ledger_readings`` puts it
    first): a 1.6 StopTransaction without ``meterStop`` (required; a lenient charger's, absorbed) nor
    a reading has the meter start stand in for its meter stop, and its 0 Wh, like a session's without
    a single reading, is not measured: it needs a look, not a bill of the fees alone."""
    return session.meter_start_wh is not None and len(readings) == 1 and readings[0].context == "Transaction.Begin"


def _idle_seconds(session: Transaction, billed_until: datetime, *, final: bool) -> int:
    """A 2.0.1 session's idle time from the charger's ``timeSpentCharging``: the session's time less
    it and less the time the station withheld energy (SuspendedEVSE, ``withheld_seconds``: a site's
    pause is no idle time, and the charger counts no charging time in it) when the stop sent it
    (``final``), else (the last total an earlier event sent, which counted only up to that event: a
    Started's 0) no more than its charging states gave (``idle_seconds``, or what a first end made of
    them and a late event may only lessen)."""
    duration = seconds_between(session.started_at, billed_until)
    left = max(duration - min(session.time_spent_charging or 0, duration) - session.withheld_seconds, 0)
    return left if final else min(left, session.idle_seconds)


def _last_evidence(session: Transaction, readings: list[metering.Reading], stopped_at: datetime) -> datetime:
    """Up to when a session the CSMS closed itself (``closed_by_csms``: Reboot, Superseded) is billed
    its time: its last evidence, the latest of its register readings and the start of its open idle
    time, up to its close ``stopped_at`` (its start at least; its close when that is before the
    start). The close is when the CSMS learned the session was over (a boot, a new start on the
    connector), not when it ended: the charger was offline or rebooting in between, and charging
    time and idle time billed to the close ran on through it. Energy is the register's, as before.
    No statement: the readings are the ones the end derives its energy from."""
    evidence = [reading.at for reading in readings if reading.at <= stopped_at]
    if session.idle_since is not None and session.idle_since <= stopped_at:
        evidence.append(session.idle_since)
    return min(stopped_at, max([session.started_at, *evidence]))


def _derived_anomalies_unflagged(session: Transaction) -> None:
    """``anomaly_unflag`` of every one of ``_DERIVED_ANOMALIES``, in one pass over the session's
    anomalies (most sessions have none: then nothing but ``needs_review`` is set, as it was)."""
    anomalies = session.anomalies
    kept = [code for code in anomalies if code not in _DERIVED_ANOMALIES]
    if len(kept) != len(anomalies):
        session.anomalies = kept
    session.needs_review = any(code in Anomaly.REVIEW for code in kept)
