from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from chargepoints.models import (
    ChargePoint,
    Connector,
    Heartbeat,
    IdTag,
    LocalAuthList,
    MeterSample,
    OcppMessage,
    ReconciliationItem,
    Reservation,
    Transaction,
)
from chargepoints.services.reconciliation import (
    ReconciliationError,
    reconciliation_item_attach,
    reconciliation_item_discard,
)


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    fields = ["evse_id", "connector_id", "status", "error_code", "info", "status_timestamp", "updated_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(ChargePoint)
class ChargePointAdmin(admin.ModelAdmin):
    list_display = [
        "charge_point_id",
        "connected",
        "ocpp_version",
        "lifecycle_state",
        "vendor",
        "model",
        "firmware_version",
        "heartbeat_interval",
        "tariff",
        "last_seen",
        "last_heartbeat",
    ]
    list_filter = ["connected", "ocpp_version", "lifecycle_state", "vendor"]
    search_fields = ["charge_point_id", "vendor", "model", "serial_number"]
    readonly_fields = [
        "ocpp_version",
        "vendor",
        "model",
        "serial_number",
        "firmware_version",
        "iccid",
        "imsi",
        "connected",
        "last_seen",
        "last_heartbeat",
        "last_boot_at",
        "offline_since",
        "connection_channel",
        "created_at",
        "updated_at",
    ]
    exclude = ["password_hash"]
    autocomplete_fields = ["tariff"]
    list_select_related = ["tariff"]
    inlines = [ConnectorInline]


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    list_display = ["charge_point", "evse_id", "connector_id", "status", "error_code", "updated_at"]
    list_filter = ["status", "error_code"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["charge_point", "received_at"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "received_at"
    list_select_related = ["charge_point"]


@admin.register(OcppMessage)
class OcppMessageAdmin(admin.ModelAdmin):
    list_display = ["created_at", "charge_point", "direction", "message_type", "action", "unique_id"]
    list_filter = ["direction", "message_type", "action"]
    search_fields = ["charge_point__charge_point_id", "action", "unique_id"]
    date_hierarchy = "created_at"
    list_select_related = ["charge_point"]
    readonly_fields = [f.name for f in OcppMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OcppMessage | None = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the CSMS writes from what chargers send: operators look, they do not type."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _admin_link(obj: Any, text: object = None) -> SafeString:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def _changelist_link(model: type, query: str, text: str) -> SafeString:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


# --- Authorization ---------------------------------------------------------------------------


@admin.register(IdTag)
class IdTagAdmin(admin.ModelAdmin):
    list_display = ["id_tag", "token_type", "status", "expiry_date", "parent", "updated_at"]
    list_filter = ["status", "token_type"]
    search_fields = ["id_tag", "description"]
    autocomplete_fields = ["parent"]
    list_select_related = ["parent"]
    readonly_fields = ["created_at", "updated_at"]


@admin.register(LocalAuthList)
class LocalAuthListAdmin(ReadOnlyAdmin):
    list_display = ["charge_point", "version", "entry_count", "updated_at"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
    fields = ["charge_point", "version", "entries_table", "updated_at"]
    readonly_fields = fields

    @admin.display(description="entries")
    def entry_count(self, obj: LocalAuthList) -> int:
        return len(obj.entries)

    @admin.display(description="entries")
    def entries_table(self, obj: LocalAuthList) -> SafeString:
        if not obj.entries:
            return format_html("{}", "(empty)")
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", sorted(obj.entries.items()))
        return format_html("<table><tr><th>id tag</th><th>status</th></tr>{}</table>", rows)


# --- Reservations ----------------------------------------------------------------------------


@admin.register(Reservation)
class ReservationAdmin(ReadOnlyAdmin):
    list_display = [
        "reservation_id",
        "charge_point",
        "connector_id",
        "evse_id",
        "id_tag",
        "status",
        "charger_status",
        "expiry_date",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id", "id_tag", "reservation_id__exact"]
    date_hierarchy = "created_at"
    list_select_related = ["charge_point"]
    readonly_fields = [f.name for f in Reservation._meta.fields]
