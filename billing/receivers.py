"""What billing does when a session ends (``charging.signals``) and before a change to which tariff
prices a session; connected in ``BillingConfig.ready``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing import services
from billing.models import Tariff
from billing.services import billing_record_write
from chargepoints.models import ChargePoint
from charging.models import Transaction

# A tariff's fields that decide which sessions it prices (``selectors.tariff_for``).
_CHOICE_FIELDS = ("is_default", "valid_from", "valid_to")


def billing_record_on_end(
    sender: Any, *, transaction: Transaction, repriced: bool = False, **kwargs: Any
) -> Decimal | None:
    """Write the ended session's billing record, in the session's transaction; its total (None: no tariff)."""
    return billing_record_write(transaction=transaction, repriced=repriced)


def tariffs_kept_before_change(
    *, sender: Any, instance: Any, raw: bool = False, update_fields: Any = None, **_: Any
) -> None:
    """Tariff's and ChargePoint's ``pre_save`` receiver: before a change to which tariff prices a
    session (a charger's own tariff; a tariff's default flag or validity, a new default), the open
    sessions it could re-price keep theirs (``open_session_tariffs_kept``). Any other save (a
    charger's presence, a tariff's name) reads nothing."""
    if raw or instance.pk is None:
        if not raw and sender is Tariff and instance.is_default:  # a new default
            services.open_session_tariffs_kept()
        return
    if sender is ChargePoint:
        if update_fields is not None and not {"tariff", "tariff_id"} & set(update_fields):
            return
        own = list(ChargePoint.objects.filter(pk=instance.pk).values_list("tariff_id", flat=True))
        if own and own[0] != instance.tariff_id:
            services.open_session_tariffs_kept(charge_point_pk=instance.pk)
        return
    fields = _CHOICE_FIELDS if update_fields is None else [name for name in _CHOICE_FIELDS if name in update_fields]
    before = Tariff.objects.filter(pk=instance.pk).values(*fields).first() if fields else None
    if before is not None and any(before[name] != getattr(instance, name) for name in fields):
        services.open_session_tariffs_kept()
