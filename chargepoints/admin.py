from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

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


def _admin_link(obj: Model, text: str) -> SafeString:
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text)


def transaction_label(session: Transaction) -> str:
    """How operators name a session: our id, and the id the charger uses when it differs."""
    if session.ocpp_id == str(session.pk):
        return f"#{session.pk}"
    return f"#{session.pk} (OCPP id {session.ocpp_id})"


def transaction_link(session: Transaction | None) -> SafeString | str:
    return _admin_link(session, transaction_label(session)) if session is not None else "-"


def connector_label(evse_id: int | None, connector_id: int | None) -> str:
    connector = "-" if connector_id is None else str(connector_id)
    return connector if evse_id is None else f"EVSE {evse_id} / {connector}"


def _changelist_link(model: type[Model], query: str, text: str) -> SafeString:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the CSMS writes from what chargers send: operators look, they do not type."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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


# --- Transactions and the meter ledger -------------------------------------------------------


class FirstRowsFormSet(BaseInlineFormSet):
    """An inline that shows only the first rows: a long session has thousands of samples."""

    limit = 200

    def get_queryset(self) -> QuerySet[Any]:
        if not hasattr(self, "_limited"):
            self._limited = super().get_queryset()[: self.limit]
        return self._limited


class MeterSampleInline(admin.TabularInline):
    model = MeterSample
    formset = FirstRowsFormSet
    extra = 0
    fields = ["timestamp", "measurand", "phase", "unit", "context", "raw_value", "value", "source"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = f"meter samples (the first {FirstRowsFormSet.limit}; all are linked above)"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdmin):
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
    list_filter = ["status", "needs_review", "ocpp_version", "closed_by_csms"]
    search_fields = ["charge_point__charge_point_id", "id_tag", "ocpp_transaction_id", "id__exact"]
    date_hierarchy = "started_at"
    list_select_related = ["charge_point"]
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
        "billing_record_summary",
        "reconciliation_items_summary",
        "meter_samples_summary",
    ]
    inlines = [MeterSampleInline]

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
        return _admin_link(record, f"{record.total} {record.currency or '(no tariff)'}, {record.energy_wh} Wh{review}")

    @admin.display(description="reconciliation items")
    def reconciliation_items_summary(self, obj: Transaction) -> SafeString | str:
        items = list(obj.reconciliation_items.all())
        if not items:
            return "None"
        links = (
            (_admin_link(item, f"#{item.pk} {item.get_reason_display()} ({item.get_state_display()})"),)
            for item in items
        )
        return format_html_join(mark_safe("<br>"), "{}", links)

    @admin.display(description="meter samples")
    def meter_samples_summary(self, obj: Transaction) -> SafeString:
        count = obj.meter_samples.count()
        return _changelist_link(MeterSample, f"transaction__id__exact={obj.pk}", f"All {count} samples")


@admin.register(MeterSample)
class MeterSampleAdmin(ReadOnlyAdmin):
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
    list_filter = ["measurand", "context", "source"]
    search_fields = ["charge_point__charge_point_id"]
    date_hierarchy = "timestamp"
    list_select_related = ["charge_point", "transaction"]
    readonly_fields = [f.name for f in MeterSample._meta.fields]

    @admin.display(description="transaction", ordering="transaction")
    def session(self, obj: MeterSample) -> SafeString | str:
        return transaction_link(obj.transaction)

    @admin.display(description="connector / EVSE")
    def connector(self, obj: MeterSample) -> str:
        return connector_label(obj.evse_id, obj.connector_id)


# --- Reconciliation --------------------------------------------------------------------------


class TransactionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Transaction) -> str:
        connector = connector_label(obj.evse_id, obj.connector_id)
        stopped = f" - {obj.stopped_at:%Y-%m-%d %H:%M}" if obj.stopped_at else ""
        energy = f", {obj.energy_wh} Wh" if obj.energy_wh is not None else ""
        return (
            f"{transaction_label(obj)}: connector {connector}, id tag {obj.id_tag or '-'}, "
            f"{obj.started_at:%Y-%m-%d %H:%M}{stopped} UTC, {obj.get_status_display()}{energy}"
        )


class AttachForm(forms.Form):
    transaction = TransactionChoiceField(
        queryset=Transaction.objects.none(), help_text="A session of the same charger."
    )

    def __init__(self, *args: Any, item: ReconciliationItem, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["transaction"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Transaction.objects.filter(charge_point_id=item.charge_point_id).order_by("-started_at", "-id")
        if item.transaction_id is not None:
            field.initial = item.transaction_id


@admin.register(ReconciliationItem)
class ReconciliationItemAdmin(admin.ModelAdmin):
    list_display = [
        "received_at",
        "charge_point",
        "reason",
        "state",
        "ocpp_transaction_id",
        "meter_stop_wh",
        "stopped_at",
        "session",
    ]
    list_filter = ["state", "reason"]
    search_fields = ["charge_point__charge_point_id", "ocpp_transaction_id", "id_tag"]
    date_hierarchy = "received_at"
    list_select_related = ["charge_point", "transaction"]
    fields = [
        "charge_point",
        "reason",
        "state",
        "action",
        "ocpp_transaction_id",
        "id_tag",
        "meter_stop_wh",
        "stopped_at",
        "stop_reason",
        "session",
        "received_at",
        "resolved_at",
        "resolved_by",
        "payload_pretty",
        "note",
    ]
    readonly_fields = [name for name in fields if name != "note"]
    actions = ["discard", "attach"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ReconciliationItem | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ReconciliationItem, form: forms.Form, change: bool) -> None:
        # Only the note is typed in here; the state belongs to the services.
        obj.save(update_fields=["note"])

    @admin.display(description="transaction", ordering="transaction")
    def session(self, obj: ReconciliationItem) -> SafeString | str:
        return transaction_link(obj.transaction)

    @admin.display(description="payload")
    def payload_pretty(self, obj: ReconciliationItem) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, sort_keys=True, default=str))

    @admin.action(description="Discard selected items", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[ReconciliationItem]) -> None:
        discarded = 0
        for item in queryset:
            try:
                reconciliation_item_discard(item=item, user_id=request.user.pk)
            except ReconciliationError as error:
                self.message_user(request, f"Item {item.pk} not discarded: {error}", messages.ERROR)
            else:
                discarded += 1
        if discarded:
            self.message_user(request, f"Discarded {discarded} item(s).", messages.SUCCESS)

    @admin.action(description="Attach to a transaction", permissions=["change"])
    def attach(self, request: HttpRequest, queryset: QuerySet[ReconciliationItem]) -> HttpResponse | None:
        items = list(queryset.select_related("charge_point", "transaction")[:2])
        if len(items) != 1:
            self.message_user(request, "Select exactly one item to attach.", messages.WARNING)
            return None
        item = items[0]
        form = AttachForm(request.POST if "apply" in request.POST else None, item=item)
        if form.is_valid():
            session = form.cleaned_data["transaction"]
            try:
                reconciliation_item_attach(item=item, transaction=session, user_id=request.user.pk)
            except ReconciliationError as error:
                self.message_user(request, f"Item {item.pk} not attached: {error}", messages.ERROR)
            else:
                self.message_user(
                    request, f"Item {item.pk} attached to transaction {transaction_label(session)}.", messages.SUCCESS
                )
            return HttpResponseRedirect(request.get_full_path())
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": "Attach a parked stop to a transaction",
            "opts": self.opts,
            "item": item,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/chargepoints/reconciliationitem/attach.html", context)
