"""What billing does when a session ends (``charging.signals``) and before a change to which tariff
prices a session; connected in ``BillingConfig.ready``."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from billing import services
from billing.services import billing_record_write
from charging.models import Transaction


def billing_record_on_end(
    sender: Any,
    *,
    transaction: Transaction,
    repriced: bool = False,
    billed_until: datetime | None = None,
    **kwargs: Any,
) -> Decimal | None:
    """Write the ended session's billing record, in the session's transaction; its total (None: no
    tariff). ``billed_until``: the end its time is billed to (None: its stop)."""
    return billing_record_write(transaction=transaction, repriced=repriced, billed_until=billed_until)


def tariffs_kept_before_change(*, raw: bool = False, instance: Any, update_fields: Any = None, **_: Any) -> None:
    """Tariff's and ChargePoint's ``pre_save`` receiver: the open sessions a change could re-price
    keep the tariff they started under (``services.tariffs_kept_before_save``); none for a fixture."""
    if not raw:
        services.tariffs_kept_before_save(instance=instance, update_fields=update_fields)
