"""The API's actions that take no body (a webhook's rotate-secret, a campaign's pause, resume and
cancel, a charger's configuration refresh): a field sent to one is a 400 naming it, never dropped."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from chargepoints.models import ChargePoint
from commands.models import Command
from maintenance.models import Campaign, CampaignState
from maintenance.services import firmware
from webhooks.models import WebhookSubscription
from webhooks.services import webhook_subscription_create

pytestmark = pytest.mark.django_db


def assert_unknown_fields(response, *names: str) -> None:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "ValidationError"
    assert body["details"] == {name: ["Unknown field."] for name in names}


def test_a_secret_sent_to_rotate_secret_is_a_400_naming_it_and_nothing_rotates(api_client, settings):
    """Probe: ``rotate-secret`` with ``{"secret": "mine"}`` (or ``{"grace_seconds": 0}``) answered a new,
    generated secret, the caller's dropped: it signed with one the receiver did not expect."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    subscription = webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["transaction.started"])
    url = f"/api/v1/webhooks/{subscription.pk}/rotate-secret"
    assert_unknown_fields(
        api_client.post(url, {"secret": "mine", "grace_seconds": 0}, format="json"), "grace_seconds", "secret"
    )
    assert WebhookSubscription.objects.get().secret == subscription.secret
    assert api_client.post(url, {}, format="json").status_code == 200
    assert api_client.post(url).status_code == 200
    assert WebhookSubscription.objects.get().secret != subscription.secret


def test_a_field_sent_to_a_campaigns_pause_is_a_400_naming_it_and_it_stays_as_it_was(api_client, settings, tmp_path):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    image = firmware.firmware_file_create(name="fw", upload=ContentFile(b"img", name="fw.bin"))
    ChargePoint.objects.create(charge_point_id="CP", heartbeat_interval=60)
    campaign = firmware.campaign_create(name="c", firmware=image, concurrency=1, charge_point_ids=["CP"])
    state = Campaign.objects.get().state
    response = api_client.post(
        f"/api/v1/campaigns/{campaign.pk}/pause", {"until": "2027-01-01T00:00:00Z"}, format="json"
    )
    assert_unknown_fields(response, "until")
    assert Campaign.objects.get().state == state
    assert (
        api_client.post(f"/api/v1/campaigns/{campaign.pk}/cancel", {}, format="json").json()["state"]
        == CampaignState.CANCELLED
    )


def test_keys_sent_to_a_configuration_refresh_are_a_400_naming_them_and_nothing_is_sent(api_client):
    """Probe: ``configuration/refresh`` with ``{"key": ["HeartbeatInterval"]}`` read the whole
    configuration, the keys dropped (2.0.1: ``{"report_base": ...}`` sent a FullInventory)."""
    ChargePoint.objects.create(charge_point_id="CP-1", heartbeat_interval=60, ocpp_version="1.6")
    response = api_client.post(
        "/api/v1/chargepoints/CP-1/configuration/refresh", {"key": ["HeartbeatInterval"]}, format="json"
    )
    assert_unknown_fields(response, "key")
    assert response.json()["charge_point_id"] == "CP-1"
    assert not Command.objects.exists()


@pytest.mark.parametrize("body", ["[]", '"x"', "1"])
def test_a_body_other_than_an_object_sent_to_an_action_is_a_400(api_client, settings, body):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    subscription = webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["transaction.started"])
    response = api_client.post(
        f"/api/v1/webhooks/{subscription.pk}/rotate-secret", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"] == "ValidationError"
    assert WebhookSubscription.objects.get().secret == subscription.secret
