"""``csms.asgi``'s application in a daphne whose commands to a charger named ``CP-STALE...`` are
sent to the first presence they read of it (a test's seam, never in the product): what a command
recorded just before its charger reconnected (to any process) reads, every time.
``commands.services._presence`` gives it. Loaded as ``commands.tests.stale_presence_app:application``.
"""

# isort: skip_file
# (Django is set up by csms.asgi's import, before the models' modules are imported.)
from __future__ import annotations

from csms.asgi import application
from commands import services
from commands.models import Command

__all__ = ["application"]

_presence = services._presence
_first: dict[str, str] = {}


def _first_presence(command: Command) -> str:
    presence = _presence(command)
    if not command.charge_point_identity.startswith("CP-STALE"):
        return presence
    return _first.setdefault(command.charge_point_identity, presence)


services._presence = _first_presence
