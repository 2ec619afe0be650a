from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from chargepoints import services as fleet
from chargepoints.models import ChargePoint
from kernel.batch_memo import batch_memos
from webhooks import services
from webhooks.delivery import webhook_deliveries_send
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.url_safety import UnsafeWebhookUrl, webhook_url_check

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_private(settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True


def subscribe(url: str = "http://127.0.0.1:9/hooks", events=("charge_point.offline", "charge_point.online")):
    return services.webhook_subscription_create(url=url, events=list(events))


def verify(secret: str, headers: dict[str, str], body: bytes) -> dict:
    parts = dict(item.split("=", 1) for item in headers["x-dynamo-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    return json.loads(body)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://169.254.169.254/latest",
        "http://10.0.0.8/",
        "http://localhost:8000/",
        "ftp://example.com/",
    ],
)
def test_internal_and_non_http_urls_are_refused(url):
    with pytest.raises(UnsafeWebhookUrl):
        webhook_url_check(url)


def test_internal_urls_are_allowed_with_the_flag(allow_private):
    webhook_url_check("http://127.0.0.1:8080/hooks")


def test_an_event_reaches_only_subscribers_of_its_type(allow_private):
    subscribe(events=["charge_point.offline"])
    subscribe(events=["connector.status_changed"])
    deliveries = services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-1"})
    assert len(deliveries) == 1
    body = json.loads(deliveries[0].body)
    assert set(body) == {"id", "type", "created_at", "data"}
    assert body["type"] == "charge_point.offline"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="asked plainly on PostgreSQL only")
def test_whether_anyone_subscribed_is_asked_once_per_batch_and_every_time_outside_one(allow_private):
    offline = "charge_point.offline"
    with batch_memos():
        assert not services.webhook_event_may_have_subscribers(event_type=offline)
        subscribe(events=[offline])
        assert not services.webhook_event_may_have_subscribers(event_type=offline)  # as of the batch's first asker
    with batch_memos():
        assert services.webhook_event_may_have_subscribers(event_type=offline)
    WebhookSubscription.objects.update(active=False)
    assert not services.webhook_event_may_have_subscribers(event_type=offline)


def test_an_event_whose_cause_rolls_back_leaves_nothing_in_the_outbox(allow_private):
    subscribe()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.webhook_event_emit(event_type="charge_point.offline", data={})
        raise RuntimeError("the cause failed")
    assert not WebhookDelivery.objects.exists()


def test_a_closed_socket_emits_offline_once_and_the_later_sweep_adds_nothing(allow_private, register_charge_point):
    subscribe()
    register_charge_point("CP-1", heartbeat_interval=10)
    fleet.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="a")
    fleet.charge_point_disconnect(charge_point_id="CP-1", channel_name="a")
    fleet.mark_offline_stale_charge_points(now=timezone.now() + timedelta(minutes=5))
    assert list(WebhookDelivery.objects.order_by("created_at").values_list("event_type", flat=True)) == [
        "charge_point.online",
        "charge_point.offline",
    ]


def test_the_sweep_emits_offline_and_the_next_heartbeat_online_once(allow_private, register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=10)
    fleet.charge_point_connect(charge_point_id="CP-1", ocpp_version="1.6", channel_name="a")
    subscribe()
    assert fleet.mark_offline_stale_charge_points(now=timezone.now() + timedelta(seconds=21)) == ["CP-1"]
    fleet.charge_point_heartbeat(charge_point_id="CP-1")
    fleet.charge_point_heartbeat(charge_point_id="CP-1")
    assert list(WebhookDelivery.objects.order_by("created_at").values_list("event_type", flat=True)) == [
        "charge_point.offline",
        "charge_point.online",
    ]
    assert ChargePoint.objects.get().connected


def test_a_connector_status_change_is_an_event_and_a_repeat_is_not(allow_private, register_charge_point):
    register_charge_point("CP-1")
    subscribe(events=["connector.status_changed"])
    for status in ("Available", "Available", "Charging"):
        fleet.connector_status_set(charge_point_id="CP-1", connector_id=1, status=status)
    data = [json.loads(d.body)["data"] for d in WebhookDelivery.objects.order_by("created_at")]
    assert [(d["previous_status"], d["status"]) for d in data] == [(None, "Available"), ("Available", "Charging")]


def test_a_delivery_is_signed_and_recorded(allow_private, webhook_receiver):
    subscription = subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-1"})
    assert webhook_deliveries_send() == 1
    headers, body = webhook_receiver.requests[0]
    assert verify(subscription.secret, headers, body)["data"] == {"charge_point_id": "CP-1"}
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    assert delivery.attempt_log.count() == 1


def test_a_failing_receiver_is_retried_with_backoff_then_failed(allow_private, webhook_receiver, settings):
    settings.CSMS_WEBHOOK_MAX_ATTEMPTS = 3
    settings.CSMS_WEBHOOK_RETRY_BASE = 10
    webhook_receiver.status = 500
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    delays = []  # each as (at most, at least) seconds: the attempt's moment lies between the two reads of the clock
    for _ in range(3):
        before = timezone.now()
        assert webhook_deliveries_send() == 1
        after = timezone.now()
        delivery = WebhookDelivery.objects.get()
        delays.append(
            (
                (delivery.next_attempt_at - before).total_seconds(),
                (delivery.next_attempt_at - after).total_seconds(),
            )
        )
        assert webhook_deliveries_send() == 0  # not due yet
        WebhookDelivery.objects.update(next_attempt_at=timezone.now())
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)
    assert [
        most >= expected >= least - 0.001 for (most, least), expected in zip(delays[:2], [10, 20], strict=True)
    ] == [True, True]
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 500, 500]
    assert len(webhook_receiver.requests) == 3


def test_a_receiver_that_will_never_accept_fails_at_once_and_can_be_resent(allow_private, webhook_receiver):
    webhook_receiver.status = 404
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    webhook_deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("failed", 1)
    webhook_receiver.status = 204
    services.webhook_delivery_resend(delivery=delivery)
    webhook_deliveries_send()
    assert WebhookDelivery.objects.get().state == "delivered"


def test_a_delivered_delivery_re_sent_that_then_fails_has_no_delivery_time(allow_private, webhook_receiver):
    """A re-send kept ``delivered_at``: the delivery, failed by the re-send's attempt, showed failed
    with the time of its earlier delivery (in its page and list)."""
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    webhook_deliveries_send()
    delivery = WebhookDelivery.objects.get()
    first_delivered_at = delivery.delivered_at
    assert delivery.state == "delivered" and first_delivered_at is not None

    services.webhook_delivery_resend(delivery=delivery)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.delivered_at) == ("pending", None)
    webhook_receiver.status = 410
    webhook_deliveries_send()
    delivery.refresh_from_db()
    assert (delivery.state, delivery.last_error, delivery.delivered_at) == ("failed", "HTTP 410", None)

    webhook_receiver.status = 200  # delivered again: the time of this delivery
    services.webhook_delivery_resend(delivery=delivery)
    webhook_deliveries_send()
    delivery.refresh_from_db()
    assert delivery.state == "delivered"
    assert delivery.delivered_at > first_delivered_at  # the time of this delivery


def test_redirects_are_not_followed(allow_private, webhook_receiver):
    webhook_receiver.status = 302
    webhook_receiver.headers = {"Location": "https://hooks.example.com/in?token=s3cr3t"}
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    webhook_deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.last_status_code) == ("pending", 302)
    # Where the receiver sent it, without the URL's secrets: "HTTP 302" alone did not tell.
    assert delivery.last_error.startswith("HTTP 302 (a redirect to https://hooks.example.com/in?token=[redacted], not")
    assert "s3cr3t" not in delivery.last_error


@pytest.mark.parametrize("status", [301, 308])
def test_a_permanent_redirect_fails_at_once(allow_private, webhook_receiver, status):
    """Redirects are not followed, so a receiver that moved for good (301, 308: http to https, say)
    will not take it on any retry: it was retried up to CSMS_WEBHOOK_MAX_ATTEMPTS times over an hour,
    every event, saying only "HTTP 301"."""
    webhook_receiver.status = status
    webhook_receiver.headers = {"Location": "https://hooks.example.com/in"}
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    webhook_deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 1, status)
    assert "a redirect to https://hooks.example.com/in, not followed" in delivery.last_error


def test_a_redirect_whose_location_is_not_utf8_is_recorded(allow_private, webhook_receiver):
    """A Location header's bytes that are not UTF-8 reach the error as lone surrogates, which
    PostgreSQL cannot store: recording the attempt raised, so it was never recorded (and the
    delivery was sent again once its lease passed, and again). They are stored escaped."""
    webhook_receiver.status = 302
    webhook_receiver.headers = {"Location": "https://hooks.example.com/\xff\xfe"}  # sent as the bytes ff fe
    subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    webhook_deliveries_send()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, 302)
    assert "a redirect to https://hooks.example.com/\\udcff\\udcfe, not followed" in delivery.last_error
    assert delivery.attempt_log.get().error == delivery.last_error


@pytest.mark.django_db(transaction=True)
def test_a_subscription_is_deleted_while_an_event_for_it_is_being_written(allow_private, behind_a_lock):
    """A gateway batch that wrote a delivery holds the subscription's row (its foreign key checked at
    once) until it commits: the deletion waited for it, then failed on that delivery (IntegrityError:
    a 500 for the API and the admin), as it did whenever a busy subscription's events were being
    written. The subscription goes, with the delivery committed meanwhile."""
    subscription = subscribe(events=["charge_point.offline"])

    def emitting_in_a_gateway_batch() -> list[WebhookDelivery]:
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # as ocpp_gateway.group_commit's batches
        return services.webhook_event_emit(event_type="charge_point.offline", data={})

    emitted, deleted = behind_a_lock(
        emitting_in_a_gateway_batch, lambda: services.webhook_subscription_delete(subscription=subscription)
    )
    assert (len(emitted), deleted) == (1, 1)
    assert not WebhookSubscription.objects.exists()
    assert not WebhookDelivery.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["emitted", "deleted"])
def test_an_event_written_outside_a_gateway_batch_is_not_lost_to_its_subscription_s_deletion(
    allow_private, behind_a_lock, first
):
    """Outside a gateway batch (an API request, a Celery task, the admin) a delivery's foreign key is
    checked when its transaction commits: the event's write held nothing, so a subscription deleted
    meanwhile, before or after the delivery was written, failed that commit (IntegrityError) and
    the write that emitted the event was lost. The deletion now waits for a delivery written
    first and deletes it; an event written after the deletion's lock waits and sends nothing."""
    subscription = subscribe(events=["charge_point.offline"])

    def emitted() -> int:
        return len(services.webhook_event_emit(event_type="charge_point.offline", data={}))

    def deleted() -> int:
        return services.webhook_subscription_delete(subscription=subscription)

    if first == "emitted":
        assert behind_a_lock(emitted, deleted) == (1, 1)
    else:
        assert behind_a_lock(deleted, emitted) == (0, 0)
    assert not WebhookSubscription.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_a_finished_command_is_an_event(allow_private, register_charge_point):
    from commands.services import CommandRequest, command_send

    register_charge_point("CP-1", ocpp_version="1.6")
    subscribe(events=["command.completed"])
    command = command_send(
        request=CommandRequest(charge_point_id="CP-1", ocpp_version="1.6", command="reset", body={"type": "Soft"})
    )
    data = json.loads(WebhookDelivery.objects.get().body)["data"]
    assert (data["command_id"], data["state"], data["action"]) == (str(command.id), "not_connected", "Reset")


def test_deleting_a_connected_charger_takes_it_offline_for_subscribers(allow_private, register_charge_point):
    """Its socket's close found no row to mark offline: subscribers kept it online for ever."""
    WebhookSubscription.objects.create(url="https://example.com/h", events=["charge_point.offline"], secret="s")
    charge_point = register_charge_point("CP-GONE")
    ChargePoint.objects.filter(pk=charge_point.pk).update(connected=True)
    charge_point.refresh_from_db()
    fleet.charge_point_delete(charge_point=charge_point)
    [delivery] = WebhookDelivery.objects.all()
    assert json.loads(delivery.body)["data"]["reason"] == "deleted"


def test_a_commit_does_not_wait_for_the_broker(allow_private, broker_hung, django_capture_on_commit_callbacks):
    """Probe: with Redis down, each committed event waited about 0.6 s for the broker (kombu's
    connection retries) in the committing thread: in the gateway's batch thread, 20 chargers'
    StatusNotifications at once went unanswered for over 10 s. The wake-up is sent by the process's
    sender thread, and the wakes of a burst asked while one is sent are sent as one."""
    subscribe(events=["charge_point.online"])
    for n in range(5):  # on a broker that hangs: each would wait 10 s here if published by this thread
        with django_capture_on_commit_callbacks(execute=True):
            services.webhook_event_emit(event_type="charge_point.online", data={"n": n})
    assert broker_hung.publishing.wait(10)
    broker_hung.released.set()
    assert WebhookDelivery.objects.filter(state="pending").count() == 5
    wakes = [thread for task, thread in broker_hung.published if task == "webhooks.tasks.deliver_webhooks"]
    assert set(wakes) == {"broker-sends"}
    assert 1 <= len(wakes) <= 2  # the first, and the four asked while it hung, as one


def test_a_deactivated_subscription_is_sent_nothing_even_a_delivery_made_pending_after(allow_private, webhook_receiver):
    """Round 49's probe: an admin's re-send of a failed delivery reached a receiver whose subscription
    had been PATCHed ``active: false`` (2 POSTs to it); so would an event whose transaction read the
    subscription before the PATCH committed. The claim fails such a delivery instead, saying why."""
    subscription = subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    services.webhook_event_emit(event_type="charge_point.online", data={})
    WebhookDelivery.objects.update(state="failed")
    WebhookSubscription.objects.filter(pk=subscription.pk).update(active=False)  # as a PATCH racing the emits
    assert services.webhook_deliveries_resend(deliveries=WebhookDelivery.objects.all()) == 2
    assert webhook_deliveries_send() == 0
    assert webhook_receiver.requests == []
    failed = ("failed", "Not delivered: the subscription was deactivated.")
    assert sorted(WebhookDelivery.objects.values_list("state", "last_error")) == [failed, failed]


def test_an_event_type_taken_off_a_subscription_is_not_sent_to_it(allow_private, webhook_receiver):
    subscription = subscribe(url=webhook_receiver.url)
    services.webhook_event_emit(event_type="charge_point.offline", data={})
    services.webhook_event_emit(event_type="charge_point.online", data={})
    WebhookSubscription.objects.filter(pk=subscription.pk).update(events=["charge_point.online"])
    assert webhook_deliveries_send() == 1
    assert [json.loads(body)["type"] for _, body in webhook_receiver.requests] == ["charge_point.online"]
    offline = WebhookDelivery.objects.get(event_type="charge_point.offline")
    assert (offline.state, offline.attempts) == ("failed", 0)
    assert offline.last_error == "Not delivered: its event type left the subscription."
