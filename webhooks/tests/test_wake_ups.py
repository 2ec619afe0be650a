"""The webhook worker's wake-ups in a real Redis broker while no worker consumes them."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

from csms.celery import app
from webhooks.tasks import QUEUE, deliver_due_webhooks, deliver_webhooks

pytestmark = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"), reason="needs the Redis broker (REDIS_URL)"
)


def _waiting() -> int:
    with app.connection_for_write() as connection:
        channel: Any = connection.default_channel  # kombu's stub has no queue_declare
        return int(channel.queue_declare(queue=QUEUE, passive=True).message_count)


@pytest.fixture
def empty_queue():
    with app.connection_for_write() as connection:
        connection.default_channel.queue_declare(queue=QUEUE)  # as a worker would: the queue exists
        connection.default_channel.queue_purge(QUEUE)
    yield
    with app.connection_for_write() as connection:
        connection.default_channel.queue_purge(QUEUE)


def test_wake_ups_do_not_pile_up_while_the_webhook_worker_is_down(empty_queue):
    """Round 45: with the webhook worker down, the beat's wake-up every second (and one per committed
    event) stayed in Redis, 86,400 a day, for a worker that then woke as many times for nothing. A
    wake-up is now not published while one waits in the queue: one stands for all."""
    for _ in range(5):
        deliver_due_webhooks.apply_async(headers={"celery_beat_task": True})  # as the beat sends it
        deliver_webhooks.delay()
    assert _waiting() == 1


def _connections_received() -> int:
    import redis

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        return int(client.info("stats")["total_connections_received"])  # this count's own connection included
    finally:
        client.close()


def test_wake_ups_reuse_the_app_s_broker_connections(empty_queue):
    """Round 45's review: each wake-up (one per committed event, in the sender thread) opened a new
    broker connection to ask whether one waits; it now asks on one of the app's pooled connections,
    so after the first, wake-ups open none."""
    deliver_webhooks.delay()  # the pool's connection opened, and the publisher's
    before = _connections_received()
    for _ in range(20):
        deliver_webhooks.delay()
        deliver_due_webhooks.apply_async(headers={"celery_beat_task": True})
    assert _connections_received() - before == 1  # the second count's own
    assert _waiting() == 1
