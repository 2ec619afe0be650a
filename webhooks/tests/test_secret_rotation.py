"""POST /api/v1/webhooks/{id}/rotate-secret: a new secret, shown once; the old one keeps signing
next to it for the grace period, then stops."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from webhooks import services
from webhooks.delivery import webhook_deliveries_send
from webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(api_client, settings, webhook_receiver):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    response = api_client.post(
        "/api/v1/webhooks/", {"url": webhook_receiver.url, "events": ["charge_point.online"]}, format="json"
    )
    assert response.status_code == 201
    return response.json()


def signatures(header: str, body: bytes) -> tuple[str, list[str]]:
    timestamp = header.split(",")[0].removeprefix("t=")
    return timestamp, [part.removeprefix("v1=") for part in header.split(",")[1:]]


def signed_by(secret: str, header: str, body: bytes) -> bool:
    timestamp, candidates = signatures(header, body)
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(candidate, expected) for candidate in candidates)


def deliver_one(webhook_receiver) -> tuple[str, bytes]:
    services.webhook_event_emit(event_type="charge_point.online", data={"charge_point_id": "CP-1"})
    assert webhook_deliveries_send() == 1
    headers, body = webhook_receiver.requests[-1]
    return headers["x-dynamo-signature"], body


def test_the_new_secret_is_shown_once_and_the_old_one_signs_alongside_it(api_client, subscription, webhook_receiver):
    old = subscription["secret"]
    response = api_client.post(f"/api/v1/webhooks/{subscription['id']}/rotate-secret")
    assert response.status_code == 200
    rotated = response.json()
    assert set(rotated) == {"id", "secret", "previous_secret_expires_at"}
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != old
    assert "secret" not in api_client.get(f"/api/v1/webhooks/{subscription['id']}").json()

    header, body = deliver_one(webhook_receiver)
    assert len(signatures(header, body)[1]) == 2
    assert signed_by(rotated["secret"], header, body) and signed_by(old, header, body)
    timestamp, (first, _) = signatures(header, body)  # the new secret's signature first
    assert first == hmac.new(rotated["secret"].encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert json.loads(body)["type"] == "charge_point.online"


def test_the_grace_period_is_the_setting_and_the_old_secret_stops_after_it(
    api_client, subscription, webhook_receiver, settings
):
    settings.CSMS_WEBHOOK_SECRET_GRACE_SECONDS = 3600
    before = timezone.now()
    rotated = api_client.post(f"/api/v1/webhooks/{subscription['id']}/rotate-secret").json()
    record = WebhookSubscription.objects.get()
    assert before + timedelta(seconds=3600) <= record.previous_secret_expires_at <= timezone.now() + timedelta(hours=1)
    WebhookSubscription.objects.update(previous_secret_expires_at=timezone.now() - timedelta(seconds=1))
    header, body = deliver_one(webhook_receiver)
    assert signed_by(rotated["secret"], header, body)
    assert not signed_by(subscription["secret"], header, body)
    assert len(signatures(header, body)[1]) == 1


def test_no_grace_period_stops_the_old_secret_at_once(api_client, subscription, webhook_receiver, settings):
    settings.CSMS_WEBHOOK_SECRET_GRACE_SECONDS = 0
    rotated = api_client.post(f"/api/v1/webhooks/{subscription['id']}/rotate-secret").json()
    assert rotated["previous_secret_expires_at"] is None
    header, body = deliver_one(webhook_receiver)
    assert signed_by(rotated["secret"], header, body) and not signed_by(subscription["secret"], header, body)


def test_a_secret_in_a_patch_is_refused_naming_the_field(api_client, subscription):
    response = api_client.patch(f"/api/v1/webhooks/{subscription['id']}", {"secret": "whsec_mine"}, format="json")
    assert response.status_code == 400
    assert "secret" in response.json()["details"]
    assert WebhookSubscription.objects.get().secret == subscription["secret"]


def test_rotating_an_unknown_subscription_is_a_404(api_client):
    response = api_client.post("/api/v1/webhooks/00000000-0000-0000-0000-000000000000/rotate-secret")
    assert response.status_code == 404
