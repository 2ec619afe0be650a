import pytest
from django.utils import timezone

from webhooks.models import EventType, WebhookDelivery, WebhookSubscription
from webhooks.services import webhook_event_emit, webhook_subscription_create

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://127.0.0.1/"])
def test_a_subscription_to_an_internal_address_is_a_400(api_client, url):
    response = api_client.post("/api/v1/webhooks/", {"url": url, "events": ["charge_point.offline"]}, format="json")
    assert response.status_code == 400
    assert "url" in response.json()["details"]


def test_the_secret_is_returned_once(api_client, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    created = api_client.post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/h", "events": ["charge_point.online"]}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_")
    fetched = api_client.get(f"/api/v1/webhooks/{created.json()['id']}")
    assert fetched.status_code == 200
    assert "secret" not in fetched.json()


def test_unknown_event_types_are_a_400(api_client):
    response = api_client.post("/api/v1/webhooks/", {"url": "https://example.com/h", "events": ["nope"]}, format="json")
    assert response.status_code == 400
    assert "events" in response.json()["details"]


def test_an_event_type_named_twice_is_stored_once_in_the_order_first_given(api_client, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    events = ["charge_point.online", "command.completed", "charge_point.online"]
    created = api_client.post("/api/v1/webhooks/", {"url": "http://127.0.0.1:9/h", "events": events}, format="json")
    assert (created.status_code, created.json()["events"]) == (201, ["charge_point.online", "command.completed"])
    url = f"/api/v1/webhooks/{created.json()['id']}"
    changed = api_client.patch(url, {"events": ["command.completed", "command.completed"]}, format="json")
    assert changed.json()["events"] == ["command.completed"]
    assert WebhookSubscription.objects.get().events == ["command.completed"]


def test_a_deactivated_subscription_s_pending_deliveries_fail_instead_of_being_retried(api_client, settings):
    """Round 40's probe: three more POSTs reached a receiver after ``active: false``; an event type
    taken off the subscription went on being retried too."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    events = ["command.completed", "transaction.started"]
    created = api_client.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/h", "events": events}, format="json")
    url = f"/api/v1/webhooks/{created.json()['id']}"
    webhook_event_emit(event_type=EventType.COMMAND_COMPLETED, data={})
    webhook_event_emit(event_type=EventType.TRANSACTION_STARTED, data={})
    assert api_client.patch(url, {"events": ["command.completed"]}, format="json").status_code == 200
    states = dict(WebhookDelivery.objects.values_list("event_type", "state"))
    assert states == {"command.completed": "pending", "transaction.started": "failed"}
    assert api_client.patch(url, {"active": False}, format="json").status_code == 200
    assert set(WebhookDelivery.objects.values_list("state", flat=True)) == {"failed"}
    assert WebhookDelivery.objects.get(event_type="command.completed").last_error.endswith("deactivated.")


@pytest.mark.parametrize("method", ["post", "patch", "put"])
def test_a_secret_in_the_body_is_a_400_saying_to_rotate_it(api_client, settings, method):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    body = {"url": "http://127.0.0.1:9/h", "events": ["charge_point.online"]}
    created = api_client.post("/api/v1/webhooks/", body, format="json").json()
    url = "/api/v1/webhooks/" if method == "post" else f"/api/v1/webhooks/{created['id']}"
    response = getattr(api_client, method)(url, {**body, "secret": "whsec_mine", "colour": "red"}, format="json")
    assert response.status_code == 400
    assert response.json()["details"] == {
        "secret": ["The secret cannot be set; POST /api/v1/webhooks/{id}/rotate-secret issues a new one."],
        "colour": ["Unknown field."],
    }
    assert WebhookSubscription.objects.get(pk=created["id"]).secret == created["secret"]


def test_paging_through_subscriptions_created_at_once_lists_each_once(api_client, settings):
    """Round 49's probe: the list was ordered by created_at alone; subscriptions sharing it (made in
    one transaction, restored from a dump) came in an order PostgreSQL's sort may change from page to
    page, so a client walking the pages saw some twice and missed others. The id breaks the tie."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    for number in range(60):
        webhook_subscription_create(url=f"http://127.0.0.1:9/h{number}", events=["command.completed"])
    WebhookSubscription.objects.update(created_at=timezone.now())
    seen = []
    for page in range(1, 7):
        response = api_client.get(f"/api/v1/webhooks/?page={page}&page_size=10")
        seen += [subscription["id"] for subscription in response.json()["results"]]
    assert sorted(seen) == sorted(str(pk) for pk in WebhookSubscription.objects.values_list("pk", flat=True))
