"""Commands across processes: the charger on daphne A, the API call on daphne B, Redis between."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from django.conf import settings
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint
from charging.models import IdTag
from commands.models import Command
from commands.tests.conftest import V16Charger, V201Charger
from conftest import ahttp, eventually, ocpp_charger, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

PROFILE_16 = {
    "charging_profile_id": 1,
    "stack_level": 0,
    "charging_profile_purpose": "TxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": {"charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 7400}]},
}

V16_CASES = [
    (
        "remote_start_transaction",
        {"connector_id": 1, "id_tag": "RFID-ABC123"},
        "RemoteStartTransaction",
        {"connector_id": 1, "id_tag": "RFID-ABC123"},
        200,
        {"status": "Accepted", "transaction_id": None},
    ),
    (
        "remote_stop_transaction",
        {"transaction_id": 42},
        "RemoteStopTransaction",
        {"transaction_id": 42},
        200,
        {"status": "Accepted"},
    ),
    (
        "change_availability",
        {"connector_id": 0, "type": "Inoperative"},
        "ChangeAvailability",
        {"connector_id": 0, "type": "Inoperative"},
        200,
        {"status": "Scheduled"},
    ),
    (
        "set_charging_profile",
        {"connector_id": 1, "cs_charging_profiles": PROFILE_16},
        "SetChargingProfile",
        {"connector_id": 1, "cs_charging_profiles": PROFILE_16},
        200,
        {"status": "Accepted"},
    ),
    ("clear_charging_profile", {"id": 1}, "ClearChargingProfile", {"id": 1}, 200, {"status": "Accepted"}),
    ("reset", {"type": "Soft"}, "Reset", {"type": "Soft"}, 200, {"status": "Accepted"}),
    (
        "trigger_message",
        {"requested_message": "StatusNotification", "connector_id": 1},
        "TriggerMessage",
        {"requested_message": "StatusNotification", "connector_id": 1},
        200,
        {"status": "Accepted"},
    ),
    (
        "reserve_now",
        {"connector_id": 1, "expiry_date": "2031-05-01T12:00:00Z", "id_tag": "RFID-1", "reservation_id": 7},
        "ReserveNow",
        {"connector_id": 1, "expiry_date": "2031-05-01T12:00:00Z", "id_tag": "RFID-1", "reservation_id": 7},
        409,
        {"error": "Occupied"},
    ),
    (
        "cancel_reservation",
        {"reservation_id": 7},
        "CancelReservation",
        {"reservation_id": 7},
        409,
        {"error": "Rejected"},
    ),
]


async def register(charge_point_id: str) -> None:
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


@pytest.mark.parametrize(("command", "body", "action", "received", "status", "answer"), V16_CASES)
async def test_v16_command_posted_to_another_process_reaches_the_charger(
    daphne, api_daphne, api_key, command, body, action, received, status, answer
):
    await register("CP16")
    async with ocpp_charger(daphne, "1.6", "CP16", client_class=V16Charger) as charger:
        http_status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/{command}",
            method="POST",
            api_key=api_key,
            body={"charge_point_id": "CP16", **body},
        )
        assert charger.received == [(action, received)]
    assert http_status == status, reply
    assert {key: reply[key] for key in answer} == answer
    if status == 409:
        assert reply["charge_point_id"] == "CP16"
    command_record = await Command.objects.aget(charge_point_identity="CP16")
    assert command_record.action == action
    assert command_record.state == ("accepted" if status == 200 else "rejected")


V201_CASES = [
    (
        "request_start_transaction",
        {"id_token": {"id_token": "RFID-1", "type": "ISO14443"}, "remote_start_id": 5, "evse_id": 1},
        "RequestStartTransaction",
        {"status": "Accepted", "transaction_id": None},
    ),
    (
        "request_stop_transaction",
        {"transaction_id": "tx-1"},
        "RequestStopTransaction",
        {  # the CSMS knows no session tx-1: sent all the same, with a warning (round 44)
            "status": "Accepted",
            "warnings": [
                "Transaction tx-1 is not known to the CSMS; the charger answers Rejected if it has no such"
                " transaction open."
            ],
        },
    ),
    (
        "change_availability",
        {"operational_status": "Inoperative", "evse": {"id": 1}},
        "ChangeAvailability",
        {"status": "Accepted"},
    ),
    (
        "set_charging_profile",
        {
            "evse_id": 1,
            "charging_profile": {
                "id": 1,
                "stack_level": 0,
                "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": [
                    {
                        "id": 1,
                        "start_schedule": "2031-01-01T00:00:00Z",
                        "charging_rate_unit": "W",
                        "charging_schedule_period": [{"start_period": 0, "limit": 11000}],
                    }
                ],
            },
        },
        "SetChargingProfile",
        {"status": "Accepted"},
    ),
    ("clear_charging_profile", {"charging_profile_id": 1}, "ClearChargingProfile", {"status": "Unknown"}),
    ("reset", {"type": "OnIdle"}, "Reset", {"status": "Scheduled"}),
    ("trigger_message", {"requested_message": "Heartbeat"}, "TriggerMessage", {"status": "Accepted"}),
    (
        "reserve_now",
        {"id": 3, "expiry_date_time": "2031-05-01T12:00:00Z", "id_token": {"id_token": "RFID-1", "type": "ISO14443"}},
        "ReserveNow",
        {"status": "Accepted"},
    ),
    (
        "cancel_reservation",
        {"reservation_id": 3},
        "CancelReservation",
        {  # the CSMS knows no reservation 3: sent all the same, with a warning (round 44)
            "status": "Accepted",
            "warnings": [
                "Reservation 3 is not known to the CSMS; the charger answers Rejected if it holds no such reservation."
            ],
        },
    ),
    (
        "get_variables",
        {"get_variable_data": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        "GetVariables",
        {
            "get_variable_result": [
                {
                    "attribute_status": "Accepted",
                    "attribute_value": "60",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
    (
        "set_variables",
        {
            "set_variable_data": [
                {
                    "attribute_value": "30",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
        "SetVariables",
        {
            "set_variable_result": [
                {
                    "attribute_status": "Accepted",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
]


@pytest.mark.parametrize(("command", "body", "action", "answer"), V201_CASES)
async def test_v201_command_posted_to_another_process_reaches_the_charger(
    daphne, api_daphne, api_key, command, body, action, answer
):
    await register("CP201")
    await IdTag.objects.acreate(id_tag="RFID-1")  # a remote start for an unknown tag would carry a warning
    async with ocpp_charger(daphne, "2.0.1", "CP201", client_class=V201Charger) as charger:
        http_status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp201/CP201/{command}", method="POST", api_key=api_key, body=body
        )
        assert [name for name, _ in charger.received] == [action]
        assert charger.received[0][1] == body
    assert (http_status, reply) == (200, answer)


async def test_not_supported_callerror_is_a_501(daphne, api_daphne, api_key):
    await register("CP-OLD-FW")
    async with ocpp_charger(daphne, "1.6", "CP-OLD-FW", client_class=V16Charger):
        status, reply = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-OLD-FW/unlock_connector",
            method="POST",
            api_key=api_key,
            body={"connector_id": 1},
        )
    assert status == 501
    assert reply["error"] == "NotImplemented"
    assert reply["charge_point_id"] == "CP-OLD-FW"


async def test_other_callerrors_are_a_502_and_unsupported_actions_a_501(daphne, api_daphne, api_key):
    await register("CP-RAW")
    async with raw_socket(daphne, "1.6", "CP-RAW") as websocket:

        async def answer_with(code: str) -> None:
            call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
            await websocket.send(json.dumps([4, call[1], code, "charger trouble", {}]))

        # A code over the column's 64 characters is cut to fit (round 41's probe: a 500, the command pending for ever).
        # A null code is OCPP's catch-all GenericError (round 41's probe: "None").
        for code, expected_status in (("InternalError", 502), ("NotSupported", 501), ("E" * 65, 502), (None, 502)):
            post = asyncio.create_task(
                ahttp(
                    f"{api_daphne.http_url}/api/v1/ocpp16/CP-RAW/clear_cache", method="POST", api_key=api_key, body={}
                )
            )
            await answer_with(code)
            status, reply = await post
            expected_code = "GenericError" if code is None else code[:64]
            assert (status, reply["error"], reply["message"]) == (expected_status, expected_code, "charger trouble")
    assert not await Command.objects.filter(state="pending").aexists()


async def test_a_queued_command_with_under_a_second_left_is_not_sent(daphne, api_daphne, api_key):
    """Queued behind a CALL the charger never answers, a command whose caller's deadline is under a
    second away is answered 504 unsent (round 41's probe: sent with milliseconds left, the caller told
    it timed out while the charger acted on it, holding two CALLs at once)."""
    await register("CP-QUEUED")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-QUEUED/data_transfer"
    async with raw_socket(daphne, "1.6", "CP-QUEUED") as websocket:
        first = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"vendor_id": "first"}))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[3]["vendorId"] == "first"
        second = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"vendor_id": "second"}))
        assert [(await first)[0], (await second)[0]] == [504, 504]
        with pytest.raises(TimeoutError):
            frame = await asyncio.wait_for(websocket.recv(), 1.5)
            pytest.fail(f"the CSMS sent {frame}")


async def test_silence_is_a_504_and_the_connection_serves_the_next_command(daphne, api_daphne, api_key):
    await register("CP-MUTE")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-MUTE/reset"
    async with raw_socket(daphne, "1.6", "CP-MUTE") as websocket:
        started = time.monotonic()
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Hard"}))
        ignored = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        status, reply = await post
        assert (status, reply["error"]) == (504, "Timeout")
        assert 2.5 < time.monotonic() - started < 10

        await websocket.send(json.dumps([3, ignored[1], {"status": "Accepted"}]))  # late: logged, dropped
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["Reset", {"type": "Soft"}]
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        assert await post == (200, {"status": "Accepted"})


async def test_a_charger_call_is_answered_while_the_csms_awaits_the_chargers_answer(daphne, api_daphne, api_key):
    await register("CP-BUSY")
    await IdTag.objects.acreate(id_tag="T1")
    async with raw_socket(daphne, "1.6", "CP-BUSY") as websocket:
        post = asyncio.create_task(
            ahttp(
                f"{api_daphne.http_url}/api/v1/ocpp16/CP-BUSY/remote_start_transaction",
                method="POST",
                api_key=api_key,
                body={"id_tag": "T1"},
            )
        )
        remote_start = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
        heartbeat_answer = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert heartbeat_answer[:2] == [3, "hb-1"]
        await websocket.send(json.dumps([3, remote_start[1], {"status": "Accepted"}]))
        assert await post == (200, {"status": "Accepted", "transaction_id": None})


async def test_not_connected_is_a_503_at_once(api_daphne, api_key):
    await register("CP-DARK")
    started = time.monotonic()
    status, reply = await ahttp(
        f"{api_daphne.http_url}/api/v1/ocpp16/reset",
        method="POST",
        api_key=api_key,
        body={"charge_point_id": "CP-DARK", "type": "Soft"},
    )
    assert (status, reply["error"], reply["charge_point_id"]) == (503, "NotConnected", "CP-DARK")
    assert time.monotonic() - started < 2
    assert (await Command.objects.aget()).state == "not_connected"


async def test_stale_presence_of_a_dead_process_is_a_503_and_is_cleared(api_daphne, api_key):
    await ChargePoint.objects.acreate(
        charge_point_id="CP-GHOST", heartbeat_interval=60, connected=True, connection_channel="specific.dead!gone"
    )
    status, reply = await ahttp(
        f"{api_daphne.http_url}/api/v1/ocpp16/CP-GHOST/reset", method="POST", api_key=api_key, body={"type": "Soft"}
    )
    assert (status, reply["error"]) == (503, "NotConnected")
    ghost = await ChargePoint.objects.aget(charge_point_id="CP-GHOST")
    assert (ghost.connected, ghost.connection_channel) == (False, "")


@pytest.mark.parametrize(
    ("version", "charger_class", "expected"),
    [
        ("1.6", V16Charger, ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"})),
        (
            "2.0.1",
            V201Charger,
            (
                "SetVariables",
                {
                    "set_variable_data": [
                        {
                            "component": {"name": "OCPPCommCtrlr"},
                            "variable": {"name": "HeartbeatInterval"},
                            "attribute_value": "30",
                        }
                    ]
                },
            ),
        ),
    ],
)
async def test_changing_the_heartbeat_interval_pushes_it_to_the_connected_charger(
    daphne, api_daphne, api_key, version, charger_class, expected
):
    await register("CP-HB")
    async with ocpp_charger(daphne, version, "CP-HB", client_class=charger_class) as charger:
        status, body = await ahttp(
            f"{api_daphne.http_url}/api/v1/chargepoints/CP-HB",
            method="PATCH",
            api_key=api_key,
            body={"heartbeat_interval": 30},
        )
        assert charger.received == [expected]
        _, read = await ahttp(f"{api_daphne.http_url}/api/v1/chargepoints/CP-HB", api_key=api_key)
    assert status == 200
    assert body["heartbeat_interval"] == 30
    assert body["heartbeat_interval_push"]["state"] == "accepted"
    # Taken: no interval kept, as a GET shows after the push (the answer was serialized before it)
    assert body["previous_heartbeat_interval"] is None
    intervals = ("heartbeat_interval", "previous_heartbeat_interval")
    assert [read[field] for field in intervals] == [body[field] for field in intervals]


HEARTBEAT_READS = {  # the command reading the charger's interval, and its answer: 300 s, not its stored 60
    "1.6": (
        "get_configuration",
        {"key": ["HeartbeatInterval"]},
        {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]},
    ),
    "2.0.1": (
        "get_variables",
        {"get_variable_data": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "attributeValue": "300",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
}
HEARTBEAT_PUSHES = {  # the push of its stored interval, and the charger's acceptance
    "1.6": ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}, {"status": "Accepted"}),
    "2.0.1": (
        "SetVariables",
        {
            "setVariableData": [
                {
                    "attributeValue": "60",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
        {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "HeartbeatInterval"},
                }
            ]
        },
    ),
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_the_stored_heartbeat_interval_given_again_is_pushed_to_a_charger_known_to_keep_another(
    daphne, api_daphne, api_key, version
):
    """Round 51 (strict-charger run twice): a charger that ignores the BootNotification answer's
    interval reported keeping 300 s (``reported_heartbeat_interval``) while its stored one was 60 s;
    the operator's PATCH of 60 s, the way to have it take it, sent nothing (the interval had not
    changed) and answered no ``heartbeat_interval_push``: the charger heartbeated at 300 s for ever.
    An interval given to a charger known not to keep it is now pushed, as a changed one is."""
    await register("CP-KEEPS")
    read, read_body, read_answer = HEARTBEAT_READS[version]
    action, pushed, push_answer = HEARTBEAT_PUSHES[version]
    prefix = "ocpp16" if version == "1.6" else "ocpp201"
    async with raw_socket(daphne, version, "CP-KEEPS") as websocket:
        url = f"{api_daphne.http_url}/api/v1/{prefix}/CP-KEEPS/{read}"
        reading = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body=read_body))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.send(json.dumps([3, call[1], read_answer]))
        assert (await reading)[0] == 200
        keeps = ChargePoint.objects.filter(charge_point_id="CP-KEEPS", reported_heartbeat_interval=300)
        await eventually(keeps.aexists, timeout=10)

        patch = asyncio.create_task(
            ahttp(
                f"{api_daphne.http_url}/api/v1/chargepoints/CP-KEEPS",
                method="PATCH",
                api_key=api_key,
                body={"heartbeat_interval": 60},
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert (call[2], call[3]) == (action, pushed)
        await websocket.send(json.dumps([3, call[1], push_answer]))
        status, body = await patch
    assert status == 200
    assert (body["heartbeat_interval"], body["heartbeat_interval_push"]["state"]) == (60, "accepted")
    assert body["reported_heartbeat_interval"] is None  # taken: it heartbeats at 60 s now


async def test_wait_false_answers_202_at_once_and_the_outcome_is_polled(daphne, api_daphne, api_key):
    await register("CP-ASYNC")
    async with raw_socket(daphne, "1.6", "CP-ASYNC") as websocket:
        status, accepted = await ahttp(
            f"{api_daphne.http_url}/api/v1/ocpp16/CP-ASYNC/reset?wait=false",
            method="POST",
            api_key=api_key,
            body={"type": "Soft"},
        )
        assert (status, accepted["state"], accepted["action"]) == (202, "pending", "Reset")
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))

        async def finished() -> dict | None:
            _, command = await ahttp(f"{api_daphne.http_url}/api/v1/commands/{accepted['id']}", api_key=api_key)
            return command if command["state"] != "pending" else None

        command = await eventually(finished)
        assert (command["state"], command["response"]) == ("accepted", {"status": "Accepted"})


async def test_a_conflicting_charging_profile_is_sent_with_a_warning(daphne, api_daphne, api_key):
    await register("CP-SMART")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-SMART/set_charging_profile"
    first_profile = {**PROFILE_16, "charging_profile_purpose": "TxDefaultProfile"}  # no session needed
    second_profile = {**first_profile, "charging_profile_id": 2}
    async with ocpp_charger(daphne, "1.6", "CP-SMART", client_class=V16Charger):
        first = await ahttp(
            url, method="POST", api_key=api_key, body={"connector_id": 1, "cs_charging_profiles": first_profile}
        )
        assert first == (200, {"status": "Accepted"})
        status, second = await ahttp(
            url, method="POST", api_key=api_key, body={"connector_id": 1, "cs_charging_profiles": second_profile}
        )
    assert (status, second["status"]) == (200, "Accepted")
    assert len(second["warnings"]) == 1
    assert "Profile 1" in second["warnings"][0]


async def test_a_call_whose_socket_closes_before_the_answer_is_a_504_not_a_503(daphne, api_daphne, api_key):
    """The charger had the Reset (a rebooting charger closes at once): "not connected" would have
    the integrator send it again. The CALL was sent and its answer lost, the contract's 504."""
    await register("CP-GONE")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-GONE/reset"
    async with raw_socket(daphne, "1.6", "CP-GONE") as websocket:
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Hard"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2:] == ["Reset", {"type": "Hard"}]
    started = time.monotonic()
    status, reply = await post
    assert (status, reply["error"]) == (504, "Timeout")
    assert "closed after the CALL was sent" in reply["message"]
    assert time.monotonic() - started < 5  # at the close, not after the call timeout
    assert (await Command.objects.aget(action="Reset")).state == "timeout"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_call_answered_right_before_the_socket_closes_passes_the_answer_on(
    daphne, api_daphne, api_key, version
):
    """A charger answers a Reset Accepted and closes its socket at once to reboot. The gateway had
    the answer, but the socket's end cancelled the delivery of its reply, and with it the
    acknowledgement its timer no longer sent: the caller took the silence for a dead process, a
    503 NotConnected ("never sent") for a charger that rebooted, and a retry under the command's
    Idempotency-Key reset it again. Now the answer is passed on."""
    await register("CP-REBOOTING")
    path = "ocpp16/CP-REBOOTING/reset" if version == "1.6" else "ocpp201/CP-REBOOTING/reset"
    body, answer = ({"type": "Hard"}, "Accepted") if version == "1.6" else ({"type": "Immediate"}, "Accepted")
    async with raw_socket(daphne, version, "CP-REBOOTING") as websocket:
        post = asyncio.create_task(
            ahttp(f"{api_daphne.http_url}/api/v1/{path}", method="POST", api_key=api_key, body=body)
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        assert call[2] == "Reset"
        await websocket.send(json.dumps([3, call[1], {"status": answer}]))
    status, reply = await post
    assert (status, reply) == (200, {"status": answer})
    assert (await Command.objects.aget(action="Reset")).state == "accepted"


@pytest.mark.parametrize(
    "answer",
    [
        lambda unique_id: json.dumps([3, unique_id]),  # no payload
        lambda unique_id: json.dumps([4, unique_id, "InternalError"]),  # a CALLERROR cut short
        lambda unique_id: json.dumps([3, unique_id, {"status": "Accepted"}])[:-2],  # not JSON
        lambda unique_id: json.dumps([3, unique_id, {"status": "Accepted", "pad": "x" * 70_000}]),  # over 64 KiB
    ],
)
async def test_an_unreadable_answer_fails_its_command_at_once(daphne, api_daphne, api_key, answer):
    """The charger answered, but not readably: a 502 at once, not a 504 "did not answer" after
    the call timeout."""
    await register("CP-GARBLED")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-GARBLED/reset"
    async with raw_socket(daphne, "1.6", "CP-GARBLED") as websocket:
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        started = time.monotonic()
        await websocket.send(answer(call[1]))
        status, reply = await asyncio.wait_for(post, 10)
    assert (status, reply["error"]) == (502, "FormatViolation")
    assert time.monotonic() - started < 5


async def test_the_answer_to_a_command_passes_the_frame_rate_limit(daphne, api_daphne, api_key):
    """Heartbeats over the limit are refused, but the one answer the CSMS awaits is read."""
    await register("CP-FLOOD")
    url = f"{api_daphne.http_url}/api/v1/ocpp16/CP-FLOOD/reset"
    async with raw_socket(daphne, "1.6", "CP-FLOOD") as websocket:
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"}))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
        for n in range(settings.CSMS_FRAME_BURST + 20):
            await websocket.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
        await websocket.send(json.dumps([3, call[1], {"status": "Accepted"}]))
        assert await asyncio.wait_for(post, 10) == (200, {"status": "Accepted"})


@pytest.mark.usefixtures("daphne")  # after the test, waits for the charger's disconnect to be recorded
async def test_a_command_to_the_connection_a_reconnect_just_replaced_reaches_the_newer_one(daphne_factory, api_key):
    """The command read the charger's presence a moment before it reconnected; the older
    connection ended without reading it, so it was never sent (nor will be: its acknowledgement
    came too late): a 503 NotConnected for a connected charger. Now it goes to the newer connection."""
    server = await asyncio.to_thread(daphne_factory, application="commands.tests.stale_presence_app:application")
    await ChargePoint.objects.acreate(charge_point_id="CP-STALE-1", heartbeat_interval=60)
    url = f"{server.http_url}/api/v1/ocpp16/CP-STALE-1/trigger_message"
    body = {"requested_message": "StatusNotification"}
    async with ocpp_charger(server, "1.6", "CP-STALE-1", client_class=V16Charger) as older:
        assert (await ahttp(url, method="POST", api_key=api_key, body=body))[0] == 200  # its presence read
        older_channel = (await ChargePoint.objects.aget(charge_point_id="CP-STALE-1")).connection_channel
    async with ocpp_charger(server, "1.6", "CP-STALE-1", client_class=V16Charger) as newer:
        assert (await ChargePoint.objects.aget(charge_point_id="CP-STALE-1")).connection_channel != older_channel
        status, answer = await ahttp(url, method="POST", api_key=api_key, body=body)
        assert status == 200, answer
        assert [action for action, _ in newer.received] == ["TriggerMessage"]
    assert [action for action, _ in older.received] == ["TriggerMessage"]


@pytest.mark.parametrize(
    ("version", "charger_class", "call"),
    [
        ("1.6", V16Charger, call16.Heartbeat()),
        ("2.0.1", V201Charger, call201.Heartbeat()),
    ],
)
async def test_a_heartbeat_interval_changed_while_the_charger_was_away_is_pushed_when_it_reconnects(
    daphne, api_daphne, api_key, version, charger_class, call
):
    """Round 45: an interval changed (API, admin) while the charger was disconnected was sent only in
    the answer to its next BootNotification; a charger that reconnects without booting (a network
    drop) kept heartbeating at its old interval, for ever. Its reconnection now pushes it (1.6
    ChangeConfiguration HeartbeatInterval §5.3, 2.0.1 SetVariables OCPPCommCtrlr.HeartbeatInterval
    B05), once its first message is answered."""
    await register("CP-AWAY")
    status, body = await ahttp(
        f"{api_daphne.http_url}/api/v1/chargepoints/CP-AWAY",
        method="PATCH",
        api_key=api_key,
        body={"heartbeat_interval": 30},
    )
    assert (status, body["heartbeat_interval_push"]) == (200, None)  # not connected
    async with ocpp_charger(daphne, version, "CP-AWAY", client_class=charger_class) as charger:
        await charger.call(call)
        await eventually(lambda: charger.received, timeout=10)
        assert [action for action, _ in charger.received] == [
            "ChangeConfiguration" if version == "1.6" else "SetVariables"
        ]
        taken = ChargePoint.objects.filter(charge_point_id="CP-AWAY", previous_heartbeat_interval__isnull=True)
        await eventually(taken.aexists, timeout=10)
        await charger.call(call)  # pushed once
    assert len(charger.received) == 1


async def test_a_command_queued_when_the_charger_reconnects_in_the_other_version_is_not_sent_to_it(daphne, api_key):
    """A 1.6 command waiting behind the charger's outstanding CALL when it reconnected speaking 2.0.1
    (its firmware updated) was handed to the newer connection and sent there as it was: the station got
    a 1.6 ChangeAvailability ({connectorId, type}, no operationalStatus) and its CALLERROR was taken for
    its answer. A connection sends only the commands of its own version: a 503 NotConnected naming the
    version, never sent (a retry under its Idempotency-Key is then a 400 UnsupportedVersion)."""
    await register("CP-MOVED")
    base = f"{daphne.http_url}/api/v1/ocpp16/CP-MOVED"
    async with raw_socket(daphne, "1.6", "CP-MOVED") as older:
        first = asyncio.create_task(ahttp(f"{base}/reset", method="POST", api_key=api_key, body={"type": "Soft"}))
        assert json.loads(await asyncio.wait_for(older.recv(), 5))[2] == "Reset"  # left unanswered
        body = {"connector_id": 1, "type": "Inoperative"}
        queued = asyncio.create_task(ahttp(f"{base}/change_availability", method="POST", api_key=api_key, body=body))
        await eventually(Command.objects.filter(action="ChangeAvailability").aexists, timeout=5)
        async with raw_socket(daphne, "2.0.1", "CP-MOVED") as newer:
            status, reply = await asyncio.wait_for(queued, 10)
            assert (status, reply["error"]) == (503, "NotConnected"), reply
            assert "OCPP 2.0.1" in reply["message"]
            await newer.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
            assert json.loads(await asyncio.wait_for(newer.recv(), 5))[:2] == [3, "hb-1"]  # nothing sent before it
            again = await ahttp(f"{base}/change_availability", method="POST", api_key=api_key, body=body)
            assert (again[0], again[1]["error"]) == (400, "UnsupportedVersion")  # as a retry under its key
    assert (await first)[0] == 504  # the Reset was sent on the older connection: its answer lost
    record = await Command.objects.aget(action="ChangeAvailability")
    assert record.state == "not_connected"
