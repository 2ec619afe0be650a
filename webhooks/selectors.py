"""Reads of webhook deliveries."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone

from webhooks.models import DeliveryState, WebhookDelivery


def failed_delivery_list(*, limit: int = 20) -> QuerySet[WebhookDelivery]:
    """Deliveries that gave up, the latest first, with their subscription (one query)."""
    return (
        WebhookDelivery.objects.filter(state=DeliveryState.FAILED)
        .select_related("subscription")
        .order_by("-created_at")[:limit]
    )


@dataclass(frozen=True)
class DeliveryBacklog:
    pending: int
    failed: int
    oldest_pending_seconds: float


def delivery_backlog() -> DeliveryBacklog:
    """Undelivered and given-up deliveries, and the age of the oldest undelivered one (one query)."""
    totals = WebhookDelivery.objects.aggregate(
        pending=Count("pk", filter=Q(state=DeliveryState.PENDING)),
        failed=Count("pk", filter=Q(state=DeliveryState.FAILED)),
        oldest=Min("created_at", filter=Q(state=DeliveryState.PENDING)),
    )
    age = (timezone.now() - totals["oldest"]).total_seconds() if totals["oldest"] else 0.0
    return DeliveryBacklog(pending=totals["pending"], failed=totals["failed"], oldest_pending_seconds=age)
