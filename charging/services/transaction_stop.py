"""A charger's stop (1.6 StopTransaction, 2.0.1 TransactionEvent Ended): always answerable.

What cannot simply be applied is parked as a reconciliation item for an operator.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction as db_transaction
from django.utils import timezone

from chargepoints.clock import ChargerTime
from chargepoints.models import ChargePoint, Connector
from chargepoints.selectors import connectors_of_their_version
from charging import metering, selectors
from charging.metering import Anomaly
from charging.models import (
    ReconciliationItem,
    ReconciliationReason,
    ReconciliationState,
    Transaction,
    TransactionStatus,
)
from charging.selectors import IdTagInfo
from charging.services.ledger_reads import StopLookup, stopping_unit_register
from charging.services.meter_ledger import (
    SampledValue,
    SampleRow,
    charger_time_judged,
    meter_bounded,
    meter_start_stood_in,
    meter_value_notes,
    sample_rows,
    sample_rows_stored,
    samples_judged,
    samples_learned,
)
from charging.services.reconciliation import reconciliation_item_attach
from charging.services.reservations import reservation_of_the_start, reservation_use
from charging.services.session_rows import (
    anomaly_flag,
    charge_point_locked,
    column_int,
    evse_told,
    seq_no_seen,
    session_token_apply,
    stored_id_tag,
    time_spent_charging_apply,
    transaction_named,
    transaction_save_changes,
)
from charging.services.status_reads import opened_before_boot
from charging.services.transaction_end import transaction_finish, transactions_superseded_on_its_evse_close
from kernel.plain_sql import gathered_rows_written
from kernel.storable_text import unstorable_numbers_replaced

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class StopRequest:
    """A stop (1.6 StopTransaction, 2.0.1 TransactionEvent Ended) in version-neutral terms (the
    handlers build it; never changed after, not frozen for the cost of a frozen ``__init__``, as
    ``StartRequest``).

    ``stopped_at`` is the charger's time (None: none sent); ``action`` the OCPP action and ``payload`` its body as
    sent (camelCase), kept on a reconciliation item. ``meter_stop_wh``: 1.6's meterStop (None in
    2.0.1: the stop's last register reading stands in). ``id_tag_null``: the charger sent an
    explicit null idTag (parked for review). ``seq_no``: the 2.0.1 event's seqNo (None in 1.6).
    ``evse_id``, ``connector_id``, ``reservation_id``, ``remote_start_id``: what a 2.0.1 Ended
    names (its ``evse``, ``reservationId``, ``transactionInfo.remoteStartId``; None: not sent, and in
    1.6), which the session records when it lacks them (``ended_event_learned``).
    ``authorize``: answer with the id tag's authorization (not for a 2.0.1 ``NoAuthorization``
    token: the station charges without authorization, as at ``StartRequest.authorize``).
    """

    charge_point_id: str
    ocpp_transaction_id: str
    stopped_at: datetime | None
    action: str
    payload: dict[str, Any]
    meter_stop_wh: Decimal | None = None
    reason: str = ""
    id_tag: str = ""
    id_tag_null: bool = False
    id_token_type: str = ""
    authorize: bool = True
    samples: Sequence[SampledValue] = ()
    seq_no: int | None = None
    time_spent_charging: int | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    reservation_id: int | None = None
    remote_start_id: int | None = None


@dataclass(frozen=True)
class StopResult:
    """``ended``: this stop ended the session (not a resend, not parked); ``total_cost`` is then what
    it was billed (``transaction_finish``; None: no tariff priced it)."""

    transaction: Transaction | None
    id_tag_info: IdTagInfo | None
    reconciliation_item: ReconciliationItem | None = None
    ended: bool = False
    total_cost: Decimal | None = None


def transaction_stop(request: StopRequest) -> StopResult:
    """End a session (StopTransaction, TransactionEvent Ended). Always answerable.

    1. Judge the charger's time (as in ``transaction_start``) and authorize the id tag, if any.
    2. Find the session it names; the meter stop is ``meter_stop_wh`` or, without one (2.0.1),
       the stop's last register reading.
    3. Park what cannot simply be applied for reconciliation: transactionId -1 (or any negative
       id), an unknown session, a second stop for an ended session. A 1.6 stop of an unknown id
       that clearly meant an open session is attached to it at once (``_unknown_stop``).
    4. Acknowledge a replay (a seqNo seen, or a resent copy of the stop that ended the session)
       and change nothing.
    5. End the session; a session the CSMS closed itself (reboot, superseded) takes the
       charger's late stop as the real one. Then park an explicit null idTag.
    """
    now = timezone.now()
    stop = charger_time_judged(request.stopped_at, now)
    samples = samples_judged(request.samples, now)
    with db_transaction.atomic():
        # The answer: the tag now; ``info``, the session's: the tag at the stop (a 2.0.1 Ended's token
        # becomes the session's when it has none: valid when the charger took it, if expired since)
        answer, info = (
            selectors.id_tag_authorize_at(id_tag=request.id_tag, token_type=request.id_token_type, at=stop.at)
            if request.id_tag and request.authorize
            else (None, None)
        )
        id_tag = stored_id_tag(request.id_tag)
        session = transaction_named(request.charge_point_id, request.ocpp_transaction_id)
        if session is not None and _id_restarted(session, request, samples, stop.sent):
            session = None  # a new session's, its Started still to come: parked for it, as unknown
        evse_unknown = session is not None and session.evse_id is None
        if session is not None:  # before its rows are built: they are on the EVSE the Ended names
            ended_event_learned(session, request.evse_id, request.connector_id, request.remote_start_id)
        # An unknown session's stop is parked under the charger's lock: resent copies park once.
        charge_point = session.charge_point if session else charge_point_locked(request.charge_point_id)
        rows = sample_rows(charge_point.pk, session, samples, source=request.action)  # its meter stop, then stored
        meter_stop = meter_bounded(request.meter_stop_wh)
        if meter_stop is None:
            meter_stop = _last_register_wh(rows)
        park = _Parker(charge_point, request, meter_stop, stop.at, id_tag)
        if session is None:
            return _unknown_stop(park, rows, answer)
        # A seqNo seen before is a replay only once the charger's stop ended the session: else an
        # earlier event took it (a counter restarted at a reboot), and this stop must still apply.
        seen = seq_no_seen(session, request.seq_no)
        if _ended_by_the_charger(session) and (seen or _is_resent_stop(session, meter_stop, stop.sent)):
            transaction_save_changes(session)
            return StopResult(session, answer)
        stood_in = meter_start_stood_in(session, rows)  # asked of the ledger before its rows join it
        read_before_the_stop = session.last_register_at  # its charging's evidence, the stop's own readings aside
        # Gathered into the batch's COPY: the session's ledger read below adds them to what it reads.
        sample_rows_stored(rows, may_gather=True)
        samples_learned(session, samples, rows, stood_in=stood_in)
        if _ended_by_the_charger(session):
            transaction_save_changes(session)
            return StopResult(session, answer, park(ReconciliationReason.ALREADY_STOPPED, session)[0])
        _stop_checks(session, stop, request.meter_stop_wh, meter_stop, request.time_spent_charging)
        if session.status == TransactionStatus.ACTIVE and session.reservation_id is None:
            reservation_use(session, request.reservation_id)  # a closed session's: a later one's may hold its id
        if evse_unknown and session.evse_id is not None and session.status == TransactionStatus.ACTIVE:
            transactions_superseded_on_its_evse_close(session)  # the Ended first to name its EVSE
        _token_of_an_ended_event(session, request, info)
        boot = _boot_that_ended_it(session, request, stop, read_before_the_stop)
        if boot is not None and stop.sent is not None:
            session.charger_stopped_at = stop.sent  # the time as sent, the boot used: it tells a resent copy
        cost = transaction_finish(
            session=session,
            stopped_at=stop.at if boot is None else boot,
            end_unknown=boot is not None,
            # The meter stop sent (1.6), else the session's last reading among all of its ledger's
            # (the stop's own readings alone may miss a phase or the location the others read).
            meter_stop_wh=meter_bounded(request.meter_stop_wh),
            reason=request.reason,
            stop_id_tag=id_tag or session.stop_id_tag,  # 2.0.1: an Updated's StopAuthorized token (E07)
            time_spent_charging_final=column_int(request.time_spent_charging) is not None,
        )
        # Not bounded: the item of a session this stop ended (each needs a session of its own).
        item = park(ReconciliationReason.NULL_ID_TAG, session, bounded=False)[0] if request.id_tag_null else None
    return StopResult(session, answer, item, ended=True, total_cost=cost)


def stop_lookup_of_request(request: StopRequest) -> StopLookup:
    """The session ``request`` names, for its batch to read its ledger with its other stops' (``ledger_reads``)."""
    return StopLookup(request.charge_point_id, request.ocpp_transaction_id)


stopping_unit_register(transaction_stop, stop_lookup_of_request)


def _unknown_stop_park(
    park: _Parker, ocpp_transaction_id: str, rows: Sequence[SampleRow], *, bounded: bool = True
) -> ReconciliationItem | None:
    """Park the stop of a session the CSMS does not know, with its samples' ledger ``rows`` (of no
    session; once: a resent copy brings the same samples again). None: not parked, the charger's
    queue is full (``_Parker``), its samples not stored."""
    negative = re.fullmatch(r"-[0-9]+", ocpp_transaction_id)
    item, new = park(
        ReconciliationReason.INVALID_TRANSACTION_ID if negative else ReconciliationReason.UNKNOWN_TRANSACTION,
        bounded=bounded,
    )
    if item is not None and new:
        for row in rows:
            row.reconciliation_item_id = item.pk
        sample_rows_stored(rows)
    return item


def _unknown_stop(park: _Parker, rows: Sequence[SampleRow], answer: IdTagInfo | None) -> StopResult:
    """Park the stop of a session the CSMS does not know; when it clearly meant a session open on
    its charger (``_open_session_meant``), attach it there at once, as an operator would."""
    parked = _unknown_stop_park(park, park.request.ocpp_transaction_id, rows)
    if parked is None:  # the charger's queue is full: parked only when it ends an open session (attached at once)
        if _open_session_meant(park.charge_point, park.request, park.meter_stop_wh, park.stopped_at, rows) is None:
            return StopResult(None, answer)
        parked = _unknown_stop_park(park, park.request.ocpp_transaction_id, rows, bounded=False)
        assert parked is not None
    if parked.state != ReconciliationState.OPEN:  # attached already: a resent copy
        return StopResult(None, answer, parked)
    meant = _open_session_meant(park.charge_point, park.request, park.meter_stop_wh, park.stopped_at, rows)
    if meant is None:
        return StopResult(None, answer, parked)
    reconciliation_item_attach(item=parked, transaction=meant, user_id=None)
    meant.refresh_from_db()
    parked.refresh_from_db()
    return StopResult(meant, answer, parked, ended=True)


def _open_session_meant(
    charge_point: ChargePoint,
    request: StopRequest,
    meter_stop: Decimal | None,
    stopped_at: datetime,
    rows: Sequence[SampleRow],
) -> Transaction | None:
    """The open session a 1.6 StopTransaction naming an unknown transactionId (a made-up id, or
    ``-1``, of a charger whose StartTransaction answer was lost) clearly meant, else None: among
    the charger's open 1.6 sessions (the stop names no connector), the only one of the stop's idTag
    (ignoring case; the only one open when it names none) that it can follow: started no later
    than the stop and not interrupted by a reboot since (``opened_before_boot``: a session whose
    stop the reboot lost, open since, would take a later session's stop and its hours), its meter
    start and last register reading no higher than the meter stop, and
    its meter start the Transaction.Begin reading the stop's transactionData brings, if any. A
    stop naming no idTag and bringing no Begin reading is evidence only on a charger that reported
    one connector: on another, it may be the stop of a session whose start never reached the CSMS on
    another connector (a session open there must not take its energy). Rare (an unknown stop): at
    most two statements."""
    if request.seq_no is not None or meter_stop is None:
        return None
    begin = [r.wh for r in metering.register_readings(rows) if r.context == "Transaction.Begin"]
    gathered_rows_written(Transaction)  # sessions its batch's earlier units wrote, read through the ORM
    open_sessions = list(
        Transaction.objects.filter(charge_point=charge_point, status=TransactionStatus.ACTIVE, ocpp_version="1.6")
    )
    if request.id_tag:
        open_sessions = [s for s in open_sessions if s.id_tag.lower() == request.id_tag.lower()]
    follows = [
        session
        for session in open_sessions
        if session.started_at <= stopped_at
        and not opened_before_boot(session, charge_point.last_boot_at)
        and session.meter_start_wh is not None
        and session.meter_start_wh <= meter_stop
        and (session.last_register_wh is None or session.last_register_wh <= meter_stop)
        and (not begin or begin[0] == session.meter_start_wh)
    ]
    if len(open_sessions) != 1 or not follows:
        return None
    if not request.id_tag and not begin and _connectors_known(charge_point) != 1:
        return None
    return follows[0]


def _connectors_known(charge_point: ChargePoint) -> int:
    """How many connectors (not connector 0, the charger as a whole) the charger reported in the OCPP
    version it speaks (``connectors_of_their_version``)."""
    return Connector.objects.filter(
        connectors_of_their_version(), charge_point=charge_point, connector_id__gt=0
    ).count()


def _last_register_wh(rows: Sequence[SampleRow]) -> Decimal | None:
    """The last energy register reading among a stop's ledger ``rows`` (2.0.1: its meter stop)."""
    readings = metering.register_readings(rows)
    return readings[-1].wh if readings else None


def _stop_checks(
    session: Transaction,
    stop: ChargerTime,
    meter_stop_wh: Decimal | None,
    meter_stop: Decimal | None,
    time_spent_charging: int | None,
) -> None:
    """What the stop itself says about the session: time spent charging, a garbled meter stop,
    its time as sent (when its receipt stands in), an implausible clock."""
    time_spent_charging_apply(session, time_spent_charging)
    for code in meter_value_notes(meter_stop_wh, meter_stop):
        anomaly_flag(session, code)
    session.charger_stopped_at = stop.kept
    if stop.implausible:
        anomaly_flag(session, Anomaly.CLOCK_IMPLAUSIBLE)


def ended_event_learned(
    session: Transaction, evse_id: int | None, connector_id: int | None, remote_start_id: int | None
) -> None:
    """What a 2.0.1 Ended tells that ``session`` lacks (its Started lost, or the Ended the first
    event the CSMS got of it: E01.FR.16 sends ``evse`` once, in the first event after the EV
    connected): its EVSE and connector, and the remote start that led to it (F01/F02
    ``remoteStartId``). Never replaces what the session has (an earlier event's): another EVSE is
    flagged (``evse_told``)."""
    evse_told(session, evse_id, connector_id)
    if session.remote_start_id is None:
        session.remote_start_id = column_int(remote_start_id)


def _token_of_an_ended_event(session: Transaction, request: StopRequest, info: IdTagInfo | None) -> None:
    """``session_token_apply`` for a 2.0.1 Ended (a 1.6 stop's idTag is only who stopped it). An
    open session's first token (E02: it started at plug-in) uses its (or its group's) reservation on
    the session's EVSE, as a start with it would (``reservation_of_the_start``, H01; one statement, then only);
    a session the CSMS closed uses none (a reservation active now is a later one's)."""
    if request.seq_no is None:
        return
    tokenless = not session.id_tag
    status = info.status if info else ""
    session_token_apply(session, id_tag=request.id_tag, token_type=request.id_token_type, status=status)
    if tokenless and session.id_tag and session.reservation_id is None and session.status == TransactionStatus.ACTIVE:
        reservation_use(session, reservation_of_the_start(session, info.parent_id_tag if info else ""))


def _id_restarted(
    session: Transaction, request: StopRequest, samples: Sequence[SampledValue], sent_at: datetime | None
) -> bool:
    """Whether a 2.0.1 Ended naming ``session``, which its charger ended, is a later session's under
    an id its charger's reboot restarted (a counter that a factory reset or a reboot set back): the
    session reached the CSMS before the charger's last boot (the CSMS's clock,
    ``opened_before_boot``), and this is not its own Ended resent (``_is_resent_stop``: the same
    meter stop and time as sent). Its seqNo tells nothing: the restarted counter repeats the old
    session's. Only a stop naming an ended session asks (the charger's boot, then the stop's
    readings, from its row at hand)."""
    if request.seq_no is None or not _ended_by_the_charger(session):
        return False
    if not opened_before_boot(session, session.charge_point.last_boot_at):
        return False
    meter_stop = meter_bounded(request.meter_stop_wh)
    if meter_stop is None:
        meter_stop = _last_register_wh(sample_rows(session.charge_point_id, None, samples, source=request.action))
    return not _is_resent_stop(session, meter_stop, sent_at)


# Stop reasons saying the charger's restart ended the session (1.6 and 2.0.1 ``Reason``)
_RESTART_REASONS = frozenset({"PowerLoss", "Reboot", "HardReset", "SoftReset", "ImmediateReset"})


def _boot_that_ended_it(
    session: Transaction, request: StopRequest, stop: ChargerTime, read_before_the_stop: datetime | None
) -> datetime | None:
    """The charger's last boot, when a stop says its restart ended the session (``_RESTART_REASONS``: a
    power cut, a reset) and brings no time of its end the CSMS can use (implausible, as a clock the
    reboot set back to 1970, or none: its receipt stands in; or one after the boot, by a clock set again
    since: when it was sent), for a session that reached the CSMS before that boot
    (``opened_before_boot``): it ended before the boot, and its receipt, after the boot, may come hours
    after it ended (the power was out), hours the charger did not charge. Else None (a time before the
    boot is its end; a session read after the boot, ``read_before_the_stop``, charged on through it: a
    reconnection's boot, a 1.6 charger's on every new connection, not the restart that ended it). The
    charger's row is read only for such a stop."""
    if request.reason not in _RESTART_REASONS:
        return None
    last_boot_at = session.charge_point.last_boot_at
    if last_boot_at is None or not opened_before_boot(session, last_boot_at) or last_boot_at < session.started_at:
        return None
    if not stop.received and stop.at <= last_boot_at:
        return None
    if read_before_the_stop is not None and read_before_the_stop > last_boot_at:
        return None
    return last_boot_at


def _ended_by_the_charger(session: Transaction) -> bool:
    return session.status == TransactionStatus.ENDED and not session.closed_by_csms


def _is_resent_stop(session: Transaction, meter_stop: Decimal | None, sent_at: datetime | None) -> bool:
    """The very stop that ended the session, sent again (its answer got lost): same meter stop
    and the same time as the charger sent it (a stop sent without one: its receipt stood in, so a
    copy has none to compare, and the same meter stop of a stop whose time was used is its copy).
    A stop without a meter stop (``meter_stop`` None: a 1.6 stop without ``meterStop`` nor
    readings, whose session's last reading stood in) is told by its time alone."""
    if not _ended_by_the_charger(session) or (meter_stop is not None and session.meter_stop_wh != meter_stop):
        return False
    if sent_at is None:
        return session.charger_stopped_at is None
    return (session.charger_stopped_at or session.stopped_at) == sent_at


class _Parker:
    """Parks a stop that could not simply be applied, with what it said (worked out only when it
    parks: most stops do not)."""

    def __init__(
        self,
        charge_point: ChargePoint,
        request: StopRequest,
        meter_stop_wh: Decimal | None,
        stopped_at: datetime,
        id_tag: str,
    ) -> None:
        self.charge_point, self.request, self.meter_stop_wh = charge_point, request, meter_stop_wh
        self.stopped_at, self.id_tag = stopped_at, id_tag

    def _fields(self) -> dict[str, Any]:
        request, seq_no = self.request, self.request.seq_no
        return {
            "charge_point": self.charge_point,
            "action": request.action,
            "ocpp_transaction_id": request.ocpp_transaction_id[:36],
            "payload": unstorable_numbers_replaced(request.payload),
            "meter_stop_wh": self.meter_stop_wh,
            "stop_reason": request.reason,
            "id_tag": self.id_tag,
            "seq_no": seq_no if seq_no is None or abs(seq_no) < 2**63 else None,
        }

    def __call__(
        self, reason: str, session: Transaction | None = None, *, bounded: bool = True
    ) -> tuple[ReconciliationItem | None, bool]:
        """The open item for this stop, and whether it is new: a resent copy is not parked twice.
        A copy is recognised by what it said (the payload has the charger's time); ``stopped_at``
        may be its receipt (an implausible clock), which differs from copy to copy. None when the
        charger already has ``CSMS_MAX_OPEN_RECONCILIATION_ITEMS`` open (``bounded``; not an item
        attached at once): a charger sending stops of made-up ids without end (20 a second, the
        frame rate) filled the operator's queue, and every later stop's look for its copy read them all."""
        open_item = dict(reason=reason, transaction=session, state=ReconciliationState.OPEN, **self._fields())
        item = ReconciliationItem.objects.filter(**open_item).first()
        if item is None and session is None:  # a stop of no session, attached since (``_open_session_meant``)
            attached = dict(reason=reason, state=ReconciliationState.ATTACHED, **self._fields())
            item = ReconciliationItem.objects.filter(**attached).first()
        if item is not None:
            return item, False
        if bounded and self._queue_full():
            logger.warning(
                "%s: %s of transaction %r not parked: the charger has %d open reconciliation items"
                " (CSMS_MAX_OPEN_RECONCILIATION_ITEMS); it is in the message log",
                self.charge_point.charge_point_id,
                self.request.action,
                self.request.ocpp_transaction_id[:36],
                settings.CSMS_MAX_OPEN_RECONCILIATION_ITEMS,
            )
            return None, False
        created = ReconciliationItem.objects.create(received_at=timezone.now(), stopped_at=self.stopped_at, **open_item)
        return created, True

    def _queue_full(self) -> bool:
        """Whether the charger has its most open items already (one statement, only to park a new one)."""
        most = settings.CSMS_MAX_OPEN_RECONCILIATION_ITEMS
        items = ReconciliationItem.objects.filter(charge_point=self.charge_point, state=ReconciliationState.OPEN)
        return items.order_by()[most - 1 : most].exists()
