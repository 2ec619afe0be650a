"""A billing record of a session for the plain-SQL tests (its figures do not matter to them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from billing.models import BillingRecord
from charging.models import Transaction


def billing_record(session: Transaction, total: str, identity: str, at: datetime) -> BillingRecord:
    """An unsaved ``BillingRecord`` of ``session`` totalling ``total``, started and stopped ``at``."""
    return BillingRecord(
        transaction=session,
        charge_point_identity=identity,
        energy_wh=Decimal(1),
        started_at=at,
        stopped_at=at,
        duration_seconds=0,
        charging_seconds=0,
        idle_seconds=0,
        total=Decimal(total),
    )
