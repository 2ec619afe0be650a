"""The fleet: charge points, their connectors and heartbeats."""

from __future__ import annotations

from django.contrib import admin

from chargepoints.models import (
    ChargePoint,
    Connector,
    Heartbeat,
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
