"""How a session starts, for both OCPP versions: 1.6 StartTransaction and 2.0.1
TransactionEvent(Started, and every Updated) end in ``transaction_start``.

Chargers replay queued messages after a reconnect, lose transaction ids and reboot mid-session:
a start finds the session a replay of it opened, a 2.0.1 event adds to its session, and a new
session closes the one its stop was lost for. The stop is ``transaction_stop``, the meter ledger
``meter_ledger``, the end ``transaction_end``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db import transaction as db_transaction
from django.db.models import Exists, F, Q
from django.utils import timezone

from chargepoints.clock import ChargerTime
from chargepoints.models import ChargePoint
from charging import events, selectors
from charging.metering import ENERGY_REGISTER, Anomaly
from charging.models import (
    AuthorizationStatus,
    MeterSample,
    ReconciliationItem,
    ReconciliationReason,
    ReconciliationState,
    Transaction,
    TransactionStatus,
)
from charging.selectors import IdTagInfo
from charging.services.authorization import id_tags_locked_for_start
from charging.services.meter_ledger import (
    SampledValue,
    SampleRow,
    charger_time_judged,
    has_begin_reading,
    meter_bounded,
    meter_value_notes,
    readings_of,
    reads_fewer_phases,
    sample_rows,
    sample_rows_stored,
    samples_judged,
    samples_learned,
)
from charging.services.reconciliation import (
    ReconciliationError,
    reconciliation_item_attach,
)
from charging.services.reservations import reservation_of_the_start, reservation_use
from charging.services.session_rows import (
    anomaly_flag,
    anomaly_unflag,
    booted_since_opened,
    charge_point_locked,
    charging_state_apply,
    column_int,
    event_late,
    evse_told,
    fractional,
    seq_no_late,
    seq_no_lowest,
    seq_no_seen,
    seq_nos_contain,
    session_token_apply,
    session_token_open,
    started_or_open_among,
    stored_id_tag,
    time_spent_charging_apply,
    transaction_inserted,
    transaction_kept,
    transaction_locked_where,
    transaction_remember,
    transaction_save_changes,
    transactions_open_on_connector,
    transactions_started_or_open,
    withheld_state_apply,
)
from charging.services.start_reads import (
    StartLookup,
    StartRead,
    id_tag_limits_locked,
    id_tag_read,
    start_lookup,
    start_read_taken,
    starting_unit_register,
)
from charging.services.status_reads import opened_before_boot
from charging.services.transaction_end import (
    transaction_finish,
    transactions_superseded_close,
    transactions_superseded_on_its_evse_close,
)
from charging.services.transaction_stop import ended_event_learned
from charging.signals import charger_draw_changed
from kernel.model_instances import instance_new
from kernel.plain_sql import columns_of, model_rows
from kernel.timestamps import charger_time_read
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_event_may_have_subscribers


@dataclass(kw_only=True, slots=True)
class StartRequest:
    """A start, or a 2.0.1 event of a session, in version-neutral terms (the handlers build it;
    never changed after: a judged one is a copy, ``_as_stored``. Not frozen: a frozen dataclass's
    ``__init__`` sets each of its 19 fields through ``object.__setattr__``, three times the cost,
    for every start and 2.0.1 event; issue 15).

    ``start_key`` identifies a replay of the same start. ``started_at`` is the charger's time.
    ``authorize``: answer with the id tag's authorization (1.6 always; 2.0.1 when an idToken
    came). ``charging``: whether the EV draws power (None: not said); ``withheld``: the station
    withholds it (2.0.1 SuspendedEVSE, ``charging`` None). 2.0.1 has no meter start in
    the message (``meter_start_wh`` None): it is the Transaction.Begin register reading, or the
    first one; ``baseline_expected``: a session without one is flagged for review (an offline
    start, or one first seen through a later event). ``seq_no``: the 2.0.1 event's seqNo (None in
    1.6). ``started_event``: a 2.0.1 Started event. ``stop_authorized``: a 2.0.1 Updated of
    triggerReason StopAuthorized (E07: its id tag stopped the session, which ends later, at its
    TxStopPoint).
    """

    charge_point_id: str
    ocpp_version: str
    start_key: str
    started_at: datetime
    connector_id: int | None = None
    evse_id: int | None = None
    id_tag: str = ""
    id_token_type: str = ""
    authorize: bool = True
    charging: bool | None = None
    withheld: bool = False
    meter_start_wh: Decimal | None = None
    ocpp_transaction_id: str = ""
    reservation_id: int | None = None
    remote_start_id: int | None = None
    samples: Sequence[SampledValue] = ()
    seq_no: int | None = None
    time_spent_charging: int | None = None
    baseline_expected: bool = True
    started_event: bool = False
    stop_authorized: bool = False


@dataclass(frozen=True)
class StartResult:
    transaction: Transaction
    id_tag_info: IdTagInfo | None


def transaction_start(request: StartRequest) -> StartResult:
    """Open a session, or find the one a replayed start (same ``start_key``) opened.

    1. Judge the charger's times (``chargepoints.clock``): a receipt standing in for an
       implausible start is kept in ``charger_started_at`` and flags ``clock_implausible``.
    2. Authorize the id tag, if asked.
    3. Find the session this start opened before, unless its key is reused (``_reused``).
    4. Known: a 2.0.1 event with a new seqNo adds to it (readings, charging state, and whatever it
       knew that the session did not: an earlier start, EVSE, id token, reservation).
    5. Unknown (events arrive out of order too): open it, close the older session still open on
       its connector (its stop was lost), and end it at once if its Ended was parked before it.
    """
    now = timezone.now()
    start = charger_time_judged(request.started_at, now)
    read = start_read_taken(start_lookup_of_request(request))  # read with its batch's other starts, if it was
    with db_transaction.atomic():
        answer, info = _authorized(request, start.at) if request.authorize else (None, None)
        request = _as_stored(request, start, samples_judged(request.samples, now))
        existing, charge_point, older, stop_parked, reserved = _started_before(request, read, start.sent)
        if existing is not None:
            return StartResult(existing, _event_add(existing, request, start, info, answer))
        assert charge_point is not None  # a start that may open a session holds the charger's lock
        new_id = read.new_id if read is not None else None
        session = _session_open(charge_point, older, request, start, info, stop_parked, new_id, reserved)
    return StartResult(session, answer)


def _as_stored(request: StartRequest, start: ChargerTime, samples: list[SampledValue]) -> StartRequest:
    """``request`` with its judged start time and samples, its id tag and start key as their columns
    keep them: a copy only when one of them differs (most starts: none, and a copy of the
    request's 19 fields is a few µs of the batch thread's, every 2.0.1 event)."""
    id_tag, start_key = stored_id_tag(request.id_tag), _stored_start_key(request.start_key)
    if (
        start.at is request.started_at
        and id_tag == request.id_tag
        and start_key == request.start_key
        and len(samples) == len(request.samples)
        and all(judged is sent for judged, sent in zip(samples, request.samples, strict=True))
    ):
        return request
    return dataclasses.replace(request, started_at=start.at, samples=samples, id_tag=id_tag, start_key=start_key)


def start_lookup_of_request(request: StartRequest) -> StartLookup | None:
    """What ``request`` reads under its charger's lock, for its batch to read together with its
    other starts (``start_reads``); None for a 2.0.1 event that is not a Started (its session is
    mostly known) or a start naming neither connector nor EVSE."""
    if request.seq_no is not None and not request.started_event:
        return None
    return start_lookup(
        charge_point_id=request.charge_point_id,
        start_key=_stored_start_key(request.start_key),
        connector_id=request.connector_id,
        evse_id=request.evse_id,
        parked_under=request.ocpp_transaction_id,
        id_tag=request.id_tag if request.authorize else "",
    )


starting_unit_register(transaction_start, start_lookup_of_request)


def _authorized(request: StartRequest, started_at: datetime) -> tuple[IdTagInfo, IdTagInfo]:
    """The id tag's authorization: the answer (the tag now) and the session's (the tag at
    ``started_at``, the start's or event's judged time: a tag valid then, expired before an offline
    charger delivered its queue, authorized the session; ``selectors.id_tag_infos_of``), from the
    tag its batch read with its other starts, else read; ConcurrentTx when the tag's sessions open
    elsewhere that began by ``started_at`` are at its limit, or its group's are at the group's (a tag
    with none, in no group with one: no read), counted under the lock of the tag (its group) whose
    limit counts (``id_tags_locked_for_start``: a start of it, or of a card of its group, elsewhere at
    once is counted)."""
    read, tag = id_tag_read(request.id_tag)
    if not read:
        now, then = selectors.id_tag_authorize_at(
            id_tag=request.id_tag, token_type=request.id_token_type, at=started_at
        )
    else:
        now, then = selectors.id_tag_infos_of(tag, token_type=request.id_token_type, at=started_at)
    if then.limits and then.status == AuthorizationStatus.ACCEPTED:
        limits = [pk for pk, _, _ in then.limits]
        if not id_tag_limits_locked(limits):  # locked by its batch with its other starts' (``start_reads``)
            id_tags_locked_for_start(limits)
    checked = selectors.id_tag_concurrency_checked(
        info=then,
        id_tag=request.id_tag,
        charge_point_id=request.charge_point_id,
        connector_id=request.connector_id,
        evse_id=request.evse_id,
        ocpp_transaction_id=request.ocpp_transaction_id,
        start_key=_stored_start_key(request.start_key),
        started_at=started_at,
    )
    return (checked if now is then else now), checked


def _started_before(
    request: StartRequest, read: StartRead | None, sent: datetime | None
) -> tuple[Transaction | None, ChargePoint | None, list[Transaction], bool | None, bool | None]:
    """The session this start opened before, the charger's row (locked) when it may open one,
    then the sessions still open on its connector (locked; a new session closes them), whether
    a stop is parked under its 2.0.1 transactionId and whether the charger holds an active
    reservation (each None: not looked). ``sent``: its start time as the charger sent it.

    A known 2.0.1 session (every Updated event) is locked on its own row; only a start that may
    open one takes the charger's lock, then looks (again) under it. A Started event, like a 1.6
    start, is mostly of a new session: it goes to the charger's lock without the first look.
    """
    known = request.seq_no is not None and not request.started_event
    existing = _known_session(request) if known else None
    if existing is not None and not _reused(existing, request):
        return existing, None, [], None, None
    charge_point, existing, older, stop_parked, reserved = _started_by_or_open(request, read)
    if existing is not None and _reused(existing, request, sent, charge_point):
        existing = None
    return existing, charge_point, older, stop_parked, reserved


def _known_session(request: StartRequest) -> Transaction | None:
    """The session of a 2.0.1 event with a seqNo (not a Started): the open one the connection keeps
    (``open_sessions``: no statement; the event's save is guarded, and a replay changes nothing),
    else ``_started_by``. Not for a start under the charger's lock: a session ended elsewhere
    since it was kept may make that start a new session, which only the row can tell."""
    kept = transaction_kept(lambda session: session.start_key == request.start_key)
    return kept if kept is not None else _started_by(request.charge_point_id, request.start_key)


def _started_by_or_open(
    request: StartRequest, read: StartRead | None
) -> tuple[ChargePoint, Transaction | None, list[Transaction], bool | None, bool | None]:
    """The charger's row, locked, then ``_started_by``, the sessions open on the start's
    connector (``transactions_superseded_close``'s), whether a stop is parked under the start's 2.0.1
    transactionId and whether the charger holds an active reservation: what its batch ``read``
    with its other starts, else on PostgreSQL two statements (``transactions_started_or_open``);
    elsewhere the last two are None (not looked)."""
    connector_id, evse_id = column_int(request.connector_id), column_int(request.evse_id)
    if read is not None:
        charge_point = read.charge_point
        existing, older = started_or_open_among(charge_point, read.sessions, request.start_key, connector_id, evse_id)
        return charge_point, existing, older, read.parked, read.reserved
    if connection.vendor == "postgresql" and (connector_id is not None or evse_id is not None):
        return transactions_started_or_open(
            request.charge_point_id, request.start_key, connector_id, evse_id, request.ocpp_transaction_id
        )
    charge_point = charge_point_locked(request.charge_point_id)
    existing = _started_by(request.charge_point_id, request.start_key)
    if connector_id is None and evse_id is None:
        return charge_point, existing, [], None, None
    return charge_point, existing, transactions_open_on_connector(charge_point, connector_id, evse_id), None, None


def _event_add(
    session: Transaction, request: StartRequest, start: ChargerTime, info: IdTagInfo | None, answer: IdTagInfo | None
) -> IdTagInfo | None:
    """Add a 2.0.1 event with a new seqNo to its session (a replay adds nothing); ``info``: its
    token's authorization at its time (``_authorized``), ``answer`` now. The answer's
    authorization: this start's, else the one the session started with. An event after its session's
    Ended in the charger's sequence (``_after_its_end``) is kept, not applied."""
    if _after_its_end(session, request):
        _after_its_end_kept(session, request)  # its seqNo seen now: a replay below, which changes nothing
    seen = request.seq_no is not None and seq_no_seen(session, request.seq_no)
    if request.seq_no is not None and (not seen or _seq_no_restarted(session, request, start)):
        if start.implausible:
            anomaly_flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
        announced = (session.id_tag, session.started_at)
        _event_merge(session, request, start)
        tokenless, evse_unknown = not session.id_tag, session.evse_id is None
        _fill_blanks(session, request, info)
        if evse_unknown and session.evse_id is not None and session.status == TransactionStatus.ACTIVE:
            transactions_superseded_on_its_evse_close(session)
        if session.reservation_id is None:  # a session uses one reservation: a repeat of its id is no other's
            parent_id_tag = info.parent_id_tag if info else None  # None: its tag's group, read with the reservation
            learned = tokenless or (evse_unknown and session.evse_id is not None)
            reservation_use(session, request.reservation_id)
            if session.reservation_id is None:
                reservation_use(session, _reservation_of_the_event(session, learned, parent_id_tag))
        sample_rows_stored(_event_apply(session, request, restarted=seen), may_gather=True)
        ended = session.status == TransactionStatus.ENDED
        if request.samples and not ended:  # its site recomputes at once, as for a MeterValues
            charger_draw_changed.send(sender=Transaction, charge_point_pk=session.charge_point_id)
        transaction_save_changes(session, may_gather=not ended)  # its last save, unless it is repriced
        late_started = request.started_event and (session.id_tag, session.started_at) != announced
        if late_started and not ended:
            _late_started_announced(session, EventType.TRANSACTION_STARTED)
        if ended:  # it changes what the ended session cost
            transaction_finish(
                session=session,
                stopped_at=session.stopped_at or request.started_at,
                # A close the CSMS made has no meter stop: the last reading stands in, this event's too
                meter_stop_wh=None if session.closed_by_csms else session.meter_stop_wh,
                reason=session.stop_reason,
                stop_id_tag=session.stop_id_tag,
                closed_by_csms=session.closed_by_csms,
            )
            if late_started:
                _late_started_announced(session, EventType.TRANSACTION_ENDED)
    if answer is None and session.id_tag_status:
        return IdTagInfo(status=session.id_tag_status)
    return answer


def _late_started_announced(session: Transaction, event_type: EventType) -> None:
    """transaction.started (an open session) or .ended (an ended one) once more, for a session a
    later event opened (its Started lost, then resent, or overtaken) whose Started brought what its
    announcement lacked: the id token (null in it), the start. Same ``transaction_id``: the later
    one replaces it. Rare: no statement for an ordinary event."""
    if webhook_event_may_have_subscribers(event_type=event_type):
        webhook_event_emit(event_type=event_type, data=events.transaction_event(session))


def _after_its_end(session: Transaction, request: StartRequest) -> bool:
    """Whether a 2.0.1 event (not a Started) of a session its charger ended follows the Ended in the
    charger's sequence: a seqNo above every one the session saw (the Ended's among them), new to it.
    The Ended is a transaction's last event (E06; a simulator's, SAP's, sends an Updated after it):
    such an event tells nothing of the session billed. An event the Ended overtook (a lower seqNo)
    still re-prices it, and one of a session the CSMS closed is its charger's queue (it may bring its
    real evidence). Read from the session at hand: no statement."""
    seq_no = request.seq_no
    if seq_no is None or request.started_event or session.status != TransactionStatus.ENDED:
        return False
    if session.closed_by_csms or not session.seq_nos or seq_nos_contain(session.seq_nos, seq_no):
        return False
    return not seq_no_late(session.seq_nos, seq_no)


def _after_its_end_kept(session: Transaction, request: StartRequest) -> None:
    """An event after its session's Ended (``_after_its_end``): its readings kept in the session's
    ledger, as received (the meter-values API shows them; readings after the stop count for no bill),
    its seqNo seen (a resend is a replay); the session, its end and its bill as the Ended left them."""
    assert request.seq_no is not None
    seq_no_seen(session, request.seq_no)
    sample_rows_stored(sample_rows(session.charge_point_id, session, request.samples, source="TransactionEvent"))
    transaction_save_changes(session)


def _session_open(
    charge_point: ChargePoint,
    older: list[Transaction],
    request: StartRequest,
    start: ChargerTime,
    info: IdTagInfo | None,
    stop_parked: bool | None,
    new_id: int | None = None,
    reserved: bool | None = None,
) -> Transaction:
    """A new session: the ``older`` ones still open on its connector closed, then created,
    checked, its reservation settled, announced, and ended if its stop was parked
    (``stop_parked``: whether one is, None: not known). ``new_id``: its primary key, handed out
    by its batch's read (its INSERT is then gathered with the batch's), else the INSERT's.
    ``reserved``: whether its charger holds an active reservation (None: not known), which a start
    naming none may use (``reservations.reservation_of_the_start``), as may one naming a reservation
    the CSMS holds none of: MicroOcpp sends ``"reservationId": -1`` for none, others 0."""
    meter_start = meter_bounded(request.meter_start_wh)
    transactions_superseded_close(older, request.started_at, charge_point)
    session = instance_new(  # Transaction(...) without its keyword loop over 33 fields
        Transaction,
        charge_point=charge_point,
        ocpp_version=request.ocpp_version,
        ocpp_transaction_id=request.ocpp_transaction_id,
        start_key=request.start_key,
        evse_id=column_int(request.evse_id),
        connector_id=column_int(request.connector_id),
        id_tag=request.id_tag,
        id_token_type=request.id_token_type,
        id_tag_status=info.status if info else "",
        started_at=request.started_at,
        charger_started_at=start.kept,
        meter_start_wh=meter_start,
        remote_start_id=column_int(request.remote_start_id),
        seq_nos=[request.seq_no] if request.seq_no is not None else [],
    )
    session.pk = new_id
    _start_checks(session, request, start, meter_start)
    reservation_use(session, request.reservation_id)
    if session.reservation_id is None and reserved is not False:
        reservation_use(session, reservation_of_the_start(session, info.parent_id_tag if info else ""))
    rows = _event_apply(session, request)
    if meter_start is None and request.baseline_expected and not has_begin_reading(request.samples):
        anomaly_flag(session, Anomaly.MISSING_BASELINE)
    transaction_inserted(session)  # written once, as checked; a parked end applied below saves it again
    for row in rows:
        row.transaction_id = session.pk
    sample_rows_stored(rows, may_gather=True)
    if webhook_event_may_have_subscribers(event_type=EventType.TRANSACTION_STARTED):  # else no data to build
        webhook_event_emit(event_type=EventType.TRANSACTION_STARTED, data=events.transaction_event(session))
    charger_draw_changed.send(sender=Transaction, charge_point_id=request.charge_point_id)
    if stop_parked is not False:
        _apply_parked_end(session)
    return session


def _start_checks(session: Transaction, request: StartRequest, start: ChargerTime, meter_start: Decimal | None) -> None:
    """Flag what is off in the start itself: its meter start, its clock, its token."""
    for code in meter_value_notes(request.meter_start_wh, meter_start):
        anomaly_flag(session, code)
    if start.implausible:
        anomaly_flag(session, Anomaly.CLOCK_IMPLAUSIBLE)
    _token_check(session)
    if fractional(meter_start):  # a 1.6 meterStart (integer Wh in the spec)
        anomaly_flag(session, Anomaly.FRACTIONAL_WH)


def _started_by(charge_point_id: str, start_key: str) -> Transaction | None:
    """The session a start with ``start_key`` opened (replays and 2.0.1 events share it), locked:
    the open one, else the latest ended. Without the charger's row: an event for a known session
    needs only its id."""
    if connection.vendor == "postgresql":
        return transaction_remember(transaction_locked_where(charge_point_id, "t.start_key = %s", [start_key]))
    return transaction_remember(
        Transaction.objects.select_for_update(of=("self",))
        .filter(charge_point__charge_point_id=charge_point_id, start_key=start_key)
        .order_by("status", "-pk")  # "active" sorts before "ended"
        .first()
    )


def _reused(
    session: Transaction, request: StartRequest, sent: datetime | None = None, charge_point: ChargePoint | None = None
) -> bool:
    """Whether a start naming ``session`` is a new session that reuses its key.

    1.6: when the charger stopped that session itself (it had its id, so it is not resending
    its start), or its start time was not used as sent (keys repeat when clocks stand at 1970);
    a session the CSMS closed may still see its start resent. 2.0.1: a Started event later than
    the session's end (ids that are counters restart), or one its charger's reboot restarted
    (``_restarted``, with the start as ``sent`` and the charger's row); a late event of the
    session is within it. A session still open (its Ended lost) is reused by a Started its
    charger's reboot restarted the id for alike (``_restarted``): the new session supersedes it.
    """
    if session.status != TransactionStatus.ENDED:
        return (
            request.started_event
            and request.seq_no is not None
            and _restarted(session, request.seq_no, sent, charge_point)
        )
    if request.seq_no is None:  # a key without a time (none was sent, it ends "|") is no replay after the end either
        return not session.closed_by_csms or session.charger_started_at is not None or session.start_key.endswith("|")
    if session.stopped_at is None:
        return False
    if not request.started_event:
        return _later_sessions_event(session, request)
    return request.started_at > session.stopped_at or _restarted(session, request.seq_no, sent, charge_point)


def _later_sessions_event(session: Transaction, request: StartRequest) -> bool:
    """Whether a 2.0.1 event (not a Started) naming ended ``session`` is a later session's under an
    id its charger's reboot restarted (the seqNo counter restarted too: its seqNo tells nothing),
    overtaking its Started: stamped outside the session (a late event of it is within it), which its
    charger ended (one the CSMS closed may still hear from its own), and which reached the CSMS
    before the charger's last boot (``booted_since_opened``: a statement when the charger's row is
    not at hand, for such an event only). It then opens that session, as an event of an unknown id does."""
    assert session.stopped_at is not None
    if session.closed_by_csms or session.started_at <= request.started_at <= session.stopped_at:
        return False
    return booted_since_opened(session)


def _restarted(session: Transaction, seq_no: int, sent: datetime | None, charge_point: ChargePoint | None) -> bool:
    """Whether a 2.0.1 Started stamped within ended ``session``, or naming it open, is a new session
    under an id its charger's reboot restarted (a clock the reboot set back makes it look older): the session
    reached the CSMS before the charger's last boot (the CSMS's clock, ``opened_before_boot``), and
    this Started is neither an event of it still to come (its seqNo is one the session saw) nor
    its Started resent (stamped as that one was sent). The boot is read last: it may cost a
    statement (a batch's charger row defers it), and only such a Started asks."""
    if charge_point is None or not seq_nos_contain(session.seq_nos, seq_no):
        return False
    if sent == (session.charger_started_at or session.started_at):
        return False
    return opened_before_boot(session, charge_point.last_boot_at)


def _seq_no_restarted(session: Transaction, request: StartRequest, start: ChargerTime) -> bool:
    """Whether a 2.0.1 event whose seqNo open ``session`` saw is no replay: the session reached the
    CSMS before its charger's last boot (the CSMS's clock), which restarted the counter, and the
    event brings readings the session does not hold (a replay brings the ones stored when it was
    first sent: same times). Only such an event (a repeated seqNo with readings) reads, and only
    what it needs: the charger's boot time and the ledger, one statement (none when the charger's
    row is at hand and tells no boot since; no charger row is loaded).

    A state-only event (no readings: a ``chargingState`` or ``timeSpentCharging`` alone) has no
    readings to compare: it is no replay when stamped at or after that boot (a copy of an event
    sent before the boot is stamped before it), by its time as sent (a receipt standing in tells
    nothing); one statement, the charger's boot time, for such an event only."""
    if session.status != TransactionStatus.ACTIVE or request.started_event:
        return False
    if not request.samples:
        return start.sent is not None and start.kept is None and _state_restarted(session, request)
    if any(sample.charger_timestamp is not None for sample in request.samples):
        return False  # a time its receipt stands in for differs from copy to copy: no telling
    times = {sample.timestamp for sample in request.samples}
    held = MeterSample.objects.filter(transaction=session, source="TransactionEvent", timestamp__in=times)
    if Transaction.charge_point.is_cached(session):
        return opened_before_boot(session, session.charge_point.last_boot_at) and not held.exists()
    booted = ChargePoint.objects.filter(pk=session.charge_point_id, last_boot_at__gt=session.created_at)
    return booted.filter(~Exists(held)).exists()


def _state_restarted(session: Transaction, request: StartRequest) -> bool:
    """``_seq_no_restarted`` of a state-only event: one that tells a state, stamped (as sent) at
    or after its charger's last boot, which happened after the session reached the CSMS."""
    if request.charging is None and not request.withheld and request.time_spent_charging is None:
        return False
    booted = ChargePoint.objects.filter(pk=session.charge_point_id, last_boot_at__gt=session.created_at)
    return booted.filter(last_boot_at__lte=request.started_at).exists()


def _fill_blanks(session: Transaction, request: StartRequest, info: IdTagInfo | None) -> None:
    """What a later 2.0.1 event knows that the session does not yet (a token tapped after plug-in,
    the one tapped to stop it: E07, an Updated of triggerReason StopAuthorized); another EVSE than the
    session's is flagged (``evse_told``)."""
    evse_told(session, request.evse_id, request.connector_id)
    status = info.status if info else ""
    session_token_apply(
        session,
        id_tag=request.id_tag,
        token_type=request.id_token_type,
        status=status,
        started=request.started_event,
    )
    if request.stop_authorized and request.id_tag and session.status == TransactionStatus.ACTIVE:
        session.stop_id_tag = request.id_tag  # who stopped it; its Ended, at unplug, may carry no token
    if session.remote_start_id is None:
        session.remote_start_id = column_int(request.remote_start_id)


def _reservation_of_the_event(session: Transaction, learned: bool, parent_id_tag: str | None) -> int | None:
    """The reservation a 2.0.1 event of ``session`` naming none the CSMS holds uses, when it brought
    what an open session lacked to match one (``learned``): the token of one that had none (E02:
    the transaction started at plug-in) or the EVSE of one that had none (E03: the token authorized
    before the cable), that token's (or its group's, ``parent_id_tag``) reservation on its EVSE
    (``reservation_of_the_start``, as a start with both would use it; H01: the reserved token
    authorizing on the reserved EVSE ends the reservation). One statement, for that event only
    (at most twice a session)."""
    if not learned or not session.id_tag or session.reservation_id is not None:
        return None
    if session.status != TransactionStatus.ACTIVE:  # a late token: a reservation active now is a later one's
        return None
    return reservation_of_the_start(session, parent_id_tag)


def _event_apply(session: Transaction, request: StartRequest, *, restarted: bool = False) -> list[SampleRow]:
    """What every start or event carries: its samples (the ledger rows returned, for the caller to
    store: gathered into the batch's one COPY, which a ledger read later in the batch writes
    first), the charging state, the time spent charging. ``restarted``: an event whose seqNo its
    charger's reboot restarted (``_seq_no_restarted``): its charging state is in arrival order,
    never late (the seqNos seen before the boot tell nothing of its order)."""
    # 2.0.1: the readings of its Started and Updated events, stored as the message they came in
    rows = sample_rows(session.charge_point_id, session, request.samples, source="TransactionEvent")
    samples_learned(session, request.samples, rows)
    # An ended session (its charger's end, which re-prices it) takes a state its Ended overtook, when no
    # state told is later (``charging_state_apply``'s ``sequenced``): idle from it to the end.
    told = request.withheld or request.charging is not None
    if told and (session.status == TransactionStatus.ACTIVE or not session.closed_by_csms):
        late = not restarted and event_late(session, request.seq_no)
        withheld_state_apply(session, withheld=request.withheld, at=request.started_at, late=late)
        if request.charging is not None:
            charging_state_apply(session, charging=request.charging, at=request.started_at, late=late, sequenced=True)
    time_spent_charging_apply(session, request.time_spent_charging)
    return rows


def _apply_parked_end(session: Transaction) -> None:
    """A 2.0.1 Ended that overtook its Started was parked as unknown: it ends this session now,
    flagged as it would be in order (``ended_before_started`` when stamped before the start,
    ``clock_implausible`` for its own clock), unless it is an earlier session's (``_parked_stop``,
    ``_predates``)."""
    if not session.ocpp_transaction_id:
        return
    parked = _parked_stop(session)
    if parked is None or parked.stopped_at is None or _predates(parked, session):
        return
    _parked_end_apply(session, parked)


def _parked_end_apply(session: Transaction, parked: ReconciliationItem, user_id: int | None = None) -> None:
    """The parked 2.0.1 Ended ``parked`` ends ``session``, as if it had come after its events
    (``_parked_end_learned``), attached by ``user_id`` (None: the CSMS)."""
    if parked.seq_no is not None:
        seq_no_seen(session, parked.seq_no)
        _parked_end_learned(session, parked)
        transaction_save_changes(session)
    with contextlib.suppress(ReconciliationError):  # an operator resolved it a moment ago
        reconciliation_item_attach(item=parked, transaction=session, user_id=user_id)


def reconciliation_item_session_open(*, item: ReconciliationItem, user_id: int | None) -> Transaction:
    """Open the session a parked 2.0.1 Ended names when none of its other events ever came (its
    Started and Updated lost, E01-E07: the Ended is the last event of its transaction), and end it
    with that stop, as if the Ended had come after them: the session starts at the earliest reading
    the Ended brought (its ``Transaction.Begin`` the meter start), else at the stop (no duration),
    and is flagged ``missing_baseline`` without a Begin reading (the energy before the End is not
    known); it takes the EVSE, token, reservation and remote start the Ended names. ``user_id``:
    the operator (the item is resolved ``attached`` by them). The new session is returned.

    Raises ``ReconciliationError`` when the item is resolved already, is no 2.0.1 Ended of an
    unknown transaction, or a session of its transactionId is open on its charger (attach it to
    that one instead)."""
    with db_transaction.atomic():
        item = ReconciliationItem.objects.select_for_update().select_related("charge_point").get(pk=item.pk)
        payload = item.payload if isinstance(item.payload, dict) else {}
        if item.state != ReconciliationState.OPEN:
            raise ReconciliationError(f"Item {item.pk} is already {item.state}.")
        if (
            item.reason != ReconciliationReason.UNKNOWN_TRANSACTION
            or item.action != "TransactionEvent"
            or payload.get("eventType") != "Ended"
        ):
            raise ReconciliationError(f"Item {item.pk} is no 2.0.1 Ended of an unknown transaction.")
        charge_point_id = item.charge_point.charge_point_id
        if Transaction.objects.filter(
            charge_point_id=item.charge_point_id,
            ocpp_transaction_id=item.ocpp_transaction_id,
            status=TransactionStatus.ACTIVE,
        ).exists():
            raise ReconciliationError(f"A session of transaction {item.ocpp_transaction_id} is open: attach it.")
        registers = [
            sample
            for sample in MeterSample.objects.filter(reconciliation_item=item).order_by("timestamp", "id")
            if sample.measurand == ENERGY_REGISTER
        ]
        begin = [sample for sample in registers if sample.context == "Transaction.Begin" and sample.value is not None]
        stopped_at = item.stopped_at or item.received_at
        started_at = min([stopped_at, *(sample.timestamp for sample in registers)])
        transaction_id = _object_in(payload, "transactionInfo").get("transactionId")
        ocpp_transaction_id = transaction_id if isinstance(transaction_id, str) else item.ocpp_transaction_id
        session = transaction_start(
            StartRequest(
                charge_point_id=charge_point_id,
                ocpp_version="2.0.1",
                start_key=ocpp_transaction_id,
                ocpp_transaction_id=ocpp_transaction_id,
                started_at=begin[0].timestamp if begin else started_at,
                meter_start_wh=begin[0].value if begin else None,
                baseline_expected=True,
                # No EVSE here: a session of the past supersedes none open on it now (the Ended's
                # EVSE is the session's once the stop is applied).
            )
        ).transaction
        item.refresh_from_db()
        if item.state == ReconciliationState.OPEN:  # not found as its charger's parked stop (a boot since)
            _parked_end_apply(session, item, user_id)
        elif item.transaction_id == session.pk:  # the new session took it (``_apply_parked_end``)
            ReconciliationItem.objects.filter(pk=item.pk).update(resolved_by_id=user_id)
        session.refresh_from_db()
    return session


def _predates(parked: ReconciliationItem, session: Transaction) -> bool:
    """Whether a parked stop reached the CSMS before ``session`` started, by its start as the
    charger sent it and more than a charger's clock may run ahead (ids that are counters repeat:
    it is an earlier session's). Judged by its receipt, not its own time: an Ended that overtook
    its Started may be stamped before it (a clock set back), as it may in order. A start whose
    receipt stands in (an implausible or early clock) tells nothing here: only the charger's
    boot does (``_parked_stop``)."""
    if session.charger_started_at is not None:
        return False
    slack = timedelta(seconds=settings.CSMS_CLOCK_SKEW_TOLERANCE)
    return parked.received_at + slack < session.started_at


def _parked_end_learned(session: Transaction, parked: ReconciliationItem) -> None:
    """What the parked 2.0.1 Ended told besides its stop, as if it had come after its Started:
    its ``timeSpentCharging``, the EVSE, remote start and reservation it names
    (``transaction_stop.ended_event_learned``; the reservation used once: a session has one), its
    token when the session has none (the bill's customer), and its
    time as sent when its receipt stood in (``transaction_stop``'s judgement, at its receipt)."""
    payload = parked.payload if isinstance(parked.payload, dict) else {}
    info, evse = _object_in(payload, "transactionInfo"), _object_in(payload, "evse")
    time_spent_charging_apply(session, _int_in(info, "timeSpentCharging"))
    ended_event_learned(session, _int_in(evse, "id"), _int_in(evse, "connectorId"), _int_in(info, "remoteStartId"))
    if session.reservation_id is None:
        reservation_use(session, _int_in(payload, "reservationId"))
    token = _object_in(payload, "idToken")
    id_tag, token_type = token.get("idToken"), str(token.get("type", ""))
    if isinstance(id_tag, str) and id_tag and session_token_open(session):
        at = parked.stopped_at or parked.received_at  # the tag when the charger took it (``_authorized``)
        status = selectors.id_tag_authorize_at(id_tag=id_tag, token_type=token_type, at=at)[1].status
        session_token_apply(session, id_tag=id_tag, token_type=token_type, status=status)
    sent = payload.get("timestamp")
    stop = charger_time_judged(charger_time_read(sent if isinstance(sent, str) else None), parked.received_at)
    session.charger_stopped_at = stop.kept
    if stop.implausible:
        anomaly_flag(session, Anomaly.CLOCK_IMPLAUSIBLE)


def _object_in(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _int_in(payload: dict[str, Any], key: str) -> int | None:
    value = payload.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**31 else None


def _parked_stop(session: Transaction) -> ReconciliationItem | None:
    """The open item of a stop parked as unknown under ``session``'s 2.0.1 transactionId since
    its charger's last boot (one parked before is an earlier session's: ids that are counters
    restart at a reboot), the latest received: on PostgreSQL one plain statement
    (``kernel.plain_sql``; every new 2.0.1 session under which a stop may be parked looks)."""
    where = {
        "reason": ReconciliationReason.UNKNOWN_TRANSACTION,
        "state": ReconciliationState.OPEN,
        "ocpp_transaction_id": session.ocpp_transaction_id,
    }
    if connection.vendor != "postgresql":
        since_boot = Q(charge_point__last_boot_at__isnull=True) | Q(received_at__gte=F("charge_point__last_boot_at"))
        return ReconciliationItem.objects.filter(since_boot, charge_point_id=session.charge_point_id, **where).first()
    table = connection.ops.quote_name(ReconciliationItem._meta.db_table)
    chargers = connection.ops.quote_name(ChargePoint._meta.db_table)
    found = model_rows(
        ReconciliationItem,
        f"SELECT {columns_of(ReconciliationItem, 'r')} FROM {table} r JOIN {chargers} c ON c.id = r.charge_point_id"
        " WHERE r.charge_point_id = %s AND r.reason = %s AND r.state = %s AND r.ocpp_transaction_id = %s"
        " AND (c.last_boot_at IS NULL OR r.received_at >= c.last_boot_at)"
        " ORDER BY r.received_at DESC LIMIT 1",  # the model's ordering
        [session.charge_point_id, *where.values()],
    )
    return found[0] if found else None


def _event_merge(session: Transaction, request: StartRequest, start: ChargerTime) -> None:
    """A 2.0.1 event that tells its session's start (``_tells_start``) sets it: its time the
    start, its first register reading the meter start (not one of fewer phases than the session's
    register: ``reads_fewer_phases``)."""
    if not _tells_start(session, request, start):
        return
    session.started_at, session.charger_started_at = request.started_at, start.kept
    if reads_fewer_phases(session, request.samples):
        return  # its Begin left a phase out: the reading standing in stays, flagged
    readings = readings_of(request.samples)
    if readings:
        session.meter_start_wh = readings[0].wh
    if readings or not request.baseline_expected:
        anomaly_unflag(session, Anomaly.MISSING_BASELINE)


def _tells_start(session: Transaction, request: StartRequest, start: ChargerTime) -> bool:
    """Whether a 2.0.1 event with a seqNo new to its session (recorded already) sets its start:
    only the first of its events in the charger's sequence (its seqNo the lowest seen), while the
    session's Started has not been seen (it comes first in that sequence).

    Its late Started does, at its time as sent, even one later than the start its overtaking events
    set (one of them stamped far back by a clock glitch); at its receipt (an implausible clock)
    only when earlier. Another event does when earlier than anything seen of the session (the
    Started still to come). One stamped before the start but after it in the sequence (an Updated
    a clock glitch stamped a day back) leaves it: its reading, outside the session, does not count.
    """
    seq_no = request.seq_no
    if seq_no is None or not seq_no_lowest(session.seq_nos, seq_no):
        return False
    if request.started_event and not start.received:
        return request.started_at != session.started_at
    return request.started_at < session.started_at


def _token_check(session: Transaction) -> None:
    """A session on a token the CSMS answered Invalid, Blocked, Expired, ... is billed, and flagged."""
    if session.id_tag and session.id_tag_status and session.id_tag_status != AuthorizationStatus.ACCEPTED:
        anomaly_flag(session, Anomaly.UNAUTHORIZED_TOKEN)


def _stored_start_key(start_key: str) -> str:
    """A start key that fits its column: one built from an over-long id tag becomes its SHA-256."""
    if len(start_key) <= _START_KEY_LENGTH:
        return start_key
    return "sha256:" + hashlib.sha256(start_key.encode()).hexdigest()


_START_KEY_LENGTH: int = Transaction._meta.get_field("start_key").max_length  # type: ignore[assignment]  # a CharField's: looked up once
