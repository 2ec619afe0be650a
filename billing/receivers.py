"""What billing does when a session ends (``charging.signals``); connected in ``BillingConfig.ready``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.services import billing_record_write
from charging.models import Transaction


def billing_record_on_end(
    sender: Any, *, transaction: Transaction, repriced: bool = False, **kwargs: Any
) -> Decimal | None:
    """Write the ended session's billing record, in the session's transaction; its total (None: no tariff)."""
    return billing_record_write(transaction=transaction, repriced=repriced)
