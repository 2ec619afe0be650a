"""Handlers for notifications the CSMS acknowledges without acting on them.

A charger that sends FirmwareStatusNotification, NotifyReport and the like expects an answer;
a NotImplemented CALLERROR makes some firmware retry for ever. The frame itself is kept in the
message log, which is these notifications' record (security events have their own: ``security_events``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from ocpp.routing import on

logger = logging.getLogger(__name__)
# A notification's log line shows its payload's start: the whole frame is in the message log, and a
# line per 64 KB frame, at the frame rate, would be megabytes of log a second from one charger.
LOGGED_PAYLOAD = "%s: %s %.500s"


def acknowledging_handler(
    action: Enum, answer: Callable[[], Any], *, level: int = logging.INFO
) -> Callable[..., Awaitable[Any]]:
    """An ``@on(action)`` handler that logs the notification and returns ``answer()``."""

    async def handler(self: Any, **payload: Any) -> Any:
        logger.log(level, LOGGED_PAYLOAD, self.id, action, payload)
        return answer()

    # The ocpp package routes by the attribute name a handler had when @on saw it.
    handler.__name__ = handler.__qualname__ = f"on_{action.name}"
    return on(action)(handler)
