"""Security events chargers reported (SecurityEventNotification), newest first, read-only."""

from __future__ import annotations

from django.contrib import admin

from chargepoints.models import SecurityEvent
from kernel.admin_mixins import ReadOnlyAdmin


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdmin):
    list_display = ["timestamp", "charge_point", "event_type", "tech_info", "received_at"]
    list_filter = ["event_type"]
    search_fields = ["charge_point__charge_point_id", "event_type", "tech_info"]
    list_select_related = ["charge_point"]
    fields = list_display  # type: ignore[assignment]
    readonly_fields = fields  # type: ignore[assignment]
    show_facets = admin.ShowFacets.NEVER
