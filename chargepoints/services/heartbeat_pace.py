"""The pace at which a charger heartbeats, and which the offline sweep waits for.

The integration guide's rule ("Heartbeat monitoring"): a charger is offline when no heartbeat came
within 2x its configured interval. A charger adopts a new interval when a push is answered
Accepted (1.6 ChangeConfiguration ``HeartbeatInterval`` §5.3, 2.0.1 SetVariables
``OCPPCommCtrlr.HeartbeatInterval`` B05) or from its next BootNotification answer (1.6 §4.2, 2.0.1
B01), which carries ``heartbeat_interval``. Until then (a push answered RebootRequired or refused,
a record changed while the charger was away) it keeps the interval it had,
``previous_heartbeat_interval``, and the sweep waits for the longer of the two. Every boot clears
it, in the statement that reads the interval its answer carries (``fleet``, ``boot_writes``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.db import transaction
from django.db.models import Case, F, PositiveIntegerField, Q, Value, When
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from chargepoints.models import HEARTBEAT_INTERVAL_MAX, HEARTBEAT_INTERVAL_MIN, ChargePoint

logger = logging.getLogger(__name__)

# The interval (s) the offline sweep waits 2x for: the longest of the stored one, one still kept
# until the charger takes it, one a configuration read found it keeping, and one a push left
# unanswered may have set (until the read owed settles it).
EXPECTED_HEARTBEAT_INTERVAL = Greatest(
    F("heartbeat_interval"),
    Coalesce(F("previous_heartbeat_interval"), Value(0)),
    Coalesce(F("reported_heartbeat_interval"), Value(0)),
    Coalesce(F("unconfirmed_heartbeat_interval"), Value(0)),
    output_field=PositiveIntegerField(),
)


def heartbeat_interval_of(value: str) -> int | None:
    """The heartbeat interval (s) ``value`` (a configuration value's text) sets: a whole number of
    seconds from 1 to 86,400 (the API's bounds); None for any other text, which the CSMS keeps not."""
    interval = int(value) if value.isascii() and value.isdigit() else None
    if interval is None or not HEARTBEAT_INTERVAL_MIN <= interval <= HEARTBEAT_INTERVAL_MAX:
        return None
    return interval


def heartbeat_interval_stored(*, charge_point: ChargePoint, interval: int) -> None:
    """Store ``interval`` (s) as the charger's ``heartbeat_interval``, one the charger has not taken
    yet: the interval it keeps until then is kept too, and an earlier push whose answer did not come
    back (``unconfirmed_heartbeat_interval``) is forgotten: a read reporting it no longer makes it the
    record over this one. One UPDATE of the row (the interval kept is the one before the first change
    it has not taken); the instance follows."""
    _stored_not_taken(charge_point.pk, interval)
    charge_point.refresh_from_db(fields=["heartbeat_interval", "previous_heartbeat_interval", "updated_at"])


def charge_point_heartbeat_interval_taken(*, charge_point: ChargePoint, value: str, after_reboot: bool = False) -> None:
    """The charger answered a command of the CSMS setting ``value`` (text, as sent: s) as its
    heartbeat interval: Accepted (``after_reboot`` False), or RebootRequired (True). The charger's
    record follows, so that the next BootNotification's answer, whose ``interval`` the charger
    adopts, does not undo the change. Accepted: the charger heartbeats at ``value`` from now on.
    RebootRequired: it keeps its interval until that boot, and the offline sweep waits for the
    longer of the two meanwhile.

    Written once the caller's transaction commits, by a statement of its own: that transaction holds
    the configuration's rows, and taking the charger's row after them would lock in the opposite
    order of the writes that take the charger's first. A value that is not a whole number of seconds
    from 1 to 86,400 (the API's bounds) leaves the record, and is logged (WARNING)."""
    interval = heartbeat_interval_of(value)
    if interval is None:
        logger.warning(
            "%s took HeartbeatInterval %r, not a whole number of seconds from %d to %d: its heartbeat_interval"
            " stays %d s",
            charge_point.charge_point_id,
            value,
            HEARTBEAT_INTERVAL_MIN,
            HEARTBEAT_INTERVAL_MAX,
            charge_point.heartbeat_interval,
        )
        return
    pk = charge_point.pk
    written = _stored_not_taken if after_reboot else _taken_now
    transaction.on_commit(lambda: written(pk, interval), robust=True)


def charge_point_heartbeat_interval_unconfirmed(*, charge_point: ChargePoint, value: str) -> None:
    """A command of the CSMS setting ``value`` (text, as sent: s) as the charger's heartbeat interval
    left and its answer did not come back (a timeout): the charger heartbeats at it, or at the one
    it had. The record is not changed on a guess: the interval is kept as
    ``unconfirmed_heartbeat_interval``, which the offline sweep waits for when longer, until the
    configuration read owed settles it (``heartbeat_intervals_reported``). Written once the
    caller's transaction commits, as ``charge_point_heartbeat_interval_taken``; a value
    ``heartbeat_interval_of`` does not keep changes nothing."""
    interval = heartbeat_interval_of(value)
    if interval is None:
        return
    pk = charge_point.pk
    transaction.on_commit(
        lambda: ChargePoint.objects.filter(pk=pk).update(
            unconfirmed_heartbeat_interval=interval, updated_at=timezone.now()
        ),
        robust=True,
    )


def heartbeat_intervals_reported(*, reported: Mapping[int, str]) -> None:
    """The interval each charger (its pk -> the value it reported, text, s) says it heartbeats at, read
    from its configuration: 1.6 GetConfiguration ``HeartbeatInterval`` (§9.1.10), 2.0.1
    ``OCPPCommCtrlr.HeartbeatInterval`` (Actual) of a report. A charger may keep its own whatever
    the BootNotification answer says (a read-only key, a firmware that ignores the answer's
    interval): one it reports other than its ``heartbeat_interval`` is kept as the interval it keeps,
    ``reported_heartbeat_interval``, which the offline sweep waits for when longer (else it was marked
    offline, and back online at its next heartbeat, every cycle); reporting the stored one clears it.
    A boot leaves it (such a charger ignores the boot answer's interval; a boot of the same firmware
    reads no configuration again, ``configuration.changes``).
    A read giving the interval a push left unanswered may have set (``unconfirmed_heartbeat_interval``)
    confirms the charger took it: it is the charger's ``heartbeat_interval`` from now, as if the push
    had been answered Accepted (``_taken_now``); a read giving another clears it.
    A value ``heartbeat_interval_of`` does not keep changes nothing.

    Written once the caller's transaction commits, by one UPDATE of its own (the configuration's
    rows before the chargers', as ``charge_point_heartbeat_interval_taken`` explains)."""
    intervals = {pk: taken for pk, value in reported.items() if (taken := heartbeat_interval_of(value)) is not None}
    if intervals:
        transaction.on_commit(lambda: _kept_reported(intervals), robust=True)


def _kept_reported(intervals: dict[int, int]) -> None:
    reported = Case(
        *(When(pk=pk, then=Value(interval)) for pk, interval in intervals.items()),
        output_field=PositiveIntegerField(),
    )
    confirmed = Q(unconfirmed_heartbeat_interval=reported)  # the unanswered push was taken
    kept = Case(When(confirmed | Q(heartbeat_interval=reported), then=Value(None)), default=reported)
    ChargePoint.objects.filter(pk__in=intervals).update(
        heartbeat_interval=Case(When(confirmed, then=reported), default=F("heartbeat_interval")),
        previous_heartbeat_interval=Case(When(confirmed, then=Value(None)), default=F("previous_heartbeat_interval")),
        reported_heartbeat_interval=kept,
        unconfirmed_heartbeat_interval=None,
        updated_at=timezone.now(),
    )


def _taken_now(pk: int, interval: int) -> None:
    unchanged = Q(
        heartbeat_interval=interval,
        previous_heartbeat_interval=None,
        reported_heartbeat_interval=None,
        unconfirmed_heartbeat_interval=None,
    )
    ChargePoint.objects.filter(pk=pk).exclude(unchanged).update(
        heartbeat_interval=interval,
        previous_heartbeat_interval=None,
        reported_heartbeat_interval=None,
        unconfirmed_heartbeat_interval=None,
        updated_at=timezone.now(),
    )


def _stored_not_taken(pk: int, interval: int) -> None:
    ChargePoint.objects.filter(pk=pk).exclude(heartbeat_interval=interval).update(
        previous_heartbeat_interval=Coalesce(F("previous_heartbeat_interval"), F("heartbeat_interval")),
        heartbeat_interval=interval,
        unconfirmed_heartbeat_interval=None,  # a push left unanswered before is no longer the one owed
        updated_at=timezone.now(),
    )
