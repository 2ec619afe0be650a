"""Sessions an accepted Reset ended whose StopTransaction was lost: closed by a beat sweep.

A charger that accepts a Reset of the whole charger ends its transactions, then reboots (OCPP 1.6
§5.14, 2.0.1 B11/B12). Its StopTransaction (2.0.1 Ended) may be lost on the way down; after the
boot a connector reporting no transaction closes the session at once
(``transaction_end.transactions_close_after_reboot``), but one left ``Unavailable`` (an Inoperative
connector keeps that state across the reboot), ``Faulted`` or ``Finishing`` did not: the session
stayed open. Here (the Resets are commands), closed through ``charging``'s ``stranded_sessions``.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from charging.services import stranded_sessions
from commands.models import Command, CommandState


def transactions_close_after_reset(*, now: datetime | None = None) -> int:
    """Close each session still open that reached the CSMS before its charger accepted a Reset of
    the whole charger (1.6 Soft or Hard; 2.0.1 without ``evse_id``, answered ``Accepted``:
    Immediate ends every transaction, OnIdle is accepted only when none runs; ``Scheduled`` waits
    for them to end), once the charger booted after it and the session's connector (2.0.1: its EVSE)
    has reported since the boot a status with no transaction going on. Closed as after a reboot
    (reason ``Reboot``, ``closed_by_csms``, at the boot; a stop the charger sends later replaces
    it). A connector still silent since the boot, or charging, keeps its session. One statement
    finds them (Resets of the last day, chargers booted since); returns how many were closed."""
    since = (now or timezone.now()) - stranded_sessions.SWEEP_LOOKBACK
    resets = Command.objects.filter(
        charge_point=OuterRef("charge_point"),
        created_at__gte=since,
        action="Reset",
        state=CommandState.ACCEPTED,
        completed_at__gt=OuterRef("created_at"),
        completed_at__lt=OuterRef("charge_point__last_boot_at"),
        request__evse_id__isnull=True,
        response__status="Accepted",
    )
    stranded = Transaction.objects.filter(
        charge_point__in=ChargePoint.objects.filter(last_boot_at__gte=since), status=TransactionStatus.ACTIVE
    ).filter(Exists(resets))
    reported = stranded_sessions.no_transaction_reported
    return stranded_sessions.sessions_closed(list(stranded.values_list("pk", flat=True)), reported)
