from __future__ import annotations

import csv
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.models import BillingRecord, Tariff
from chargepoints.admin import transaction_link
from webhooks.services import iso_utc

CSV_COLUMNS = [
    "id",
    "transaction_id",
    "ocpp_transaction_id",
    "charge_point_id",
    "id_tag",
    "tariff",
    "currency",
    "energy_wh",
    "started_at",
    "stopped_at",
    "duration_seconds",
    "charging_seconds",
    "idle_seconds",
    "total",
    "needs_review",
]

LINE_ITEM_COLUMNS = ["description", "quantity", "unit", "unit_price", "amount"]


@admin.register(Tariff)
class TariffAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "currency",
        "price_per_kwh",
        "price_per_minute",
        "session_fee",
        "idle_fee_per_minute",
        "idle_grace_minutes",
        "is_default",
        "valid_from",
        "valid_to",
    ]
    list_filter = ["currency", "is_default"]
    search_fields = ["name", "currency"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(BillingRecord)
class BillingRecordAdmin(admin.ModelAdmin):
    list_display = [
        "session",
        "charge_point_identity",
        "id_tag",
        "currency",
        "energy_wh",
        "total",
        "needs_review",
        "stopped_at",
    ]
    list_filter = ["currency", "needs_review"]
    search_fields = ["charge_point_identity", "id_tag"]
    date_hierarchy = "stopped_at"
    list_select_related = ["transaction"]
    fields = [
        "session",
        "charge_point_identity",
        "id_tag",
        "tariff",
        "currency",
        "energy_wh",
        "started_at",
        "stopped_at",
        "duration_seconds",
        "charging_seconds",
        "idle_seconds",
        "line_items_table",
        "total",
        "needs_review",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    actions = ["download_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BillingRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: BillingRecord | None = None) -> bool:
        return False

    @admin.display(description="transaction", ordering="transaction")
    def session(self, obj: BillingRecord) -> SafeString | str:
        return transaction_link(obj.transaction)

    @admin.display(description="line items")
    def line_items_table(self, obj: BillingRecord) -> SafeString | str:
        if not obj.line_items:
            return "-"
        head = format_html_join("", "<th>{}</th>", ((column,) for column in LINE_ITEM_COLUMNS))
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((line.get(column, ""),) for column in LINE_ITEM_COLUMNS)),)
                for line in obj.line_items
            ),
        )
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.action(description="Download selected as CSV", permissions=["view"])
    def download_csv(self, request: HttpRequest, queryset: QuerySet[BillingRecord]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="billing-records.csv"'
        writer = csv.writer(response)
        writer.writerow(CSV_COLUMNS)
        for record in queryset.select_related("transaction", "tariff").order_by("stopped_at", "id"):
            writer.writerow(_csv_row(record))
        return response


def _csv_row(record: BillingRecord) -> list[Any]:
    return [
        record.pk,
        record.transaction_id,
        _text(record.transaction.ocpp_id),
        _text(record.charge_point_identity),
        _text(record.id_tag),
        _text(record.tariff.name if record.tariff else ""),
        record.currency,
        record.energy_wh,
        iso_utc(record.started_at),
        iso_utc(record.stopped_at),
        record.duration_seconds,
        record.charging_seconds,
        record.idle_seconds,
        record.total,
        record.needs_review,
    ]


def _text(value: str) -> str:
    """Id tags and ids come from chargers: keep a spreadsheet from reading one as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
