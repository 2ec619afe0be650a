"""``csms.asgi``'s application in a daphne whose event loop stalls right after a charger's
connection queued the first DataTransfer command of vendor ``stall`` (a test's fault, never in the
product): ``time.sleep`` on the loop for longer than a command's caller waits for its
acknowledgement (``commands.rpc.ACK_TIMEOUT``), as a process paused or starved of CPU at that
moment would. Loaded as ``commands.tests.stalled_after_queueing_app:application``.
"""

# isort: skip_file
# (Django is set up by csms.asgi's import, before the models' modules are imported.)
from __future__ import annotations

import time
from typing import Any

from csms.asgi import application
from commands.rpc import ACK_TIMEOUT
from ocpp_gateway.consumers import OcppConsumer

__all__ = ["application"]

_ocpp_call = OcppConsumer.ocpp_call
_stalled: list[bool] = []  # once per process


async def _stalling_after_queueing(self: OcppConsumer, message: dict[str, Any]) -> None:
    await _ocpp_call(self, message)
    if message.get("action") == "DataTransfer" and message.get("payload", {}).get("vendorId") == "stall":
        if _stalled:
            return
        _stalled.append(True)
        time.sleep(ACK_TIMEOUT + 0.6)  # the whole process's loop, the acknowledgement's timer included


OcppConsumer.ocpp_call = _stalling_after_queueing  # type: ignore[method-assign]
