"""The command audit log, and how the admin sends a command and tells the operator its outcome."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from chargepoints.services import charge_point_update
from commands.forms import ChangeHeartbeatIntervalForm, CommandForm
from commands.models import Command, CommandState
from commands.services import (
    REFUSING_STATUSES,
    CommandRefused,
    CommandRequest,
    command_send,
    heartbeat_interval_push,
)


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


@admin.register(Command)
class CommandAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "charge_point_identity",
        "action",
        "state",
        "error_code",
        "latency_ms",
        "requested_by",
    ]
    list_filter = ["state", "action", "ocpp_version"]
    search_fields = ["charge_point_identity", "action", "id", "idempotency_key"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Command._meta.fields] + ["requested_by"]

    def has_add_permission(self, request, obj=None) -> bool:  # commands are sent, not typed in
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
