"""Webhooks with a real Celery worker and beat on Redis, a real charger on daphne and a local receiver."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from conftest import ahttp, eventually, ocpp_charger
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_event_emit, webhook_subscription_create
from webhooks.tests.test_services import verify

pytestmark = pytest.mark.django_db(transaction=True)


async def subscribe(url: str):
    return await sync_to_async(webhook_subscription_create)(
        url=url, events=["charge_point.offline", "charge_point.online"]
    )


async def test_a_silent_charger_produces_one_signed_offline_delivery_then_online(
    daphne, api_key, celery_worker, webhook_receiver, settings
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    celery_worker(CSMS_OFFLINE_CHECK_INTERVAL="1", CSMS_WEBHOOK_ALLOW_PRIVATE="1")
    await ChargePoint.objects.acreate(charge_point_id="CP-HOOK", heartbeat_interval=2)
    subscription = await subscribe(webhook_receiver.url)
    status_url = f"{daphne.http_url}/api/v1/installer/charge-points/CP-HOOK/connection-status"

    def received(event_type: str) -> list[dict]:
        events = [verify(subscription.secret, headers, body) for headers, body in webhook_receiver.requests]
        return [event for event in events if event["type"] == event_type]

    async with ocpp_charger(daphne, "1.6", "CP-HOOK") as charger:
        await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call.Heartbeat())
        await eventually(lambda: received("charge_point.online"), timeout=12)  # it connected
        offline = await eventually(lambda: received("charge_point.offline"), timeout=12)
        assert offline[0]["data"]["charge_point_id"] == "CP-HOOK"
        assert offline[0]["data"]["reason"] == "heartbeat_timeout"
        assert (await ahttp(status_url, api_key=api_key))[1]["connected"] is False

        await charger.call(call.Heartbeat())
        await eventually(lambda: len(received("charge_point.online")) == 2, timeout=12)
        assert (await ahttp(status_url, api_key=api_key))[1]["connected"] is True
    assert len(received("charge_point.offline")) == 1


async def test_a_failing_receiver_is_retried_by_the_worker_until_failed(
    daphne, celery_worker, webhook_receiver, settings
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    celery_worker(
        CSMS_WEBHOOK_ALLOW_PRIVATE="1",
        CSMS_WEBHOOK_RETRY_BASE="1",
        CSMS_WEBHOOK_MAX_ATTEMPTS="3",
        CSMS_WEBHOOK_SWEEP_INTERVAL="1",
    )
    webhook_receiver.status = 500
    await subscribe(webhook_receiver.url)
    await ChargePoint.objects.acreate(charge_point_id="CP-500", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP-500"):
        pass  # online, then offline: two events, two deliveries

    async def all_failed() -> bool:
        states = [d.state async for d in WebhookDelivery.objects.all()]
        return len(states) == 2 and set(states) == {"failed"}

    await eventually(all_failed, timeout=60, interval=0.25)
    async for delivery in WebhookDelivery.objects.all():
        assert delivery.attempts == 3
        assert await delivery.attempt_log.acount() == 3
    ids = [json.loads(body)["id"] for _, body in webhook_receiver.requests]
    assert len(ids) == 6 and len(set(ids)) == 2  # each event retried with its own id: nothing lost


def worker_sessions(application_name: str) -> set[tuple[int, str]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, backend_start::text FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return set(cursor.fetchall())


async def test_the_webhook_worker_delivers_without_opening_database_sessions(
    daphne, celery_worker, webhook_receiver, settings
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    name = "csms-webhook-worker-under-test"
    celery_worker(CSMS_WEBHOOK_ALLOW_PRIVATE="1", PGAPPNAME=name)  # libpq names the worker's sessions
    await subscribe(webhook_receiver.url)
    emit = sync_to_async(webhook_event_emit)
    await emit(event_type="charge_point.online", data={"charge_point_id": "CP-WARM"})
    await eventually(lambda: webhook_receiver.requests, timeout=30)
    sessions = await sync_to_async(worker_sessions)(name)
    assert sessions

    for number in range(30):
        await emit(event_type="charge_point.online", data={"charge_point_id": f"CP-{number}"})
    await eventually(lambda: len(webhook_receiver.requests) == 31, timeout=30)
    assert await sync_to_async(worker_sessions)(name) == sessions  # the same sessions, none new
