import pytest

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
