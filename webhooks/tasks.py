"""Celery entry points for webhook delivery; the rules live in ``services``."""

from celery import shared_task

from webhooks import services


@shared_task
def deliver_webhooks(delivery_ids: list[str]) -> int:
    return services.webhook_deliveries_send(delivery_ids=delivery_ids)


@shared_task
def deliver_due_webhooks() -> int:
    """Beat sweep: retries whose backoff has passed, and anything a lost task left behind."""
    return services.webhook_deliveries_send()
