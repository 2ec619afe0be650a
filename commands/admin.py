from django.contrib import admin

from commands.models import Command, InstalledChargingProfile


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = ["created_at", "charge_point_identity", "action", "state", "error_code", "latency_ms", "requested_by"]
    list_filter = ["state", "action", "ocpp_version"]
    search_fields = ["charge_point_identity", "action", "id", "idempotency_key"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Command._meta.fields] + ["requested_by"]

    def has_add_permission(self, request, obj=None) -> bool:  # commands are sent, not typed in
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InstalledChargingProfile)
class InstalledChargingProfileAdmin(admin.ModelAdmin):
    list_display = ["charge_point", "connector_id", "profile_id", "purpose", "stack_level", "valid_from", "valid_to"]
    list_filter = ["purpose"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
