"""The ``data`` of the webhook events billing emits (README, "Webhooks"); see chargepoints/events.py."""

from __future__ import annotations

from typing import Any

from billing.models import BillingRecord
from kernel.money import round_money
from kernel.serializers import wh_number
from webhooks.models import EventType
from webhooks.services import iso_utc


def billing_record_created(record: BillingRecord) -> dict[str, Any]:
    """billing_record.created: the priced session (``total`` a decimal string in ``currency``); ``id_tag``
    null when none came (a 2.0.1 session without an idToken), as in its transaction.* events."""
    return {
        "billing_record_id": record.pk,
        "transaction_id": record.transaction_id,
        "charge_point_id": record.charge_point_identity,
        "id_tag": record.id_tag or None,
        "currency": record.currency or None,
        "energy_wh": wh_number(record.energy_wh),
        "total": str(round_money(record.total, record.currency)),
        "line_items": record.line_items,
        "stopped_at": iso_utc(record.stopped_at),
        "needs_review": record.needs_review,
    }


EVENT_BUILDERS = {EventType.BILLING_RECORD_CREATED: billing_record_created}
