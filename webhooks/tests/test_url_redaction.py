"""A subscription's URL can carry a secret (a token in its query, a capability link's path, the
credentials of a row older than their refusal): whoever may not manage webhooks reads it redacted."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from csms.staff_groups import OPERATOR, SUPPORT, staff_user_create
from kernel.api_keys import api_key_create
from kernel.models import ApiKeyScope
from webhooks import services
from webhooks.delivery import webhook_deliveries_send
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.url_safety import webhook_url_redacted

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Token-Value"
URL = f"http://127.0.0.1:9/hooks?token={SECRET}&team=ops"
LEGACY = f"https://ops:{SECRET}@receiver.example.com/hooks"  # written before credentials were refused
REDACTED = "http://127.0.0.1:9/hooks?token=[redacted]&team=[redacted]"


@pytest.fixture
def subscription(settings) -> WebhookSubscription:
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    return services.webhook_subscription_create(url=URL, events=["charge_point.offline"])


def client_of(scope: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name=scope, scope=scope)[1]}")
    return client


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.com/dynamo-hooks", "https://example.com/dynamo-hooks"),
        (URL, REDACTED),
        (LEGACY, "https://ops:[redacted]@receiver.example.com/hooks"),
        ("https://abc123token@h.example/x", "https://[redacted]@h.example/x"),
        ("https://h.example/x?just-a-token#frag", "https://h.example/x?[redacted]#[redacted]"),
        (
            "https://hooks.slack.com/services/T0001/B0001/yVdqNkbELxZsWHtqRmaaaa",
            "https://hooks.slack.com/services/T0001/B0001/[redacted]",
        ),
        (
            "https://discord.com/api/webhooks/123456789012345678/abcDEF-ghi_1234567890",
            "https://discord.com/api/webhooks/[redacted]/[redacted]",
        ),
        ("https://example.com/a-long-receiver-endpoint-name", "https://example.com/a-long-receiver-endpoint-name"),
        ("http://[::1/", "[redacted]"),
    ],
)
def test_the_secrets_a_url_can_carry_are_redacted(url, shown):
    assert webhook_url_redacted(url) == shown


def test_a_read_only_key_reads_the_url_without_its_secrets(subscription):
    read_only = client_of(ApiKeyScope.READ_ONLY)
    listed = read_only.get("/api/v1/webhooks/")
    assert listed.status_code == 200
    assert SECRET not in listed.content.decode()
    assert listed.json()["results"][0]["url"] == REDACTED
    fetched = read_only.get(f"/api/v1/webhooks/{subscription.pk}")
    assert fetched.json()["url"] == REDACTED

    full = client_of(ApiKeyScope.FULL)  # may manage webhooks: reads what it would PUT back
    assert full.get(f"/api/v1/webhooks/{subscription.pk}").json()["url"] == URL
    assert full.get("/api/v1/webhooks/").json()["results"][0]["url"] == URL


def test_a_legacy_url_with_credentials_is_redacted_for_a_read_only_key(db):
    WebhookSubscription.objects.create(url=LEGACY, events=["charge_point.offline"], secret="whsec_x")
    body = client_of(ApiKeyScope.READ_ONLY).get("/api/v1/webhooks/").content.decode()
    assert SECRET not in body
    assert "ops:[redacted]@receiver.example.com" in body


def test_staff_who_may_not_change_subscriptions_read_their_urls_redacted(
    client: Client, subscription, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-1"})
    for group in (SUPPORT, OPERATOR):
        client.force_login(staff_user_create(username=group, password="a-long-password-1", group=group))
        for page in (
            "/admin/webhooks/webhooksubscription/",
            f"/admin/webhooks/webhooksubscription/{subscription.pk}/change/",
        ):
            answer = client.get(page)
            assert answer.status_code == 200, page
            assert SECRET not in answer.content.decode(), page
        assert "token=[redacted]" in client.get("/admin/webhooks/webhooksubscription/").content.decode()
        # searching the URL is no oracle for the secret
        assert client.get(f"/admin/webhooks/webhooksubscription/?q={SECRET}").context["cl"].result_count == 0
        assert client.get(f"/admin/webhooks/webhookdelivery/?q={SECRET}").context["cl"].result_count == 0

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    assert SECRET in client.get(f"/admin/webhooks/webhooksubscription/{subscription.pk}/change/").content.decode()
    assert client.get(f"/admin/webhooks/webhooksubscription/?q={SECRET}").context["cl"].result_count == 1
    assert client.get(f"/admin/webhooks/webhookdelivery/?q={SECRET}").context["cl"].result_count == 1


def test_deliveries_the_dashboard_and_the_history_name_the_subscription_without_its_secrets(
    client: Client, subscription, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        (delivery,) = services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-1"})
    delivery.state, delivery.attempts = "failed", 1
    delivery.save()
    WebhookAttempt.objects.create(delivery=delivery, attempted_at=timezone.now(), error="HTTP 500", duration_ms=3)
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    assert (
        client.post(
            f"/admin/webhooks/webhooksubscription/{subscription.pk}/change/",
            {"url": URL, "events": ["charge_point.offline"], "active": "on", "description": "changed"},
        ).status_code
        == 302
    )
    assert SECRET not in LogEntry.objects.get().object_repr

    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    for page in (
        "/admin/",
        "/admin/webhooks/webhookdelivery/",
        f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/",
        f"/admin/webhooks/webhooksubscription/{subscription.pk}/history/",
    ):
        answer = client.get(page)
        assert answer.status_code == 200, page
        assert SECRET not in answer.content.decode(), page


def test_history_written_before_redaction_is_redacted_by_the_command(subscription):
    """History entries written before a subscription was named by its redacted URL kept it whole."""
    root = User.objects.create_superuser("root", "root@example.com", "pw")
    content_type = ContentType.objects.get_for_model(WebhookSubscription)
    LogEntry.objects.create(
        user=root, content_type=content_type, object_id=str(subscription.pk), object_repr=URL, action_flag=CHANGE
    )
    out = StringIO()
    call_command("redact_recorded_secrets", stdout=out)
    assert out.getvalue().strip().endswith("1 webhook history entries and 0 webhook errors.")
    assert LogEntry.objects.get().object_repr == REDACTED


def test_an_answer_the_client_cannot_read_is_recorded_without_the_urls_secrets(
    client: Client, webhook_receiver, settings
):
    """A receiver's answer the HTTP client refuses (a header over its 8,190 bytes, a status line
    that is not one) is an error naming the request's URL, with its token: it reached the
    delivery's last error and its attempt, which the deliveries' list, a delivery's page and the
    dashboard show to whoever may see deliveries (support)."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    services.webhook_subscription_create(url=f"{webhook_receiver.url}?token={SECRET}", events=["charge_point.offline"])
    webhook_receiver.headers = {"X-Padding": "a" * 10_000}
    services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-1"})
    webhook_deliveries_send()

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)  # retried
    assert delivery.last_error.startswith("ClientResponseError: 400, message=")  # what went wrong, still told
    assert "Got more than 8190 bytes" in delivery.last_error
    assert SECRET not in delivery.last_error
    assert delivery.attempt_log.get().error == delivery.last_error

    delivery.state = "failed"  # the dashboard lists the deliveries that gave up
    delivery.save()
    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    for page in (
        "/admin/",
        "/admin/webhooks/webhookdelivery/",
        f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/",
    ):
        answer = client.get(page)
        assert answer.status_code == 200, page
        assert SECRET not in answer.content.decode(), page


def test_errors_recorded_before_redaction_are_redacted_by_the_command(
    client: Client, subscription, django_capture_on_commit_callbacks
):
    """Errors recorded before an attempt's error named the URL without its secrets kept it whole (an
    answer the client could not read ended ``, url='<URL with its ?token=>'``), shown to support staff
    in the deliveries' list, a delivery's page and the dashboard; the command redacts them as they
    are written now, and leaves every other error as it is."""
    legacy = (
        "ClientResponseError: 400, message='Got more than 8190 bytes (10000) when reading Header value is too long.'"
        f", url='{URL}'"
    )
    told_now = legacy.removesuffix(f", url='{URL}'")
    other = f"InvalidURL: {URL}"
    redirect = "HTTP 302 (a redirect to https://hooks.example.com/in?token=[redacted], not followed: ...)"
    with django_capture_on_commit_callbacks(execute=False):
        deliveries = [
            services.webhook_event_emit(event_type="charge_point.offline", data={"n": n})[0] for n in range(4)
        ]
    for delivery, error in zip(deliveries, (legacy, other, redirect, "HTTP 500"), strict=True):
        WebhookDelivery.objects.filter(pk=delivery.pk).update(state="failed", attempts=2, last_error=error)
        for _ in range(2):
            WebhookAttempt.objects.create(
                delivery=delivery, attempted_at=timezone.now(), status_code=None, error=error, duration_ms=3
            )

    out = StringIO()
    call_command("redact_recorded_secrets", "--batch-size", "2", stdout=out)  # several batches of each table
    # 2 deliveries, 4 attempts
    assert out.getvalue().strip().endswith("0 webhook history entries and 6 webhook errors.")
    expected = [told_now, f"InvalidURL: {REDACTED}", redirect, "HTTP 500"]
    for delivery, error in zip(deliveries, expected, strict=True):
        delivery.refresh_from_db()
        assert delivery.last_error == error
        assert list(delivery.attempt_log.values_list("error", flat=True)) == [error, error]

    again = StringIO()
    call_command("redact_recorded_secrets", stdout=again)
    assert again.getvalue().strip().endswith("0 webhook history entries and 0 webhook errors.")
    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    for page in (
        "/admin/",
        "/admin/webhooks/webhookdelivery/",
        *(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/" for delivery in deliveries),
    ):
        answer = client.get(page)
        assert answer.status_code == 200, page
        assert SECRET not in answer.content.decode(), page
