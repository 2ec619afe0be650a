"""The query parameters a list or a command reads: each once, unless it is a repeatable one."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/api/v1/transactions/?charge_point_id=CP-1&charge_point_id=CP-2", "charge_point_id"),
        ("/api/v1/transactions/?status=active&status=ended", "status"),
        ("/api/v1/billing-records/?charge_point_id=CP-1&charge_point_id=CP-2", "charge_point_id"),
        ("/api/v1/billing-records/export?id_tag=A&id_tag=B", "id_tag"),
        ("/api/v1/chargepoints/?connected=true&connected=false", "connected"),
        ("/api/v1/commands/?charge_point_id=CP-1&charge_point_id=CP-2", "charge_point_id"),
        ("/api/v1/chargepoints/?page_size=1&page_size=2", "page_size"),
        ("/api/v1/chargepoints/?page=1&page=2", "page"),
        ("/api/v1/chargepoints/CP-1/connectors?page=1&page=1", "page"),
    ],
)
def test_a_filter_given_twice_is_a_400_naming_it_not_its_last_value_alone(
    api_client, register_charge_point, query, name
):
    """Probe: ``/transactions/?charge_point_id=CP-1&charge_point_id=CP-2`` answered CP-2's sessions
    alone (the last value), taken for both chargers' (as a JSON name given twice, it is refused)."""
    register_charge_point("CP-1")
    register_charge_point("CP-2")
    response = api_client.get(query)
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "ValidationError"
    assert body["details"] == {name: ["Given more than once; this parameter takes one value."]}


def test_the_filters_of_one_session_list_still_read_once_each(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.get("/api/v1/transactions/?charge_point_id=CP-1&status=active&page=1&page_size=5")
    assert response.status_code == 200, response.content[:300]


def test_a_command_told_twice_whether_to_wait_is_a_400_naming_wait(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.post("/api/v1/ocpp16/CP-1/reset?wait=false&wait=true", {"type": "Soft"}, format="json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"wait": ["Given more than once; this parameter takes one value."]}


def test_the_configuration_keys_and_components_are_repeatable(api_client, register_charge_point):
    register_charge_point("CP-1")
    url = "/api/v1/chargepoints/CP-1/configuration?key=HeartbeatInterval&key=MeterValueSampleInterval"
    assert api_client.get(url).status_code == 200
    assert api_client.get(f"{url}&component=OCPPCommCtrlr&component=SampledDataCtrlr").status_code == 200
    response = api_client.get(f"{url}&format=json&format=json")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"format": ["Given more than once; this parameter takes one value."]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/transactions/?started_after=2026-05-01T10:00:00+02:00",
        "/api/v1/transactions/?started_before=2026-05-01T10:00+05:30",
        "/api/v1/billing-records/?stopped_after=2026-05-01T10:00:00.5+01:00",
        "/api/v1/billing-records/export?stopped_before=2026-05-01T10:00:00+0100",
    ],
)
def test_a_time_filter_whose_plus_was_read_as_a_space_says_to_send_it_as_2b(api_client, path):
    """Probe: the offset's ``+`` of a time written into a URL unencoded reads as a space; the 400
    said to use ``[+HH:MM|-HH:MM|Z]``, which the client had done."""
    response = api_client.get(path)
    assert response.status_code == 400, response.content[:300]
    name = path.split("?")[1].split("=")[0]
    (problem,) = response.json()["details"][name]
    assert "%2B" in problem and "space" in problem, problem


def test_a_time_filter_with_its_plus_encoded_is_read(api_client):
    assert api_client.get("/api/v1/transactions/?started_after=2026-05-01T10:00:00%2B02:00").status_code == 200
    response = api_client.get("/api/v1/transactions/?started_after=2026-05-01 10:00:00")
    assert response.status_code == 200, response.content[:300]  # a space between date and time: as ISO 8601 allows


def test_a_query_parameter_a_chargers_log_uploads_do_not_read_is_a_400_naming_it(api_client, register_charge_point):
    """Probe: ``/chargepoints/CP-1/diagnostics?state=uploaded`` answered every upload, taken for the
    uploaded ones (that list read no query parameter, and refused none)."""
    register_charge_point("CP-1")
    response = api_client.get("/api/v1/chargepoints/CP-1/diagnostics?state=uploaded")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"state": ["Unknown query parameter."]}
    assert api_client.get("/api/v1/chargepoints/CP-1/diagnostics?page=1&page_size=10&format=json").status_code == 200


def test_a_query_parameter_a_sites_allocation_does_not_read_is_a_400_naming_it(api_client):
    """Probe: ``/sites/1/allocation?since=2026-05-01T00:00:00Z`` answered the latest history, taken
    for the history since then."""
    site = api_client.post("/api/v1/sites/", {"name": "Depot", "capacity_a": "32.0"}, format="json").json()
    response = api_client.get(f"/api/v1/sites/{site['id']}/allocation?since=2026-05-01T00:00:00Z")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["details"] == {"since": ["Unknown query parameter."]}
    assert api_client.get(f"/api/v1/sites/{site['id']}/allocation?format=json").status_code == 200


WHOLE_LISTS = [
    "/api/v1/chargepoints/CP-1/connectors",
    "/api/v1/chargepoints/CP-1/diagnostics",
    "/api/v1/chargepoints/CP-1/configuration",
]


@pytest.mark.parametrize("path", WHOLE_LISTS)
def test_a_list_always_whole_answers_a_page_after_its_one_page_404(api_client, register_charge_point, path):
    """Probe: ``connectors?page=2`` answered the whole list again: a client paging until a 404 (a
    page after the last, as every paginated list answers) paged for ever."""
    register_charge_point("CP-1")
    for page in ("1", "last"):
        assert api_client.get(f"{path}?page={page}&page_size=10").status_code == 200, page
    response = api_client.get(f"{path}?page=2")
    assert response.status_code == 404, response.content[:300]
    assert response.json()["error"] == "NotFound"


@pytest.mark.parametrize("path", WHOLE_LISTS)
@pytest.mark.parametrize(
    ("query", "name"),
    [("page=0", "page"), ("page=abc", "page"), ("page_size=0", "page_size"), ("page_size=1001", "page_size")],
)
def test_a_list_always_whole_refuses_a_bad_page_as_a_paginated_list_does(
    api_client, register_charge_point, path, query, name
):
    register_charge_point("CP-1")
    response = api_client.get(f"{path}?{query}")
    assert response.status_code == 400, response.content[:300]
    assert set(response.json()["details"]) == {name}
    assert api_client.get(f"/api/v1/chargepoints/?{query}").json()["details"] == response.json()["details"]
