"""The fleet: charge points (status, activity, commissioning), connectors, heartbeats.

A charge point's page is extended by the apps above the fleet, each registering a subclass of
``ChargePointAdmin`` in its ``admin.py`` (Django's way to extend another app's admin, as one
extends ``UserAdmin``): charging adds the recent sessions (``charging/admin/charge_points.py``),
commands the commands panel and the command actions (``commands/admin.py``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from chargepoints.identity import charge_point_id_validate
from chargepoints.models import (
    ChargePoint,
    Connector,
    Heartbeat,
    LifecycleState,
)
from chargepoints.selectors import (
    charge_point_heartbeat_count,
    charge_point_recent_heartbeat_list,
    charge_point_recent_message_list,
    charge_point_recent_security_events,
    connectors_of_their_version,
)
from chargepoints.services import ChargePointHasHistory, charge_point_delete, charge_point_update
from chargepoints.services.heartbeat_pace import heartbeat_interval_stored
from chargepoints.signals import charge_point_changed
from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.admin_mixins import ChangedOnThePageForm, ReadOnlyAdmin, RefusalsShown

# Which lifecycle moves the change page offers from each state, and the verb on the button.
LIFECYCLE_ACTIONS: dict[str, list[tuple[str, str]]] = {
    LifecycleState.PENDING: [
        (LifecycleState.COMMISSIONED, "Commission"),
        (LifecycleState.DECOMMISSIONED, "Decommission"),
    ],
    LifecycleState.COMMISSIONED: [(LifecycleState.DECOMMISSIONED, "Decommission")],
    LifecycleState.DECOMMISSIONED: [(LifecycleState.COMMISSIONED, "Re-commission")],
}

# Connector status -> CSS class of its colour (styles.html).
CONNECTOR_STATUS_CLASSES = {
    "Available": "available",
    "Preparing": "busy",
    "Charging": "busy",
    "SuspendedEV": "busy",
    "SuspendedEVSE": "busy",
    "Finishing": "busy",
    "Occupied": "busy",
    "Faulted": "faulted",
    "Unavailable": "unavailable",
    "Reserved": "reserved",
}

HEARTBEAT_WINDOW = timedelta(hours=24)


def status_badge(charge_point: ChargePoint) -> SafeString:
    """Online / Offline, and when an offline charger was last heard from."""
    if charge_point.connected:
        return mark_safe('<span class="cp-status-badge online">Online</span>')
    seen = f"last seen {timesince(charge_point.last_seen)} ago" if charge_point.last_seen else "never seen"
    return format_html(
        '<span class="cp-status-badge offline">Offline</span> <span class="cp-last-seen">{}</span>', seen
    )


class OnlineFilter(admin.BooleanFieldListFilter):
    """The ``connected`` flag, under the name operators use."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "online"


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    fields = [
        "evse_id",
        "connector_id",
        "status_badge",
        "error_code",
        "info",
        "status_timestamp",
        "charger_timestamp",
        "updated_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Connector]:
        """Those of the OCPP version the charger speaks (``connectors_of_their_version``), with their
        charger: each row names it (``Connector.__str__``), which read it again per connector."""
        return super().get_queryset(request).filter(connectors_of_their_version()).select_related("charge_point")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status", ordering="status")
    def status_badge(self, connector: Connector) -> SafeString:
        css = CONNECTOR_STATUS_CLASSES.get(connector.status, "unknown")
        return format_html('<span class="connector-status {}">{}</span>', css, connector.status or "unknown")


class ChargePointAdminForm(ChangedOnThePageForm, forms.ModelForm):
    """The charger's HTTP Basic password is set, rotated or removed here, never shown. A change saves
    only what the operator changed on the page (``ChangedOnThePageForm``): a tariff given the charger
    while the page was open was taken off again by a change of its heartbeat interval."""

    new_password = forms.CharField(
        required=False,
        min_length=16,
        max_length=40,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="OCPP security profile 1/2 (16-40 characters). Leave blank to keep the current one.",
    )
    remove_password = forms.BooleanField(required=False, help_text="The charger connects without a password.")

    class Meta:
        model = ChargePoint
        exclude = ["password_hash", "password_hash_after_reboot", "password_hash_after_reboot_earlier"]  # noqa: DJ006  (every field but the hashes; the form sets one)

    def clean_charge_point_id(self) -> str:
        charge_point_id: str = self.cleaned_data["charge_point_id"]
        charge_point_id_validate(charge_point_id)
        return charge_point_id

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("new_password") and cleaned.get("remove_password"):
            raise forms.ValidationError("Set a new password or remove it, not both.")
        return cleaned


@admin.register(ChargePoint)
class ChargePointAdmin(RefusalsShown, admin.ModelAdmin):
    form = ChargePointAdminForm
    # A charger's first session started after its delete page's check: the refusal's message, not
    # a 500 (a "Delete selected" deletes all or none).
    refusals = (ChargePointHasHistory,)
    # Six columns fit a 1366 px screen beside the navigation and the filters: the lifecycle shows
    # in the status column when it is not the usual "commissioned", the model carries its vendor
    # and firmware, and the heartbeat interval is on the charger's page.
    list_display = ["charge_point_id", "status", "ocpp", "model_and_firmware", "tariff", "last_heartbeat"]
    list_filter = [("connected", OnlineFilter), "ocpp_version", "vendor", "lifecycle_state"]
    search_fields = ["charge_point_id", "vendor", "model", "serial_number"]
    readonly_fields = [
        "has_password",
        "ocpp_version",
        "vendor",
        "model",
        "serial_number",
        "firmware_version",
        "iccid",
        "imsi",
        "meter_type",
        "meter_serial_number",
        "connected",
        "last_seen",
        "last_heartbeat",
        "last_boot_at",
        "previous_heartbeat_interval",
        "reported_heartbeat_interval",
        "unconfirmed_heartbeat_interval",
        "charging_rate_units",
        "identity_booted_at",
        "configuration_read_owed",
        "boot_pending",
        "offline_since",
        "connection_channel",
        "handshake_started_at",
        "created_at",
        "updated_at",
    ]
    autocomplete_fields = ["tariff"]
    list_select_related = ["tariff"]
    inlines = [ConnectorInline]

    @admin.display(description="status", ordering="connected")
    def status(self, charge_point: ChargePoint) -> SafeString:
        if charge_point.lifecycle_state == LifecycleState.COMMISSIONED:
            return status_badge(charge_point)
        return format_html(
            '{} <span class="cp-lifecycle-note {}">{}</span>',
            status_badge(charge_point),
            charge_point.lifecycle_state,
            charge_point.get_lifecycle_state_display(),
        )

    @admin.display(description="OCPP", ordering="ocpp_version")
    def ocpp(self, charge_point: ChargePoint) -> str:
        return charge_point.ocpp_version or "-"

    @admin.display(description="model", ordering="vendor")
    def model_and_firmware(self, charge_point: ChargePoint) -> SafeString | str:
        model = " ".join(part for part in (charge_point.vendor, charge_point.model) if part)
        if not charge_point.firmware_version:
            return model or "-"
        return format_html(
            '{} <span class="cp-firmware">firmware {}</span>', model or "-", charge_point.firmware_version
        )

    @admin.display(description="password", boolean=True)
    def has_password(self, charge_point: ChargePoint) -> bool:
        return bool(charge_point.password_hash)

    def save_model(self, request: HttpRequest, obj: ChargePoint, form: forms.Form, change: bool) -> None:
        if change:
            # Only what the operator changed: presence and liveness move under the form meanwhile.
            fields = {f.name for f in ChargePoint._meta.concrete_fields}
            changed = [name for name in form.changed_data if name in fields and name != "heartbeat_interval"]
            obj.save(update_fields=[*changed, "updated_at"])
            if "heartbeat_interval" in form.changed_data:  # the charger keeps its previous one until it boots
                heartbeat_interval_stored(charge_point=obj, interval=obj.heartbeat_interval)
        else:
            super().save_model(request, obj, form, change)
        if form.cleaned_data.get("new_password"):
            charge_point_update(charge_point=obj, password=form.cleaned_data["new_password"])
        elif form.cleaned_data.get("remove_password"):
            charge_point_update(charge_point=obj, password=None)

    def delete_model(self, request: HttpRequest, obj: ChargePoint) -> None:
        charge_point_delete(charge_point=obj)  # as the API: its socket closed, subscribers told it is offline

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        with transaction.atomic():
            for charge_point in queryset:
                charge_point_delete(charge_point=charge_point)

    def get_readonly_fields(self, request: HttpRequest, obj: ChargePoint | None = None) -> list[str]:
        # The id is the charger's identity (its URL, its sessions): fixed once registered. The
        # lifecycle changes through the commissioning buttons (with a confirmation), not the form.
        if obj is None:
            return list(self.readonly_fields)
        return ["charge_point_id", *self.readonly_fields, "lifecycle_state"]

    # --- URLs -------------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        own = [
            path(
                "<path:object_id>/lifecycle/<str:state>/",
                self.admin_site.admin_view(self.lifecycle_view),
                name=f"{info}_lifecycle",
            ),
        ]
        return [*own, *super().get_urls()]

    def _change_url(self, charge_point: ChargePoint) -> str:
        return reverse("admin:chargepoints_chargepoint_change", args=[charge_point.pk])

    # --- The change page --------------------------------------------------------------------

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        charge_point = self.get_object(request, unquote(object_id))
        if charge_point is not None:
            extra_context = {**self._charge_point_context(request, charge_point), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def _charge_point_context(self, request: HttpRequest, charge_point: ChargePoint) -> dict[str, Any]:
        since = timezone.now() - HEARTBEAT_WINDOW
        return {
            "status_badge": status_badge(charge_point),
            "lifecycle_actions": self._lifecycle_actions(request, charge_point),
            "recent_messages": charge_point_recent_message_list(charge_point=charge_point),
            "message_log_url": self._filtered_changelist("ocppmessage", charge_point),
            "recent_heartbeats": charge_point_recent_heartbeat_list(charge_point=charge_point),
            "heartbeats_last_24h": charge_point_heartbeat_count(charge_point=charge_point, since=since),
            "heartbeat_log_url": self._filtered_changelist("heartbeat", charge_point),
            "recent_security_events": charge_point_recent_security_events(charge_point=charge_point),
            "security_events_url": self._filtered_changelist("securityevent", charge_point),
        }

    def _filtered_changelist(self, model_name: str, charge_point: ChargePoint) -> str:
        return f"{reverse(f'admin:chargepoints_{model_name}_changelist')}?charge_point__id__exact={charge_point.pk}"

    def _lifecycle_actions(self, request: HttpRequest, charge_point: ChargePoint) -> list[dict[str, str]]:
        if not self.has_change_permission(request, charge_point):
            return []
        return [
            {
                "state": state,
                "verb": verb,
                "url": reverse("admin:chargepoints_chargepoint_lifecycle", args=[charge_point.pk, state]),
            }
            for state, verb in LIFECYCLE_ACTIONS.get(charge_point.lifecycle_state, [])
        ]

    # --- Commissioning ----------------------------------------------------------------------

    def lifecycle_view(self, request: HttpRequest, object_id: str, state: str) -> HttpResponse:
        """GET asks "Commission CP-1?"; POST makes the move through ``charge_point_update``."""
        charge_point = self.get_object(request, unquote(object_id))
        if charge_point is None:
            raise Http404
        if not self.has_change_permission(request, charge_point):
            raise PermissionDenied
        verbs = dict(LIFECYCLE_ACTIONS.get(charge_point.lifecycle_state, []))
        if state not in verbs:
            self.message_user(
                request,
                f"{charge_point} is {charge_point.get_lifecycle_state_display().lower()}; it cannot become {state}.",
                messages.ERROR,
            )
            return HttpResponseRedirect(self._change_url(charge_point))
        if request.method == "POST":
            previous_state = charge_point.lifecycle_state
            charge_point_update(charge_point=charge_point, lifecycle_state=state)
            charge_point_changed.send(  # commands wakes a charger just commissioned
                sender=ChargePoint,
                charge_point=charge_point,
                previous_state=previous_state,
                previous_interval=charge_point.heartbeat_interval,
                api_key=None,
                user_id=request.user.pk,
            )
            self.message_user(request, f"{charge_point} is now {state}.", messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(charge_point))
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verbs[state]} {charge_point}?",
            "opts": self.opts,
            "original": charge_point,
            "state": state,
            "verb": verbs[state],
            # Whatever the offline sweep said: a socket is held while presence names it.
            "closes_connection": state == LifecycleState.DECOMMISSIONED and bool(charge_point.connection_channel),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/chargepoints/chargepoint/lifecycle_confirmation.html", context)


@admin.register(Connector)
class ConnectorAdmin(ReadOnlyAdmin):
    """As the charger reported each connector (StatusNotification): shown, never typed in."""

    list_display = ["charge_point", "evse_id", "connector_id", "status", "error_code", "updated_at"]
    list_filter = ["status", "error_code"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]


class HeartbeatTimeFilter(TimeRangeFilter):
    since_parameter = "received_at__gte"
    until_parameter = "received_at__lt"


@admin.register(Heartbeat)
class HeartbeatAdmin(CappedList, ReadOnlyAdmin):
    """Millions of rows (a week of every charger's beats): as the message log, a time filter instead
    of a date hierarchy (a SELECT DISTINCT over the table) and a count capped."""

    list_display = ["charge_point", "received_at"]
    list_filter = [HeartbeatTimeFilter]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
