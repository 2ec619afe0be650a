"""The OCPP message log."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from chargepoints.models import (
    OcppMessage,
)


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
