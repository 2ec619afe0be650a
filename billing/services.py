"""Writing billing records when sessions end."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import ProtectedError

from billing import events, pricing, selectors
from billing.models import BillingRecord, SessionTariff, Tariff
from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from kernel.model_instances import instance_new
from kernel.money import round_money
from kernel.plain_sql import instance_upserted, row_upserted
from webhooks.models import EventType
from webhooks.services import webhook_event_emit, webhook_event_may_have_subscribers


class TariffInUse(Exception):
    def __init__(self, tariff: Tariff) -> None:
        super().__init__(f"Tariff {tariff.pk} is used by charge points or billing records; set its valid_to instead.")
        self.tariff_id = tariff.pk


# What a billing record's prices come from: fixed once a record was priced with the tariff (a
# session re-priced later, by a late event or stop, must cost what it cost).
PRICING_FIELDS = (
    "currency",
    "price_per_kwh",
    "price_per_minute",
    "session_fee",
    "idle_fee_per_minute",
    "idle_grace_minutes",
    "valid_from",
)


class TariffPricesFixed(Exception):
    """A change to the prices (``PRICING_FIELDS``) of a tariff that priced billing records or
    prices an open session (``tariff_prices_fixed``)."""

    def __init__(self, tariff: Tariff, fields: list[str]) -> None:
        super().__init__(
            f"Tariff {tariff.pk} priced billing records or prices an open session: its {', '.join(fields)}"
            " cannot change; set its valid_to and create a new tariff."
        )
        self.tariff_id = tariff.pk
        self.fields = fields


def tariff_save(*, tariff: Tariff | None = None, **fields: Any) -> Tariff:
    """Create a tariff (``tariff`` None) or change one. Raises ``TariffPricesFixed`` for a change of
    a tariff's prices once it priced a billing record or an open session started under it (its name,
    validity end and default flag may change). A change sets ``fields`` on the tariff's row as it
    stands, locked: saved as its caller read it (an admin page open for a while), a change of its
    name put back the ``valid_to`` or ``is_default`` another request had just given it."""
    tariff = tariff or Tariff()
    with transaction.atomic():
        current = Tariff.objects.select_for_update().filter(pk=tariff.pk).first() if tariff.pk is not None else None
        if current is not None:
            for field in Tariff._meta.concrete_fields:
                setattr(tariff, field.attname, getattr(current, field.attname))
        changed = [name for name in PRICING_FIELDS if name in fields and fields[name] != getattr(tariff, name)]
        fixed = tariff_prices_fixed(tariff=tariff, changed=changed)
        if fixed:
            raise TariffPricesFixed(tariff, fixed)
        for name, value in fields.items():
            setattr(tariff, name, value)
        tariff.save()
    return tariff


def tariff_prices_fixed(*, tariff: Tariff, changed: list[str]) -> list[str]:
    """Which of ``changed`` (``PRICING_FIELDS`` names) the tariff's must keep: all once it priced a
    billing record (a late event re-prices with it); its prices (not ``valid_from``: the sessions it
    prices keep it, ``tariffs_kept_before_save``) while an open session started under it, which is
    billed at the prices it started with. Reads only for a change of a saved tariff's prices, an
    operator's (the open sessions then: ``selectors.open_sessions_started_under``)."""
    if tariff.pk is None or not changed:
        return []
    if BillingRecord.objects.filter(tariff=tariff).exists():
        return changed
    prices = [name for name in changed if name != "valid_from"]
    return prices if prices and selectors.open_sessions_started_under(tariff_ids={tariff.pk}) else []


def tariff_delete(*, tariff: Tariff) -> None:
    """Remove a tariff nothing refers to: billing records keep the tariff they were priced with, and
    open sessions the tariff they started under (``open_session_tariffs_kept``)."""
    try:
        with transaction.atomic():
            open_session_tariffs_kept()
            tariff.delete()
    except ProtectedError:
        raise TariffInUse(tariff) from None


def open_session_tariffs_kept(*, charge_point_pk: int | None = None) -> None:
    """Keep, for every open session (of the charger ``charge_point_pk``, else of every charger) that
    has none kept yet, the tariff it started under as committed now (``SessionTariff``): called in
    the database transaction of a change to which tariff applies, before it is saved. A session is
    billed with the tariff valid at its start (README, "Id tags and tariffs"): a charger given another
    tariff, or a new default, mid-session must not re-price the part already charged at the old
    prices. One read of the open sessions and one insert, at an operator's change, never at a stop;
    the kept tariffs of sessions ended since are removed (their billing records name theirs), so the
    table holds about the sessions open at the last change, however many changes there were. A
    session started under no tariff keeps none (a row without one): a default created mid-session
    does not price it."""
    SessionTariff.objects.exclude(transaction__status=TransactionStatus.ACTIVE).delete()
    kept = SessionTariff.objects.values("transaction_id")
    sessions = Transaction.objects.filter(status=TransactionStatus.ACTIVE).exclude(pk__in=kept)
    if charge_point_pk is not None:
        sessions = sessions.filter(charge_point_id=charge_point_pk)
    started = list(sessions.values_list("pk", "charge_point_id", "started_at"))
    if not started:
        return
    own_ids, tariffs = selectors.tariffs_read()
    chosen = ((pk, selectors.tariff_chosen(tariffs, own_ids.get(cp_pk), at)) for pk, cp_pk, at in started)
    rows = [SessionTariff(transaction_id=pk, tariff_id=tariff.pk if tariff else None) for pk, tariff in chosen]
    SessionTariff.objects.bulk_create(rows, ignore_conflicts=True)


# A tariff's fields that decide which sessions it prices (``selectors.tariff_for``).
_CHOICE_FIELDS = ("is_default", "valid_from", "valid_to")


def tariffs_kept_before_save(*, instance: Tariff | ChargePoint, update_fields: Iterable[str] | None) -> None:
    """Before a save that changes which tariff prices a session (a charger's own tariff; a tariff's
    default flag or validity, a new default), the open sessions it could re-price keep theirs
    (``open_session_tariffs_kept``). Any other save (a charger's presence, a tariff's name, a new
    charger) reads nothing, or the row it changes."""
    if isinstance(instance, ChargePoint):
        if instance.pk is None or (update_fields is not None and not {"tariff", "tariff_id"} & set(update_fields)):
            return
        own = list(ChargePoint.objects.filter(pk=instance.pk).values_list("tariff_id", flat=True))
        if own and own[0] != instance.tariff_id:
            open_session_tariffs_kept(charge_point_pk=instance.pk)
        return
    if instance.pk is None:
        if instance.is_default:  # a new default
            open_session_tariffs_kept()
        return
    fields = [name for name in _CHOICE_FIELDS if update_fields is None or name in update_fields]
    before = Tariff.objects.filter(pk=instance.pk).values(*fields).first() if fields else None
    if before is not None and any(before[name] != getattr(instance, name) for name in fields):
        open_session_tariffs_kept()


# The largest whole total the record holds (in every currency): a larger one (a price of 999,999 a
# minute for weeks) is recorded as this and needs review, instead of failing for ever the stop that
# ends the session.
_TOTAL_FIELD = BillingRecord._meta.get_field("total")
_TOTAL_MAX = Decimal(10) ** (_TOTAL_FIELD.max_digits - _TOTAL_FIELD.decimal_places) - 1


def billing_record_write(
    *, transaction: Transaction, repriced: bool = False, billed_until: datetime | None = None
) -> Decimal | None:
    """Price an ended session with the tariff valid at its start; call in the ending DB transaction.
    Returns the record's total (in its currency's units, ``Decimal("1.90")``), None without a tariff
    (the total then says nothing: not free, not priced).

    A session finished again (``repriced``: a charger's late stop after the CSMS closed it, a late
    event) has its record rewritten with the tariff that priced it, whatever the charger's tariff,
    the tariffs' validity or default are now (its prices cannot change: ``tariff_save``); one no
    tariff priced stays unpriced (a default created since the end does not price it). Without a
    tariff the record has no currency, a zero total and needs review.
    ``billed_until``: the end the session's time (duration, charging and idle time) is billed to, None:
    its stop; a session the CSMS closed itself is billed to its last evidence
    (``charging.services.transaction_end._last_evidence``), the record keeping the session's stop.
    Nobody subscribed to hear of it (most stops), on PostgreSQL: the record is one row of values
    (``kernel.plain_sql.row_upserted``), gathered with the rest of the group commit's batch, no
    model instance built (issue 15).
    """
    assert transaction.stopped_at is not None
    charge_point = transaction.charge_point
    billed, tariff = selectors.tariff_billed(transaction=transaction) if repriced else (False, None)
    if not billed:  # a record priced with none stays so: a default created since does not price it
        started_at = transaction.started_at
        tariff = selectors.tariff_for(charge_point=charge_point, at=started_at, transaction_pk=transaction.pk)
    billed_end = transaction.stopped_at if billed_until is None else billed_until
    duration = max(int((billed_end - transaction.started_at).total_seconds()), 0)
    # 2.0.1 timeSpentCharging is in idle_seconds already (``charging.services.transaction_end._idle_seconds``)
    idle = min(transaction.idle_seconds, duration)
    charging = duration - idle
    energy = transaction.energy_wh or Decimal(0)
    # Without a tariff nothing is priced: no line items, a zero total (the record needs review).
    priced = (
        pricing.price_session(_terms(tariff), energy_wh=energy, charging_seconds=charging, idle_seconds=idle)
        if tariff
        else None
    )
    total = min(priced.total, _TOTAL_MAX) if priced else Decimal("0.00")
    columns = {
        "charge_point_identity": charge_point.charge_point_id,
        "id_tag": transaction.id_tag,
        "currency": tariff.currency if tariff else "",
        "energy_wh": energy,
        "started_at": transaction.started_at,
        "stopped_at": transaction.stopped_at,
        "duration_seconds": duration,
        "charging_seconds": charging,
        "idle_seconds": idle,
        "line_items": [line.as_json() for line in priced.line_items] if priced else [],
        "total": total,
        "needs_review": tariff is None or transaction.needs_review or bool(priced and priced.total > _TOTAL_MAX),
    }
    subscribed = webhook_event_may_have_subscribers(event_type=EventType.BILLING_RECORD_CREATED)
    if not subscribed and connection.vendor == "postgresql":
        row_upserted(
            BillingRecord,
            {**columns, "transaction_id": transaction.pk, "tariff_id": tariff.pk if tariff else None},
            conflict="transaction_id",
            kept=("created_at",),
            may_gather=True,
        )
        return total if tariff else None
    # BillingRecord(...) without its keyword loop over every field
    record = instance_new(BillingRecord, transaction=transaction, tariff=tariff, **columns)
    told = _told_before(transaction) if subscribed and repriced else None
    _record_written(record)
    if subscribed:
        data = events.billing_record_created(record)
        if data != told:  # a re-price that changes nothing the event tells is no new record to announce
            webhook_event_emit(event_type=EventType.BILLING_RECORD_CREATED, data=data)
    return record.total if tariff else None


def _told_before(transaction: Transaction) -> dict[str, Any] | None:
    """The ``billing_record.created`` data the session's record gave before it is re-priced (None:
    it has none): one statement, for a session finished again with a subscriber only (a late
    event of an ended session mostly changes nothing its record tells, and is then not sent again)."""
    previous = BillingRecord.objects.filter(transaction_id=transaction.pk).first()
    return events.billing_record_created(previous) if previous is not None else None


def _record_written(record: BillingRecord) -> None:
    """``update_or_create`` of the session's record, as one ``INSERT ... ON CONFLICT`` on
    PostgreSQL (its id read back, for the event that names it)."""
    if connection.vendor != "postgresql":
        fields = [field.name for field in BillingRecord._meta.concrete_fields if not field.primary_key]
        defaults = {name: getattr(record, name) for name in fields if name not in ("transaction", "created_at")}
        record.pk = BillingRecord.objects.update_or_create(transaction=record.transaction, defaults=defaults)[0].pk
        return
    instance_upserted(record, conflict="transaction_id", kept=("created_at",))


def _terms(tariff: Tariff) -> pricing.TariffTerms:
    return pricing.TariffTerms(
        currency=tariff.currency,
        price_per_kwh=tariff.price_per_kwh,
        price_per_minute=tariff.price_per_minute,
        session_fee=round_money(tariff.session_fee, tariff.currency),  # 3 decimals kept: "0.50" EUR, "250" JPY
        idle_fee_per_minute=tariff.idle_fee_per_minute,
        idle_grace_minutes=tariff.idle_grace_minutes,
    )
