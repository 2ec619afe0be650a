"""Claims lock only delivery rows, and the lease token fences every write of an attempt."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from webhooks import services
from webhooks.delivery import client_session, webhook_deliveries_send, webhook_delivery_post
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery
from webhooks.pinned_resolver import PinnedResolver
from webhooks.services import AttemptOutcome, Claim

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def subscription(settings, webhook_receiver):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    return services.webhook_subscription_create(url=webhook_receiver.url, events=["charge_point.offline"])


def emit(count: int) -> None:
    for number in range(count):
        services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": f"CP-{number}"})


def claim(limit: int = 100) -> Claim:
    return services.webhook_deliveries_claim(limit=limit, per_receiver=100)


@contextlib.contextmanager
def held_open(work: Callable[[], Any]) -> Iterator[dict[str, Any]]:
    """Run ``work`` in another thread and database session, in a transaction left open until the block ends."""
    ready, release, result = threading.Event(), threading.Event(), {}

    def run() -> None:
        try:
            with transaction.atomic():
                result["value"] = work()
                ready.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    assert ready.wait(timeout=30)
    try:
        yield result
    finally:
        release.set()
        thread.join()


def outcome(delivery: WebhookDelivery, token, status_code: int = 200) -> AttemptOutcome:
    return AttemptOutcome(
        delivery=delivery,
        token=token,
        attempted_at=timezone.now(),
        status_code=status_code,
        error="" if status_code < 300 else f"HTTP {status_code}",
        duration_ms=1.0,
    )


def test_overlapping_claims_both_succeed(subscription):
    emit(10)
    with held_open(lambda: claim(limit=5)) as first:
        second = claim(limit=5)  # while the first claim's transaction still holds its rows
    first_ids = {d.id for d in first["value"].deliveries}
    second_ids = {d.id for d in second.deliveries}
    assert len(first_ids) == len(second_ids) == 5
    assert not first_ids & second_ids
    tokens = set(WebhookDelivery.objects.values_list("lease_token", flat=True))
    assert tokens == {first["value"].token, second.token}


def test_an_emitting_transaction_does_not_make_a_claim_skip_due_deliveries(subscription):
    emit(3)
    with held_open(lambda: emit(1)):  # holds a key-share lock on the subscription row
        claimed = claim()
    assert len(claimed.deliveries) == 3


def test_a_claim_takes_at_most_per_receiver_deliveries_per_subscription_oldest_first(subscription, webhook_receiver):
    emit(5)
    other = services.webhook_subscription_create(url=webhook_receiver.url + "/2", events=["charge_point.offline"])
    emit(1)  # one more for the first subscription, one for the other
    claimed = services.webhook_deliveries_claim(limit=100, per_receiver=2)
    per_subscription = sorted((d.subscription_id == other.id, d.body) for d in claimed.deliveries)
    assert [is_other for is_other, _ in per_subscription] == [False, False, True]
    oldest = WebhookDelivery.objects.filter(subscription=subscription).order_by("created_at")[:2]
    assert {d.id for d in claimed.deliveries if d.subscription_id == subscription.id} == {d.id for d in oldest}


def test_a_claim_leaves_out_busy_subscriptions(subscription):
    emit(2)
    assert (
        services.webhook_deliveries_claim(limit=100, per_receiver=10, in_flight={subscription.id: 10}).deliveries == []
    )


def test_a_claim_takes_only_the_free_slots_of_a_subscription_with_deliveries_in_flight(subscription, webhook_receiver):
    """The worker's claim took ``per_receiver`` more for a receiver with some in flight already: a
    slow receiver held nearly twice its share of the worker's slots."""
    other = services.webhook_subscription_create(url=webhook_receiver.url + "/2", events=["charge_point.offline"])
    emit(5)
    claimed = services.webhook_deliveries_claim(limit=100, per_receiver=3, in_flight={subscription.id: 2, other.id: 0})
    taken = sorted(d.subscription_id == other.id for d in claimed.deliveries)
    assert taken == [False, True, True, True]


@pytest.mark.parametrize("late_status", [200, 500])
def test_an_attempt_that_overran_its_lease_records_nothing(subscription, late_status):
    emit(1)
    overrun = claim()
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())  # its lease passed mid-attempt
    retaken = claim()
    assert len(retaken.deliveries) == 1

    assert services.webhook_attempts_record(outcomes=[outcome(retaken.deliveries[0], retaken.token)])
    assert (
        services.webhook_attempts_record(outcomes=[outcome(overrun.deliveries[0], overrun.token, late_status)]) == set()
    )

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.DELIVERED, 1, 200)
    assert WebhookAttempt.objects.count() == 1


def test_the_later_claim_still_records_after_an_overrun_attempt_recorded_first(subscription):
    emit(1)
    overrun = claim()
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    retaken = claim()
    services.webhook_attempts_record(outcomes=[outcome(overrun.deliveries[0], overrun.token, 500)])
    services.webhook_attempts_record(outcomes=[outcome(retaken.deliveries[0], retaken.token)])
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == (DeliveryState.DELIVERED, 1)
    assert list(WebhookAttempt.objects.values_list("status_code", flat=True)) == [200]


async def post_with_expired_lease(claimed: Claim) -> AttemptOutcome | None:
    async with client_session(max_connections=1, resolver=PinnedResolver()) as session:
        return await webhook_delivery_post(
            session=session, delivery=claimed.deliveries[0], token=claimed.token, lease_deadline=time.monotonic()
        )


def test_an_attempt_is_not_started_without_lease_left_to_finish_it(subscription, webhook_receiver):
    import asyncio

    emit(1)
    assert asyncio.run(post_with_expired_lease(claim())) is None
    assert webhook_receiver.requests == []


def test_a_claim_whose_lease_is_too_short_to_send_hands_its_deliveries_back(subscription, webhook_receiver, settings):
    settings.CSMS_WEBHOOK_CLAIM_LEASE_SECONDS = 1  # less than the margin an attempt must end before its lease
    emit(2)
    assert webhook_deliveries_send() == 0
    assert webhook_receiver.requests == []
    for delivery in WebhookDelivery.objects.all():
        assert (delivery.state, delivery.attempts, delivery.lease_token) == (DeliveryState.PENDING, 0, None)
        assert delivery.next_attempt_at <= timezone.now()
