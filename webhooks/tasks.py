"""Celery entry points for webhook delivery: wake-ups of the worker's delivery engine, and the hourly prune.

The two wake-ups are routed to the ``webhooks`` queue. The worker that consumes it starts a
``delivery.DeliveryEngine`` when it is ready and stops it (finishing the attempts in flight)
when it shuts down; the engine claims, sends and records, so no wake-up touches the database.
The hourly prune goes to the default queue (``CELERY_TASK_ROUTES``), as the message log's does.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings
from kombu.exceptions import ChannelError

from kernel.single_flight import Sweep
from webhooks import delivery, services

QUEUE = "webhooks"


class WakeUp(Task):
    """A wake-up of the webhook worker: not published while one waits in its queue (``QUEUE``), which
    stands for both. With the worker down, the beat's every second and each committed event's would
    otherwise pile up in the broker (86,400 a day), for a worker that then woke as many times for
    nothing. One round trip to the broker asks; a broker that cannot tell (the queue not declared
    yet) gets the wake-up."""

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:  # type: ignore[override]
        if _wake_up_waiting(self.app):
            return None
        return super().apply_async(args, kwargs, **options)


def _wake_up_waiting(app: Any) -> bool:
    """Whether a wake-up waits in ``QUEUE``, asked on one of the app's pooled broker connections
    (``broker_pool_limit``; a wake-up per committed event: one connection each would be a connect
    and a close each). Not declared: False; a broker that closes the channel which asked (AMQP)
    gets the pooled connection closed, to reconnect with a new channel at its next use."""
    with app.connection_or_acquire() as connection:
        channel = connection.default_channel
        try:
            return channel.queue_declare(queue=QUEUE, passive=True).message_count > 0
        except ChannelError:  # not declared: no worker ever consumed it
            if not getattr(channel, "is_open", True):
                connection.close()
            return False


@shared_task(base=WakeUp)
def deliver_webhooks() -> None:
    """A committed event: claim now rather than at the engine's next poll."""
    delivery.engine_wake()


@shared_task(base=WakeUp)
def deliver_due_webhooks() -> None:
    """Beat: a nudge for retries whose backoff has passed (the engine also polls by itself)."""
    delivery.engine_wake()


@shared_task(base=Sweep)
def prune_webhook_deliveries() -> int:
    """Beat, hourly: finished deliveries past ``CSMS_WEBHOOK_DELIVERY_DAYS`` go, with their attempts."""
    return services.webhook_deliveries_prune(older_than_days=settings.CSMS_WEBHOOK_DELIVERY_DAYS)


@worker_ready.connect
def _start_delivery_engine(sender: Any, **_: Any) -> None:
    if QUEUE in sender.app.amqp.queues.consume_from:
        delivery.engine_start()


@worker_shutdown.connect
def _stop_delivery_engine(**_: Any) -> None:
    delivery.engine_stop()
