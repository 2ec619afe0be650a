"""Finished webhook deliveries (their bodies hold id tags) are pruned hourly with their attempts,
after ``CSMS_WEBHOOK_DELIVERY_DAYS``, as the message log is; pending and claimed ones never are."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from csms.celery import app
from kernel import sweeps
from webhooks import services, tasks
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    return services.webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["charge_point.offline"])


def delivery(subscription, name: str, *, state: str, days: float, lease: bool = False, attempts: int = 1) -> str:
    """A delivery created ``days`` ago (and last claimed then), with ``attempts`` attempts."""
    then = timezone.now() - timedelta(days=days)
    row = WebhookDelivery.objects.create(
        event_id=uuid.uuid4(),
        event_type="charge_point.offline",
        subscription=subscription,
        body=f'{{"name": "{name}", "id_tag": "TAG-1"}}',
        state=state,
        attempts=attempts,
        next_attempt_at=then,
        lease_token=uuid.uuid4() if lease else None,
        delivered_at=then if state == DeliveryState.DELIVERED else None,
    )
    WebhookDelivery.objects.filter(pk=row.pk).update(created_at=then)
    WebhookAttempt.objects.bulk_create(
        WebhookAttempt(delivery=row, attempted_at=then, status_code=500, error="HTTP 500", duration_ms=1.0)
        for _ in range(attempts)
    )
    return name


def kept() -> set[str]:
    return {row.body.split('"')[3] for row in WebhookDelivery.objects.all()}


def test_finished_deliveries_past_the_retention_go_with_their_attempts(subscription):
    delivery(subscription, "old-delivered", state=DeliveryState.DELIVERED, days=31, attempts=2)
    delivery(subscription, "old-failed", state=DeliveryState.FAILED, days=400, attempts=8)
    delivery(subscription, "dropped-never-sent", state=DeliveryState.FAILED, days=31, attempts=0)
    recent = {
        delivery(subscription, "recent-delivered", state=DeliveryState.DELIVERED, days=29),
        delivery(subscription, "recent-failed", state=DeliveryState.FAILED, days=1),
    }
    unfinished = {
        delivery(subscription, "old-pending-due", state=DeliveryState.PENDING, days=400),
        delivery(subscription, "old-pending-never-tried", state=DeliveryState.PENDING, days=400, attempts=0),
        delivery(subscription, "old-in-flight", state=DeliveryState.PENDING, days=31, lease=True),
        # deactivated while a worker held it: failed, but its attempt is still to be recorded
        delivery(subscription, "failed-in-flight", state=DeliveryState.FAILED, days=31, lease=True),
    }

    assert services.webhook_deliveries_prune(older_than_days=30) == 3

    assert kept() == recent | unfinished
    assert WebhookAttempt.objects.count() == 5  # one each, but the never-tried one's none
    assert set(WebhookAttempt.objects.values_list("delivery_id", flat=True)) == set(
        WebhookDelivery.objects.exclude(attempts=0).values_list("id", flat=True)
    )
    assert services.webhook_deliveries_prune(older_than_days=30) == 0


def test_finished_deliveries_are_pruned_in_bounded_transactions(subscription, monkeypatch):
    """The prune was one DELETE per table of every finished delivery past the retention, in one
    transaction: a month of a busy outbox after the retention was shortened. Now at most
    ``kernel.sweeps.PRUNE_CHUNK`` deliveries (and their attempts) a transaction."""
    monkeypatch.setattr(sweeps, "PRUNE_CHUNK", 2)
    for n in range(5):
        delivery(subscription, f"old-{n}", state=DeliveryState.DELIVERED, days=31 + n, attempts=2)
    recent = delivery(subscription, "recent", state=DeliveryState.DELIVERED, days=1)

    with CaptureQueriesContext(connection) as captured:
        assert services.webhook_deliveries_prune(older_than_days=30) == 5

    deletes = [
        q["sql"] for q in captured.captured_queries if q["sql"].startswith('DELETE FROM "webhooks_webhookdelivery"')
    ]
    assert len(deletes) == 3, deletes  # 2, 2, then 1
    assert kept() == {recent}
    assert WebhookAttempt.objects.count() == 1


def test_an_old_delivery_re_sent_recently_is_kept(subscription):
    delivery(subscription, "re-sent", state=DeliveryState.FAILED, days=90)
    row = WebhookDelivery.objects.get()
    services.webhook_delivery_resend(delivery=row)
    WebhookDelivery.objects.filter(pk=row.pk).update(state=DeliveryState.DELIVERED)  # and delivered at once

    assert services.webhook_deliveries_prune(older_than_days=30) == 0
    assert kept() == {"re-sent"}


def test_the_hourly_task_uses_the_setting_and_the_default_queue(subscription, settings):
    delivery(subscription, "ten-days", state=DeliveryState.DELIVERED, days=10)
    assert tasks.prune_webhook_deliveries() == 0  # the default: 30 days
    settings.CSMS_WEBHOOK_DELIVERY_DAYS = 7
    assert tasks.prune_webhook_deliveries() == 1

    beat = django_settings.CELERY_BEAT_SCHEDULE["prune-webhook-deliveries"]
    assert beat == {
        "task": "webhooks.tasks.prune_webhook_deliveries",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    }
    route = app.amqp.router.route({}, beat["task"])
    assert route["queue"].name == "celery"  # the tasks worker's, as the message log's prune
    assert app.amqp.router.route({}, "webhooks.tasks.deliver_due_webhooks")["queue"].name == "webhooks"
