"""schemathesis against our OpenAPI schema: whatever a client sends, the API never answers 500.

Every operation in ``/api/v1/schema/`` is called with generated bodies, parameters and path
values (valid and invalid), authenticated with a real API key, in process through Django's WSGI
handler on the test PostgreSQL. The only 5xx answers allowed are the documented command outcomes
(501 NotSupported, 502 CALLERROR, 503 NotConnected, 504 Timeout). Every answer is JSON, every error
in the documented shape, and every answer one the schema documents for the operation: its status,
content type and body (an integrator's client generated from the schema reads it). Each operation
that takes a body is also sent one nested past Python's recursion limit and one over
``DATA_UPLOAD_MAX_MEMORY_SIZE``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing.models import Tariff
from chargepoints.models import ChargePoint
from charging.models import IdTag
from kernel.api_keys import api_key_create
from maintenance.models import Campaign, FirmwareFile
from sites.models import Site, SiteMember
from webhooks.models import WebhookSubscription

schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", get_wsgi_application())
DOCUMENTED_5XX = {501, 502, 503, 504}
EXAMPLES = int(os.environ.get("CSMS_API_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def bearer(db: None) -> Iterator[dict[str, str]]:
    # As Django's test client does: keep the test's connection (and its rollback) across requests.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield {"Authorization": f"Bearer {api_key_create(name='schemathesis')[1]}"}
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_request_gets_a_500(case, bearer):
    response = case.call(
        headers=bearer, params={**(case.query or {}), "wait": "false"} if case.method == "POST" else None
    )
    request = f"{case.method} {case.formatted_path} {case.body!r}"[:300]
    assert response.status_code < 500 or response.status_code in DOCUMENTED_5XX, f"{request} -> {response.status_code}"
    assert_json_answer(response, request)
    case.validate_response(response, checks=DOCUMENTED)


DOCUMENTED = [status_code_conformance, content_type_conformance, response_schema_conformance]


def assert_json_answer(response, request: str) -> None:
    """An error is JSON in the documented shape (a success may be CSV: the billing export)."""
    if response.status_code >= 400:
        assert response.headers.get("content-type") == ["application/json"], f"{request} -> {response.text[:300]}"
        assert {"error", "message"} <= set(response.json()), f"{request} -> {response.text[:300]}"


BODY_OPERATIONS = [
    operation
    for operation in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]  # the schema is valid
    if operation.method.upper() in ("POST", "PUT", "PATCH") and len(operation.body)  # one that reads a body
]
DEEPLY_NESTED = b"[" * 100_000 + b"]" * 100_000
TOO_LARGE = b'{"description": "' + b"x" * 3_000_000 + b'"}'


def _campaign() -> Campaign:
    image = FirmwareFile.objects.create(name="fw", file="firmware/fw.bin", size=0, sha256="")
    return Campaign.objects.create(name="c", firmware=image, concurrency=1, start_at=timezone.now())


@pytest.fixture
def path_values(db: None) -> Callable[[APIOperation], dict[str, str]]:
    """Path values naming objects that exist, so that updates get as far as reading the body."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP-1", heartbeat_interval=60)
    IdTag.objects.create(id_tag="TAG-1")
    site = Site.objects.create(name="Depot", capacity_a=32)
    SiteMember.objects.create(site=site, charge_point=charge_point)
    ids = {
        "/tariffs/": str(Tariff.objects.create(name="standard", currency="EUR").pk),
        "/sites/": str(site.pk),
        "/webhooks/": str(
            WebhookSubscription.objects.create(url="https://example.com/hook", events=["charge_point.online"]).pk
        ),
        "/campaigns/": str(_campaign().pk),
    }

    def values(operation: APIOperation) -> dict[str, str]:
        by_name = {"charge_point_id": "CP-1", "id_tag": "TAG-1"}
        for part, value in ids.items():
            if part in operation.path:
                by_name["id"] = value
        return {parameter.name: by_name[parameter.name] for parameter in operation.path_parameters}

    return values


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=lambda operation: operation.label)
@pytest.mark.parametrize(
    ("body", "status", "error"),
    [(DEEPLY_NESTED, 400, "ParseError"), (TOO_LARGE, 413, "PayloadTooLarge")],
    ids=["deeply-nested", "3-MB"],
)
def test_a_hostile_body_gets_a_json_error(operation, body, status, error, bearer, path_values):
    case = operation.Case(body={}, path_parameters=path_values(operation), media_type="application/json")
    response = case.call(headers=bearer, data=body)
    request = f"{case.method} {case.formatted_path}"
    assert response.status_code == status, f"{request} -> {response.status_code} {response.text[:300]}"
    assert_json_answer(response, request)
    assert response.json()["error"] == error


def test_every_operation_documents_its_errors_in_the_error_shape():
    """What a client generated from the schema reads: 401 everywhere, 403 on every change, 404 where
    the path names an object, a command's outcomes (README, OCPP commands) on every command."""
    error = {"$ref": "#/components/schemas/Error"}
    assert {"error", "message"} <= set(schema.raw_schema["components"]["schemas"]["Error"]["required"])
    for path, operations in schema.raw_schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            expected = {"401", "406", "429", "500", "503"}
            if method in ("post", "put", "patch", "delete"):
                expected.add("403")
            if "{" in path:
                expected.add("404")
            if operation["operationId"].startswith("ocpp"):
                expected |= {"400", "404", "409", "422", "501", "502", "503", "504"}
            missing = expected - set(responses)
            assert not missing, f"{method.upper()} {path} documents no {sorted(missing)}"
            for status in expected:
                assert responses[status]["content"]["application/json"]["schema"] == error, f"{method} {path} {status}"


def test_a_list_filter_is_documented_on_its_list_only():
    """A list's filters (``connected``, ``state``, ...) are no parameters of the other operations on
    its resource, a create or one object's (a client reading them would send ``?ocpp_version=`` to a
    PATCH, which ignores it)."""
    paths = schema.raw_schema["paths"]
    for path, operations in paths.items():
        lists = operations.get("get", {})
        if "count" not in str(lists.get("responses", {}).get("200", "")) and "Paginated" not in str(lists):
            continue
        filters = {p["name"] for p in lists.get("parameters", []) if p["in"] == "query"} - {"page", "page_size"}
        for other_path, other_operations in paths.items():
            if not re.fullmatch(r"(\{[^/]+\}/(connectors/)?)?", other_path.removeprefix(path)):
                continue
            for method, operation in other_operations.items():
                if (other_path, method) == (path, "get"):
                    continue
                named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
                assert not named & filters, f"{method.upper()} {other_path} lists {sorted(named & filters)}"


def test_paging_parameters_are_documented_with_their_bounds():
    """``page`` from 1, ``page_size`` from 1 to 1000 (README, API): what else is a 400."""
    for path, operations in schema.raw_schema["paths"].items():
        parameters = {p["name"]: p["schema"] for p in operations.get("get", {}).get("parameters", [])}
        if "page_size" in parameters:
            assert parameters["page_size"] == {"type": "integer", "minimum": 1, "maximum": 1000}, path
            assert parameters["page"]["anyOf"] == [{"type": "integer", "minimum": 1}, {"enum": ["last"]}], path


def test_a_command_body_is_documented_as_its_ocpp_request_in_snake_case():
    """README, OCPP commands: the body is the OCPP request in snake_case (with ``charge_point_id``
    when the path does not name the charger); a client generated from the schema can write it."""
    paths = schema.raw_schema["paths"]
    in_body = paths["/api/v1/ocpp16/remote_start_transaction/"]["post"]["requestBody"]
    body = in_body["content"]["application/json"]["schema"]
    assert in_body["required"] is True
    assert body["required"] == ["charge_point_id", "id_tag"]
    assert body["properties"]["id_tag"] == {"type": "string", "maxLength": 20}
    profile = body["properties"]["charging_profile"]["properties"]
    assert profile["charging_schedule"]["properties"]["charging_rate_unit"]["enum"] == ["A", "W"]
    by_path = paths["/api/v1/ocpp201/{charge_point_id}/set_variables/"]["post"]["requestBody"]
    body = by_path["content"]["application/json"]["schema"]
    assert body["required"] == ["set_variable_data"] and "charge_point_id" not in body["properties"]
    data = body["properties"]["set_variable_data"]["items"]
    assert data["required"] == ["attribute_value", "component", "variable"]
    assert data["properties"]["component"]["properties"]["evse"]["required"] == ["id"]  # a definition, inlined
