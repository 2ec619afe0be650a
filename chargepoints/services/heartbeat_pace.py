"""The pace at which a charger heartbeats, and which the offline sweep waits for.

The contract (docs page, "How chargers connect"): a charger is offline when no heartbeat came
within 2x its configured interval. A charger adopts a new interval when a push is answered
Accepted (1.6 ChangeConfiguration ``HeartbeatInterval`` §5.3, 2.0.1 SetVariables
``OCPPCommCtrlr.HeartbeatInterval`` B05) or from its next BootNotification answer (1.6 §4.2, 2.0.1
B01). Until then (a push answered RebootRequired, refused, or a record changed while the charger
was away) it keeps its previous interval, and the sweep waits for the longer of the two.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Case, F, Q, When
from django.utils import timezone

from chargepoints.models import HEARTBEAT_INTERVAL_MAX, HEARTBEAT_INTERVAL_MIN, ChargePoint

logger = logging.getLogger(__name__)

# A charger still may keep ``previous_heartbeat_interval``: it has not booted since the change.
PREVIOUS_INTERVAL_KEPT = Q(previous_heartbeat_interval__isnull=False) & (
    Q(last_boot_at__isnull=True) | Q(last_boot_at__lte=F("heartbeat_interval_changed_at"))
)
# The interval (s) the offline sweep waits 2x for: the longer of the stored one and one still kept.
EXPECTED_HEARTBEAT_INTERVAL = Case(
    When(
        PREVIOUS_INTERVAL_KEPT & Q(previous_heartbeat_interval__gt=F("heartbeat_interval")),
        then=F("previous_heartbeat_interval"),
    ),
    default=F("heartbeat_interval"),
)


def previous_heartbeat_interval_kept(charge_point: ChargePoint) -> bool:
    """Whether the charger may still heartbeat at ``previous_heartbeat_interval`` (Python's
    ``PREVIOUS_INTERVAL_KEPT``)."""
    return charge_point.previous_heartbeat_interval is not None and (
        charge_point.last_boot_at is None
        or charge_point.heartbeat_interval_changed_at is None
        or charge_point.last_boot_at <= charge_point.heartbeat_interval_changed_at
    )


def heartbeat_interval_stored(*, charge_point: ChargePoint, interval: int, at: datetime) -> list[str]:
    """Set ``interval`` (s) on the instance, not saved, as an operator's change the charger has not
    taken yet: its previous interval is kept until it takes this one or boots. Returns the fields
    to save (none when ``interval`` is the stored one)."""
    if interval == charge_point.heartbeat_interval:
        return []
    if not previous_heartbeat_interval_kept(charge_point):
        charge_point.previous_heartbeat_interval = charge_point.heartbeat_interval
    charge_point.heartbeat_interval, charge_point.heartbeat_interval_changed_at = interval, at
    return ["heartbeat_interval", "previous_heartbeat_interval", "heartbeat_interval_changed_at"]


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
    interval = int(value) if value.isascii() and value.isdigit() else None
    if interval is None or not HEARTBEAT_INTERVAL_MIN <= interval <= HEARTBEAT_INTERVAL_MAX:
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
    written = _taken_after_reboot if after_reboot else _taken_now
    transaction.on_commit(lambda: written(pk, interval), robust=True)


def _taken_now(pk: int, interval: int) -> None:
    ChargePoint.objects.filter(pk=pk).exclude(heartbeat_interval=interval, previous_heartbeat_interval=None).update(
        heartbeat_interval=interval,
        previous_heartbeat_interval=None,
        heartbeat_interval_changed_at=None,
        updated_at=timezone.now(),
    )


def _taken_after_reboot(pk: int, interval: int) -> None:
    now = timezone.now()
    ChargePoint.objects.filter(pk=pk).exclude(heartbeat_interval=interval).update(
        previous_heartbeat_interval=Case(
            When(PREVIOUS_INTERVAL_KEPT, then=F("previous_heartbeat_interval")), default=F("heartbeat_interval")
        ),
        heartbeat_interval=interval,
        heartbeat_interval_changed_at=now,
        updated_at=now,
    )
