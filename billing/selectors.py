"""Reads of billing: which tariff applies, and the billing records."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Lower
from django.db.models.signals import post_save

from billing.models import BillingRecord, SessionTariff, Tariff
from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from kernel import cache_changes
from kernel.plain_sql import columns_of, gathered_rows_written, model_rows


def _valid_at(at: datetime) -> Q:
    return (Q(valid_from__isnull=True) | Q(valid_from__lte=at)) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))


def tariff_billed(*, transaction: Transaction) -> tuple[bool, Tariff | None]:
    """Whether the session has a billing record, and the tariff that priced it (None: none did, its
    record is unpriced). One statement, for a session finished again (rare); the batch's gathered
    record written first, so that a re-price in the batch that ended the session sees it."""
    gathered_rows_written(BillingRecord)
    found = BillingRecord.objects.filter(transaction_id=transaction.pk).select_related("tariff").first()
    return (True, found.tariff) if found is not None else (False, None)


def billed_total(*, transaction_id: int) -> Decimal | None:
    """The total of the session's billing record (in its currency's units) when a tariff priced it;
    None without a record or a tariff on it (its 0.00 then says nothing). One statement."""
    gathered_rows_written(BillingRecord)  # a record the batch wrote ahead of the read
    return (
        BillingRecord.objects.filter(transaction_id=transaction_id, tariff__isnull=False)
        .values_list("total", flat=True)
        .first()
    )


def tariff_for(*, charge_point: ChargePoint, at: datetime, transaction_pk: int | None = None) -> Tariff | None:
    """The charger's own tariff if valid at ``at``, else the default tariff valid then (also for a
    charger whose row is gone, e.g. deleted while its session was being stopped). For a session
    (``transaction_pk``) whose tariff an operator's change kept (``SessionTariff``), that one, or
    none if it started under none (a default created since does not price it).

    Among several valid defaults the one that became valid last wins.

    Asked at every stop. A gateway process answers from the tariffs it keeps (``_tariffs_kept``:
    no statement); any other, one plain statement on PostgreSQL, the ORM's two elsewhere.
    """
    kept = _tariffs_kept()
    if kept is not None:
        own_ids, tariffs, kept_for = kept
        if transaction_pk in kept_for:
            pinned = kept_for[transaction_pk]
            return next((tariff for tariff in tariffs if tariff.pk == pinned), None)
        return tariff_chosen(tariffs, own_ids.get(charge_point.pk), at)
    if connection.vendor == "postgresql":  # one plain statement (issue 15)
        # The charger's tariff_id as committed, read here: a stop's charger row may be only its id
        # and identity (``charging.services.session_rows.charge_point_named``); none if the row is gone.
        found = model_rows(
            Tariff,
            f"SELECT {columns_of(Tariff, 't')} FROM {Tariff._meta.db_table} t"
            f" LEFT JOIN (SELECT tariff_id FROM {ChargePoint._meta.db_table} WHERE id = %s) c ON true"
            # s.kept: a row kept for the session, whose tariff_id is null if it started under none
            f" LEFT JOIN (SELECT tariff_id, true AS kept FROM {SessionTariff._meta.db_table}"
            " WHERE transaction_id = %s) s ON true"
            " WHERE t.id = s.tariff_id OR (s.kept IS NULL"
            " AND (t.valid_from IS NULL OR t.valid_from <= %s) AND (t.valid_to IS NULL OR t.valid_to > %s)"
            " AND (t.id = c.tariff_id OR t.is_default))"
            " ORDER BY COALESCE(t.id = c.tariff_id, false) DESC, t.valid_from DESC NULLS LAST, t.created_at DESC"
            " LIMIT 1",
            [charge_point.pk, transaction_pk, at, at],
        )
        return found[0] if found else None
    if transaction_pk is not None:
        kept_row = SessionTariff.objects.filter(transaction_id=transaction_pk).select_related("tariff").first()
        if kept_row is not None:
            return kept_row.tariff
    if charge_point.tariff_id is not None:
        own = Tariff.objects.filter(_valid_at(at), pk=charge_point.tariff_id).first()
        if own is not None:
            return own
    return (
        Tariff.objects.filter(_valid_at(at), is_default=True)
        .order_by(F("valid_from").desc(nulls_last=True), "-created_at")
        .first()
    )


def open_sessions_started_under(*, tariff_ids: set[int]) -> list[Transaction]:
    """The open sessions a tariff of ``tariff_ids`` prices (the one kept for each, ``SessionTariff``,
    else the one ``tariff_for`` chooses at its start): what protects those tariffs from deletion
    (``services.tariff_delete`` keeps theirs first). Reads only: three statements."""
    kept = dict(
        SessionTariff.objects.filter(transaction__status=TransactionStatus.ACTIVE).values_list(
            "transaction_id", "tariff_id"
        )
    )
    sessions = list(Transaction.objects.filter(status=TransactionStatus.ACTIVE).select_related("charge_point"))
    if not sessions:
        return []
    own_ids, tariffs = tariffs_read()

    def pricing(session: Transaction) -> int | None:
        if session.pk in kept:
            return kept[session.pk]
        chosen = tariff_chosen(tariffs, own_ids.get(session.charge_point_id), session.started_at)
        return chosen.pk if chosen is not None else None

    return [session for session in sessions if pricing(session) in tariff_ids]


def tariff_chosen(tariffs: tuple[Tariff, ...], own_id: int | None, at: datetime) -> Tariff | None:
    """``tariff_for``'s choice among ``tariffs`` (every one there is) for a charger whose own
    tariff is ``own_id``: the statement's order (own first, then valid_from DESC NULLS LAST,
    created_at DESC), in Python."""
    valid = [
        tariff
        for tariff in tariffs
        if (tariff.valid_from is None or tariff.valid_from <= at) and (tariff.valid_to is None or tariff.valid_to > at)
    ]
    for tariff in valid:
        if tariff.pk == own_id:
            return tariff
    defaults = [tariff for tariff in valid if tariff.is_default]
    return max(defaults, key=_default_order, default=None)


def _default_order(tariff: Tariff) -> tuple[bool, datetime, datetime]:
    return (tariff.valid_from is not None, tariff.valid_from or tariff.created_at, tariff.created_at)


TARIFFS_TOPIC = "tariffs"
# Kept at most this long (s): a tariff, or a charger's tariff, changed without a model signal (a
# queryset ``update()``, raw SQL) or whose notice is lost prices stops no longer than this.
TARIFFS_KEPT_SECONDS = 10.0
# What tariff_for chooses from: (charger primary key -> its own tariff's id, for the chargers that
# have one; every tariff; session primary key -> the tariff kept for it, ``SessionTariff``: None
# for a session started under none).
# Read by the batch threads, forgotten on the event loop.
_Kept = tuple[dict[int, int], tuple[Tariff, ...], dict[int, int | None]]
_kept: cache_changes.KeptValue[_Kept] = cache_changes.KeptValue(TARIFFS_TOPIC, seconds=TARIFFS_KEPT_SECONDS)


def _tariffs_kept() -> _Kept | None:
    """Every tariff, the chargers' own tariffs and those kept for sessions (three statements
    when read again, at most every ``TARIFFS_KEPT_SECONDS``), while this process listens to
    ``kernel.cache_changes`` (a gateway process); a tariff saved or deleted, or a charger's tariff
    changed, through the ORM in any process empties every process's (``tariffs_changed``; the tariffs
    kept for sessions are written in the same database transaction). None in a process that does not
    listen."""
    kept = _kept.get()
    return kept if kept is not None else _kept.read(_tariffs_and_kept_read)


def _tariffs_and_kept_read() -> _Kept:
    # The sessions' first, then the chargers': a tariff either names existed before, so it is read next.
    # Every kept one, not only the open sessions': read in a stop's database transaction, its own
    # session is ended already, and its stop must still be priced with the tariff kept for it (the
    # ended sessions' are removed at the next change, ``services.open_session_tariffs_kept``).
    kept_for: dict[int, int | None] = dict(SessionTariff.objects.values_list("transaction_id", "tariff_id"))
    return (*tariffs_read(), kept_for)


def tariffs_read() -> tuple[dict[int, int], tuple[Tariff, ...]]:
    """The chargers' own tariffs (charger primary key -> tariff id) and every tariff, as committed."""
    # The chargers first: a tariff one of them names existed before it was named, so it is read next.
    own_ids = dict(ChargePoint.objects.filter(tariff__isnull=False).values_list("pk", "tariff_id"))
    return own_ids, tuple(Tariff.objects.all())


def tariffs_changed(
    *, signal: Any, sender: Any, instance: Any, created: bool = False, update_fields: Any = None, **_: Any
) -> None:
    """Tariff's and ChargePoint's ``post_save`` / ``post_delete`` receiver: every process's
    kept tariffs are forgotten (this one's at once, the others' when the change commits). A
    charger's save that cannot change its tariff (its presence, its boot; a new one without its own
    tariff) changes nothing kept."""
    if sender is ChargePoint and signal is post_save:
        if created and instance.tariff_id is None:
            return
        if not created and update_fields is not None and not {"tariff", "tariff_id"} & set(update_fields):
            return
    cache_changes.changed(TARIFFS_TOPIC)


def tariffs_forgotten_after_migrate(**_: Any) -> None:
    """billing's ``post_migrate`` receiver: a migrate or a flush (each test's database emptied)
    removes tariffs without a model signal, and a kept tariff that is gone would fail the billing
    record's foreign key; every process forgets them."""
    cache_changes.changed(TARIFFS_TOPIC)


def billing_record_list(
    *,
    charge_point_id: str | None = None,
    id_tag: str | None = None,
    stopped_after: datetime | None = None,
    stopped_before: datetime | None = None,
) -> QuerySet[BillingRecord]:
    records = BillingRecord.objects.select_related("transaction", "tariff")
    if charge_point_id is not None:
        records = records.filter(charge_point_identity=charge_point_id)
    if id_tag is not None:
        records = records.alias(id_tag_lower=Lower("id_tag")).filter(id_tag_lower=Lower(Value(id_tag)))
    if stopped_after is not None:
        records = records.filter(stopped_at__gte=stopped_after)
    if stopped_before is not None:
        records = records.filter(stopped_at__lt=stopped_before)
    return records
