"""Sessions their charger can no longer end, whose stop was lost: closed by a beat sweep.

1. A charger that accepts a Reset of the whole charger ends its transactions, then reboots (OCPP
   1.6 §5.14, 2.0.1 B11/B12). Its StopTransaction (2.0.1 Ended) may be lost on the way down; after
   the boot a connector reporting no transaction (``Available``, ``Preparing``, ``Reserved``)
   closes the session at once (``transaction_end.transactions_close_after_reboot``), but one left
   ``Unavailable`` (an Inoperative connector keeps that state across the reboot), ``Faulted`` or
   ``Finishing`` did not: the session stayed open.
2. A charger moved to the other OCPP version (a firmware update from 1.6 to 2.0.1) cannot end a
   session of the version it left, and its statuses, per EVSE, never named a 1.6 session's
   connector: the session stayed open.

The first sweep is ``commands.reset_sessions`` (it reads the Resets recorded as commands), the
second is here; both close through ``session_closed``. Neither adds anything on a charger's
message path nor at a Reset's answer (a write there cost the command round trip a quarter of its
rate, round 46).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.db import transaction as db_transaction
from django.db.models import F
from django.utils import timezone

from chargepoints.models import ChargePoint, Connector
from charging.models import Transaction, TransactionStatus
from charging.services.session_rows import charge_point_locked
from charging.services.transaction_end import transaction_finish
from kernel.sweeps import each_passed_over

logger = logging.getLogger(__name__)

# How far back the sweeps look: chargers booted (and Resets accepted, commands.reset_sessions) in the last day.
SWEEP_LOOKBACK = timedelta(days=1)
# Statuses of a connector whose transaction may go on (a charger that kept it through the Reset).
_TRANSACTION_GOING_ON = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE", "Occupied"})


def transactions_close_after_version_change(*, now: datetime | None = None) -> int:
    """Close each session still open of an OCPP version other than the one its charger is
    connected over, once the charger booted after the session reached the CSMS (a firmware update
    that changed the protocol): as after a reboot (reason ``Reboot``, ``closed_by_csms``, at the
    boot; a stop the charger sends later replaces it). Chargers booted in the last day; returns how many."""
    since = (now or timezone.now()) - SWEEP_LOOKBACK
    moved = ChargePoint.objects.filter(connected=True, last_boot_at__gte=since)
    stranded = (
        Transaction.objects.filter(charge_point__in=moved, status=TransactionStatus.ACTIVE)
        .exclude(ocpp_version=F("charge_point__ocpp_version"))
        .filter(created_at__lt=F("charge_point__last_boot_at"))
    )
    return sessions_closed(list(stranded.values_list("pk", flat=True)), _of_another_version)


def sessions_closed(pks: Iterable[int], still_stranded: Callable[[Transaction, ChargePoint], bool]) -> int:
    """``session_closed`` for each of ``pks``; how many were closed. One whose close raises (a fault in
    its billing, say) is logged and passed over: it ended the sweep, every minute, and each session
    listed after it stayed open for ever."""
    failed = "the stranded sessions' sweep could not close session %s"
    return sum(each_passed_over(pks, lambda pk: session_closed(pk, still_stranded), logger=logger, failed=failed))


def session_closed(pk: int, still_stranded: Callable[[Transaction, ChargePoint], bool]) -> int:
    """Close the session ``pk`` as after a reboot, under its charger's lock, if it is still open,
    reached the CSMS before its charger's last boot and ``still_stranded`` (checked again: a stop
    may have come meanwhile). 1 when closed, else 0."""
    with db_transaction.atomic():
        charge_point_id = Transaction.objects.filter(pk=pk).values_list("charge_point__charge_point_id", flat=True)
        charge_point = charge_point_locked(charge_point_id.get())
        session = Transaction.objects.select_for_update(of=("self",)).get(pk=pk)
        booted_at = charge_point.last_boot_at
        if session.status != TransactionStatus.ACTIVE or booted_at is None or session.created_at >= booted_at:
            return 0
        if not still_stranded(session, charge_point):
            return 0
        transaction_finish(
            session=session,
            stopped_at=max(booted_at, session.started_at),
            meter_stop_wh=None,
            reason="Reboot",
            stop_id_tag="",
            closed_by_csms=True,
        )
        return 1


def _of_another_version(session: Transaction, charge_point: ChargePoint) -> bool:
    return session.ocpp_version != charge_point.ocpp_version


def no_transaction_reported(session: Transaction, charge_point: ChargePoint) -> bool:
    """Whether the session's connector (a 2.0.1 session's EVSE: each of its connectors) reported a
    status since the boot, none of them one of a transaction going on."""
    connectors = Connector.objects.filter(charge_point=charge_point, updated_at__gte=charge_point.last_boot_at)
    if session.evse_id is not None:
        connectors = connectors.filter(evse_id=session.evse_id)
    elif session.connector_id is not None:
        connectors = connectors.filter(connector_id=session.connector_id, evse_id__isnull=True)
    else:
        return False
    statuses = set(connectors.values_list("status", flat=True))
    return bool(statuses) and not statuses & _TRANSACTION_GOING_ON
