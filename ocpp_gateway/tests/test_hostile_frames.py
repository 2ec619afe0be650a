"""Hostile or broken frames cost nothing and break nothing (issue 14 B1-B3): a real daphne
process on PostgreSQL, raw WebSocket chargers, the right answer asserted."""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from chargepoints.models import ChargePoint, Heartbeat, OcppMessage, SchemaViolation
from chargepoints.services import LoggedFrame, ocpp_messages_record
from commands.models import Command
from conftest import ahttp, eventually, raw_socket
from ocpp_gateway.buffers import WriteBehindBuffer

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "7" * 5000  # over Python's 4300-digit limit for int()


async def register(charge_point_id: str) -> ChargePoint:
    return await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


async def answer_to(websocket, unique_id: str) -> list:
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await websocket.recv())
            if frame[1] == unique_id:
                return frame


async def heartbeat_answered(websocket) -> bool:
    await websocket.send(json.dumps([2, "probe", "Heartbeat", {}]))
    return (await answer_to(websocket, "probe"))[0] == 3


async def connected(charge_point_id: str) -> bool:
    return (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).connected


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_call_with_a_5000_digit_integer_gets_a_type_constraint_violation_and_the_socket_lives(daphne, version):
    await register("CP-HUGE")
    async with raw_socket(daphne, version, "CP-HUGE") as websocket:
        await websocket.send(f'[2,"x","Heartbeat",{{"x":{HUGE}}}]')
        answer = await answer_to(websocket, "x")
        assert answer[0] == 4 and answer[2] == "TypeConstraintViolation"
        assert await heartbeat_answered(websocket)
        assert await connected("CP-HUGE")


async def test_a_callresult_with_a_5000_digit_integer_fails_the_command_at_once_and_the_socket_lives(daphne, api_key):
    await register("CP-HUGE")
    async with raw_socket(daphne, "1.6", "CP-HUGE") as websocket:
        command = asyncio.create_task(
            ahttp(
                f"{daphne.http_url}/api/v1/ocpp16/CP-HUGE/reset", method="POST", api_key=api_key, body={"type": "Soft"}
            )
        )
        async with asyncio.timeout(10):
            call = json.loads(await websocket.recv())
        assert call[0] == 2 and call[2] == "Reset"
        await websocket.send(f'[3,"{call[1]}",{{"status":{HUGE}}}]')
        async with asyncio.timeout(10):  # not the 30 s call timeout
            status, body = await command
        assert status == 502 and body["error"] == "FormatViolation"
        assert await heartbeat_answered(websocket)
        assert await connected("CP-HUGE")


async def _reset_answered_with(daphne, api_key, websocket, answer: str) -> tuple[int, dict]:
    """POST a Reset to CP-ODD and answer its CALL with ``answer`` (``%s``: the CALL's id)."""
    command = asyncio.create_task(
        ahttp(f"{daphne.http_url}/api/v1/ocpp16/CP-ODD/reset", method="POST", api_key=api_key, body={"type": "Soft"})
    )
    async with asyncio.timeout(10):
        while (call := json.loads(await websocket.recv()))[2:3] != ["Reset"]:
            pass
    await websocket.send(answer % call[1])
    async with asyncio.timeout(10):  # not the 30 s call timeout
        return await command


@pytest.mark.parametrize(
    ("answer", "status", "error", "stored"),
    [
        # NaN and Infinity are no JSON (PostgreSQL's JSON refuses them): the command failed with a 500
        ('[3,"%s",{"status":NaN}]', 502, "InvalidResponse", {"status": "NaN"}),
        ('[3,"%s",{"status":1e400}]', 502, "InvalidResponse", {"status": "Infinity"}),
        # beyond 64 bits the reply could not be sent back: the API took the silence for a dead
        # process, cleared the live charger's presence and answered 503 NotConnected
        ('[3,"%s",{"status":18446744073709551616}]', 502, "InvalidResponse", {"status": "18446744073709551616"}),
        ('[4,"%s","NotSupported","",{"n":NaN,"big":-9223372036854775809}]', 501, "NotSupported", None),
        # nested deeper than anything recurses through: answered NotConnected though the CALL went out
        ('[3,"%s",{"status":"Accepted","x":' + "[" * 600 + "]" * 600 + "}]", 502, "FormatViolation", None),
    ],
)
async def test_an_answer_with_numbers_or_nesting_the_csms_cannot_carry_fails_its_command_and_the_charger_stays(
    daphne, api_key, answer, status, error, stored
):
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        answered, body = await _reset_answered_with(daphne, api_key, websocket, answer)
        assert (answered, body["error"]) == (status, error)
        if stored is not None:
            assert body["response"] == stored
        command = await Command.objects.aget(action="Reset")
        assert command.state != "pending"
        assert await connected("CP-ODD")
        answered, body = await _reset_answered_with(daphne, api_key, websocket, '[3,"%s",{"status":"Accepted"}]')
        assert (answered, body) == (200, {"status": "Accepted"})


NOT_A_CODE = ["FormatViolation", "The answer is a CALLERROR whose errorCode is not a string."]
TOO_DEEP = ["FormatViolation", "The answer is nested deeper than any OCPP message."]


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        # OCPP-J 1.6 §4.2.3 (2.0.1 part 4 §4.2.3): errorCode is a string. Its number was passed on as the
        # code, the API answering {"error": "123", "message": "456"}; a list as Python's text of it.
        ('[4,"%s",123,456,789]', 502, NOT_A_CODE),
        ('[4,"%s",["NotSupported"],"",{}]', 502, NOT_A_CODE),
        ('[4,"%s",true,"",{}]', 502, NOT_A_CODE),
        # a code nested deeper than anything recurses through, as its details are
        ('[4,"%s",' + "[" * 600 + "]" * 600 + ',"",{}]', 502, TOO_DEEP),
        # a description that is no string keeps its code, and is told as its JSON text, not Python's
        ('[4,"%s","NotSupported",["no",true],{}]', 501, ["NotSupported", '["no", true]']),
        ('[4,"%s","InternalError",null,{}]', 502, ["InternalError", "The charge point answered with an error."]),
    ],
)
async def test_a_callerror_whose_code_is_not_a_string_fails_its_command_as_a_format_violation(
    daphne, api_key, answer, status, body
):
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        answered, got = await _reset_answered_with(daphne, api_key, websocket, answer)
        assert (answered, [got["error"], got["message"]]) == (status, body)
        command = await Command.objects.aget(action="Reset")
        assert command.error_code == body[0]
        assert await heartbeat_answered(websocket)


@pytest.mark.parametrize("answer", ['\ufeff[3,"%s",{"status":"Accepted"}]', '\ufeff[3,"%s",{"status":"Acc'])
async def test_an_answer_led_by_a_byte_order_mark_fails_its_command_at_once(daphne, api_key, answer):
    """A byte-order mark before an answer to the awaited CALL (no JSON, as before a CALL, which is
    answered FormationViolation with its id) was not recognised as that answer: dropped, its command
    waited out the 30 s call timeout (504) instead of failing at once as any unreadable answer does."""
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        answered, body = await _reset_answered_with(daphne, api_key, websocket, answer)
        assert (answered, body["error"]) == (502, "FormatViolation")
        assert await heartbeat_answered(websocket)
        assert await connected("CP-ODD")


@pytest.mark.parametrize(
    ("answer", "status", "body"),
    [
        # the action echoed before the payload (a firmware quirk): the frame's fourth element, a dict, was
        # taken for the action, the frame dropped by a TypeError and the command left to its 30 s timeout
        ('[3,"%s","Reset",{"status":"Accepted"}]', 502, "InvalidResponse"),
        ('[3,"%s",{"status":"Accepted"},["Reset"]]', 200, {"status": "Accepted"}),
    ],
)
async def test_an_answer_with_a_fourth_element_is_read_as_the_answer_to_the_awaited_call(
    daphne, api_key, answer, status, body
):
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        answered, got = await _reset_answered_with(daphne, api_key, websocket, answer)
        assert (answered, got.get("error", got)) == (status, body)
        assert await heartbeat_answered(websocket)


async def test_a_password_in_an_answer_with_a_fourth_element_is_redacted_in_the_message_log(daphne, api_key):
    """The redaction took the answer's action from its fourth element ("X": no action it redacts)."""
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        command = asyncio.create_task(
            ahttp(f"{daphne.http_url}/api/v1/ocpp16/CP-ODD/get_configuration", method="POST", api_key=api_key, body={})
        )
        async with asyncio.timeout(10):
            call = json.loads(await websocket.recv())
        keys = [{"key": "AuthorizationKey", "readonly": False, "value": "0123456789abcdef0123"}]
        await websocket.send(json.dumps([3, call[1], {"configurationKey": keys}, "X"]))
        async with asyncio.timeout(10):
            assert (await command)[0] == 200
    logged = await eventually(lambda: OcppMessage.objects.filter(unique_id=call[1], direction="in").afirst())
    assert "0123456789abcdef0123" not in logged.frame


@pytest.mark.parametrize(
    ("version", "frame", "code"),
    [
        ("1.6", '[2,"deep","Heartbeat",' + "[" * 5000 + "]" * 5000 + "]", "FormationViolation"),
        ("2.0.1", '[2,"deep","Heartbeat",' + "[" * 5000 + "]" * 5000 + "]", "FormatViolation"),
        ("1.6", '[2,"cut","Heartbeat",{', "FormationViolation"),
        ("1.6", '[2,"action",5,{}]', "FormationViolation"),
        ("1.6", '[2,"payload","Heartbeat",[]]', "FormationViolation"),
        ("2.0.1", '[2,"five","Heartbeat",{},{}]', "ProtocolError"),
        ("2.0.1", '[7,"seven",{}]', "MessageTypeNotSupported"),
        ("1.6", '[2,"huge","DataTransfer",{"vendorId":"V","data":' + HUGE + "}]", "TypeConstraintViolation"),
    ],
    ids=["too deep (1.6)", "too deep (2.0.1)", "no JSON", "action", "payload", "five elements", "type", "number"],
)
async def test_a_refused_frame_is_logged_under_the_id_its_callerror_answers(daphne, version, frame, code):
    """Its answer carried its id, its own message log row none: the admin's search by the id the
    charger names found the CALLERROR, never the frame it refused."""
    await register("CP-NAMED")
    unique_id = json.loads(frame[: frame.index(",", 3)] + "]")[1]
    async with raw_socket(daphne, version, "CP-NAMED") as websocket:
        await websocket.send(frame)
        assert (await answer_to(websocket, unique_id))[:3] == [4, unique_id, code]
    logged = await eventually(lambda: OcppMessage.objects.filter(unique_id=unique_id, direction="in").afirst())
    assert logged.frame.startswith(frame[:20])


async def test_an_unreadable_answer_is_logged_under_the_id_and_action_of_the_call_it_answers(daphne, api_key):
    await register("CP-ODD")
    async with raw_socket(daphne, "1.6", "CP-ODD") as websocket:
        answered, body = await _reset_answered_with(daphne, api_key, websocket, '[3,"%s",{"status":"Acc')
        assert (answered, body["error"]) == (502, "FormatViolation")
    call = await eventually(lambda: OcppMessage.objects.filter(direction="out", action="Reset").afirst())
    logged = await eventually(lambda: OcppMessage.objects.filter(direction="in", frame__startswith="[3,").afirst())
    assert (logged.unique_id, logged.action) == (call.unique_id, "Reset")


async def test_a_closed_socket_clears_presence_at_once(daphne):
    await register("CP-GONE")
    async with raw_socket(daphne, "1.6", "CP-GONE") as websocket:
        assert await heartbeat_answered(websocket)
        assert await connected("CP-GONE")
    assert await eventually(lambda: _offline("CP-GONE"), timeout=3)


async def test_a_consumer_that_crashes_clears_presence_at_once_and_commands_answer_not_connected(daphne, api_key):
    from channels.layers import get_channel_layer

    await register("CP-CRASH")
    async with raw_socket(daphne, "1.6", "CP-CRASH") as websocket:
        assert await heartbeat_answered(websocket)
        channel = (await ChargePoint.objects.aget(charge_point_id="CP-CRASH")).connection_channel
        await get_channel_layer().send(channel, {"type": "no.such.handler"})  # the consumer raises, daphne closes 1011
        async with asyncio.timeout(5):
            await websocket.wait_closed()
    assert await eventually(lambda: _offline("CP-CRASH"), timeout=3)
    status, body = await ahttp(
        f"{daphne.http_url}/api/v1/ocpp16/CP-CRASH/reset", method="POST", api_key=api_key, body={"type": "Soft"}
    )
    assert status == 503 and body["error"] == "NotConnected"


async def test_a_channel_message_of_another_release_leaves_the_connection_serving(daphne):
    """During a rolling deploy a process of a newer release may send a connection an ``ocpp.*``
    message this release has no handler for: it is ignored and the charger stays connected; one
    that asks for a reply is answered NotSupported at once (its caller would otherwise take the
    silence for a dead process and clear the live connection's presence)."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    await register("CP-NEWER")
    async with raw_socket(daphne, "1.6", "CP-NEWER") as websocket:
        assert await heartbeat_answered(websocket)
        channel = (await ChargePoint.objects.aget(charge_point_id="CP-NEWER")).connection_channel
        await layer.send(channel, {"type": "ocpp.from_a_newer_release"})
        reply_to = await layer.new_channel()
        await layer.send(channel, {"type": "ocpp.from_a_newer_release", "reply_to": reply_to})
        async with asyncio.timeout(10):  # dispatched after the first: both were handled by now
            reply = await layer.receive(reply_to)
        assert reply["type"] == "ocpp.call.reply"
        assert (reply["outcome"], reply["error_code"]) == ("call_error", "NotSupported")
        assert await heartbeat_answered(websocket)
        assert await connected("CP-NEWER")


async def _offline(charge_point_id: str) -> bool:
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    return not charge_point.connected and not charge_point.connection_channel


# --- Text PostgreSQL cannot store (B2, B3) --------------------------------------------------


async def test_an_unstorable_unique_id_never_takes_other_chargers_log_rows_with_it(daphne):
    await register("CP-SURROGATE")
    await register("CP-NUL")
    await register("CP-CLEAN")
    async with (
        raw_socket(daphne, "1.6", "CP-SURROGATE") as surrogate,
        raw_socket(daphne, "1.6", "CP-NUL") as nul,
        raw_socket(daphne, "1.6", "CP-CLEAN") as clean,
    ):
        await surrogate.send('[2,"\\ud800","Heartbeat",{}]')
        await nul.send('[2,"a\\u0000b","Heartbeat",{}]')
        await clean.send('[2,"clean-1","Heartbeat",{}]')
        assert (await answer_to(surrogate, "\ud800"))[0] == 3
        assert (await answer_to(nul, "a\u0000b"))[0] == 3
        assert (await answer_to(clean, "clean-1"))[0] == 3

        async def logged() -> dict[str, set[str]]:
            rows = OcppMessage.objects.values_list("charge_point__charge_point_id", "unique_id")
            found: dict[str, set[str]] = {}
            async for charge_point_id, unique_id in rows:
                found.setdefault(charge_point_id, set()).add(unique_id)
            return found if len(found) == 3 and all(len(ids) == 1 for ids in found.values()) else {}

        found = await eventually(logged, timeout=5)
    assert found == {"CP-SURROGATE": {"\\ud800"}, "CP-NUL": {"a\\u0000b"}, "CP-CLEAN": {"clean-1"}}


async def test_a_row_the_database_refuses_loses_only_itself_not_its_batch(transactional_db):
    await register("CP-A")
    await register("CP-B")
    buffer = WriteBehindBuffer(
        name="test frame", write=lambda rows: ocpp_messages_record(frames=rows), flush_seconds=lambda: 60, max_batch=10
    )
    now = timezone.now()
    for charge_point_id, unique_id, at in (("CP-A", "a1", now), ("CP-B", "refused", None), ("CP-B", "b2", now)):
        buffer.add(
            LoggedFrame(charge_point_id=charge_point_id, direction="in", frame="[]", created_at=at, unique_id=unique_id)
        )
    await buffer.flush()
    stored = OcppMessage.objects.order_by("unique_id").values_list("unique_id", flat=True)
    assert [unique_id async for unique_id in stored] == ["a1", "b2"]


def _heartbeat_of_no_charger(rows: list[int]) -> None:
    """Rows whose foreign key fails only at COMMIT (deferred again: batches check constraints at once)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    Heartbeat.objects.bulk_create(Heartbeat(charge_point_id=2**40 + n, received_at=timezone.now()) for n in rows)


async def test_a_batch_whose_commit_fails_is_logged_and_the_flush_goes_on(transactional_db, caplog):
    buffer = WriteBehindBuffer(
        name="test heartbeat", write=_heartbeat_of_no_charger, flush_seconds=lambda: 60, max_batch=2
    )
    for n in range(3):
        buffer.add(n)
    await buffer.flush()  # two batches, each refused at COMMIT: neither raises, both are logged
    assert len(buffer) == 0
    assert caplog.text.count("Could not store") == 2
    assert not await Heartbeat.objects.aexists()


async def test_a_batch_chosen_as_deadlock_victim_is_written_again(transactional_db):
    await register("CP-DEADLOCK")
    attempts: list[int] = []

    def write(rows: list[LoggedFrame]) -> None:
        attempts.append(len(rows))
        ocpp_messages_record(frames=rows)
        if len(attempts) == 1:  # what Django raises when PostgreSQL picks this transaction as the victim
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected()

    buffer = WriteBehindBuffer(name="test frame", write=write, flush_seconds=lambda: 60, max_batch=10)
    for unique_id in ("d1", "d2"):
        frame = LoggedFrame(
            charge_point_id="CP-DEADLOCK", direction="in", frame="[]", created_at=timezone.now(), unique_id=unique_id
        )
        buffer.add(frame)
    await buffer.flush()
    assert attempts == [2, 2]
    stored = OcppMessage.objects.order_by("unique_id").values_list("unique_id", flat=True)
    assert [unique_id async for unique_id in stored] == ["d1", "d2"]


V16_BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "M1"}
V201_BOOT = {"reason": "PowerUp", "chargingStation": {"vendorName": "Vendor", "model": "M2"}}


@pytest.mark.parametrize(
    ("version", "action", "payload", "field"),
    [
        ("1.6", "BootNotification", {**V16_BOOT, "chargePointVendor": "Ven\u0000dor"}, "chargePointVendor"),
        ("1.6", "Authorize", {"idTag": "T\u00001"}, "idTag"),
        (
            "1.6",
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "info": "a\u0000b"},
            "info",
        ),
        ("1.6", "DataTransfer", {"vendorId": "V", "data": "\ud800"}, "data"),
        (
            "2.0.1",
            "BootNotification",
            {**V201_BOOT, "chargingStation": {"vendorName": "\ud800", "model": "M"}},
            "chargingStation.vendorName",
        ),
        ("2.0.1", "Authorize", {"idToken": {"idToken": "T\u0000", "type": "ISO14443"}}, "idToken.idToken"),
    ],
)
async def test_unstorable_text_in_a_call_is_a_property_constraint_violation_naming_the_field(
    daphne, version, action, payload, field
):
    await register("CP-TEXT")
    async with raw_socket(daphne, version, "CP-TEXT") as websocket:
        await websocket.send(json.dumps([2, "t1", action, payload]))
        answer = await answer_to(websocket, "t1")
        assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
        assert field in answer[3]
        assert await heartbeat_answered(websocket)
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP-TEXT")
    assert charge_point.vendor == ""


async def test_unstorable_text_in_a_session_message_is_replaced_and_the_session_starts(daphne):
    from charging.models import Transaction

    await register("CP-TEXT")
    async with raw_socket(daphne, "1.6", "CP-TEXT") as websocket:
        start = {"connectorId": 1, "idTag": "T\u00001", "meterStart": 0, "timestamp": "2026-11-25T10:00:00Z"}
        await websocket.send(json.dumps([2, "s1", "StartTransaction", start]))
        answer = await answer_to(websocket, "s1")
    assert answer[0] == 3 and answer[2]["transactionId"] > 0
    transaction = await Transaction.objects.aget()
    assert transaction.id_tag == "T\ufffd1"


async def test_nan_and_infinity_kept_as_json_are_stored_as_their_text_and_the_messages_answered(daphne):
    """Python's JSON reads NaN and Infinity (and 1e400 as infinity), PostgreSQL's JSON refuses them:
    a session's signedMeterValue and a report's variableCharacteristics holding one were an
    InternalError at every resend (the session never started, the report never completed)."""
    from charging.models import MeterSample, Transaction
    from configuration.models import DeviceModelVariable

    await register("CP-NAN")
    at = "2026-11-25T10:00:00Z"
    signed = '{"signedMeterData":"abc","signingMethod":"m","encodingMethod":"e","publicKey":"k","customData":CUSTOM}'
    started = (
        '[2,"e1","TransactionEvent",{"eventType":"Started","timestamp":"AT","triggerReason":"CablePluggedIn",'
        '"seqNo":0,"transactionInfo":{"transactionId":"TX-NAN"},"evse":{"id":1,"connectorId":1},'
        '"meterValue":[{"timestamp":"AT","sampledValue":[{"value":10,"signedMeterValue":SIGNED}]}]}]'
    )
    started = started.replace("AT", at).replace("SIGNED", signed)
    started = started.replace("CUSTOM", '{"vendorId":"v","n":NaN,"i":-Infinity,"o":1e400}')
    report = (
        '[2,"r1","NotifyReport",{"requestId":1,"generatedAt":"AT","seqNo":0,"reportData":[{"component":'
        '{"name":"C"},"variable":{"name":"V"},"variableAttribute":[{"value":"1"}],"variableCharacteristics":'
        '{"dataType":"decimal","supportsMonitoring":false,"minLimit":NaN,"maxLimit":Infinity}}]}]'
    ).replace("AT", at)
    async with raw_socket(daphne, "2.0.1", "CP-NAN") as websocket:
        await websocket.send(started)
        assert await answer_to(websocket, "e1") == [3, "e1", {}]
        await websocket.send(report)
        assert await answer_to(websocket, "r1") == [3, "r1", {}]
    transaction = await Transaction.objects.aget(ocpp_transaction_id="TX-NAN")
    sample = await MeterSample.objects.aget(transaction=transaction)
    assert sample.signed_data["custom_data"] == {"vendor_id": "v", "n": "NaN", "i": "-Infinity", "o": "Infinity"}
    variable = await DeviceModelVariable.objects.aget(variable_name="V")
    assert (variable.characteristics["min_limit"], variable.characteristics["max_limit"]) == ("NaN", "Infinity")


async def test_json_kept_as_sent_nested_as_deep_as_the_decoder_goes_is_stored(daphne):
    """What is kept as sent (a signedMeterValue, a report's variableCharacteristics) is checked for
    NaN and infinities without recursion: 600 levels of customData are stored and answered."""
    from charging.models import MeterSample
    from configuration.models import DeviceModelVariable

    await register("CP-DEEP")
    deep = "[" * 600 + "NaN" + "]" * 600
    signed = '{"signedMeterData":"a","signingMethod":"m","encodingMethod":"e","publicKey":"k","customData":CUSTOM}'
    started = (
        '[2,"e1","TransactionEvent",{"eventType":"Started","timestamp":"AT","triggerReason":"CablePluggedIn",'
        '"seqNo":0,"transactionInfo":{"transactionId":"TX-DEEP"},"evse":{"id":1,"connectorId":1},'
        '"meterValue":[{"timestamp":"AT","sampledValue":[{"value":10,"signedMeterValue":SIGNED}]}]}]'
    ).replace("SIGNED", signed)
    report = (
        '[2,"r1","NotifyReport",{"requestId":1,"generatedAt":"AT","seqNo":0,"reportData":[{"component":'
        '{"name":"C"},"variable":{"name":"V"},"variableAttribute":[{"value":"1"}],"variableCharacteristics":'
        '{"dataType":"decimal","supportsMonitoring":false,"customData":CUSTOM}}]}]'
    )
    custom = '{"vendorId":"v","x":' + deep + "}"
    async with raw_socket(daphne, "2.0.1", "CP-DEEP") as websocket:
        await websocket.send(started.replace("AT", "2026-11-25T10:00:00Z").replace("CUSTOM", custom))
        assert await answer_to(websocket, "e1") == [3, "e1", {}]
        await websocket.send(report.replace("AT", "2026-11-25T10:00:00Z").replace("CUSTOM", custom))
        assert await answer_to(websocket, "r1") == [3, "r1", {}]
    assert await MeterSample.objects.filter(transaction__ocpp_transaction_id="TX-DEEP").aexists()
    assert await DeviceModelVariable.objects.filter(variable_name="V").aexists()


async def test_the_api_answers_400_naming_the_field_for_text_it_cannot_store(daphne, api_key):
    await register("CP-TEXT")
    status, body = await ahttp(
        f"{daphne.http_url}/api/v1/ocpp16/CP-TEXT/data_transfer",
        method="POST",
        api_key=api_key,
        body={"vendor_id": "V", "data": "a\u0000b"},
    )
    assert status == 400 and body["error"] == "ValidationError" and "data" in body["details"]
    status, body = await ahttp(
        f"{daphne.http_url}/api/v1/id-tags", method="POST", api_key=api_key, body={"id_tag": "T\ud800"}
    )
    assert status == 400 and "id_tag" in body["details"]


# --- Frames of thousands of schema violations (round 41's probe) ------------------------------
# Each cost the gateway 330-730 ms of CPU (jsonschema walked every element in Python, up to three
# times), so that one socket's burst of 60 held the event loop for 20-39 s. What they cost now is
# measured, not asserted here (no timed assertions: kernel/tests/test_schema_errors.py counts the
# elements read in Python); these keep their answers and records as they were.

T = "2026-12-01T10:00:00Z"
BIG = "9" * 4290  # under Python's 4300-digit limit: parsed, then repr()'d by every error message
FIFTEEN_BIG = "{" + ",".join(f'"k{n}":{BIG}' for n in range(15)) + "}"


def _compact(frame: list) -> str:
    return json.dumps(frame, separators=(",", ":"))


async def _answers(websocket, frames: list[str]) -> list[list]:
    """Send ``frames`` one after the other (unique ids "0", "1", ...); their answers."""
    answers = []
    for n, frame in enumerate(frames):
        await websocket.send(frame.replace('"ID"', f'"{n}"', 1))
        answers.append(await answer_to(websocket, str(n)))
    return answers


@pytest.mark.parametrize(
    ("version", "frame", "error_code", "cause"),
    [
        (
            "2.0.1",
            _compact(
                [
                    2,
                    "ID",
                    "MeterValues",
                    {"evseId": "one", "meterValue": [{"timestamp": T, "sampledValue": [{"value": 1}] * 5000}]},
                ]
            ),
            "TypeConstraintViolation",
            "\"one\" is not of type 'integer'",
        ),
        ("1.6", f'[2,"ID","Heartbeat",{FIFTEEN_BIG}]', "FormationViolation", "Additional properties are not allowed"),
        ("1.6", f'[2,"ID","Authorize",{{"idTag":{BIG}}}]', "TypeConstraintViolation", BIG[:100]),
        ("2.0.1", f'[2,"ID","Authorize",{FIFTEEN_BIG}]', "FormatViolation", "Additional properties are not allowed"),
    ],
    ids=["201-unreadable-evse-and-5000-samples", "16-heartbeat-15-huge-integers", "16-huge-id-tag", "201-authorize"],
)
async def test_a_refused_60_kb_frame_keeps_its_callerror(daphne, version, frame, error_code, cause):
    await register("CP-COSTLY")
    async with raw_socket(daphne, version, "CP-COSTLY") as websocket:
        answers = await _answers(websocket, [frame] * 10)
        assert await heartbeat_answered(websocket)
    assert all(answer[:3] == [4, str(n), error_code] for n, answer in enumerate(answers)), answers[0][:4]
    assert answers[0][4]["cause"].startswith(cause)


@pytest.mark.parametrize(
    ("version", "sample", "twin", "violation"),
    [
        (
            "2.0.1",
            {"value": 1, "measurand": "X"},
            {"value": 1, "measurand": "Voltage"},
            ("meterValue/0/sampledValue/0/measurand", "enum", "X"),
        ),
        (
            "1.6",
            {"value": "1", "unit": "X"},
            {"value": "1", "unit": "V"},
            ("meterValue/0/sampledValue/0/unit", "enum", "X"),
        ),
    ],
)
async def test_thousands_of_absorbed_violations_are_accepted_and_recorded_once(
    daphne, version, sample, twin, violation
):
    """Every sampledValue breaks its enum: the frame is accepted as its valid twin is, the violation
    recorded once per frame."""
    await register("CP-ABSORBED")
    head = {"evseId": 1} if version == "2.0.1" else {"connectorId": 1}
    frames = {
        kind: _compact(
            [2, "ID", "MeterValues", {**head, "meterValue": [{"timestamp": T, "sampledValue": [item] * 1800}]}]
        )
        for kind, item in (("absorbed", sample), ("valid", twin))
    }
    async with raw_socket(daphne, version, "CP-ABSORBED") as websocket:
        valid = await _answers(websocket, [frames["valid"]] * 4)
        absorbed = await _answers(websocket, [frames["absorbed"]] * 4)
    assert [answer[0] for answer in valid + absorbed] == [3] * 8
    recorded = SchemaViolation.objects.values_list("action", "path", "validator", "value")
    assert [row async for row in recorded] == [("MeterValues", *violation)] * 4


async def _close_frame_after(daphne, frame: bytes) -> bytes:
    """What the server writes after the handshake when a charger's socket sends ``frame`` (masked)
    after a Heartbeat: b"" when it dropped the TCP connection without a Close frame."""
    reader, writer = await asyncio.open_connection("127.0.0.1", daphne.port)
    writer.write(
        b"GET /ocpp/1.6/CP-UTF HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
    )
    received = b""
    try:
        async with asyncio.timeout(10):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            writer.write(_masked(b'[2,"hb","Heartbeat",{}]') + frame)
            while chunk := await reader.read(4096):  # until the server closes the TCP connection
                received += chunk
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    # the Heartbeat's answer (ASCII, under 126 bytes) first, then the Close frame if one was sent
    return received[received.index(b"\x88") :] if b"\x88" in received else b""


def _masked(payload: bytes, opcode: int = 1) -> bytes:
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_text_frame_that_is_not_utf8_is_closed_with_1007_not_dropped(daphne):
    """RFC 6455 §8.1 fails the connection for a text frame that is no UTF-8; §7.1.7: with a Close frame
    of its code (1007, §7.4.1) before the TCP close. autobahn dropped the TCP connection at once: the
    charger saw an abnormal closure (1006) and its firmware's log could not say why."""
    await register("CP-UTF")
    close = await _close_frame_after(daphne, _masked(b'[2,"u","DataTransfer",{"vendorId":"Gr\xfc\xdfe"}]'))
    assert close[:1] == b"\x88" and int.from_bytes(close[2:4], "big") == 1007
