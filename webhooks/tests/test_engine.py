"""The webhook worker's delivery engine: many deliveries in flight, a bounded number per receiver."""

from __future__ import annotations

import asyncio
import email.utils
import http.server
import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.contrib.messages import get_messages
from django.db import connection
from django.utils import timezone

from conftest import _test_database_url, eventually, pool_connections_taken
from csms.staff_groups import OPERATOR, staff_user_create
from webhooks import services
from webhooks.admin import BEING_SENT_ONE
from webhooks.delivery import DeliveryEngine
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.tests.test_url_safety import rebinding_dns

pytestmark = pytest.mark.django_db(transaction=True)

PER_RECEIVER = 2


@dataclass
class GatedReceiver:
    """Answers 200 to every POST once the gate is open; counts how many it holds at once."""

    url: str = ""
    gate: threading.Event = field(default_factory=threading.Event)
    event_ids: list[str] = field(default_factory=list)
    waiting: int = 0
    most_waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def slow_receiver() -> Iterator[GatedReceiver]:
    yield from gated_receiver()


@pytest.fixture
def other_slow_receiver() -> Iterator[GatedReceiver]:
    yield from gated_receiver()


def gated_receiver() -> Iterator[GatedReceiver]:
    receiver = GatedReceiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the engine uses it

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with receiver.lock:
                receiver.event_ids.append(json.loads(body)["id"])
                receiver.waiting += 1
                receiver.most_waiting = max(receiver.most_waiting, receiver.waiting)
            receiver.gate.wait(timeout=30)
            with receiver.lock:
                receiver.waiting -= 1
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/slow"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield receiver
    receiver.gate.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine(daphne_factory: Any) -> Iterator[DeliveryEngine]:
    """An engine in this process; ``daphne_factory`` ends its database sessions when the tests end."""
    engine = DeliveryEngine(max_in_flight=50, per_receiver=PER_RECEIVER, poll_seconds=1)
    engine.start()
    yield engine
    engine.stop(timeout=20)


def states(subscription_id) -> list[str]:
    return list(WebhookDelivery.objects.filter(subscription_id=subscription_id).values_list("state", flat=True))


def emit_to_both(count: int) -> None:
    for number in range(count):
        services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": f"CP-{number}"})


async def test_a_slow_receiver_does_not_hold_up_a_fast_one(settings, webhook_receiver, slow_receiver, engine):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    slow = await sync_to_async(services.webhook_subscription_create)(
        url=slow_receiver.url, events=["charge_point.offline"]
    )
    fast = await sync_to_async(services.webhook_subscription_create)(
        url=webhook_receiver.url, events=["charge_point.offline"]
    )
    await sync_to_async(emit_to_both)(10)
    engine.wake()

    delivered = [DeliveryState.DELIVERED] * 10

    async def all_delivered(subscription_id) -> bool:
        return await sync_to_async(states)(subscription_id) == delivered

    await eventually(lambda: all_delivered(fast.id), timeout=30)
    await eventually(lambda: len(webhook_receiver.requests) == 10, timeout=30)
    assert slow_receiver.waiting == PER_RECEIVER  # still held: the fast receiver got everything meanwhile
    assert set(await sync_to_async(states)(slow.id)) == {DeliveryState.PENDING}

    slow_receiver.gate.set()

    await eventually(lambda: all_delivered(slow.id), timeout=30)
    assert slow_receiver.most_waiting == PER_RECEIVER  # never more in flight to one receiver
    assert len(slow_receiver.event_ids) == len(set(slow_receiver.event_ids)) == 10
    assert len(webhook_receiver.requests) == 10  # and no duplicates to the fast one either


async def test_slow_receivers_filling_the_worker_leave_a_slot_to_another_receiver(
    settings, webhook_receiver, slow_receiver, other_slow_receiver, daphne_factory
):
    """Each receiver was capped at ``per_receiver`` in flight, but not all of them together: as many slow
    receivers as the worker's slots over ``per_receiver`` (4 of the default 128 in 512) held every slot,
    and a receiver that answers at once was sent nothing until their attempts timed out (10 s each,
    again at every retry of their backlog). A receiver's further slots are taken only while some of the
    worker's stay free for receivers with nothing in flight."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    engine = DeliveryEngine(max_in_flight=2 * PER_RECEIVER, per_receiver=PER_RECEIVER, poll_seconds=1)
    engine.start()
    try:
        slow = [
            await sync_to_async(services.webhook_subscription_create)(url=r.url, events=["charge_point.offline"])
            for r in (slow_receiver, other_slow_receiver)
        ]
        await sync_to_async(emit_to_both)(10)  # a backlog for the slow receivers
        engine.wake()
        await eventually(lambda: slow_receiver.waiting and other_slow_receiver.waiting, timeout=10)
        await eventually(lambda: sum(engine._in_flight.values()) >= engine.max_in_flight - 1, timeout=10)
        fast = await sync_to_async(services.webhook_subscription_create)(
            url=webhook_receiver.url, events=["charge_point.offline"]
        )
        await sync_to_async(emit_to_both)(5)
        engine.wake()

        async def fast_delivered() -> bool:
            return await sync_to_async(states)(fast.id) == [DeliveryState.DELIVERED] * 5

        await eventually(fast_delivered, timeout=30)
        slow_attempts = WebhookAttempt.objects.filter(delivery__subscription__in=slow)
        assert await slow_attempts.acount() == 0  # delivered while the slow receivers still held theirs
        assert len(webhook_receiver.requests) == 5
    finally:
        slow_receiver.gate.set()
        other_slow_receiver.gate.set()
        engine.stop(timeout=20)


async def test_the_engine_connects_to_the_checked_address_and_fails_a_refused_target_at_once(
    monkeypatch, settings, engine
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True  # both receivers are loopback: what is tested is the pinning
    checked, rebound = rebinding_dns(monkeypatch)
    try:
        pinned = await WebhookSubscription.objects.acreate(
            url=f"http://hooks.rebind.test:{checked.port}/h", events=["charge_point.offline"], secret="whsec_a"
        )
        refused = await WebhookSubscription.objects.acreate(
            url="https://u:p@8.8.8.8/h", events=["charge_point.offline"], secret="whsec_b"
        )
        await sync_to_async(emit_to_both)(1)  # one claim resolves the host: the later lookups rebind it
        engine.wake()

        async def settled() -> bool:
            delivered = await sync_to_async(states)(pinned.id) == [DeliveryState.DELIVERED]
            return delivered and await sync_to_async(states)(refused.id) == [DeliveryState.FAILED]

        await eventually(settled, timeout=30)
    finally:
        checked.close()
        rebound.close()
    assert checked.hosts == [f"hooks.rebind.test:{checked.port}"]
    assert rebound.hosts == []
    attempts = WebhookDelivery.objects.filter(subscription=refused).values_list("attempts", "last_status_code")
    assert await sync_to_async(list)(attempts) == [(1, None)]


async def test_a_receiver_whose_dns_is_slow_does_not_hold_up_the_others(
    monkeypatch, settings, webhook_receiver, engine
):
    """Each claim checked every receiver's URL, resolving its host, before sending any of its
    deliveries: one receiver whose name servers took seconds to answer held up every other one."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    answer = threading.Event()
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.slow-dns.test":
            answer.wait(timeout=30)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    slow = await WebhookSubscription.objects.acreate(
        url="http://hooks.slow-dns.test/h", events=["charge_point.offline"], secret="whsec_a"
    )
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    try:
        await sync_to_async(emit_to_both)(1)
        engine.wake()
        await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=10)
        assert await sync_to_async(states)(slow.id) == [DeliveryState.PENDING]  # its lookup still waits
    finally:
        answer.set()

    async def retried() -> bool:
        delivery = await WebhookDelivery.objects.aget(subscription=slow)
        return delivery.attempts == 1

    await eventually(retried, timeout=30)
    delivery = await WebhookDelivery.objects.aget(subscription=slow)
    assert (delivery.state, delivery.last_status_code) == (DeliveryState.PENDING, None)  # retried later


async def test_a_receiver_whose_dns_hangs_while_its_events_go_on_holds_up_no_other(
    monkeypatch, settings, webhook_receiver, daphne_factory
):
    """Each claim looked a receiver's host up again, in a thread of the event loop's executor (a few
    threads: cores + 4), while that receiver's earlier lookups still waited: a receiver whose name
    servers did not answer, sent an event every claim, held every thread, and no other receiver's
    delivery was sent until its lookups failed (seconds each, and again). One lookup at a time per
    receiver: the deliveries claimed meanwhile wait for it."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    answer = threading.Event()
    slow_lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host == "hooks.hung-dns.test":
            slow_lookups.append(host)
            answer.wait(timeout=60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    hung = await WebhookSubscription.objects.acreate(
        url="http://hooks.hung-dns.test/h", events=["charge_point.online"], secret="whsec_a"
    )
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    engine = DeliveryEngine(max_in_flight=200, per_receiver=100, poll_seconds=1)
    engine.start()
    try:
        for _ in range(40):  # each in a claim of its own, more than any executor's threads
            (delivery,) = await sync_to_async(services.webhook_event_emit)(event_type="charge_point.online", data={})
            engine.wake()
            claimed = WebhookDelivery.objects.filter(pk=delivery.pk, lease_token__isnull=False)
            await eventually(claimed.aexists, timeout=10)
        assert len(slow_lookups) == 1  # the others wait for it

        await sync_to_async(services.webhook_event_emit)(event_type="charge_point.offline", data={})
        engine.wake()
        await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=10)
        assert set(await sync_to_async(states)(hung.id)) == {DeliveryState.PENDING}
    finally:
        answer.set()
        engine.stop(timeout=20)


async def test_an_answer_no_database_can_store_holds_up_no_other_delivery(
    settings, webhook_receiver, slow_receiver, engine
):
    """A receiver redirecting to a Location that is not UTF-8 (its bytes reach the attempt's error as
    lone surrogates, which PostgreSQL cannot store) failed the recording of its batch, again every
    50 ms: no attempt of any receiver was recorded after it, each delivery sent again whenever its
    lease passed. Its attempt is recorded (the text escaped), and so is every later one."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    webhook_receiver.status = 302
    webhook_receiver.headers = {"Location": "https://hooks.example.com/\xff\xfe"}  # sent as the bytes ff fe
    slow_receiver.gate.set()  # answers at once
    redirecting = await sync_to_async(services.webhook_subscription_create)(
        url=webhook_receiver.url, events=["charge_point.offline"]
    )
    await sync_to_async(services.webhook_event_emit)(event_type="charge_point.offline", data={})
    engine.wake()
    await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=10)
    answering = await sync_to_async(services.webhook_subscription_create)(
        url=slow_receiver.url, events=["charge_point.online"]
    )
    await sync_to_async(services.webhook_event_emit)(event_type="charge_point.online", data={})
    engine.wake()

    async def recorded() -> bool:
        return await sync_to_async(states)(answering.id) == [DeliveryState.DELIVERED]

    await eventually(recorded, timeout=10)
    delivery = await WebhookDelivery.objects.aget(subscription=redirecting)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.PENDING, 1, 302)
    assert len(webhook_receiver.requests) == len(slow_receiver.event_ids) == 1


async def test_a_receiver_with_deliveries_in_flight_is_claimed_only_its_free_slots(
    settings, webhook_receiver, slow_receiver, engine
):
    """A claim took ``per_receiver`` more deliveries for a receiver that had fewer than that in flight:
    a slow receiver's extra deliveries waited for its slots, holding the worker's (two slow receivers
    held 510 of the default 512, the others sharing the 2 left)."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    slow = await sync_to_async(services.webhook_subscription_create)(
        url=slow_receiver.url, events=["charge_point.offline"]
    )
    await sync_to_async(emit_to_both)(1)
    engine.wake()
    await eventually(lambda: slow_receiver.waiting == 1, timeout=10)  # one of its PER_RECEIVER in flight
    await sync_to_async(emit_to_both)(3)
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.online"])
    await sync_to_async(services.webhook_event_emit)(event_type="charge_point.online", data={})  # claimed with them
    engine.wake()
    await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=10)

    claimed = WebhookDelivery.objects.filter(subscription=slow, lease_token__isnull=False)
    assert await claimed.acount() == PER_RECEIVER
    assert sum(engine._in_flight.values()) <= PER_RECEIVER + 1  # the other receiver's one, if not recorded yet
    slow_receiver.gate.set()
    await eventually(lambda: len(slow_receiver.event_ids) == 4, timeout=30)


async def test_a_delivery_re_sent_while_it_is_being_sent_is_left_to_that_attempt(
    client, settings, slow_receiver, engine
):
    """An operator's re-send of a delivery a worker was sending right now (its receiver slow to
    answer) made it due at once: the engine sent it a second time beside the first, and the first
    attempt, its lease taken from it, was dropped unrecorded even though the receiver took it."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await sync_to_async(services.webhook_subscription_create)(url=slow_receiver.url, events=["charge_point.offline"])
    await sync_to_async(emit_to_both)(1)
    engine.wake()
    await eventually(lambda: slow_receiver.waiting == 1, timeout=10)  # the attempt waits for the receiver
    delivery = await WebhookDelivery.objects.aget()

    operator = await sync_to_async(staff_user_create)(username="op", password="a-long-password-1", group=OPERATOR)
    await sync_to_async(client.force_login)(operator)
    response = await sync_to_async(client.post)(f"/admin/webhooks/webhookdelivery/{delivery.pk}/resend/", follow=True)
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert shown == [BEING_SENT_ONE]
    engine.wake()
    slow_receiver.gate.set()

    async def delivered() -> bool:
        return await sync_to_async(states)(delivery.subscription_id) == [DeliveryState.DELIVERED]

    await eventually(delivered, timeout=30)
    assert len(slow_receiver.event_ids) == 1  # sent once
    attempts = WebhookAttempt.objects.filter(delivery=delivery).values_list("status_code", flat=True)
    assert await sync_to_async(list)(attempts) == [200]  # and that attempt recorded


async def test_receivers_whose_dns_hangs_hold_up_no_other_receiver_however_many(
    monkeypatch, settings, webhook_receiver, daphne_factory
):
    """One lookup at a time per receiver did not bound them all: the lookups ran in the event loop's
    executor (cores + 4 threads, 6 on two cores), so as many receivers whose name servers did not
    answer held every thread, and no other receiver was looked up, nor sent anything, until one of
    them failed. The lookups have threads of their own, one for each receiver with deliveries in flight."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    executor_threads = min(32, (os.cpu_count() or 1) + 4)  # the loop's default executor (ThreadPoolExecutor)
    answer = threading.Event()
    hung_lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host.endswith(".hung-dns.test"):
            hung_lookups.append(host)
            answer.wait(timeout=60)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for number in range(executor_threads + 1):
        await WebhookSubscription.objects.acreate(
            url=f"http://hooks-{number}.hung-dns.test/h", events=["charge_point.online"], secret=f"whsec_{number}"
        )
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    engine = DeliveryEngine(max_in_flight=200, per_receiver=100, poll_seconds=1)
    engine.start()
    try:
        await sync_to_async(services.webhook_event_emit)(event_type="charge_point.online", data={})
        engine.wake()
        await eventually(lambda: len(hung_lookups) >= executor_threads, timeout=10)  # as many as its threads

        await sync_to_async(services.webhook_event_emit)(event_type="charge_point.offline", data={})
        engine.wake()
        await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=10)
    finally:
        answer.set()
        engine.stop(timeout=20)


RETRY_AFTER_BOUND = 64  # CSMS_WEBHOOK_RETRY_BASE 1 x 2^(CSMS_WEBHOOK_MAX_ATTEMPTS 8 - 2): the last retry's wait


@pytest.mark.parametrize(
    ("status", "retry_after", "least_wait", "most_wait"),
    [
        (503, "40", 40, 40),
        (429, "http-date in 30 s", None, 30),
        (503, "31536000", RETRY_AFTER_BOUND, RETRY_AFTER_BOUND),  # a year: a hostile receiver parks nothing
        (429, "1", 1, 1),  # sooner than the backoff: the backoff (1 s at the first retry) holds
    ],
)
async def test_a_receiver_s_retry_after_is_waited_for_up_to_the_last_retry_s_wait(
    settings, webhook_receiver, engine, status, retry_after, least_wait, most_wait
):
    """A receiver answering 429 Too Many Requests or 503 Service Unavailable with a Retry-After
    (seconds, or an HTTP date) was retried after the backoff alone (CSMS_WEBHOOK_RETRY_BASE: 30 s,
    then 60 s...), sooner than it asked: a throttled receiver was hit again while it still refused,
    each attempt spent of the delivery's few. The retry is due no sooner than asked, at most the last
    retry's wait away."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    settings.CSMS_WEBHOOK_RETRY_BASE = 1
    settings.CSMS_WEBHOOK_MAX_ATTEMPTS = 8
    if retry_after.startswith("http-date"):
        asked = timezone.now().replace(microsecond=0) + timedelta(seconds=30)
        retry_after = email.utils.format_datetime(asked, usegmt=True)
    webhook_receiver.status, webhook_receiver.headers = status, {"Retry-After": retry_after, "Content-Length": "0"}
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    await sync_to_async(emit_to_both)(1)
    engine.wake()

    attempt = await eventually(lambda: WebhookAttempt.objects.select_related("delivery").afirst(), timeout=10)
    recorded_by = timezone.now()
    delivery = attempt.delivery
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == (DeliveryState.PENDING, 1, status)
    if least_wait is None:
        assert delivery.next_attempt_at >= asked
    else:
        assert delivery.next_attempt_at >= attempt.attempted_at + timedelta(seconds=least_wait)
    assert delivery.next_attempt_at <= recorded_by + timedelta(seconds=most_wait)
    assert len(webhook_receiver.requests) == 1


def _backend_pid() -> int:
    """The PostgreSQL session of the calling thread's connection."""
    connection.ensure_connection()
    return connection.connection.info.backend_pid


async def test_a_stopped_engine_gives_its_database_connection_back_to_the_pool(settings, webhook_receiver):
    """An engine stopped (the webhook worker's shutdown, a test's engine) handed its database thread
    the stopping thread's connection to close (Django refused it: another thread's), and the engine's
    own stayed taken from the pool: its session closed when the thread was collected, its slot
    never given back. Each engine started and stopped in a process took one slot for good."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    taken = await sync_to_async(pool_connections_taken)()
    for started in range(1, 4):
        engine = DeliveryEngine(max_in_flight=5, per_receiver=5, poll_seconds=1)
        engine.start()
        await sync_to_async(services.webhook_event_emit)(
            event_type="charge_point.offline", data={"charge_point_id": f"CP-{started}"}
        )
        engine.wake()
        await eventually(lambda started=started: len(webhook_receiver.requests) == started, timeout=30)
        await asyncio.to_thread(engine.stop, 20)
    assert await sync_to_async(pool_connections_taken)() == taken


async def test_the_engine_delivers_again_once_its_database_session_was_lost(settings, webhook_receiver, engine, caplog):
    """PostgreSQL restarted (or the engine's session ended by an operator, ``idle_session_timeout``):
    the engine delivers again, and the failure it logs is the database's, not Django's complaint of
    a connection closed from another thread (the engine dropped the event loop thread's connection
    from its database thread)."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await sync_to_async(services.webhook_subscription_create)(url=webhook_receiver.url, events=["charge_point.offline"])
    await sync_to_async(emit_to_both)(1)
    engine.wake()
    await eventually(lambda: len(webhook_receiver.requests) == 1, timeout=30)

    pid = await asyncio.wrap_future(engine._db.submit(_backend_pid))
    with psycopg.connect(_test_database_url(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        for _ in range(100):  # bounded: the session gone
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone():
                break
            await asyncio.sleep(0.05)

    await sync_to_async(emit_to_both)(1)
    engine.wake()
    await eventually(lambda: len(webhook_receiver.requests) == 2, timeout=30)
    failures = [  # an outage's is told in the message (``kernel.log_format.QuietOutages``), another's by its exception
        record.getMessage() + (repr(record.exc_info[1]) if record.exc_info else "")
        for record in caplog.records
        if record.name == "webhooks.delivery" and record.levelno >= logging.ERROR
    ]
    assert failures and all("OperationalError" in failure for failure in failures), failures
