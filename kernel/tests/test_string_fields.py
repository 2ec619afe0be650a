"""A number with a fraction or an exponent where the API takes a string is a 400 naming the field, on
every writable resource; DRF took its text (``{"charge_point_id": 1e308}`` registered ``1e+308``). An
integer's text is exact: taken (a charger named by its serial number, review)."""

from __future__ import annotations

import pytest

from billing.models import Tariff
from chargepoints.models import ChargePoint
from charging.models import IdTag

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/chargepoints/", {"charge_point_id": 1e308}, "charge_point_id"),
        ("/api/v1/id-tags/", {"id_tag": 1.0}, "id_tag"),
        ("/api/v1/id-tags/", {"id_tag": "A", "description": 1.5}, "description"),
        ("/api/v1/tariffs/", {"name": 5e2, "currency": "EUR", "price_per_kwh": "0.3"}, "name"),
        ("/api/v1/webhooks/", {"url": 7.5, "events": ["charge_point.online"]}, "url"),
    ],
)
def test_a_number_for_a_string_is_a_400_naming_the_field_and_writes_nothing(api_client, url, body, field):
    answer = api_client.post(url, body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["details"][field] == ["Must be a string."]
    assert not ChargePoint.objects.exists() and not IdTag.objects.exists() and not Tariff.objects.exists()


def test_other_errors_are_named_with_it_and_a_string_of_digits_is_a_string(api_client):
    answer = api_client.post("/api/v1/id-tags/", {"id_tag": 5.5, "colour": "red"}, format="json")
    assert answer.json()["details"] == {"id_tag": ["Must be a string."], "colour": ["Unknown field."]}
    assert api_client.post("/api/v1/id-tags/", {"id_tag": "12345"}, format="json").status_code == 201
    tag = api_client.get("/api/v1/id-tags/12345").json()
    # what a GET returned, sent back whole: read-only fields are still ignored
    assert api_client.put("/api/v1/id-tags/12345", tag, format="json").status_code == 200


def test_an_integer_for_a_string_is_its_exact_text(api_client):
    assert api_client.post("/api/v1/chargepoints/", {"charge_point_id": 1001}, format="json").status_code == 201
    assert api_client.post("/api/v1/id-tags/", {"id_tag": 4053294022}, format="json").status_code == 201
    assert ChargePoint.objects.filter(charge_point_id="1001").exists()
    assert IdTag.objects.filter(id_tag="4053294022").exists()
