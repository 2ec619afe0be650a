"""Resolving parked stops: an operator attaches one to a transaction or discards it."""

from __future__ import annotations

from django.db import transaction as db_transaction
from django.utils import timezone

from charging.models import (
    MeterSample,
    ReconciliationItem,
    ReconciliationState,
    Transaction,
    TransactionStatus,
)
from charging.services.session_rows import column_int, time_spent_charging_apply
from charging.services.transaction_end import transaction_finish
from kernel.plain_sql import gathered_rows_written


class ReconciliationError(Exception):
    pass


def reconciliation_item_attach(*, item: ReconciliationItem, transaction: Transaction, user_id: int | None) -> None:
    """Attach a parked stop to ``transaction``.

    A session still open, or one the CSMS closed itself, is ended with the stop's data (and
    billed); an ended session is only linked, for the record.
    """
    with db_transaction.atomic():
        item = ReconciliationItem.objects.select_for_update().get(pk=item.pk)
        if item.state != ReconciliationState.OPEN:
            raise ReconciliationError(f"Item {item.pk} is already {item.state}.")
        gathered_rows_written(Transaction)  # a save gathered for the group commit's batch, read through the ORM
        session = (
            Transaction.objects.select_for_update(of=("self",)).select_related("charge_point").get(pk=transaction.pk)
        )
        if session.charge_point_id != item.charge_point_id:
            raise ReconciliationError(f"Transaction {session.pk} belongs to another charge point.")
        if session.status == TransactionStatus.ACTIVE or session.closed_by_csms:
            MeterSample.objects.filter(reconciliation_item=item, transaction__isnull=True).update(
                transaction=session, connector_id=session.connector_id, evse_id=session.evse_id
            )
            spent = _time_spent_charging(item)
            time_spent_charging_apply(session, spent)
            transaction_finish(
                session=session,
                stopped_at=item.stopped_at or timezone.now(),
                meter_stop_wh=item.meter_stop_wh,
                reason=item.stop_reason,
                stop_id_tag=item.id_tag,
                time_spent_charging_final=spent is not None,
            )
        _resolve(item, ReconciliationState.ATTACHED, user_id, transaction=session)


def _time_spent_charging(item: ReconciliationItem) -> int | None:
    """The ``timeSpentCharging`` a parked 2.0.1 Ended sent (its session's charging time), else None."""
    info = item.payload.get("transactionInfo") if isinstance(item.payload, dict) else None
    spent = info.get("timeSpentCharging") if isinstance(info, dict) else None
    return column_int(spent) if isinstance(spent, int) and not isinstance(spent, bool) else None


def reconciliation_item_discard(*, item: ReconciliationItem, user_id: int | None, note: str = "") -> None:
    with db_transaction.atomic():
        item = ReconciliationItem.objects.select_for_update().get(pk=item.pk)
        if item.state != ReconciliationState.OPEN:
            raise ReconciliationError(f"Item {item.pk} is already {item.state}.")
        _resolve(item, ReconciliationState.DISCARDED, user_id, note=note)


def _resolve(
    item: ReconciliationItem, state: str, user_id: int | None, transaction: Transaction | None = None, note: str = ""
) -> None:
    item.state = state
    item.resolved_at = timezone.now()
    item.resolved_by_id = user_id
    if transaction is not None:
        item.transaction = transaction
    if note:
        item.note = note
    item.save(update_fields=["state", "resolved_at", "resolved_by", "transaction", "note"])
