"""Decimal numbers in commands: every command that takes a number is sent with a fractional one.

The API validates with Decimal numbers (OCPP 1.6 declares ``multipleOf 0.1``); its validators are
its own, never the ones the gateway adjusted for chargers' CALLs, which parse floats.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint
from commands import catalog
from commands.tests.conftest import V16_ANSWERS, V201_ANSWERS, answering_charger
from conftest import CLIENTS, ahttp, ocpp_charger
from kernel import schemas

PROFILE_16 = {
    "charging_profile_id": 1,
    "stack_level": 0,
    "charging_profile_purpose": "TxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": {
        "charging_rate_unit": "A",
        "min_charging_rate": 6.5,
        "charging_schedule_period": [{"start_period": 0, "limit": 10.0, "number_phases": 3}],
    },
}
PROFILE_201 = {
    "id": 1,
    "stack_level": 0,
    "charging_profile_purpose": "TxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": [
        {
            "id": 1,
            "start_schedule": "2031-01-01T00:00:00Z",
            "charging_rate_unit": "A",
            "min_charging_rate": 6.5,
            "charging_schedule_period": [{"start_period": 0, "limit": 10.0}],
        }
    ],
}
ID_TOKEN = {"id_token": "RFID-1", "type": "ISO14443"}

# Every command whose request accepts a number somewhere, with a fractional number there.
DECIMAL_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("1.6", "remote_start_transaction"): {"connector_id": 1, "id_tag": "RFID-1", "charging_profile": PROFILE_16},
    ("1.6", "set_charging_profile"): {"connector_id": 1, "cs_charging_profiles": PROFILE_16},
    ("2.0.1", "request_start_transaction"): {
        "id_token": ID_TOKEN,
        "remote_start_id": 5,
        "evse_id": 1,
        "charging_profile": PROFILE_201,
    },
    ("2.0.1", "set_charging_profile"): {
        "evse_id": 1,
        "charging_profile": {**PROFILE_201, "charging_profile_purpose": "TxDefaultProfile"},
    },
    ("2.0.1", "data_transfer"): {"vendor_id": "com.example", "data": {"price": 0.35}},
}
CHARGERS = {
    "1.6": answering_charger(CLIENTS["1.6"], V16_ANSWERS),
    "2.0.1": answering_charger(
        CLIENTS["2.0.1"], {**V201_ANSWERS, "DataTransfer": result201.DataTransfer(status="Accepted")}
    ),
}
API_PATH = {"1.6": "ocpp16", "2.0.1": "ocpp201"}


# The other 2.0.1 commands take numbers in ``customData`` only (vendor data, any JSON).
CUSTOM_DATA = {"vendor_id": "com.example", "ratio": 0.35}
CUSTOM_DATA_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("2.0.1", command): {**body, "custom_data": CUSTOM_DATA}  # type: ignore[dict-item]  # each body is a dict
    for command, body in {
        "request_stop_transaction": {"transaction_id": "tx-1"},
        "change_availability": {"operational_status": "Inoperative"},
        "clear_charging_profile": {"charging_profile_criteria": {"evse_id": 1}},
        "get_charging_profiles": {"request_id": 1, "charging_profile": {"charging_profile_purpose": "TxProfile"}},
        "get_composite_schedule": {"duration": 3600, "evse_id": 1},
        "reset": {"type": "Immediate"},
        "trigger_message": {"requested_message": "Heartbeat"},
        "reserve_now": {"id": 3, "expiry_date_time": "2031-05-01T12:00:00Z", "id_token": ID_TOKEN},
        "cancel_reservation": {"reservation_id": 3},
        "get_variables": {
            "get_variable_data": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
        },
        "set_variables": {
            "set_variable_data": [
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                    "attribute_value": "30",
                }
            ]
        },
        "get_base_report": {"request_id": 1, "report_base": "FullInventory"},
        "get_report": {"request_id": 1, "component_criteria": ["Active"]},
        "unlock_connector": {"evse_id": 1, "connector_id": 1},
        "clear_cache": {},
        "get_log": {"log_type": "DiagnosticsLog", "request_id": 1, "log": {"remote_location": "ftp://example.com/"}},
        "update_firmware": {
            "request_id": 1,
            "firmware": {"location": "https://example.com/fw.bin", "retrieve_date_time": "2031-05-01T12:00:00Z"},
        },
        "send_local_list": {"version_number": 2, "update_type": "Full"},
        "get_local_list_version": {},
        "get_transaction_status": {},
    }.items()
}


def _accepts_number(schema: Any) -> bool:
    """Whether a number is valid somewhere in ``schema``: a ``number``, a property without a type, or
    an object open to any property (2.0.1 CustomDataType)."""
    if isinstance(schema, list):
        return any(_accepts_number(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    kinds = schema.get("type")
    if kinds == "number" or (isinstance(kinds, list) and "number" in kinds):
        return True
    if kinds == "object" and schema.get("additionalProperties", True) is not False:
        return True
    properties = schema.get("properties", {})
    if any(isinstance(value, dict) and not {"type", "$ref", "enum"} & set(value) for value in properties.values()):
        return True
    return any(_accepts_number(value) for key, value in schema.items() if key != "enum")


def test_every_command_that_accepts_a_number_is_tested_with_a_decimal_one():
    accepting = {
        (version, command)
        for version, commands in catalog.COMMANDS.items()
        for command in commands
        if _accepts_number(schemas.request_schema(ocpp_version=version, action=catalog.ocpp_action(command)))
    }
    assert accepting == set(DECIMAL_BODIES) | set(CUSTOM_DATA_BODIES)


@pytest.mark.parametrize(("version", "command"), sorted({**DECIMAL_BODIES, **CUSTOM_DATA_BODIES}))
def test_every_command_with_decimal_numbers_passes_validation(api_client, register_charge_point, version, command):
    register_charge_point("CP-1", ocpp_version=version)
    body = {**DECIMAL_BODIES, **CUSTOM_DATA_BODIES}[(version, command)]
    response = api_client.post(f"/api/v1/{API_PATH[version]}/CP-1/{command}", body, format="json")
    assert (response.status_code, response.json()["error"]) == (503, "NotConnected"), response.json()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "command"), sorted(DECIMAL_BODIES))
async def test_a_command_with_decimal_numbers_reaches_the_charger(daphne, api_daphne, api_key, version, command):
    await ChargePoint.objects.acreate(charge_point_id="CP-DEC", heartbeat_interval=60)
    body = DECIMAL_BODIES[(version, command)]
    async with ocpp_charger(daphne, version, "CP-DEC", client_class=CHARGERS[version]) as charger:
        status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/{API_PATH[version]}/CP-DEC/{command}",
            method="POST",
            api_key=api_key,
            body=body,
        )
        assert (status, reply["status"]) == (200, "Accepted"), reply
        assert charger.received == [(catalog.ocpp_action(command), body)]


def test_set_charging_profile_with_a_decimal_limit_is_not_a_500(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    body = {"connector_id": 1, "cs_charging_profiles": PROFILE_16}
    response = api_client.post("/api/v1/ocpp16/CP-1/set_charging_profile", body, format="json")
    assert (response.status_code, response.json()["error"]) == (503, "NotConnected")


def test_remote_start_with_a_decimal_profile_is_not_a_500(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    body = {"id_tag": "RFID-1", "connector_id": 1, "charging_profile": PROFILE_16}
    response = api_client.post("/api/v1/ocpp16/CP-1/remote_start_transaction", body, format="json")
    assert (response.status_code, response.json()["error"]) == (503, "NotConnected")


def test_a_limit_finer_than_the_16_schema_allows_is_a_400_naming_it(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    period = {"start_period": 0, "limit": 10.05}
    profile = {**PROFILE_16, "charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": [period]}}
    response = api_client.post(
        "/api/v1/ocpp16/CP-1/set_charging_profile", {"connector_id": 1, "cs_charging_profiles": profile}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["details"] == {
        "cs_charging_profiles.charging_schedule.charging_schedule_period.0.limit": ["10.05 is not a multiple of 0.1"]
    }


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize(("limit", "status"), [("1e27", 503), ("3.4e38", 503), ("1e309", 400), ("-1e309", 400)])
def test_a_huge_limit_is_checked_not_a_500(api_client, register_charge_point, limit, status, version):
    """1e27 divided by 0.1 (``multipleOf``) overflowed Decimal's 28 digits; 1e309 parsed as infinity
    (round 41's probe: both a 500). A finite one is checked and sent (here: no charger, 503); an
    infinite one is a 400 naming it. 2.0.1's one decimal (``body_rules``) is checked alike."""
    register_charge_point("CP-1", ocpp_version=version)
    periods = [{"start_period": 0, "limit": "LIMIT"}]
    if version == "1.6":
        schedule = {"charging_rate_unit": "A", "charging_schedule_period": periods}
        body = {"connector_id": 1, "cs_charging_profiles": {**PROFILE_16, "charging_schedule": schedule}}
        path, field = "ocpp16", "cs_charging_profiles.charging_schedule"
    else:
        schedules = [{**PROFILE_201["charging_schedule"][0], "charging_schedule_period": periods}]
        profile = {**PROFILE_201, "charging_profile_purpose": "TxDefaultProfile", "charging_schedule": schedules}
        body = {"evse_id": 1, "charging_profile": profile}
        path, field = "ocpp201", "charging_profile.charging_schedule.0"
    sent = json.dumps(body).replace('"LIMIT"', limit)
    response = api_client.post(f"/api/v1/{path}/CP-1/set_charging_profile", sent, content_type="application/json")
    assert response.status_code == status, response.json()
    if status == 400:
        assert list(response.json()["details"]) == [f"{field}.charging_schedule_period.0.limit"]


@pytest.mark.parametrize("number", [str(2**64), str(-(2**63) - 1)])
def test_an_integer_beyond_64_bits_in_free_data_is_a_400_naming_it(api_client, register_charge_point, number):
    """The channel layer carries no larger (round 41's probe: a false 503 NotConnected)."""
    register_charge_point("CP-1", ocpp_version="2.0.1")
    body = '{"vendor_id": "x", "data": {"n": %s}}' % number  # noqa: UP031  (the number as written)
    response = api_client.post("/api/v1/ocpp201/CP-1/data_transfer", body, content_type="application/json")
    assert (response.status_code, list(response.json()["details"])) == (400, ["data.n"])
