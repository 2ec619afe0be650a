"""The charging profiles the CSMS believes a charger holds (set and cleared by commands)."""

from __future__ import annotations

from django.contrib import admin

from charging.models import InstalledChargingProfile
from kernel.admin_mixins import ReadOnlyAdmin


@admin.register(InstalledChargingProfile)
class InstalledChargingProfileAdmin(ReadOnlyAdmin):
    """Set and cleared by the charger's answers to SetChargingProfile and ClearChargingProfile (the
    commands panel, the API): typed in here, the site engine would count a profile no charger holds."""

    list_display = ["charge_point", "connector_id", "profile_id", "purpose", "stack_level", "valid_from", "valid_to"]
    list_filter = ["purpose"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
