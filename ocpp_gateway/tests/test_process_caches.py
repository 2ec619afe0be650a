"""Per-process caches emptied over Redis (``kernel.cache_changes``): whether anyone subscribed to a
webhook event, kept by a gateway process while it listens, forgotten when a subscription is saved
or deleted in any process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from conftest import eventually, ocpp_charger
from kernel import cache_changes
from webhooks import services
from webhooks.models import EventType, WebhookDelivery, WebhookSubscription

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="asked plainly on PostgreSQL only"),
]

STATUS_CHANGED = EventType.CONNECTOR_STATUS_CHANGED


def _asked(event_type: str) -> tuple[bool, int]:
    """The answer and the statements it took, in this thread."""
    with CaptureQueriesContext(connection) as statements:
        answer = services.webhook_event_may_have_subscribers(event_type=event_type)
    return answer, len(statements)


@pytest.fixture
async def listening() -> AsyncIterator[None]:
    """This process subscribed to the changes, as a gateway process is; unsubscribed after."""
    cache_changes.listener_started()
    await eventually(cache_changes.listening, timeout=5)
    yield
    assert cache_changes._listener is not None
    cache_changes._listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cache_changes._listener
    assert not cache_changes.listening()


async def test_a_listening_process_asks_once_and_again_after_a_change_saved_anywhere(listening, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    assert await asked(STATUS_CHANGED) == (False, 0)  # kept: no statement

    subscription = await sync_to_async(services.webhook_subscription_create)(
        url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED]
    )  # saved in this process: forgotten at once
    assert await asked(STATUS_CHANGED) == (True, 1)
    assert await asked(EventType.CHARGE_POINT_OFFLINE) == (False, 1)

    # Another process's change without a signal, then its publish: forgotten when it arrives.
    await WebhookSubscription.objects.filter(pk=subscription.pk).aupdate(active=False)
    assert await asked(STATUS_CHANGED) == (True, 0)
    redis.Redis.from_url(settings.REDIS_URL).publish(cache_changes.CHANNEL, services.SUBSCRIPTIONS_TOPIC)

    async def forgotten() -> bool:
        return await asked(STATUS_CHANGED) == (False, 1)

    await eventually(forgotten, timeout=2)
    await subscription.adelete()
    assert await asked(STATUS_CHANGED) == (False, 1)


async def test_a_change_whose_notice_is_lost_is_seen_once_the_answer_expires(listening, settings, monkeypatch):
    """A subscription saved elsewhere whose publish never arrives (its process lost Redis or died
    before publishing) delays events no longer than the answer is kept."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    monkeypatch.setattr(services, "SUBSCRIBERS_KEPT_SECONDS", 0.5)
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    await sync_to_async(WebhookSubscription.objects.bulk_create)(  # no signal: no notice
        [WebhookSubscription(url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED], secret="s" * 32)]
    )
    assert await asked(STATUS_CHANGED) == (False, 0)  # kept
    await asyncio.sleep(0.6)
    assert await asked(STATUS_CHANGED) == (True, 1)


async def test_a_process_that_does_not_listen_asks_every_time():
    assert not cache_changes.listening()
    asked = sync_to_async(_asked)
    assert await asked(STATUS_CHANGED) == (False, 1)
    assert await asked(STATUS_CHANGED) == (False, 1)


async def test_a_subscription_saved_by_another_process_reaches_a_server_that_kept_nobody(daphne, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await ChargePoint.objects.acreate(charge_point_id="CP-KEPT-HOOKS", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-KEPT-HOOKS") as charger:
        await asyncio.sleep(0.5)  # the server's subscription to changes is confirmed: it keeps answers
        for status in ("Available", "Unavailable"):  # nobody subscribed: kept
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status=status))
        await sync_to_async(services.webhook_subscription_create)(
            url="http://127.0.0.1:9/hooks", events=[STATUS_CHANGED]
        )

        async def delivered() -> bool:
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            await charger.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Unavailable"))
            return await WebhookDelivery.objects.filter(event_type=STATUS_CHANGED).aexists()

        await eventually(delivered, timeout=2)  # a Redis publish away
