"""The charging profiles the CSMS believes a charger holds (set and cleared by commands)."""

from __future__ import annotations

from django.contrib import admin

from charging.models import InstalledChargingProfile


@admin.register(InstalledChargingProfile)
class InstalledChargingProfileAdmin(admin.ModelAdmin):
    list_display = ["charge_point", "connector_id", "profile_id", "purpose", "stack_level", "valid_from", "valid_to"]
    list_filter = ["purpose"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
