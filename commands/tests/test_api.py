"""Command requests refused before anything is sent (in-process API client)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from chargepoints.models import ChargePoint
from commands.models import Command, CommandState

pytestmark = pytest.mark.django_db


def test_no_key_is_a_401(db):
    assert APIClient().post("/api/v1/ocpp16/reset", {"charge_point_id": "X"}, format="json").status_code == 401


def test_unknown_charge_point_is_a_404(api_client):
    response = api_client.post("/api/v1/ocpp16/reset", {"charge_point_id": "NOPE", "type": "Soft"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"] == "NotFound"
    assert response.json()["charge_point_id"] == "NOPE"


def test_missing_charge_point_id_is_a_400_naming_it(api_client):
    response = api_client.post("/api/v1/ocpp16/reset", {"type": "Soft"}, format="json")
    assert response.status_code == 400
    assert "charge_point_id" in response.json()["details"]


def test_a_charge_point_id_longer_than_any_charger_s_is_a_400_naming_it(api_client):
    """Was a 500 (the command's row holds 48 characters; the schema fuzz found it). In the path, no
    route takes it (404)."""
    body = {"charge_point_id": "X" * 49, "vendor_id": "V"}
    response = api_client.post("/api/v1/ocpp16/data_transfer", body, format="json")
    assert response.status_code == 400
    assert "48 characters" in response.json()["details"]["charge_point_id"][0]


def test_a_body_violating_the_ocpp_schema_is_a_400_naming_each_field(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(
        "/api/v1/ocpp16/CP-1/set_charging_profile",
        {
            "connector_id": "one",
            "cs_charging_profiles": {
                "charging_profile_id": 1,
                "stack_level": 0,
                "charging_profile_purpose": "Nonsense",
            },
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "ValidationError"
    assert body["charge_point_id"] == "CP-1"
    assert set(body["details"]) >= {
        "connector_id",
        "cs_charging_profiles.charging_profile_purpose",
        "cs_charging_profiles.charging_profile_kind",
        "cs_charging_profiles.charging_schedule",
    }
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("version", "path", "body", "profile"),
    [
        ("1.6", "ocpp16", {"connector_id": 1, "cs_charging_profiles": {}}, "cs_charging_profiles"),
        ("2.0.1", "ocpp201", {"evse_id": 1, "charging_profile": {}}, "charging_profile"),
    ],
)
def test_each_missing_field_of_a_charging_profile_is_named_once_with_one_message(
    api_client, register_charge_point, version, path, body, profile
):
    register_charge_point("CP-1", ocpp_version=version)
    response = api_client.post(f"/api/v1/{path}/CP-1/set_charging_profile", body, format="json")
    assert response.status_code == 400
    details = response.json()["details"]
    assert details[f"{profile}.stack_level"] == ["This field is required."]
    assert details[f"{profile}.charging_schedule"] == ["This field is required."]
    assert all(messages == ["This field is required."] for messages in details.values())


def test_a_command_of_the_other_version_is_a_400_unsupported_version(api_client, register_charge_point):
    register_charge_point("CP-201", ocpp_version="2.0.1")
    response = api_client.post("/api/v1/ocpp16/CP-201/reset", {"type": "Soft"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "UnsupportedVersion"


def test_commands_are_listed_and_fetched(api_client, register_charge_point):
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    command = Command.objects.create(
        charge_point=charge_point,
        charge_point_identity="CP-1",
        ocpp_version="1.6",
        command="reset",
        action="Reset",
        request={"type": "Soft"},
        state="accepted",
        response={"status": "Accepted"},
    )
    listed = api_client.get("/api/v1/commands/?charge_point_id=CP-1").json()["results"]
    assert [c["id"] for c in listed] == [str(command.id)]
    assert api_client.get(f"/api/v1/commands/{command.id}").json()["response"] == {"status": "Accepted"}
    assert api_client.get("/api/v1/commands/not-a-uuid").status_code == 404


def test_the_action_filter_takes_an_ocpp_action_and_refuses_what_no_command_has(api_client, register_charge_point):
    """``action=reset`` (the command's name in its URL, not its OCPP action) listed nothing, as if no
    Reset had been sent; a value no command can have is a 400 naming ``action``, as for ``state``."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    Command.objects.create(
        charge_point=charge_point, charge_point_identity="CP-1", ocpp_version="1.6", command="reset", action="Reset"
    )
    assert api_client.get("/api/v1/commands/?action=Reset").json()["count"] == 1
    assert api_client.get("/api/v1/commands/?action=RequestStartTransaction").json()["count"] == 0
    response = api_client.get("/api/v1/commands/?action=reset")
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert "Reset" in response.json()["details"]["action"][0]


def test_an_idempotency_key_returns_the_first_outcome_without_sending_again(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    headers = {"HTTP_IDEMPOTENCY_KEY": "retry-me"}
    first = api_client.post("/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}, format="json", **headers)
    second = api_client.post("/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}, format="json", **headers)
    assert first.status_code == second.status_code == 503
    assert first["X-Command-Id"] == second["X-Command-Id"]
    assert Command.objects.count() == 1
    assert ChargePoint.objects.count() == 1


@pytest.mark.parametrize(
    ("path", "version", "body", "named"),
    [
        (
            "ocpp201/CP-1/reserve_now",
            "2.0.1",
            {"id": 5, "expiryDateTime": "2099-01-01T00:00:00Z", "idToken": {"idToken": "T", "type": "ISO14443"}},
            {"expiryDateTime", "idToken", "idToken.idToken"},
        ),
        ("ocpp16/CP-1/remote_start_transaction", "1.6", {"connectorId": 1, "id_tag": "T"}, {"connectorId"}),
        (
            "ocpp16/CP-1/send_local_list",
            "1.6",
            {"list_version": 2, "update_type": "Full", "local_authorization_list": [{"idTag": "T"}]},
            {"local_authorization_list.0.idTag"},
        ),
    ],
)
def test_a_body_in_camel_case_is_a_400_naming_each_field_and_sends_nothing(
    api_client, register_charge_point, path, version, body, named
):
    """OCPP's camelCase passed the schema once converted, was sent, then failed the CSMS's own
    reading of the body (a 500 after the charger accepted, the command pending for ever)."""
    register_charge_point("CP-1", ocpp_version=version)
    response = api_client.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 400, response.json()
    assert set(response.json()["details"]) == named
    assert "snake_case" in response.json()["details"][sorted(named)[0]][0]
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("path", "version", "body", "named"),
    [
        ("ocpp16/CP-1/reset", "1.6", {"type_": "Hard"}, {"type_": "type"}),
        ("ocpp16/CP-1/unlock_connector", "1.6", {"connector__id": 2}, {"connector__id": "connector_id"}),
        (
            "ocpp16/CP-1/remote_stop_transaction",
            "1.6",
            {"transaction_id": 1, "transaction__id": 2},
            {"transaction__id": "transaction_id"},
        ),
        (
            "ocpp201/CP-1/request_start_transaction",
            "2.0.1",
            {"remote_start_id": 1, "id_token": {"id_token_": "T", "type": "ISO14443"}},
            {"id_token.id_token_": "id_token"},
        ),
        # Capitals around an underscore: the spelling meant has one underscore, not "id__tag"
        ("ocpp16/CP-1/remote_start_transaction", "1.6", {"Id_Tag": "A"}, {"Id_Tag": "id_tag"}),
        ("ocpp16/CP-1/unlock_connector", "1.6", {"Connector_Id": 1}, {"Connector_Id": "connector_id"}),
        ("ocpp16/CP-1/unlock_connector", "1.6", {"connector_Id": 1}, {"connector_Id": "connector_id"}),
    ],
)
def test_a_field_that_is_not_the_csms_s_snake_case_spelling_is_a_400_naming_it_and_sends_nothing(
    api_client, register_charge_point, path, version, body, named
):
    """A misspelt snake_case name that becomes an OCPP field once converted (``type_`` and
    ``connector__id`` become ``type`` and ``connectorId``) passed the schema and was sent, while the
    CSMS read (and recorded) the body by its own spelling: ``{"transaction_id": 1,
    "transaction__id": 2}`` was recorded and checked as a stop of transaction 1 and sent as a stop
    of transaction 2. Each such name is a 400 naming it and the spelling meant."""
    register_charge_point("CP-1", ocpp_version=version)
    response = api_client.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 400, response.json()
    details = response.json()["details"]
    assert set(details) == set(named)
    for where, meant in named.items():
        assert details[where] == [f"Unknown field; fields are snake_case: {meant}."]
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("body_id", "message"), [("CP-2", "Differs from the charge point in the path"), (5, "Must be a string.")]
)
def test_a_charger_named_twice_differently_is_a_400(api_client, register_charge_point, body_id, message):
    register_charge_point("CP-1", ocpp_version="1.6")
    register_charge_point("CP-2", ocpp_version="1.6")
    body = {"charge_point_id": body_id, "type": "Soft"}
    response = api_client.post("/api/v1/ocpp16/CP-1/reset", body, format="json")
    assert response.status_code == 400
    assert response.json()["details"]["charge_point_id"][0].startswith(message)
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        ("1.6", "ocpp16/CP-P/remote_start_transaction", {"connector_id": 1, "id_tag": "T"}),
        ("1.6", "ocpp16/CP-P/remote_stop_transaction", {"transaction_id": 1}),
        (
            "2.0.1",
            "ocpp201/CP-P/request_start_transaction",
            {"id_token": {"id_token": "T", "type": "ISO14443"}, "remote_start_id": 1},
        ),
        ("2.0.1", "ocpp201/CP-P/request_stop_transaction", {"transaction_id": "TX-1"}),
    ],
)
def test_a_remote_start_or_stop_to_a_pending_charger_is_refused_unsent(
    api_client, register_charge_point, version, path, body
):
    """OCPP 1.6 §4.2: not while its Boot is answered Pending (2.0.1 B02: the station rejects them)."""
    register_charge_point("CP-P", ocpp_version=version, lifecycle_state="pending")
    response = api_client.post(f"/api/v1/{path}", body, format="json")
    assert (response.status_code, response.json()["error"]) == (409, "ChargePointPending")
    assert not Command.objects.exists()
    reset = {"type": "Soft"} if version == "1.6" else {"type": "Immediate"}
    allowed = api_client.post(f"/api/v1/{path.split('/')[0]}/CP-P/reset", reset, format="json")
    assert allowed.json()["error"] == "NotConnected"  # anything else still goes (the charger is away)


@pytest.mark.parametrize("idempotency_key", ["", "k-decommissioned"])
@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        ("1.6", "ocpp16/CP-D/reset", {"type": "Soft"}),
        ("1.6", "ocpp16/reset", {"charge_point_id": "CP-D", "type": "Soft"}),
        ("2.0.1", "ocpp201/CP-D/reset", {"type": "Immediate"}),
    ],
)
def test_a_command_to_a_decommissioned_charger_is_a_409_unsent(
    api_client, register_charge_point, version, path, body, idempotency_key
):
    """A decommissioned charger is refused at its handshake: it can never receive the command, so
    not a 503 NotConnected (which tells the caller to try again later), and nothing is recorded."""
    register_charge_point("CP-D", ocpp_version=version, lifecycle_state="decommissioned")
    headers = {"HTTP_IDEMPOTENCY_KEY": idempotency_key} if idempotency_key else {}
    response = api_client.post(f"/api/v1/{path}", body, format="json", **headers)
    assert (response.status_code, response.json()["error"]) == (409, "ChargePointDecommissioned")
    assert response.json()["charge_point_id"] == "CP-D"
    assert "decommissioned" in response.json()["message"]
    assert not Command.objects.exists()


def test_a_configuration_change_to_a_decommissioned_charger_is_a_409(api_client, register_charge_point):
    register_charge_point("CP-D", ocpp_version="1.6", lifecycle_state="decommissioned")
    response = api_client.patch(
        "/api/v1/chargepoints/CP-D/configuration",
        {"keys": [{"key": "HeartbeatInterval", "value": "300"}]},
        format="json",
    )
    assert (response.status_code, response.json()["error"]) == (409, "ChargePointDecommissioned")
    assert not Command.objects.exists()


@pytest.mark.parametrize("wait", ["false", "0", "FALSE"])
def test_a_command_not_waited_for_to_a_charger_not_connected_is_a_503_at_once(api_client, register_charge_point, wait):
    """The record's read of the charger shows no process holds it: nothing to wait for, the 503 the
    API's error table promises "at once" (was a 202 with a command then completed not_connected)."""
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(f"/api/v1/ocpp16/CP-1/reset?wait={wait}", {"type": "Soft"}, format="json")
    assert (response.status_code, response.json()["error"]) == (503, "NotConnected")
    assert Command.objects.get(id=response["X-Command-Id"]).state == CommandState.NOT_CONNECTED


@pytest.mark.parametrize("wait", ["no", "bogus", "", "yes"])
def test_a_wait_other_than_true_or_false_is_a_400_naming_it(api_client, register_charge_point, wait):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(f"/api/v1/ocpp16/CP-1/reset?wait={wait}", {"type": "Soft"}, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "ValidationError")
    assert list(response.json()["details"]) == ["wait"]
    assert not Command.objects.exists()


@pytest.mark.parametrize("wait", ["true", "1", "True"])
def test_a_wait_of_true_waits(api_client, register_charge_point, wait):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(f"/api/v1/ocpp16/CP-1/reset?wait={wait}", {"type": "Soft"}, format="json")
    assert (response.status_code, response.json()["error"]) == (503, "NotConnected")


def test_a_query_parameter_a_command_does_not_read_is_a_400_naming_it(api_client, register_charge_point):
    """Probe: ``?wiat=false`` (for ``wait``) was ignored: the caller waited up to the call timeout
    for the answer it meant to poll for."""
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post("/api/v1/ocpp16/CP-1/reset?wiat=false", {"type": "Soft"}, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "ValidationError")
    assert response.json()["details"] == {"wiat": ["Unknown query parameter."]}
    assert not Command.objects.exists()
    response = api_client.post("/api/v1/ocpp16/CP-1/reset?wait=false&format=json", {"type": "Soft"}, format="json")
    assert response.json()["error"] == "NotConnected"
