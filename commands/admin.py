"""The command audit log, how the admin sends a command and tells the operator its outcome, and the
commands panel and actions of a charge point's page (``ChargePointAdmin``, which extends charging's)."""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chargepoints.admin.message_log import ACTIONS, ActionFilter
from chargepoints.admin.shared import CHARGERS_SEARCHED
from chargepoints.models import ChargePoint
from chargepoints.selectors import connector_list
from chargepoints.services import charge_point_update
from charging.admin import charge_points
from commands.forms import (
    COMMAND_FORMS,
    ChangeAvailabilityForm,
    ChangeHeartbeatIntervalForm,
    CommandForm,
    ResetForm,
    TriggerMessageForm,
)
from commands.models import Command, CommandState
from commands.rpc import CHANNEL_LAYER_FAILED, OTHER_VERSION
from commands.services import (
    REFUSING_STATUSES,
    CommandRefused,
    CommandRequest,
    command_send,
    heartbeat_interval_push,
)
from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.together import each_at_once

logger = logging.getLogger(__name__)


def command_form_send(request: HttpRequest, form: CommandForm) -> None:
    """Send what a valid panel form asks for, on the API's path, and put the outcome in the message bar."""
    charge_point = form.charge_point
    try:
        if isinstance(form, ChangeHeartbeatIntervalForm):
            command = _heartbeat_interval_change(form, user_id=request.user.pk)
        else:
            name, body = form.command_body()
            command = command_send(
                request=CommandRequest(
                    charge_point_id=charge_point.charge_point_id,
                    ocpp_version=charge_point.ocpp_version,
                    command=name,
                    body=body,
                    user_id=request.user.pk,
                )
            )
    except CommandRefused as refused:
        details = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in refused.details.items())
        text = f"{form.label} not sent to {charge_point}: {refused}" + (f" ({details})" if details else "")
        messages.error(request, text)
        return
    if command is None:
        messages.warning(
            request,
            f"Heartbeat interval of {charge_point} set to {charge_point.heartbeat_interval} s; it is not connected, "
            "so its next BootNotification answer carries it.",
        )
        return
    level, text = command_outcome_message(command, form.label)
    messages.add_message(request, level, text)
    for warning in command.warnings:  # sent anyway: e.g. a remote start for a tag the CSMS would not accept
        messages.warning(request, warning)


def _heartbeat_interval_change(form: ChangeHeartbeatIntervalForm, *, user_id: int | None) -> Command | None:
    charge_point = charge_point_update(charge_point=form.charge_point, heartbeat_interval=form.cleaned_data["interval"])
    return heartbeat_interval_push(charge_point=charge_point, user_id=user_id)


def command_outcome_message(command: Command, label: str) -> tuple[int, SafeString]:
    """The message level and text for a finished command, with a link to its audit row."""
    identity = command.charge_point_identity
    link = format_html(
        '<a href="{}">command {}</a>', reverse("admin:commands_command_change", args=[command.pk]), command.pk
    )
    status = _answered_status(command)
    if command.state == CommandState.CALL_ERROR:
        detail = f" ({command.error_description})" if command.error_description else ""
        return messages.ERROR, format_html(
            "{} to {} failed: the charge point answered CALLERROR {}{}. See {}.",
            label,
            identity,
            command.error_code,
            detail,
            link,
        )
    if command.state == CommandState.INVALID_RESPONSE:
        return messages.ERROR, format_html(
            "{} to {} failed: {} See {}.", label, identity, command.error_description, link
        )
    if command.state == CommandState.NOT_CONNECTED and command.error_description.startswith(CHANNEL_LAYER_FAILED):
        return messages.ERROR, format_html(
            "{} not sent: the process holding {}'s connection could not be reached (Redis unavailable or busy)."
            " See {}.",
            label,
            identity,
            link,
        )
    if command.state == CommandState.NOT_CONNECTED and command.error_description.startswith(OTHER_VERSION):
        return messages.ERROR, format_html(
            "{} not sent to {}: {} See {}.", label, identity, command.error_description, link
        )
    if command.state == CommandState.NOT_CONNECTED:
        return messages.ERROR, format_html("{} not sent: {} is not connected. See {}.", label, identity, link)
    if command.state == CommandState.TIMEOUT:
        return messages.ERROR, format_html(
            "{} sent to {}: no answer within {} s. See {}.", label, identity, settings.CSMS_OCPP_CALL_TIMEOUT, link
        )
    refused = command.state == CommandState.REJECTED or status in REFUSING_STATUSES
    answer = f"answered {status}" if status else "accepted it"
    return (messages.WARNING if refused else messages.SUCCESS), format_html(
        "{} sent to {}: the charge point {}. See {}.", label, identity, answer, link
    )


def _answered_status(command: Command) -> str:
    """The charger's status word; SetVariables answers it per variable."""
    response = command.response or {}
    if "status" in response:
        return str(response["status"])
    results = response.get("set_variable_result") or []
    return str(results[0].get("attribute_status", "")) if results else ""


class OcppVersionFilter(admin.SimpleListFilter):
    title, parameter_name = "OCPP version", "ocpp_version"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(version, version) for version in ("1.6", "2.0.1")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Command]) -> QuerySet[Command]:
        value = self.value()
        return queryset if value is None else queryset.filter(ocpp_version=value)


@admin.register(Command)
class CommandAdmin(CappedList, admin.ModelAdmin):
    list_display = [
        "created_at",
        "charge_point_identity",
        "action",
        "state",
        "error_code",
        "latency_ms",
        "requested_by",
    ]
    # Every command is kept (the audit): nothing here counts or lists the table whole, as the
    # message log: fixed filter choices (no SELECT DISTINCT), a time filter instead of a date
    # hierarchy (its months are a SELECT DISTINCT over the table), a count capped.
    list_filter = ["state", ActionFilter, OcppVersionFilter, TimeRangeFilter]
    search_fields = ["charge_point_identity", "action", "id", "idempotency_key"]
    search_help_text = (
        "A charger id (or part of one), an OCPP action (or part of one), a command's id or idempotency key."
    )
    list_select_related = ["api_key", "user"]  # requested_by names them
    readonly_fields = [f.name for f in Command._meta.fields] + ["requested_by"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Command], search_term: str
    ) -> tuple[QuerySet[Command], bool]:
        """The chargers matching first, then their commands by ``charge_point_identity``'s index (a
        charger deleted since: its id as typed); an action among OCPP's containing the term; a
        command's id or idempotency key as given. An ILIKE of each column scanned every command
        (1.6 s a page at 1,000,000 commands)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = ChargePoint.objects.filter(charge_point_id__icontains=term).order_by("charge_point_id")
        chargers = list(matching.values_list("charge_point_id", flat=True)[:CHARGERS_SEARCHED])
        found = Q(charge_point_identity__in=[term, *chargers]) | Q(idempotency_key=term)
        actions = [action for action in ACTIONS if term.casefold() in action.casefold()]
        if actions:
            found |= Q(action__in=actions)
        with contextlib.suppress(ValueError):  # not a whole id
            found |= Q(pk=uuid.UUID(term))
        return queryset.filter(found), False

    def has_add_permission(self, request, obj=None) -> bool:  # commands are sent, not typed in
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class _Said:
    """A request's stand-in for one charger of an admin action: the messages it gets are kept, to be
    put in the message bar in the chargers' order once every send is done."""

    def __init__(self, request: HttpRequest) -> None:
        self.user = request.user
        self.messages: list[tuple[int, str, str]] = []
        self._messages = self  # what django.contrib.messages.add_message writes to

    def add(self, level: int, message: str, extra_tags: str = "") -> None:
        self.messages.append((level, message, extra_tags))


class ChargePointAdmin(charge_points.ChargePointAdmin):
    """A charge point's page with the commands panel (a form per command, sent on the API's path)
    and the admin actions that send a command to each selected charger."""

    actions = ["reset_soft", "reset_hard", "make_available", "make_unavailable", "trigger_status_notification"]

    def has_send_command_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("commands.send_command")

    def get_urls(self) -> list[URLPattern]:
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        command = path(
            "<path:object_id>/command/<str:command>/",
            self.admin_site.admin_view(self.command_view),
            name=f"{info}_command",
        )
        return [command, *super().get_urls()]

    def _charge_point_context(self, request: HttpRequest, charge_point: ChargePoint) -> dict[str, Any]:
        return {
            **super()._charge_point_context(request, charge_point),
            "command_panel": self._command_panel(request, charge_point),
        }

    def save_model(self, request: HttpRequest, obj: ChargePoint, form: Any, change: bool) -> None:
        """A heartbeat interval changed in the form is pushed to the connected charger once saved, as
        the API's PATCH and the panel push it (``heartbeat_interval_push``): it was only stored, the
        charger heartbeating at its old one until it booted. After the commit: the charger's answer
        records the interval taken on the row this page's transaction holds. Not with a password
        change, which closes the connection (its reconnection is told, ``heartbeat_interval_owed_push``)."""
        super().save_model(request, obj, form, change)
        password_changed = form.cleaned_data.get("new_password") or form.cleaned_data.get("remove_password")
        if change and "heartbeat_interval" in form.changed_data and not password_changed:
            transaction.on_commit(lambda: self._heartbeat_interval_pushed(request, obj))

    def _heartbeat_interval_pushed(self, request: HttpRequest, charge_point: ChargePoint) -> None:
        label = ChangeHeartbeatIntervalForm.label
        try:
            command = heartbeat_interval_push(charge_point=charge_point, user_id=request.user.pk)
        except CommandRefused as refused:
            self.message_user(request, f"{label} not sent to {charge_point}: {refused}", messages.WARNING)
            return
        if command is not None:  # else not connected: its next BootNotification answer carries it
            level, text = command_outcome_message(command, label)
            self.message_user(request, text, level)

    def _command_panel(self, request: HttpRequest, charge_point: ChargePoint) -> dict[str, Any] | None:
        """The panel's forms for the charger's OCPP version; None hides the panel."""
        if not self.has_send_command_permission(request):
            return None
        if not charge_point.ocpp_version:
            return {"forms": []}
        forms = [
            {
                "form": form_class(charge_point=charge_point),
                "url": reverse("admin:chargepoints_chargepoint_command", args=[charge_point.pk, name]),
            }
            for name, form_class in COMMAND_FORMS.items()
        ]
        return {"forms": forms}

    def command_view(self, request: HttpRequest, object_id: str, command: str) -> HttpResponse:
        """POST of one panel form: validate it, send it as the API would, report in the message bar."""
        if not self.has_send_command_permission(request):
            raise PermissionDenied
        if command == "change_heartbeat_interval" and not self.has_change_permission(request):
            raise PermissionDenied  # it also changes the stored configuration
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        charge_point = self.get_object(request, unquote(object_id))
        if charge_point is None or command not in COMMAND_FORMS:
            raise Http404
        self._send(request, charge_point, COMMAND_FORMS[command], request.POST)
        return HttpResponseRedirect(self._change_url(charge_point))

    def _send(self, request: HttpRequest, charge_point: ChargePoint, form_class: type[CommandForm], data: Any) -> None:
        if not charge_point.ocpp_version:
            self.message_user(
                request,
                f"{form_class.label} not sent: {charge_point} has never connected, so its OCPP version is unknown.",
                messages.ERROR,
            )
            return
        form = form_class(data, charge_point=charge_point)
        if not form.is_valid():
            errors = "; ".join(
                f"{form.fields[f].label if f in form.fields else f}: {' '.join(e)}"  # type: ignore[arg-type]  # str messages
                for f, e in form.errors.items()
            )
            self.message_user(request, f"{form.label} not sent to {charge_point}: {errors}", messages.ERROR)
            return
        command_form_send(request, form)

    def _send_to_each(
        self,
        request: HttpRequest,
        queryset: QuerySet[ChargePoint],
        form_class: type[CommandForm],
        data_by_version: dict[str, Any],
    ) -> None:
        """An admin action: the same command to every selected charger, each reported on its own, in
        the list's order. Sent to the chargers at once (``kernel.together``): a silent charger's
        wait (up to ``CSMS_OCPP_CALL_TIMEOUT``) does not add to every other's. ``data_by_version``:
        the form's data by OCPP version, or a function of the charger giving a list of them (one
        command each, in order)."""

        def send(charge_point: ChargePoint) -> list[tuple[int, str, str]]:
            said = _Said(request)
            data = data_by_version.get(charge_point.ocpp_version, {})
            try:
                requests = data(charge_point) if callable(data) else [data]
                if not requests:
                    said.add(
                        messages.WARNING, f"{charge_point.charge_point_id}: nothing to send it yet (no EVSE known)."
                    )
                for each in requests:
                    self._send(said, charge_point, form_class, each)  # type: ignore[arg-type]  # a request's stand-in
            except Exception:  # one charger's failure is its own line, the others' outcomes still shown
                logger.exception("Admin action: sending to %s failed", charge_point.charge_point_id)
                failed = f"{charge_point.charge_point_id}: the command could not be sent (the log says why)."
                said.add(messages.ERROR, failed)
            return said.messages

        for said in each_at_once(send, list(queryset), name="admin-action"):
            for level, text, extra_tags in said:
                messages.add_message(request, level, text, extra_tags)

    @admin.action(description="Reset (soft) selected", permissions=["send_command"])
    def reset_soft(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        self._send_to_each(request, queryset, ResetForm, {"1.6": {"type": "Soft"}, "2.0.1": {"type": "OnIdle"}})

    @admin.action(description="Reset (hard) selected", permissions=["send_command"])
    def reset_hard(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        self._send_to_each(request, queryset, ResetForm, {"1.6": {"type": "Hard"}, "2.0.1": {"type": "Immediate"}})

    @admin.action(description="Make selected available (whole charger)", permissions=["send_command"])
    def make_available(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        data = {"connector": 0, "status": "Operative"}
        self._send_to_each(request, queryset, ChangeAvailabilityForm, {"1.6": data, "2.0.1": data})

    @admin.action(description="Make selected unavailable (whole charger)", permissions=["send_command"])
    def make_unavailable(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        data = {"connector": 0, "status": "Inoperative"}
        self._send_to_each(request, queryset, ChangeAvailabilityForm, {"1.6": data, "2.0.1": data})

    @admin.action(description="Trigger a StatusNotification", permissions=["send_command"])
    def trigger_status_notification(self, request: HttpRequest, queryset: QuerySet[ChargePoint]) -> None:
        """1.6: one TriggerMessage without a connector (every connector's status). 2.0.1: one per EVSE
        the CSMS knows of the charger (F06.FR.13: the CSMS names the EVSE; a station reports statuses
        per connector, never for itself), none for a station that reported no EVSE yet."""
        data = {"requested_message": "StatusNotification"}

        def each_evse(charge_point: ChargePoint) -> list[dict[str, Any]]:
            evses = sorted({c.evse_id for c in connector_list(charge_point=charge_point) if c.evse_id})
            return [{**data, "connector": evse_id} for evse_id in evses]

        self._send_to_each(request, queryset, TriggerMessageForm, {"1.6": data, "2.0.1": each_evse})


admin.site.unregister(ChargePoint)
admin.site.register(ChargePoint, ChargePointAdmin)
