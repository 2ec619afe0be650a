"""``csms.asgi``'s application in a daphne whose gateway fails on every answer to a Reset it sent
(a test's fault, never in the product): ``OcppRouter._result_checked``, the first step after the
CALL frame is written and answered, raises. No charger answer is left that makes that step fail
(the profile lookup and the violations' record catch a database outage), so the failure a bug
would cause is injected at that seam. Loaded as ``commands.tests.answer_unprocessed_app:application``.
"""

from __future__ import annotations

from typing import Any

from csms.asgi import application
from ocpp_gateway.router import OcppRouter

__all__ = ["application"]

_result_checked = OcppRouter._result_checked


async def _failing_for_reset(self: OcppRouter, action: str, payload: Any) -> dict[str, Any]:
    if action == "Reset":
        raise RuntimeError("injected: the Reset's answer could not be processed")
    return await _result_checked(self, action, payload)


OcppRouter._result_checked = _failing_for_reset  # type: ignore[method-assign]
