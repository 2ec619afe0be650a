"""Reads of webhook deliveries."""

from __future__ import annotations

from django.db.models import QuerySet

from webhooks.models import DeliveryState, WebhookDelivery


def failed_delivery_list(*, limit: int = 20) -> QuerySet[WebhookDelivery]:
    """Deliveries that gave up, the latest first, with their subscription (one query)."""
    return (
        WebhookDelivery.objects.filter(state=DeliveryState.FAILED)
        .select_related("subscription")
        .order_by("-created_at")[:limit]
    )
