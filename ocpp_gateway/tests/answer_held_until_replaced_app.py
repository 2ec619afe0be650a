"""``csms.asgi``'s application in a daphne whose gateway holds the answer to a Reset it sent until
the connection is told it was replaced (a test's seam, never in the product): the outbound worker
then goes on to the next command with the socket closing, a moment a charger's reconnect meets by
chance. ``OcppRouter._result_checked``, the first step after the answer came, waits (10 s at most).
Loaded as ``ocpp_gateway.tests.answer_held_until_replaced_app:application``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from csms.asgi import application
from ocpp_gateway.router import OcppRouter

__all__ = ["application"]

_result_checked = OcppRouter._result_checked


async def _held_until_replaced(self: OcppRouter, action: str, payload: Any) -> dict[str, Any]:
    if action == "Reset":
        deadline = time.monotonic() + 10
        while not getattr(self._connection, "_replaced_by", "") and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    return await _result_checked(self, action, payload)


OcppRouter._result_checked = _held_until_replaced  # type: ignore[method-assign]
