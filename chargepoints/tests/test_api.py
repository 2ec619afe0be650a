from __future__ import annotations

import pytest
from django.contrib.auth.hashers import check_password
from rest_framework.test import APIClient

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.selectors import fleet_summary
from chargepoints.services import connector_status_set
from kernel.query_params import UNKNOWN

pytestmark = pytest.mark.django_db


def test_the_api_refuses_requests_without_a_valid_key(db):
    assert APIClient().get("/api/v1/chargepoints/").status_code == 401
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer dyn_not-a-real-key")
    response = client.get("/api/v1/chargepoints/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_registering_a_charge_point(api_client):
    response = api_client.post(
        "/api/v1/chargepoints/", {"charge_point_id": "cp_01HXYZ123ABC", "heartbeat_interval": 60}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["charge_point_id"] == "cp_01HXYZ123ABC"
    assert response.json()["heartbeat_interval"] == 60
    assert response.json()["lifecycle_state"] == "commissioned"
    assert response.json()["connected"] is False
    assert "password" not in response.json()


def test_a_duplicate_charge_point_id_is_a_conflict(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.post("/api/v1/chargepoints", {"charge_point_id": "CP-1"}, format="json")
    assert response.status_code == 409
    assert response.json() == {
        "error": "Conflict",
        "message": "Charge point 'CP-1' is already registered.",
        "charge_point_id": "CP-1",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"heartbeat_interval": 60}, "charge_point_id"),
        ({"charge_point_id": "has/slash"}, "charge_point_id"),
        # Registered trimmed as "CP-9" while the integrator kept " CP-9": refused, as the charger would be
        ({"charge_point_id": " CP-9"}, "charge_point_id"),
        ({"charge_point_id": "CP-9\n"}, "charge_point_id"),
        ({"charge_point_id": "CP-1", "heartbeat_interval": 0}, "heartbeat_interval"),
        ({"charge_point_id": "CP-1", "heartbeat_interval": "often"}, "heartbeat_interval"),
        ({"charge_point_id": "CP-1", "lifecycle_state": "broken"}, "lifecycle_state"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(api_client, body, field):
    response = api_client.post("/api/v1/chargepoints/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert field in response.json()["details"]


def test_malformed_json_is_a_400(api_client):
    response = api_client.post("/api/v1/chargepoints/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"] == "ParseError"


def test_list_and_filter_by_connection(api_client, register_charge_point):
    register_charge_point("CP-A")
    online = register_charge_point("CP-B")
    ChargePoint.objects.filter(pk=online.pk).update(connected=True)
    everything = api_client.get("/api/v1/chargepoints/").json()
    assert everything["count"] == 2
    dark = api_client.get("/api/v1/chargepoints/?connected=false").json()["results"]
    assert [cp["charge_point_id"] for cp in dark] == ["CP-A"]
    assert api_client.get("/api/v1/chargepoints/?connected=maybe").status_code == 400


def test_unknown_ids_are_404_everywhere(api_client):
    for url in (
        "/api/v1/chargepoints/NOPE",
        "/api/v1/chargepoints/NOPE/connectors",
        "/api/v1/installer/charge-points/NOPE/connection-status",
    ):
        response = api_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == "NotFound"
        assert response.json()["charge_point_id"] == "NOPE"


def test_connection_status_has_exactly_the_documented_shape(api_client, register_charge_point):
    register_charge_point("cp_01HXYZ123ABC", ocpp_version="1.6")
    response = api_client.get("/api/v1/installer/charge-points/cp_01HXYZ123ABC/connection-status")
    assert response.json() == {
        "charge_point_id": "cp_01HXYZ123ABC",
        "connected": False,
        "last_heartbeat": None,
        "ocpp_version": "1.6",
    }


def test_connectors_are_listed_with_and_without_trailing_slash(api_client, register_charge_point):
    register_charge_point("CP-1")
    connector_status_set(charge_point_id="CP-1", connector_id=2, status="Charging")
    connector_status_set(charge_point_id="CP-1", connector_id=1, status="Available")
    for url in ("/api/v1/chargepoints/CP-1/connectors", "/api/v1/chargepoints/CP-1/connectors/"):
        response = api_client.get(url)
        assert response.status_code == 200
        assert [(c["connector_id"], c["status"]) for c in response.json()] == [(1, "Available"), (2, "Charging")]


def test_update_changes_interval_and_lifecycle_and_takes_the_same_id_back(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.patch(
        "/api/v1/chargepoints/CP-1",
        {"heartbeat_interval": 120, "lifecycle_state": "decommissioned", "charge_point_id": "CP-1"},
        format="json",
    )
    assert response.status_code == 200
    charge_point = ChargePoint.objects.get()
    assert (charge_point.charge_point_id, charge_point.heartbeat_interval) == ("CP-1", 120)
    assert charge_point.lifecycle_state == LifecycleState.DECOMMISSIONED


def test_a_password_is_write_only_and_stored_hashed(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.patch("/api/v1/chargepoints/CP-1", {"password": "a-long-password-123"}, format="json")
    assert response.json()["has_password"] is True
    assert "a-long-password-123" not in response.content.decode()
    assert ChargePoint.objects.get().password_hash.startswith("pbkdf2_")


def test_a_password_is_stored_as_sent_with_its_spaces(api_client, register_charge_point):
    """Trimmed, the password a charger presents as set (a 1.6 AuthorizationKey may hold any text)
    was refused at its handshake; the admin keeps it as typed."""
    register_charge_point("CP-1")
    response = api_client.patch("/api/v1/chargepoints/CP-1", {"password": " a-long-password-123 "}, format="json")
    assert response.status_code == 200
    password_hash = ChargePoint.objects.get().password_hash
    assert check_password(" a-long-password-123 ", password_hash)
    assert not check_password("a-long-password-123", password_hash)


def test_delete(api_client, register_charge_point):
    register_charge_point("CP-1")
    assert api_client.delete("/api/v1/chargepoints/CP-1").status_code == 204
    assert not ChargePoint.objects.exists()


def test_openapi_schema_and_docs_are_served(client):
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/installer/charge-points/{charge_point_id}/connection-status" in schema.content
    assert client.get("/api/v1/docs/").status_code == 200


def test_openapi_names_the_202_of_a_command_not_waited_for_and_the_allocation_s_shape(client):
    """A ``?wait=false`` command's 202 was missing, and a site's allocation was described as a Site."""
    schema = client.get("/api/v1/schema/?format=json").json()
    reset = schema["paths"]["/api/v1/ocpp16/{charge_point_id}/reset/"]["post"]["responses"]
    assert reset["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Command"}
    allocation = schema["paths"]["/api/v1/sites/{id}/allocation/"]["get"]["responses"]["200"]
    assert allocation["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Allocation"}
    assert set(schema["components"]["schemas"]["Allocation"]["properties"]) == {"sessions", "history"}


def test_the_schema_documents_every_field_of_a_change_s_answer(api_client, client, register_charge_point):
    """A PATCH or PUT answers ``heartbeat_interval_push`` beside the charger's fields (README, API);
    the schema's answer left it out, so a client generated from it dropped the push's outcome."""
    register_charge_point("CP-1")
    answer = api_client.patch("/api/v1/chargepoints/CP-1", {"heartbeat_interval": 30}, format="json").json()
    assert answer["heartbeat_interval_push"] is None  # not connected
    schema = client.get("/api/v1/schema/?format=json").json()
    operations = schema["paths"]["/api/v1/chargepoints/{charge_point_id}/"]
    for method in ("patch", "put"):
        documented = operations[method]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        component = schema["components"]["schemas"][documented.rsplit("/", 1)[1]]
        assert set(answer) <= set(component["properties"]), set(answer) - set(component["properties"])
    assert component["properties"]["heartbeat_interval_push"]["nullable"]
    assert "heartbeat_interval_push" not in component["required"]  # only when the interval changed


def test_the_ocpp_version_of_a_connected_charger_is_its_connection_s(api_client, register_charge_point):
    """A PATCH to 1.6 of a charger connected over 2.0.1 sent 1.6 commands down its socket."""
    register_charge_point("CP-201", ocpp_version="2.0.1")
    ChargePoint.objects.filter(charge_point_id="CP-201").update(connected=True)
    refused = api_client.patch("/api/v1/chargepoints/CP-201", {"ocpp_version": "1.6"}, format="json")
    assert refused.status_code == 400 and "ocpp_version" in refused.json()["details"]
    ChargePoint.objects.filter(charge_point_id="CP-201").update(connected=False)
    assert api_client.patch("/api/v1/chargepoints/CP-201", {"ocpp_version": "1.6"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("/api/v1/chargepoints/?ocpp_version=3.0", "ocpp_version"),
        ("/api/v1/chargepoints/?lifecycle_state=bogus", "lifecycle_state"),
        ("/api/v1/chargepoints/?connected=maybe", "connected"),
        ("/api/v1/commands/?state=weird", "state"),
        ("/api/v1/chargepoints/?page_size=-1", "page_size"),
        ("/api/v1/transactions/?page_size=abc", "page_size"),
        ("/api/v1/chargepoints/?page_size=1001", "page_size"),
        ("/api/v1/commands/?page_size=5000", "page_size"),
        ("/api/v1/transactions/?page_size=1234567890", "page_size"),
        ("/api/v1/chargepoints/?page=abc", "page"),
        ("/api/v1/transactions/?page=0", "page"),
        ("/api/v1/billing-records/?page=-1", "page"),
        ("/api/v1/commands/?page=³", "page"),
        ("/api/v1/id-tags/?page=1.5", "page"),
    ],
)
def test_a_filter_or_page_size_no_row_can_match_is_a_400_naming_it(api_client, url, named):
    """Was an empty list (or the default page size): a client's typo looked like no data."""
    response = api_client.get(url)
    assert response.status_code == 400, response.json()
    assert named in response.json()["details"]


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("/api/v1/chargepoints/?charge_point_id=CP-9", "charge_point_id"),
        ("/api/v1/billing-records/?chargepoint_id=CP-9", "chargepoint_id"),
        ("/api/v1/billing-records/export/?idtag=RFID-9", "idtag"),
        ("/api/v1/transactions/?state=active", "state"),
        ("/api/v1/commands/?status=accepted&charge_point_id=CP-9", "status"),
        ("/api/v1/id-tags/?id_tag=RFID-9", "id_tag"),
        ("/api/v1/webhooks/?active=false", "active"),
        ("/api/v1/chargepoints/CP-1/security-events/?connected=true", "connected"),
    ],
)
def test_a_query_parameter_a_list_does_not_read_is_a_400_naming_it(api_client, register_charge_point, url, named):
    """Round 49's probe: a misspelt filter was ignored and answered with the whole list, taken for the
    filtered one (``/chargepoints/?charge_point_id=CP-9`` gave the fleet, a CSV export of every
    customer's bills for ``?idtag=``); unknown like a body field, it is a 400 naming it."""
    register_charge_point("CP-1")
    response = api_client.get(url)
    assert response.status_code == 400, response.content[:300]
    assert (response.json()["error"], response.json()["details"]) == ("ValidationError", {named: [UNKNOWN]})


def test_every_list_takes_its_filters_pages_and_format(api_client, register_charge_point):
    register_charge_point("CP-1")
    for url in (
        "/api/v1/chargepoints/?connected=false&ocpp_version=1.6&lifecycle_state=commissioned&page=1&page_size=5",
        "/api/v1/transactions/?charge_point_id=CP-1&status=active&started_after=2026-01-01T00:00:00Z&format=json",
        "/api/v1/billing-records/export/?charge_point_id=CP-1&id_tag=A&stopped_before=2026-01-01T00:00:00Z",
        "/api/v1/commands/?charge_point_id=CP-1&state=accepted&action=Reset&page=last",
        "/api/v1/id-tags/?page_size=10",
    ):
        assert api_client.get(url).status_code == 200, url


def test_a_page_size_of_unicode_digits_is_a_400_not_a_500(api_client):
    """ "³" is a digit to str.isdigit, not to int(): the API schema fuzzer found the 500."""
    response = api_client.get("/api/v1/chargepoints/?page_size=³")
    assert response.status_code == 400 and "page_size" in response.json()["details"]


def test_a_page_after_the_last_is_a_404_and_last_is_the_last(api_client, register_charge_point):
    register_charge_point("CP-1")
    for page in ("2", "99999999999999999999"):
        response = api_client.get(f"/api/v1/chargepoints/?page={page}")
        assert (response.status_code, response.json()["error"]) == (404, "NotFound"), page
    assert api_client.get("/api/v1/chargepoints/?page=last").json()["results"][0]["charge_point_id"] == "CP-1"
    assert api_client.get("/api/v1/chargepoints/?page=").status_code == 200  # none given: the first


def test_a_page_size_of_the_maximum_is_taken(api_client, register_charge_point):
    register_charge_point("CP-1")
    response = api_client.get("/api/v1/chargepoints/?page_size=1000")
    assert response.status_code == 200
    assert [cp["charge_point_id"] for cp in response.json()["results"]] == ["CP-1"]


def test_a_query_parameter_the_connectors_do_not_read_is_a_400_naming_it(api_client, register_charge_point):
    """Probe: ``/chargepoints/CP-1/connectors?status=Faulted`` answered every connector, taken for the
    faulted ones. The whole list takes ``format``, and ``page`` and ``page_size`` as one page (the second
    review: a client paging every list got a 400 on this one)."""
    register_charge_point("CP-1")
    response = api_client.get("/api/v1/chargepoints/CP-1/connectors?status=Faulted")
    assert response.status_code == 400, response.content[:300]
    assert (response.json()["error"], response.json()["details"]) == ("ValidationError", {"status": [UNKNOWN]})
    assert api_client.get("/api/v1/chargepoints/CP-1/connectors?format=json").status_code == 200
    assert api_client.get("/api/v1/chargepoints/CP-1/connectors?page=1&page_size=1000").status_code == 200


def test_a_charger_moved_to_another_ocpp_version_lists_the_connectors_of_that_version_only(
    api_client, register_charge_point
):
    """Probe: a 1.6 charger (connector 1 Charging, 2 Faulted) upgraded to 2.0.1 listed those beside
    its 2.0.1 EVSE's connector, and the dashboard counted the Faulted one: told before the move."""
    register_charge_point("CP-1", ocpp_version="1.6")
    connector_status_set(charge_point_id="CP-1", connector_id=1, status="Charging", error_code="NoError")
    connector_status_set(charge_point_id="CP-1", connector_id=2, status="Faulted", error_code="GroundFailure")
    ChargePoint.objects.filter(charge_point_id="CP-1").update(ocpp_version="2.0.1")  # it connected speaking 2.0.1
    connector_status_set(charge_point_id="CP-1", evse_id=1, connector_id=1, status="Available")
    listed = api_client.get("/api/v1/chargepoints/CP-1/connectors").json()
    assert [(c["evse_id"], c["connector_id"], c["status"]) for c in listed] == [(1, 1, "Available")]
    assert fleet_summary().faulted_connectors == 0
    ChargePoint.objects.filter(charge_point_id="CP-1").update(ocpp_version="1.6")  # and back
    listed = api_client.get("/api/v1/chargepoints/CP-1/connectors").json()
    assert [(c["evse_id"], c["connector_id"], c["status"]) for c in listed] == [
        (None, 1, "Charging"),
        (None, 2, "Faulted"),
    ]
    assert fleet_summary().faulted_connectors == 1


def test_the_schema_marks_every_field_of_the_connection_status_and_connectors_as_always_answered(
    api_client, client, register_charge_point
):
    """The docs page's connection status has four fields, always answered (``last_heartbeat`` and
    ``ocpp_version`` null until known); its schema listed ``connected`` and ``last_heartbeat`` as
    optional, and a connector's ``status``, ``evse_id`` and ``error_code`` too, so a client
    generated from it typed them as possibly missing (``connected?: boolean``). Each field answered
    is required in its component now, with its documented type."""
    register_charge_point("cp_01HXYZ123ABC")
    connector_status_set(charge_point_id="cp_01HXYZ123ABC", connector_id=1, status="Available")
    status = api_client.get("/api/v1/installer/charge-points/cp_01HXYZ123ABC/connection-status").json()
    connectors = api_client.get("/api/v1/chargepoints/cp_01HXYZ123ABC/connectors").json()
    components = client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]
    for answer, name in ((status, "ConnectionStatus"), (connectors[0], "Connector")):
        assert sorted(components[name]["required"]) == sorted(answer), name
    properties = components["ConnectionStatus"]["properties"]
    assert {field: (schema["type"], schema.get("nullable", False)) for field, schema in properties.items()} == {
        "charge_point_id": ("string", False),
        "connected": ("boolean", False),
        "last_heartbeat": ("string", True),
        "ocpp_version": ("string", True),
    }
    assert properties["last_heartbeat"]["format"] == "date-time"
