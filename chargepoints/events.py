"""The ``data`` of the webhook events the fleet emits (README, "Webhooks").

Each builder takes what the event is about and returns a JSON-ready dict; ``EVENT_BUILDERS`` names
the builder of each event type this app emits (webhooks/tests/test_event_builders.py checks them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from webhooks.models import EventType
from webhooks.services import iso_utc


def charge_point_connectivity(*, charge_point_id: str, at: datetime, reason: str) -> dict[str, Any]:
    """charge_point.online / .offline: ``reason`` is ``connected``, ``message_received``,
    ``gateway_back`` (online: its stalled gateway process serves the open socket again),
    ``heartbeat_timeout`` or how the connection ended."""
    return {"charge_point_id": charge_point_id, "at": iso_utc(at), "reason": reason}


def connector_status_changed(
    *,
    charge_point_id: str,
    evse_id: int | None,
    connector_id: int,
    status: str,
    previous_status: str,
    error_code: str,
    timestamp: datetime,
) -> dict[str, Any]:
    """connector.status_changed: the OCPP status (and error code) a StatusNotification reported; a
    2.0.1 one carries no error code (null, as every absent value)."""
    return {
        "charge_point_id": charge_point_id,
        "evse_id": evse_id,
        "connector_id": connector_id,
        "status": status,
        "previous_status": previous_status or None,
        "error_code": error_code or None,
        "timestamp": iso_utc(timestamp),
    }


def security_event_reported(
    *, charge_point_id: str, event_type: str, timestamp: datetime, tech_info: str
) -> dict[str, Any]:
    """charge_point.security_event: a SecurityEventNotification (1.6 security whitepaper, 2.0.1 A04):
    the charger's ``type`` and ``techInfo`` (null when none), ``timestamp`` by the charger's clock."""
    return {
        "charge_point_id": charge_point_id,
        "type": event_type,
        "timestamp": iso_utc(timestamp),
        "tech_info": tech_info or None,
    }


EVENT_BUILDERS = {
    EventType.CHARGE_POINT_ONLINE: charge_point_connectivity,
    EventType.CHARGE_POINT_OFFLINE: charge_point_connectivity,
    EventType.CONNECTOR_STATUS_CHANGED: connector_status_changed,
    EventType.SECURITY_EVENT_REPORTED: security_event_reported,
}
