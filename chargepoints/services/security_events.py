"""Security events chargers report (SecurityEventNotification: OCPP 1.6 security whitepaper §4.3,
2.0.1 A04), recorded and announced (``charge_point.security_event``). The message log keeps the frame
only for ``CSMS_MESSAGE_LOG_DAYS``; a tamper alarm or a refused firmware signature is kept for good."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from chargepoints import events
from chargepoints.models import ChargePoint, SecurityEvent
from webhooks.models import EventType
from webhooks.services import webhook_event_emit


def security_event_record(
    *, charge_point_id: str, event_type: str, timestamp: datetime | None, tech_info: str = "", sent: str = ""
) -> SecurityEvent | None:
    """Record the event ``event_type`` (the charger's ``type``, up to 50 characters) that happened at
    ``timestamp`` (the charger's clock; None, unreadable: when it arrived) with ``tech_info`` (up to
    255 characters), and announce it. An event recorded already (a replay: the same type, time and
    details) is neither recorded nor announced again; without a readable ``timestamp``, the same time
    as ``sent`` tells it (its arrival differs from copy to copy; none sent: none tells it). Returns
    the event, or None when the charger is unknown or it was a replay."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk").first()
    if charge_point is None:
        return None
    event_type, tech_info = event_type[:50], (tech_info or "")[:255]  # a lenient charger's longer text, cut
    sent = "" if timestamp is not None else sent[: SecurityEvent._meta.get_field("timestamp_sent").max_length]
    with transaction.atomic():
        if sent:
            untimed = SecurityEvent.objects.filter(
                charge_point=charge_point, event_type=event_type, tech_info=tech_info, timestamp_sent=sent
            )
            if untimed.exists():
                return None
        event, created = SecurityEvent.objects.get_or_create(
            charge_point=charge_point,
            event_type=event_type,
            timestamp=timestamp or timezone.now(),
            tech_info=tech_info,
            defaults={"timestamp_sent": sent},
        )
        if not created:
            return None
        webhook_event_emit(
            event_type=EventType.SECURITY_EVENT_REPORTED,
            data=events.security_event_reported(
                charge_point_id=charge_point_id,
                event_type=event.event_type,
                timestamp=event.timestamp,
                tech_info=event.tech_info,
            ),
        )
    return event
