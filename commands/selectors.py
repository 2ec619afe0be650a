"""Reads of the command audit log."""

from __future__ import annotations

from django.db.models import QuerySet

from commands.models import Command, CommandState

FAILED_COMMAND_STATES = (
    CommandState.REJECTED,
    CommandState.INVALID_RESPONSE,
    CommandState.CALL_ERROR,
    CommandState.TIMEOUT,
    CommandState.NOT_CONNECTED,
)


def failed_command_list(*, limit: int = 20) -> QuerySet[Command]:
    """Commands the charger refused, failed or never got, the latest first, with their charger
    and who sent them (one query)."""
    return (
        Command.objects.filter(state__in=FAILED_COMMAND_STATES)
        .select_related("charge_point", "api_key", "user")
        .order_by("-created_at")[:limit]
    )
