"""Transactions and the meter ledger."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from ocpp.v16.enums import Measurand, ReadingContext
from ocpp.v201.enums import MeasurandEnumType, ReadingContextEnumType

from chargepoints.admin.shared import (
    FirstRowsFormSet,
    admin_link,
    changelist_link,
    charger_pks_matching,
    connector_label,
)
from charging.admin.meter_chart import NO_DATA, meter_chart_svg
from charging.admin.shared import id_tags_folded, transaction_link
from charging.models import MeterSample, Transaction
from charging.selectors import transaction_meter_series
from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.admin_mixins import ReadOnlyAdmin, ReadOnlyMixin
from kernel.money import round_money

LINE_ITEM_COLUMNS = ["description", "quantity", "unit", "unit_price", "amount"]


class MeterSampleInline(ReadOnlyMixin, admin.TabularInline):
    model = MeterSample
    formset = FirstRowsFormSet
    extra = 0
    fields = ["timestamp", "measurand", "phase", "unit", "context", "raw_value", "value", "source"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    can_delete = False
    verbose_name_plural = f"meter samples (the first {FirstRowsFormSet.limit}; all are linked above)"


class SessionTimeFilter(TimeRangeFilter):
    """The message log's time filter, on the session's start (``?last=24h``, or explicit bounds)."""

    since_parameter = "started_at__gte"
    until_parameter = "started_at__lt"


@admin.register(Transaction)
class TransactionAdmin(CappedList, ReadOnlyAdmin):
    """Every session is kept: nothing here counts or sorts the table whole. Newest started first
    (the index on ``started_at``, the one sortable column), at most ``CappedCountPaginator.cap``
    counted, a time filter instead of a date hierarchy (its years are a SELECT DISTINCT over the
    table), a search by indexes: a charger id (or part of one) through the chargers table, an id
    tag (a registered one containing the term, or the term itself), an OCPP transaction id or our
    id as given."""

    list_display = [
        "id",
        "charge_point",
        "ocpp_transaction",
        "connector",
        "id_tag",
        "status",
        "started_at",
        "stopped_at",
        "energy_wh",
        "needs_review",
        "anomaly_list",
    ]
    list_filter = ["status", "needs_review", "ocpp_version", "closed_by_csms", SessionTimeFilter]
    search_fields = ["charge_point__charge_point_id", "id_tag", "ocpp_transaction_id", "id__exact"]
    search_help_text = "A charger id (or part of one), an id tag, an OCPP transaction id or a transaction's id."
    list_select_related = ["charge_point"]
    sortable_by = ("started_at",)  # the order an index serves
    fieldsets = [
        (None, {"fields": ["charge_point", "ocpp_version", "ocpp_transaction", "status", "needs_review", "anomalies"]}),
        (
            "Where and who",
            {
                "fields": [
                    "evse_id",
                    "connector_id",
                    "id_tag",
                    "id_token_type",
                    "id_tag_status",
                    "stop_id_tag",
                    "reservation",
                    "remote_start_id",
                ]
            },
        ),
        (
            "Time and energy",
            {
                "fields": [
                    "started_at",
                    "stopped_at",
                    "charger_started_at",
                    "charger_stopped_at",
                    "stop_reason",
                    "closed_by_csms",
                    "meter_start_wh",
                    "meter_stop_wh",
                    "last_register_wh",
                    "last_register_at",
                    "energy_wh",
                    "idle_since",
                    "idle_seconds",
                    "time_spent_charging",
                ]
            },
        ),
        ("Meter values", {"fields": ["meter_chart"]}),
        (
            "Billing and reconciliation",
            {"fields": ["billing_record_summary", "reconciliation_items_summary", "meter_samples_summary"]},
        ),
        (
            "Protocol",
            {"classes": ["collapse"], "fields": ["start_key", "seq_nos", "created_at", "updated_at"]},
        ),
    ]
    readonly_fields = [f.name for f in Transaction._meta.fields] + [
        "ocpp_transaction",
        "meter_chart",
        "billing_record_summary",
        "reconciliation_items_summary",
        "meter_samples_summary",
    ]
    inlines = [MeterSampleInline]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Transaction], search_term: str
    ) -> tuple[QuerySet[Transaction], bool]:
        """The chargers and id tags matching first, then their sessions by indexes; an OCPP
        transaction id or an id as given (an ILIKE of each, through the join, scanned every session)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        queryset = queryset.alias(id_tag_lower=Lower("id_tag"))  # the index session_id_tag_lower
        found = (
            Q(charge_point_id__in=charger_pks_matching(term))
            | Q(id_tag_lower__in=id_tags_folded(term))
            | Q(ocpp_transaction_id=term)
        )
        if term.isascii() and term.isdigit() and int(term) < 2**63:
            found |= Q(pk=int(term))
        return queryset.filter(found), False

    @admin.display(description="OCPP id")
    def ocpp_transaction(self, obj: Transaction) -> str:
        return obj.ocpp_id

    @admin.display(description="connector / EVSE")
    def connector(self, obj: Transaction) -> str:
        return connector_label(obj.evse_id, obj.connector_id)

    @admin.display(description="anomalies")
    def anomaly_list(self, obj: Transaction) -> str:
        return ", ".join(obj.anomalies)

    @admin.display(description="billing record")
    def billing_record_summary(self, obj: Transaction) -> SafeString | str:
        try:
            record = obj.billing_record
        except ObjectDoesNotExist:
            return "None yet (written when the transaction ends)."
        review = " - needs review" if record.needs_review else ""
        total = round_money(record.total, record.currency)
        link = admin_link(record, f"{total} {record.currency or '(no tariff)'}, {record.energy_wh} Wh{review}")
        if not record.line_items:
            return link
        head = format_html_join("", "<th>{}</th>", ((column.replace("_", " "),) for column in LINE_ITEM_COLUMNS))
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((line.get(column, ""),) for column in LINE_ITEM_COLUMNS)),)
                for line in record.line_items
            ),
        )
        return format_html('{}<table class="billing-lines"><tr>{}</tr>{}</table>', link, head, rows)

    @admin.display(description="energy and power")
    def meter_chart(self, obj: Transaction) -> SafeString | str:
        series = transaction_meter_series(transaction=obj)
        if not series.energy_wh and not series.power_w:
            return NO_DATA
        svg = meter_chart_svg(energy_wh=series.energy_wh, power_w=series.power_w, title=f"Meter values of {obj}")
        return mark_safe(svg)  # built from numbers and escaped text only (meter_chart)

    @admin.display(description="reconciliation items")
    def reconciliation_items_summary(self, obj: Transaction) -> SafeString | str:
        items = list(obj.reconciliation_items.all())
        if not items:
            return "None"
        links = (
            (admin_link(item, f"#{item.pk} {item.get_reason_display()} ({item.get_state_display()})"),)
            for item in items
        )
        return format_html_join(mark_safe("<br>"), "{}", links)

    @admin.display(description="meter samples")
    def meter_samples_summary(self, obj: Transaction) -> SafeString:
        count = obj.meter_samples.count()
        return changelist_link(MeterSample, f"transaction__id__exact={obj.pk}", f"All {count} samples")


class _FixedChoicesFilter(admin.SimpleListFilter):
    """A column's values from a fixed list: never a SELECT DISTINCT over millions of samples."""

    values: list[str] = []

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, value) for value in self.values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[MeterSample]) -> QuerySet[MeterSample]:
        value = self.value()
        return queryset if value is None else queryset.filter(**{str(self.parameter_name): value})


class MeasurandFilter(_FixedChoicesFilter):
    title, parameter_name = "measurand", "measurand"
    values = sorted({each.value for each in Measurand} | {each.value for each in MeasurandEnumType})
    template = "admin/chargepoints/ocppmessage/collapsed_filter.html"


class ContextFilter(_FixedChoicesFilter):
    title, parameter_name = "context", "context"
    values = sorted({each.value for each in ReadingContext} | {each.value for each in ReadingContextEnumType})


class SourceFilter(_FixedChoicesFilter):
    title, parameter_name = "source", "source"
    values = ["MeterValues", "StopTransaction", "TransactionEvent"]


class SampleTimeFilter(TimeRangeFilter):
    """The message log's time filter, on the sample's time (``?last=1h``, or explicit bounds)."""

    since_parameter = "timestamp__gte"
    until_parameter = "timestamp__lt"


@admin.register(MeterSample)
class MeterSampleAdmin(CappedList, ReadOnlyAdmin):
    """Millions of rows, as the message log: nothing here counts or lists the table whole. Newest
    received first (the primary key's order: no index serves the sample's time, and one on the
    busiest table would cost every MeterValues a write), at most ``CappedCountPaginator.cap``
    counted, filters of fixed choices, a time filter instead of a date hierarchy (its years are a
    SELECT DISTINCT over the table), a search through the chargers table."""

    list_display = [
        "timestamp",
        "charge_point",
        "session",
        "connector",
        "measurand",
        "phase",
        "raw_value",
        "unit",
        "value",
        "context",
        "source",
    ]
    list_filter = [MeasurandFilter, ContextFilter, SourceFilter, SampleTimeFilter]
    search_fields = ["charge_point__charge_point_id"]
    search_help_text = "A charger id (or part of one)."
    list_select_related = ["charge_point", "transaction"]
    readonly_fields = [f.name for f in MeterSample._meta.fields]
    ordering = ["-id"]
    sortable_by = ()  # the one order an index serves

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[MeterSample], search_term: str
    ) -> tuple[QuerySet[MeterSample], bool]:
        """The chargers matching first, then their samples by an index (ILIKE through the join
        scanned every sample)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(charge_point_id__in=charger_pks_matching(term)), False

    @admin.display(description="transaction", ordering="transaction")
    def session(self, obj: MeterSample) -> SafeString | str:
        return transaction_link(obj.transaction)

    @admin.display(description="connector / EVSE")
    def connector(self, obj: MeterSample) -> str:
        return connector_label(obj.evse_id, obj.connector_id)
