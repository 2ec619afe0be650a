"""The ``data`` of the webhook events commands emit (README, "Webhooks"); see chargepoints/events.py."""

from __future__ import annotations

from typing import Any

from commands.models import Command
from webhooks.models import EventType


def command_completed(command: Command) -> dict[str, Any]:
    """command.completed: the command's final ``state`` and the charger's answer (snake_case)."""
    return {
        "command_id": str(command.id),
        "charge_point_id": command.charge_point_identity,
        "action": command.action,
        "state": command.state,
        "response": command.response,
        "error_code": command.error_code or None,
    }


EVENT_BUILDERS = {EventType.COMMAND_COMPLETED: command_completed}
