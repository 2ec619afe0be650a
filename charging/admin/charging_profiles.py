"""The charging profiles the CSMS believes a charger holds (set and cleared by commands)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.safestring import SafeString

from charging.admin.shared import transaction_link
from charging.models import EvChargingNeeds, ExternalChargingLimit, InstalledChargingProfile
from kernel.admin_mixins import ReadOnlyAdmin


@admin.register(InstalledChargingProfile)
class InstalledChargingProfileAdmin(ReadOnlyAdmin):
    """Set and cleared by the charger's answers to SetChargingProfile and ClearChargingProfile (the
    commands panel, the API): typed in here, the site engine would count a profile no charger holds."""

    list_display = [
        "charge_point",
        "connector_id",
        "profile_id",
        "purpose",
        "stack_level",
        "valid_from",
        "valid_to",
        "ocpp_version",
    ]
    list_filter = ["purpose", "ocpp_version"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]


@admin.register(ExternalChargingLimit)
class ExternalChargingLimitAdmin(ReadOnlyAdmin):
    """Limits an energy manager or the grid operator holds a 2.0.1 station to (NotifyChargingLimit),
    until the station reports them released (ClearedChargingLimit): why it may draw less than the
    CSMS's own profiles allow."""

    list_display = ["charge_point", "evse_id", "source", "grid_critical", "reported_at"]
    list_filter = ["source", "grid_critical"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
    fields = [*list_display, "schedules"]  # type: ignore[list-item]  # field names only, no callables
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields


@admin.register(EvChargingNeeds)
class EvChargingNeedsAdmin(ReadOnlyAdmin):
    """What EVs asked for over ISO 15118 (NotifyEVChargingNeeds): when they leave and how much energy
    they want, beside the session they came in (the CSMS computes no schedule from them)."""

    list_display = [
        "received_at",
        "charge_point",
        "evse_id",
        "session",
        "requested_energy_transfer",
        "departure_time",
        "energy_amount_wh",
    ]
    list_filter = ["requested_energy_transfer"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point", "transaction"]
    fields = [*list_display, "needs"]  # type: ignore[list-item]  # field names only, no callables
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    show_facets = admin.ShowFacets.NEVER

    @admin.display(description="session")
    def session(self, needs: EvChargingNeeds) -> SafeString | str:
        return transaction_link(needs.transaction)
