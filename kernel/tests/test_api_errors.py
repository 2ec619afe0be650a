"""Every answer under /api/ is JSON in the documented error shape, whatever went wrong and where."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from rest_framework.test import APIClient

from conftest import http_request
from kernel.parsers import MAX_JSON_DEPTH

pytestmark = pytest.mark.django_db


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def assert_error(response, status: int, error: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_a_body_nested_past_the_recursion_limit_is_a_json_400(api_client):
    response = api_client.post("/api/v1/chargepoints/", nested(100_000), content_type="application/json")
    body = assert_error(response, 400, "ParseError")
    assert body["message"] == f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"


def test_a_body_nested_deeper_than_the_api_allows_is_a_json_400(api_client):
    response = api_client.post(
        "/api/v1/ocpp201/CP-1/data_transfer", nested(MAX_JSON_DEPTH + 1), content_type="application/json"
    )
    assert_error(response, 400, "ParseError")


def test_a_body_at_the_depth_limit_is_parsed(api_client):
    body = {"charge_point_id": "CP-1", "heartbeat_interval": json.loads(nested(MAX_JSON_DEPTH - 1))}
    response = api_client.post("/api/v1/chargepoints/", body, format="json")
    details = assert_error(response, 400, "ValidationError")["details"]
    assert list(details) == ["heartbeat_interval"]


def test_a_key_given_twice_in_a_body_is_a_400_naming_it(api_client):
    """JSON leaves duplicate names undefined (RFC 8259 §4): the API takes neither, it names the field."""
    twice = '{"id_tag": "A-1", "id_tag": "B-2"}'
    response = api_client.post("/api/v1/id-tags/", twice, content_type="application/json")
    body = assert_error(response, 400, "ValidationError")
    assert body["details"] == {"id_tag": ["Given more than once in the same object."]}
    assert not api_client.get("/api/v1/id-tags/").json()["results"]

    nested_twice = (
        '{"charge_point_id": "CP-1", "connector_id": 1, "cs_charging_profiles": {"charging_profile_id": 1,'
        ' "stack_level": 0, "stack_level": 9, "charging_profile_purpose": "TxDefaultProfile",'
        ' "charging_profile_kind": "Absolute", "charging_schedule": {"charging_rate_unit": "A",'
        ' "charging_schedule_period": [{"start_period": 0, "limit": 16, "limit": 32}]}}}'
    )
    response = api_client.post("/api/v1/ocpp16/set_charging_profile", nested_twice, content_type="application/json")
    body = assert_error(response, 400, "ValidationError")
    assert body["details"] == {
        "cs_charging_profiles.stack_level": ["Given more than once in the same object."],
        "cs_charging_profiles.charging_schedule.charging_schedule_period.0.limit": [
            "Given more than once in the same object."
        ],
    }


def test_a_3_mb_body_is_a_json_413(api_client):
    body = json.dumps({"charge_point_id": "CP-1", "description": "x" * 3_000_000})
    response = api_client.post("/api/v1/chargepoints/", body, content_type="application/json")
    assert_error(response, 413, "PayloadTooLarge")


def test_an_unknown_api_path_is_a_json_404(api_client):
    body = assert_error(api_client.get("/api/v1/no-such-thing/"), 404, "NotFound")
    assert "/api/v1/no-such-thing/" in body["message"]


def test_an_unknown_command_is_a_json_404(api_client):
    assert_error(api_client.post("/api/v1/ocpp16/CP-1/frobnicate", {}, format="json"), 404, "NotFound")
    assert_error(api_client.post("/api/v1/ocpp16/frobnicate", {}, format="json"), 404, "NotFound")


def test_an_unknown_path_outside_the_api_keeps_the_html_page(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unsupported_media_type_is_a_json_415(api_client):
    response = api_client.post("/api/v1/chargepoints/", "charge_point_id=CP-1", content_type="text/plain")
    body = assert_error(response, 415, "UnsupportedMediaType")
    assert "detail" not in body


def test_a_method_the_endpoint_lacks_is_a_json_405(api_client):
    assert_error(api_client.put("/api/v1/chargepoints/", {}, format="json"), 405, "MethodNotAllowed")


def test_an_unacceptable_accept_header_is_a_json_406(api_client):
    assert_error(api_client.get("/api/v1/chargepoints/", HTTP_ACCEPT="text/html"), 406, "NotAcceptable")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/chargepoints/CP-1"),
        ("get", "/api/v1/chargepoints/"),
        ("get", "/api/v1/installer/charge-points/CP-1/connection-status"),
        ("post", "/api/v1/ocpp16/CP-1/reset"),
    ],
)
@pytest.mark.parametrize("given", ["xml", "JSON", "csv"])
def test_a_format_the_api_does_not_answer_in_is_a_406_naming_format_not_a_404(
    api_client, register_charge_point, method, path, given
):
    """Probe: ``GET /chargepoints/CP-1?format=xml`` answered ``404 NotFound`` naming CP-1, a registered
    charger (DRF's answer to a format no renderer gives): the client took it for gone."""
    register_charge_point("CP-1")
    if method == "post":
        response = api_client.post(f"{path}?format={given}", {"type": "Soft"}, format="json")
    else:
        response = api_client.get(f"{path}?format={given}")
    body = assert_error(response, 406, "NotAcceptable")
    assert body["details"] == {"format": [f"{given!r} is not one of: json."]}
    assert "format" in body["message"]


@pytest.mark.parametrize(
    ("method", "path", "accept", "status", "error"),
    [
        ("get", "/api/v1/schema/?format=xml", "*/*", 406, "NotAcceptable"),
        ("get", "/api/v1/schema/", "text/html", 406, "NotAcceptable"),
        ("post", "/api/v1/schema/", "*/*", 405, "MethodNotAllowed"),
        ("get", "/api/v1/docs/", "application/json", 406, "NotAcceptable"),
        ("delete", "/api/v1/docs/", "*/*", 405, "MethodNotAllowed"),
    ],
)
def test_the_schema_and_its_docs_answer_their_errors_in_json(client, method, path, accept, status, error):
    """Probe: ``GET /api/v1/schema/?format=xml`` answered its 406 in YAML, and the docs page their
    405 and 406 (to ``Accept: application/json`` too) as text/html: a client generated from the
    schema, fetching it, could not read why."""
    assert_error(getattr(client, method)(path, HTTP_ACCEPT=accept), status, error)


def test_a_missing_key_is_a_401_in_the_error_shape_that_keeps_drfs_detail(db):
    body = assert_error(APIClient().get("/api/v1/chargepoints/"), 401, "NotAuthenticated")
    assert body["detail"] == body["message"]


def test_an_unexpected_failure_in_a_view_is_a_json_500(api_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("chargepoints.views.ChargePointViewSet.list", broken)
    api_client.raise_request_exception = False
    body = assert_error(api_client.get("/api/v1/chargepoints/"), 500, "InternalServerError")
    assert "boom" not in json.dumps(body)


def test_over_http_a_3_mb_body_and_an_unknown_command_answer_json(daphne, api_key):
    request = urllib.request.Request(
        f"{daphne.http_url}/api/v1/chargepoints/",
        data=json.dumps({"charge_point_id": "CP-1", "description": "x" * 3_000_000}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
    )
    with pytest.raises(urllib.error.HTTPError) as too_big:
        urllib.request.urlopen(request, timeout=40)
    assert too_big.value.code == 413
    assert json.loads(too_big.value.read())["error"] == "PayloadTooLarge"
    status, body = http_request(
        f"{daphne.http_url}/api/v1/ocpp16/CP-1/frobnicate", method="POST", api_key=api_key, body={}
    )
    assert (status, body["error"]) == (404, "NotFound")
