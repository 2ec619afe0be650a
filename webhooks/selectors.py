"""Reads of webhook deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q, QuerySet

from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery
from webhooks.url_safety import webhook_url_redacted


def failed_delivery_list(*, limit: int = 20) -> QuerySet[WebhookDelivery]:
    """Deliveries that gave up, the latest first, with their subscription (one query)."""
    return (
        WebhookDelivery.objects.filter(state=DeliveryState.FAILED)
        .select_related("subscription")
        .order_by("-created_at")[:limit]
    )


@dataclass(frozen=True)
class WebhookBacklog:
    pending: int  # not yet delivered nor given up (waiting, in flight or backing off)
    due: int  # pending and claimable now: waiting for a webhook worker
    failed: int  # given up after their last attempt (kept until re-sent)
    oldest_pending_seconds: float | None  # age of the oldest pending delivery, None when there is none


def webhook_backlog(*, now: datetime) -> WebhookBacklog:
    """The outbox at ``now``, for the dashboard and the metrics (one query). Only the pending and
    failed rows are read, on the ``(state, next_attempt_at)`` index: the delivered ones, nearly all of a
    month's outbox, are not (counting over the whole table scanned 2,000,000 rows, 0.6 s of three
    cores, at every scrape and every dashboard refresh)."""
    row = WebhookDelivery.objects.filter(state__in=(DeliveryState.PENDING, DeliveryState.FAILED)).aggregate(
        pending=Count("id", filter=Q(state=DeliveryState.PENDING)),
        due=Count("id", filter=Q(state=DeliveryState.PENDING, next_attempt_at__lte=now)),
        failed=Count("id", filter=Q(state=DeliveryState.FAILED)),
        oldest=Min("created_at", filter=Q(state=DeliveryState.PENDING)),
    )
    oldest = row["oldest"]
    return WebhookBacklog(
        pending=row["pending"],
        due=row["due"],
        failed=row["failed"],
        oldest_pending_seconds=(now - oldest).total_seconds() if oldest else None,
    )


@dataclass(frozen=True)
class ReceiverFailureRate:
    subscription_id: str
    url: str  # without its secrets (``webhook_url_redacted``): the dashboard is shown to every staff member
    attempts: int
    failed: int

    @property
    def failure_rate(self) -> float:
        """Failed attempts / attempts, 0 to 1."""
        return self.failed / self.attempts


def receiver_failure_rate_list(*, since: datetime, limit: int) -> list[ReceiverFailureRate]:
    """Receivers (subscriptions) whose attempts since ``since`` failed at all, the worst rate first (one query)."""
    rows = (
        WebhookAttempt.objects.filter(attempted_at__gte=since)
        .values("delivery__subscription_id", "delivery__subscription__url")
        .annotate(attempts=Count("id"), failed=Count("id", filter=~Q(error="")))
        .filter(failed__gt=0)
    )
    rates = [
        ReceiverFailureRate(
            subscription_id=str(row["delivery__subscription_id"]),
            url=webhook_url_redacted(row["delivery__subscription__url"]),
            attempts=row["attempts"],
            failed=row["failed"],
        )
        for row in rows
    ]
    return sorted(rates, key=lambda rate: (-rate.failure_rate, -rate.failed))[:limit]
