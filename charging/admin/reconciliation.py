"""The reconciliation queue for stops that match no open session."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chargepoints.admin.shared import connector_label
from charging.admin.shared import transaction_label, transaction_link
from charging.models import ReconciliationItem, Transaction
from charging.services.reconciliation import (
    ReconciliationError,
    reconciliation_item_attach,
    reconciliation_item_discard,
)
from charging.services.transaction_start import reconciliation_item_session_open


class TransactionChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Transaction) -> str:
        connector = connector_label(obj.evse_id, obj.connector_id)
        stopped = f" - {_when(obj.stopped_at)}" if obj.stopped_at else ""
        energy = f", {obj.energy_wh} Wh" if obj.energy_wh is not None else ""
        return (
            f"{transaction_label(obj)}: connector {connector}, id tag {obj.id_tag or '-'}, "
            f"{_when(obj.started_at)}{stopped}, {obj.get_status_display()}{energy}"
        )


def _when(moment: datetime) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT")


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
    readonly_fields = [name for name in fields if name != "note"]  # type: ignore[misc]  # the stubs let fields nest
    actions = ["discard", "attach", "open_session"]

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

    @admin.action(description="Open a session from this 2.0.1 Ended (its Started never came)", permissions=["change"])
    def open_session(self, request: HttpRequest, queryset: QuerySet[ReconciliationItem]) -> None:
        for item in queryset:
            try:
                session = reconciliation_item_session_open(item=item, user_id=request.user.pk)
            except ReconciliationError as error:
                self.message_user(request, f"Item {item.pk}: no session opened: {error}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Item {item.pk} opened and ended transaction {transaction_label(session)}.",
                    messages.SUCCESS,
                )

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
        return TemplateResponse(request, "admin/charging/reconciliationitem/attach.html", context)
