"""Links, labels and base classes the chargepoints admin pages share."""

from __future__ import annotations

from typing import Any

from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chargepoints.models import ChargePoint


def admin_link(obj: Model, text: str) -> SafeString:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text)


def connector_label(evse_id: int | None, connector_id: int | None) -> str:
    connector = "-" if connector_id is None else str(connector_id)
    return connector if evse_id is None else f"EVSE {evse_id} / {connector}"


def changelist_link(model: type[Model], query: str, text: str) -> SafeString:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


# The most chargers a search term is looked up by (a short term on a large fleet matches most of it:
# beyond PostgreSQL's 65,535 parameters a statement fails).
CHARGERS_SEARCHED = 1000


def charger_pks_matching(term: str) -> list[int]:
    """The chargers whose id contains ``term`` (the first ``CHARGERS_SEARCHED`` by id): a list searched
    through them first, then by an index on its charger, not by an ILIKE through the join over every row."""
    matching = ChargePoint.objects.filter(charge_point_id__icontains=term).order_by("charge_point_id")
    return list(matching.values_list("pk", flat=True)[:CHARGERS_SEARCHED])


class FirstRowsFormSet(BaseInlineFormSet):
    """An inline that shows only the first rows: a long session has thousands of samples."""

    limit = 200

    def get_queryset(self) -> QuerySet[Any]:
        if not hasattr(self, "_limited"):
            self._limited = super().get_queryset()[: self.limit]
        return self._limited
