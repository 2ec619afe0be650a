"""SecurityEventNotification, the same in OCPP 1.6 (security whitepaper §4.3) and 2.0.1 (A04):
``{type, timestamp, techInfo?}`` -> ``{}``, the event recorded and announced (``security_event_record``)
and logged as a warning."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from chargepoints.services import security_events
from kernel.ocpp_package import on_payload
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.acknowledge import LOGGED_PAYLOAD
from ocpp_gateway.group_commit import in_commit_group

logger = logging.getLogger(__name__)


def security_event_handler(action: Enum) -> Callable[..., Awaitable[dict[str, Any]]]:
    """The ``@on(action)`` handler of a version's SecurityEventNotification."""

    async def handler(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
        logger.warning(LOGGED_PAYLOAD, self.id, action, payload)
        await in_commit_group(security_events.security_event_record)(
            charge_point_id=self.id,
            event_type=payload["type"],
            timestamp=parse_ocpp_time(payload["timestamp"]),
            tech_info=payload.get("techInfo") or "",
            sent=payload["timestamp"] if isinstance(payload["timestamp"], str) else "",
        )
        return {}

    # The ocpp package routes by the attribute name a handler had when @on saw it.
    handler.__name__ = handler.__qualname__ = f"on_{action.name}"
    return on_payload(action)(handler)
