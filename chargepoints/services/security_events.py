"""Security events chargers report (SecurityEventNotification: OCPP 1.6 security whitepaper §4.3,
2.0.1 A04), recorded and announced (``charge_point.security_event``). The message log keeps the frame
only for ``CSMS_MESSAGE_LOG_DAYS``; a tamper alarm or a refused firmware signature is kept for good."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from chargepoints import events
from chargepoints.models import ChargePoint, SecurityEvent
from webhooks.models import EventType
from webhooks.services import webhook_event_emit


def security_event_record(
    *, charge_point_id: str, event_type: str, timestamp: datetime | None, tech_info: str = ""
) -> SecurityEvent | None:
    """Record the event ``event_type`` (the charger's ``type``, up to 50 characters) that happened at
    ``timestamp`` (the charger's clock; None, unreadable: when it arrived) with ``tech_info`` (up to
    255 characters), and announce it. An event recorded already (a replay) is neither recorded nor
    announced again: without a readable ``timestamp``, one of the same type and details received in the
    last ``UNTIMED_REPLAY_WINDOW`` is taken for it (its time was its arrival, which a replay does not
    repeat). Returns the event, or None when the charger is unknown or it was a replay."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk").first()
    if charge_point is None:
        return None
    if timestamp is None and _untimed_replay(charge_point, event_type[:50], (tech_info or "")[:255]):
        return None
    with transaction.atomic():
        event, created = SecurityEvent.objects.get_or_create(
            charge_point=charge_point,
            event_type=event_type[:50],  # a lenient charger's longer text is kept, cut to the column
            timestamp=timestamp or timezone.now(),
            tech_info=(tech_info or "")[:255],
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


# A security event without a readable time, received again within this window, is taken for a replay.
UNTIMED_REPLAY_WINDOW = timedelta(minutes=10)


def _untimed_replay(charge_point: ChargePoint, event_type: str, tech_info: str) -> bool:
    received_since = timezone.now() - UNTIMED_REPLAY_WINDOW
    return SecurityEvent.objects.filter(
        charge_point=charge_point, event_type=event_type, tech_info=tech_info, received_at__gte=received_since
    ).exists()
