"""Chargers' answers are checked against the action's response schema, and every status in them decides
the command's state (per variable for 2.0.1 SetVariables): raw-frame chargers on a real daphne."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from chargepoints.models import ChargePoint, ChargerModelProfile, SchemaViolation, Strictness
from charging.models import InstalledChargingProfile
from commands.models import Command
from conftest import ahttp, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

API_PATH = {"1.6": "ocpp16", "2.0.1": "ocpp201"}


async def answered(
    daphne,
    api_key,
    version: str,
    charge_point_id: str,
    command: str,
    body: dict,
    answer: Any,
    boot: list | None = None,
    method: str = "POST",
    path: str = "",
) -> tuple[list, int, Any]:
    """POST ``command``, answer the CALL it sends with ``answer``; the CALL, HTTP status and body."""
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        if boot:
            await websocket.send(json.dumps(boot))
            await asyncio.wait_for(websocket.recv(), 5)
        url = path or f"{daphne.http_url}/api/v1/{API_PATH[version]}/{charge_point_id}/{command}"
        post = asyncio.create_task(ahttp(url, method=method, api_key=api_key, body=body))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        await websocket.send(json.dumps([3, call[1], answer]))
        status, reply = await post
    return call, status, reply


INVALID_ANSWERS = [
    (
        "1.6",
        "change_availability",
        {"connector_id": 0, "type": "Inoperative"},
        {"status": "Bogus"},
        {"status": ["\"Bogus\" is not one of ['Accepted', 'Rejected', 'Scheduled']."]},
    ),
    ("1.6", "reset", {"type": "Hard"}, {}, {"status": ["This field is required."]}),
    (
        "1.6",
        "unlock_connector",
        {"connector_id": 1},
        {"status": "Accepted"},
        {"status": ["\"Accepted\" is not one of ['Unlocked', 'UnlockFailed', 'NotSupported']."]},
    ),
    (
        "2.0.1",
        "get_local_list_version",
        {},
        {"listVersion": 3},
        {"version_number": ["This field is required."], "list_version": ["Unknown field."]},
    ),
]


@pytest.mark.parametrize(("version", "command", "body", "answer", "details"), INVALID_ANSWERS)
async def test_a_strict_charger_s_invalid_answer_is_a_502_invalid_response(
    daphne, api_key, version, command, body, answer, details
):
    await ChargePoint.objects.acreate(charge_point_id="CP-STRICT", heartbeat_interval=60)
    _, status, reply = await answered(daphne, api_key, version, "CP-STRICT", command, body, answer)
    assert (status, reply["error"], reply["details"]) == (502, "InvalidResponse", details)
    record = await Command.objects.aget(charge_point_identity="CP-STRICT")
    assert (record.state, record.error_code, record.response_violations) == (
        "invalid_response",
        "InvalidResponse",
        details,
    )


async def test_a_lenient_model_s_invalid_answer_is_recorded_and_passed_on(daphne, api_key):
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOOSE", heartbeat_interval=60)
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Loose"}]
    _, status, reply = await answered(
        daphne,
        api_key,
        "1.6",
        "CP-LOOSE",
        "change_availability",
        {"connector_id": 0, "type": "Inoperative"},
        {"status": "Bogus"},
        boot=boot,
    )
    assert (status, reply) == (200, {"status": "Bogus"})
    record = await Command.objects.aget(charge_point_identity="CP-LOOSE")
    assert record.response_violations == {"status": ["\"Bogus\" is not one of ['Accepted', 'Rejected', 'Scheduled']."]}
    violation = await SchemaViolation.objects.aget()
    assert (violation.action, violation.path, violation.validator, violation.value) == (
        "ChangeAvailabilityResponse",
        "status",
        "enum",
        "Bogus",
    )


PROFILE_16 = {
    "charging_profile_id": 5,
    "stack_level": 0,
    "charging_profile_purpose": "TxDefaultProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": {"charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 7400}]},
}


async def test_a_lenient_model_s_unknown_status_is_passed_on_and_changes_no_charger_state(daphne, api_key):
    """A status the spec does not list is passed on as it came, and is no acceptance: the CSMS did
    not record the profile of a SetChargingProfile answered ``Pending`` as installed, nor forget the
    installed ones a ClearChargingProfile answered so names (round 45's probe: both followed as Accepted)."""
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOOSE", heartbeat_interval=60)
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Loose"}]
    set_profile = {"connector_id": 1, "cs_charging_profiles": PROFILE_16}
    _, status, reply = await answered(
        daphne, api_key, "1.6", "CP-LOOSE", "set_charging_profile", set_profile, {"status": "Pending"}, boot=boot
    )
    assert (status, reply) == (200, {"status": "Pending"})
    assert not await InstalledChargingProfile.objects.aexists()
    await answered(
        daphne, api_key, "1.6", "CP-LOOSE", "set_charging_profile", set_profile, {"status": "Accepted"}, boot=boot
    )
    assert await InstalledChargingProfile.objects.aexists()
    _, status, reply = await answered(
        daphne, api_key, "1.6", "CP-LOOSE", "clear_charging_profile", {"id": 5}, {"status": "Pending"}, boot=boot
    )
    assert (status, reply) == (200, {"status": "Pending"})
    assert await InstalledChargingProfile.objects.aexists()


async def test_a_lenient_model_s_unknown_status_leaves_its_command_not_accepted(daphne, api_key):
    """Its command's state is ``invalid_response``, not ``accepted``, so no reader of the state (a
    site's SessionLimit, firmware, diagnostics) takes it for an acceptance; the answer is still
    passed on (HTTP 200) and a status the spec lists in it followed (round 45's review)."""
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOOSE", heartbeat_interval=60)
    boot = [2, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Loose"}]
    set_profile = {"connector_id": 1, "cs_charging_profiles": PROFILE_16}
    _, status, reply = await answered(
        daphne, api_key, "1.6", "CP-LOOSE", "set_charging_profile", set_profile, {"status": "Pending"}, boot=boot
    )
    assert (status, reply) == (200, {"status": "Pending"})
    record = await Command.objects.aget(charge_point_identity="CP-LOOSE")
    assert (record.state, record.error_code) == ("invalid_response", "")
    assert "does not list" in record.error_description
    # A 1.6 ChangeConfiguration so answered: the PATCH still answers per key, with the status as it came.
    url = f"{daphne.http_url}/api/v1/chargepoints/CP-LOOSE/configuration"
    async with raw_socket(daphne, "1.6", "CP-LOOSE") as websocket:
        await websocket.send(json.dumps(boot))
        await asyncio.wait_for(websocket.recv(), 5)
        patch = asyncio.create_task(
            ahttp(
                url,
                method="PATCH",
                api_key=api_key,
                body={"keys": [{"key": "MeterValueSampleInterval", "value": "30"}]},
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        await websocket.send(json.dumps([3, call[1], {"status": "Later"}]))
        status, reply = await patch
    assert status == 200
    assert [(result["key"], result["status"]) for result in reply["results"]] == [("MeterValueSampleInterval", "Later")]
    changed = await Command.objects.aget(command="change_configuration")
    assert changed.state == "invalid_response"


async def test_a_valid_answer_with_decimal_numbers_passes(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-SCHED", heartbeat_interval=60)
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.1}]}
    answer = {"status": "Accepted", "connectorId": 1, "chargingSchedule": schedule}
    _, status, reply = await answered(
        daphne, api_key, "1.6", "CP-SCHED", "get_composite_schedule", {"connector_id": 1, "duration": 3600}, answer
    )
    assert (status, reply["charging_schedule"]["charging_schedule_period"]) == (
        200,
        [{"start_period": 0, "limit": 10.1}],
    )


HEARTBEAT_201 = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
PUSH_ANSWERS = [
    ("1.6", {"status": "Accepted"}, "accepted"),
    ("1.6", {"status": "Rejected"}, "rejected"),
    ("1.6", {"status": "NotSupported"}, "rejected"),
    ("1.6", {"status": "RebootRequired"}, "reboot_required"),
    ("2.0.1", {"setVariableResult": [{**HEARTBEAT_201, "attributeStatus": "Accepted"}]}, "accepted"),
    ("2.0.1", {"setVariableResult": [{**HEARTBEAT_201, "attributeStatus": "UnknownVariable"}]}, "rejected"),
    ("2.0.1", {"setVariableResult": [{**HEARTBEAT_201, "attributeStatus": "Rejected"}]}, "rejected"),
    ("2.0.1", {"setVariableResult": [{**HEARTBEAT_201, "attributeStatus": "RebootRequired"}]}, "reboot_required"),
]


@pytest.mark.parametrize(("version", "answer", "state"), PUSH_ANSWERS)
async def test_the_heartbeat_push_reports_what_the_charger_did_with_the_value(daphne, api_key, version, answer, state):
    await ChargePoint.objects.acreate(charge_point_id="CP-HB", heartbeat_interval=60)
    call, status, reply = await answered(
        daphne,
        api_key,
        version,
        "CP-HB",
        "",
        {"heartbeat_interval": 30},
        answer,
        method="PATCH",
        path=f"{daphne.http_url}/api/v1/chargepoints/CP-HB",
    )
    assert call[2] == ("ChangeConfiguration" if version == "1.6" else "SetVariables")
    assert (status, reply["heartbeat_interval_push"]["state"]) == (200, state)


async def test_set_variables_refused_for_one_variable_is_a_409_naming_its_status(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-VARS", heartbeat_interval=60)
    other = {"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"}}
    body = {
        "set_variable_data": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "attribute_value": "30",
            },
            {"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"}, "attribute_value": "true"},
        ]
    }
    answer = {
        "setVariableResult": [
            {**HEARTBEAT_201, "attributeStatus": "Accepted"},
            {**other, "attributeStatus": "UnknownComponent"},
        ]
    }
    _, status, reply = await answered(daphne, api_key, "2.0.1", "CP-VARS", "set_variables", body, answer)
    assert (status, reply["error"]) == (409, "UnknownComponent")
    assert (await Command.objects.aget()).state == "rejected"


async def callerror_answered(daphne, api_key, charge_point_id: str, details: Any) -> tuple[int, Any, Command]:
    """POST a 2.0.1 reset, answer it with an InternalError CALLERROR of ``details``."""
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        url = f"{daphne.http_url}/api/v1/ocpp201/{charge_point_id}/reset"
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Immediate"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        await websocket.send(json.dumps([4, call[1], "InternalError", "boom", details]))
        status, reply = await post
    return status, reply, await Command.objects.aget(charge_point_identity=charge_point_id)


async def test_a_callerror_s_details_are_kept_in_the_502_and_the_command(daphne, api_key):
    """Round 52's probe: ``[4,id,"InternalError","boom",{"a":1}]`` was a 502 and a command without the
    charger's errorDetails, the only say of many firmwares on what went wrong."""
    details = {"a": 1, "vendorCode": "E-0042", "nested": {"slot": [1, 2]}}
    status, reply, record = await callerror_answered(daphne, api_key, "CP-DETAILS", details)
    assert (status, reply["error"], reply["message"], reply["details"]) == (502, "InternalError", "boom", details)
    assert (record.state, record.error_code, record.error_details) == ("call_error", "InternalError", details)


async def test_a_callerror_s_oversized_details_keep_the_members_that_fit(daphne, api_key):
    details = {"code": "E-1", "dump": "x" * 20_000, "slot": 3}
    status, reply, record = await callerror_answered(daphne, api_key, "CP-BIG-DETAILS", details)
    kept = {"code": "E-1", "slot": 3}
    assert (status, reply["details"], record.error_details) == (502, kept, kept)
