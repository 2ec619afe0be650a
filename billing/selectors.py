"""Reads of billing: which tariff applies, and the billing records."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Lower

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from kernel.plain_sql import columns_of, model_rows


def _valid_at(at: datetime) -> Q:
    return (Q(valid_from__isnull=True) | Q(valid_from__lte=at)) & (Q(valid_to__isnull=True) | Q(valid_to__gt=at))


def tariff_for(*, charge_point: ChargePoint, at: datetime) -> Tariff | None:
    """The charger's own tariff if valid at ``at``, else the default tariff valid then (also for a
    charger whose row is gone, e.g. deleted while its session was being stopped).

    Among several valid defaults the one that became valid last wins.
    """
    if connection.vendor == "postgresql":  # read at every stop: one plain statement (issue 15)
        # The charger's tariff_id as committed, read here: a stop's charger row may be only its id
        # and identity (``charging.services.session_rows.charge_point_named``); none if the row is gone.
        found = model_rows(
            Tariff,
            f"SELECT {columns_of(Tariff, 't')} FROM {Tariff._meta.db_table} t"
            f" LEFT JOIN (SELECT tariff_id FROM {ChargePoint._meta.db_table} WHERE id = %s) c ON true"
            " WHERE (t.valid_from IS NULL OR t.valid_from <= %s) AND (t.valid_to IS NULL OR t.valid_to > %s)"
            " AND (t.id = c.tariff_id OR t.is_default)"
            " ORDER BY COALESCE(t.id = c.tariff_id, false) DESC, t.valid_from DESC NULLS LAST, t.created_at DESC"
            " LIMIT 1",
            [charge_point.pk, at, at],
        )
        return found[0] if found else None
    if charge_point.tariff_id is not None:
        own = Tariff.objects.filter(_valid_at(at), pk=charge_point.tariff_id).first()
        if own is not None:
            return own
    return (
        Tariff.objects.filter(_valid_at(at), is_default=True)
        .order_by(F("valid_from").desc(nulls_last=True), "-created_at")
        .first()
    )


def billing_record_list(
    *,
    charge_point_id: str | None = None,
    id_tag: str | None = None,
    stopped_after: datetime | None = None,
    stopped_before: datetime | None = None,
) -> QuerySet[BillingRecord]:
    records = BillingRecord.objects.select_related("transaction", "tariff")
    if charge_point_id:
        records = records.filter(charge_point_identity=charge_point_id)
    if id_tag:
        records = records.alias(id_tag_lower=Lower("id_tag")).filter(id_tag_lower=id_tag.lower())
    if stopped_after:
        records = records.filter(stopped_at__gte=stopped_after)
    if stopped_before:
        records = records.filter(stopped_at__lt=stopped_before)
    return records
