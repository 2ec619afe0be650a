"""Webhook subscriptions, the delivery outbox and its delivery with signatures and retries."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.url_safety import (
    UnsafeWebhookUrl,
    WebhookHostUnresolved,
    WebhookTarget,
    pinned_handlers,
    webhook_target_resolve,
    webhook_url_check,
)
from webhooks.signing import secret_new, subscription_signature_header

logger = logging.getLogger(__name__)

# Receiver answers that will never succeed on retry.
_PERMANENT_STATUSES = {400, 401, 403, 404, 405, 410, 413, 422}


def webhook_subscription_create(
    *, url: str, events: list[str], description: str = "", active: bool = True
) -> WebhookSubscription:
    webhook_url_check(url)
    return WebhookSubscription.objects.create(
        url=url, events=events, description=description, active=active, secret=secret_new()
    )


def iso_utc(value: datetime) -> str:
    """A time in event data: ISO 8601 in UTC with ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_event_emit(*, event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Write the event to the outbox of every subscriber; call inside the causing transaction.

    Delivery is queued when that transaction commits, so a rolled-back cause sends nothing.
    """
    subscriptions = [s for s in WebhookSubscription.objects.filter(active=True) if event_type in s.events]
    if not subscriptions:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": event_type, "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": data},
        separators=(",", ":"),
        default=str,
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event_id=event_id, event_type=event_type, subscription=subscription, body=body, next_attempt_at=now
        )
        for subscription in subscriptions
    )
    ids = [str(delivery.id) for delivery in deliveries]
    transaction.on_commit(lambda: _queue_delivery(ids))
    return deliveries


def _queue_delivery(delivery_ids: list[str]) -> None:
    from webhooks.tasks import deliver_webhooks

    try:
        deliver_webhooks.delay(delivery_ids)
    except Exception:
        logger.warning("Could not queue webhook deliveries %s; the beat sweep will send them", delivery_ids)


def webhook_deliveries_claim(*, delivery_ids: list[str] | None = None, limit: int = 100) -> list[WebhookDelivery]:
    """Claim due pending deliveries so that concurrent workers never send one twice at once."""
    now = timezone.now()
    with transaction.atomic():
        due = WebhookDelivery.objects.select_for_update(skip_locked=True).filter(
            state=DeliveryState.PENDING, next_attempt_at__lte=now
        )
        if delivery_ids is not None:
            due = due.filter(id__in=delivery_ids)
        claimed = list(due.select_related("subscription").order_by("next_attempt_at")[:limit])
        # The lease: a claimed delivery is not claimed again until it passes, so a worker killed
        # mid-delivery leaves it to the beat sweep (at-least-once, the event id unchanged).
        lease = timedelta(seconds=settings.CSMS_WEBHOOK_CLAIM_LEASE_SECONDS)
        WebhookDelivery.objects.filter(id__in=[d.id for d in claimed]).update(next_attempt_at=now + lease)
    return claimed


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx becomes an HTTPError: redirects are not followed


def _post(target: WebhookTarget, body: str, signature: str, event_id: str) -> int:
    """POST to the addresses that were checked (``target``), not to a fresh DNS answer."""
    opener = urllib.request.build_opener(_NoRedirects, *pinned_handlers(target))
    request = urllib.request.Request(
        target.url,
        data=body.encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Dynamo-CSMS-Webhooks/1",
            "X-Dynamo-Signature": signature,
            "X-Dynamo-Event-Id": event_id,
        },
    )
    try:
        with opener.open(request, timeout=settings.CSMS_WEBHOOK_TIMEOUT) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def webhook_delivery_attempt(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """POST the delivery once and record the attempt; schedule a retry or give up."""
    started = time.monotonic()
    status_code: int | None = None
    error = ""
    refused = False
    try:
        target = webhook_target_resolve(delivery.subscription.url)
        signature = subscription_signature_header(
            subscription=delivery.subscription, body=delivery.body, timestamp=int(time.time())
        )
        status_code = _post(target, delivery.body, signature, str(delivery.event_id))
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except WebhookHostUnresolved as unresolved:  # DNS may answer next time
        error = str(unresolved)
    except UnsafeWebhookUrl as unsafe:  # the guard refused the target: no retry will pass it
        error, refused = str(unsafe), True
    except Exception as failure:  # network errors, timeouts
        error = f"{type(failure).__name__}: {failure}"
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error
    if not error:
        delivery.state, delivery.delivered_at = DeliveryState.DELIVERED, now
    elif refused or status_code in _PERMANENT_STATUSES or delivery.attempts >= settings.CSMS_WEBHOOK_MAX_ATTEMPTS:
        delivery.state = DeliveryState.FAILED
    else:
        backoff = settings.CSMS_WEBHOOK_RETRY_BASE * 2 ** (delivery.attempts - 1)
        delivery.next_attempt_at = now + timedelta(seconds=backoff)
    with transaction.atomic():
        delivery.save(
            update_fields=["attempts", "last_status_code", "last_error", "state", "delivered_at", "next_attempt_at"]
        )
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=now,
            status_code=status_code,
            error=error,
            duration_ms=round((time.monotonic() - started) * 1000, 2),
        )
    return delivery


def webhook_deliveries_send(*, delivery_ids: list[str] | None = None) -> int:
    """Claim and attempt due deliveries (the given ones, or all due); returns how many were tried."""
    claimed = webhook_deliveries_claim(delivery_ids=delivery_ids)
    for delivery in claimed:
        webhook_delivery_attempt(delivery=delivery)
    return len(claimed)


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> None:
    """Operator's re-send: back to pending, due now, with a fresh attempt budget."""
    delivery.state = DeliveryState.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = timezone.now()
    delivery.save(update_fields=["state", "attempts", "next_attempt_at"])
    ids = [str(delivery.id)]
    transaction.on_commit(lambda: _queue_delivery(ids))
