"""CALLERRORs as OCPP names them (OCPP-J 1.6 §4.2.3, OCPP 2.0.1 part 4 §4): through a real daphne."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.conf import settings

from chargepoints.models import ChargePoint
from conftest import raw_socket
from ocpp_gateway import rpc_errors
from ocpp_gateway.conformance import conformance_matrix

pytestmark = pytest.mark.django_db(transaction=True)


async def exchange(websocket, frame: object) -> list:
    await websocket.send(frame if isinstance(frame, str) else json.dumps(frame))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=5))


async def silent(websocket, frame: object) -> bool:
    """Whether ``frame`` goes unanswered: the Heartbeat sent after it is the next answer."""
    await websocket.send(frame if isinstance(frame, str) else json.dumps(frame))
    return (await exchange(websocket, [2, "probe", "Heartbeat", {}]))[:2] == [3, "probe"]


def unanswered_actions(version: str) -> list[str]:
    """The version's actions the CSMS does not answer, as the conformance matrix lists them."""
    return [row.action for row in conformance_matrix(settings.BASE_DIR)[version] if not row.handled]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_action_the_version_does_not_define_is_not_implemented(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-FOO", heartbeat_interval=60)
    async with raw_socket(daphne, version, "CP-FOO") as websocket:
        answer = await exchange(websocket, [2, "u1", "FooBar", {}])
        assert answer[:4] == [4, "u1", "NotImplemented", "Requested Action is not known by receiver"]
        other_version = "StartTransaction" if version == "2.0.1" else "TransactionEvent"
        assert (await exchange(websocket, [2, "u2", other_version, {}]))[:3] == [4, "u2", "NotImplemented"]
        # the cause names the action cut, as every cause is (round 41's probe: a 60,000-character name echoed)
        answer = await exchange(websocket, [2, "u3", "A" * 60_000, {}])
        assert answer[2] == "NotImplemented" and len(answer[4]["cause"]) < 100


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_action_the_csms_does_not_answer_is_not_supported(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-UNSUP", heartbeat_interval=60)
    actions = unanswered_actions(version)
    async with raw_socket(daphne, version, "CP-UNSUP") as websocket:
        answers = {
            action: (await exchange(websocket, [2, f"n{index}", action, {}]))[:3]
            for index, action in enumerate(actions)
        }
    assert answers == {action: [4, f"n{index}", "NotSupported"] for index, action in enumerate(actions)}


async def test_certificate_actions_of_201_are_not_supported(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-PKI", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-PKI") as websocket:
        for index, action in enumerate(["SignCertificate", "Get15118EVCertificate", "GetCertificateStatus"]):
            answer = await exchange(websocket, [2, f"c{index}", action, {}])
            assert answer[:4] == [
                4,
                f"c{index}",
                "NotSupported",
                "Requested Action is recognized but not supported by the receiver",
            ]


async def test_201_unknown_message_types_are_message_type_not_supported(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-MT", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-MT") as websocket:
        assert (await exchange(websocket, [5, "m5", {}]))[:3] == [4, "m5", "MessageTypeNotSupported"]
        assert (await exchange(websocket, [6, "m6", "NotifyPeriodicEventStream", {}]))[:3] == [
            4,
            "m6",
            "MessageTypeNotSupported",
        ]
        assert (await exchange(websocket, [0]))[:3] == [4, "-1", "MessageTypeNotSupported"]
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


@pytest.mark.parametrize(
    "frame", ['{"a": 1}', "null", '"text"', "not json", "[]", '["2", "x", "Heartbeat", {}]', "[" * 5000]
)
async def test_201_a_frame_that_is_no_rpc_message_is_an_rpc_framework_error(daphne, frame):
    await ChargePoint.objects.acreate(charge_point_id="CP-RPC", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-RPC") as websocket:
        assert (await exchange(websocket, frame))[:3] == [4, "-1", "RpcFrameworkError"]
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


async def test_201_answers_are_never_answered(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-ANS", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-ANS") as websocket:
        assert await silent(websocket, [3, 17, {}])
        assert await silent(websocket, [4, "nothing", "GenericError", "", {}])


async def test_16_keeps_its_own_codes_for_frames_that_are_no_ocpp_message(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-16RPC", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16RPC") as websocket:
        # OCPP-J 1.6 §4.1.3: a message type number not in the list is ignored; answers are never answered.
        assert await silent(websocket, [5, "m5", {}])
        assert await silent(websocket, [3, "m3"])
        assert (await exchange(websocket, [2, "short"]))[:3] == [4, "short", "ProtocolError"]
        for frame in ('{"a": 1}', "not json", "[" * 5000, "[]"):
            assert await silent(websocket, frame)


@pytest.mark.parametrize(
    "frame",
    [
        '[2,"bad","StatusNotification",{"connectorId":1,"errorCode":"OtherError","status":"Faulted","info":"a\tb"}]',
        '[2,"bad","DataTransfer",{"vendorId":"V","data":"line 1\nline 2"}]',
        '[2,"bad","Heartbeat",{}',
        '[2,"bad","Heartbeat",{}][2,"next","Heartbeat",{}]',
        '\ufeff[2,"bad","Heartbeat",{}]',
    ],
    ids=["raw tab in a string", "raw newline in a string", "cut short", "two frames in one", "a byte-order mark first"],
)
async def test_16_a_call_that_is_not_json_is_a_formation_violation_with_its_id(daphne, frame):
    """Was dropped unanswered (the charger waited out its timeout, many then reconnect): a CALL whose
    JSON is syntactically incorrect, its id readable at its head, is a FormationViolation (OCPP-J 1.6
    §4.2.3) that does not send the frame back."""
    await ChargePoint.objects.acreate(charge_point_id="CP-16JSON", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16JSON") as websocket:
        answer = await exchange(websocket, frame)
        assert answer[:3] == [4, "bad", "FormationViolation"]
        assert "Heartbeat" not in json.dumps(answer) and "line" not in json.dumps(answer)
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


async def test_16_a_call_that_is_not_json_with_an_integer_id_is_answered_with_it(daphne):
    """1.6 echoes an integer id; a CALL cut short with one went unanswered (only quoted ids were read)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-16INT", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16INT") as websocket:
        assert (await exchange(websocket, '[2, 41,"Heartbeat",{}'))[:3] == [4, 41, "FormationViolation"]


@pytest.mark.parametrize(
    "frame",
    [
        '[2,"bad","DataTransfer",{"vendorId":"V","data":"line 1\nline 2"}]',
        '[2,"bad","Heartbeat",{}',
        '[2,"bad","Heartbeat",{}][2,"next","Heartbeat",{}]',
        '\ufeff[2,"bad","Heartbeat",{}]',
    ],
    ids=["raw newline in a string", "cut short", "two frames in one", "a byte-order mark first"],
)
async def test_201_a_call_that_is_not_json_is_answered_with_the_id_at_its_head(daphne, frame):
    """Was answered RpcFrameworkError with id "-1", which OCPP 2.0.1 part 4 §4.3 keeps for a message
    id that cannot be read: the station could not tell which CALL failed and waited out its timeout.
    A FormatViolation with its id, as 1.6 answers it, and as a 2.0.1 CALL too large or nested too deep."""
    await ChargePoint.objects.acreate(charge_point_id="CP-201JSON", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-201JSON") as websocket:
        answer = await exchange(websocket, frame)
        assert answer[:3] == [4, "bad", "FormatViolation"]
        assert "Heartbeat" not in json.dumps(answer) and "line" not in json.dumps(answer)
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


def test_201_a_call_that_is_not_json_with_an_unreadable_id_is_still_an_rpc_framework_error():
    for frame in ('[2,17,"Heartbeat",{}', '[2,"","Heartbeat",{}', "[2,", "not json"):
        answer = rpc_errors.unparseable_answer(frame, None, ocpp_version="2.0.1")
        assert answer is not None and answer[0] == "-1" and answer[1].code == "RpcFrameworkError"


async def test_201_error_descriptions_fit_in_255_characters(daphne):
    """OCPP 2.0.1 part 4 §4.2.3: a CALLERROR's ErrorDescription is string[0..255]. A pending station's
    refusal was 275 characters, which a station that checks the frame cannot read."""
    await ChargePoint.objects.acreate(charge_point_id="CP-DESC", heartbeat_interval=60, lifecycle_state="pending")
    async with raw_socket(daphne, "2.0.1", "CP-DESC") as websocket:
        refused = await exchange(websocket, [2, "a1", "Authorize", {"idToken": {"idToken": "T", "type": "ISO14443"}}])
    assert refused[:3] == [4, "a1", "SecurityError"] and len(refused[3]) <= 255


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,19,"Heartbeat",null]', "FormationViolation"),
        ('[2,19,["Heartbeat"],{}]', "FormationViolation"),
        ('[2,19,"Heartbeat"]', "ProtocolError"),
    ],
)
async def test_16_a_malformed_call_with_an_integer_id_is_answered_with_it(daphne, frame, code):
    """Went unanswered, though 1.6 echoes an integer id (a valid CALL's, a schema violation's): only an id
    that is neither a string nor an integer cannot be read back."""
    await ChargePoint.objects.acreate(charge_point_id="CP-16INT", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16INT") as websocket:
        assert (await exchange(websocket, frame))[:3] == [4, 19, code]


def test_only_201_descriptions_are_cut_to_255_characters():
    assert rpc_errors.description_fitted("x" * 300, ocpp_version="2.0.1") == "x" * 255
    assert rpc_errors.description_fitted("x" * 300, ocpp_version="1.6") == "x" * 300


async def test_16_answers_no_call_whose_id_is_neither_a_string_nor_an_integer(daphne):
    """Was answered with the id echoed: ``[3,NaN,...]`` and ``[3,Infinity,...]`` are no JSON (OCPP-J 1.6 §4.1.3:
    the id is a string); an integer id is still echoed."""
    await ChargePoint.objects.acreate(charge_point_id="CP-16ID", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16ID") as websocket:
        for unique_id in ("NaN", "1e400", "-Infinity", "1.5", "true", '{"a":1}', "[1]", "null"):
            assert await silent(websocket, f'[2,{unique_id},"Heartbeat",{{}}]'), unique_id
        assert (await exchange(websocket, '[2,17,"Heartbeat",{}]'))[:2] == [3, 17]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("action", [["Heartbeat"], {"a": 1}, 7, None])
async def test_an_action_that_is_not_a_string_is_a_format_violation(daphne, version, action):
    """Was an InternalError and two ERROR tracebacks per frame (a list is not hashable)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-ACT", heartbeat_interval=60)
    code = "FormationViolation" if version == "1.6" else "FormatViolation"
    async with raw_socket(daphne, version, "CP-ACT") as websocket:
        assert (await exchange(websocket, [2, "a1", action, {}]))[:3] == [4, "a1", code]
        assert (await exchange(websocket, [2, "a2", "Heartbeat", {}]))[:2] == [3, "a2"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("payload", [[1, 2], None, "x", 7])
async def test_a_payload_that_is_not_an_object_is_a_format_violation(daphne, version, payload):
    """Was a TypeConstraintViolation: the frame does not conform to the PDU's structure (OCPP-J 1.6 §4.2.3)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-PAY", heartbeat_interval=60)
    code = "FormationViolation" if version == "1.6" else "FormatViolation"
    async with raw_socket(daphne, version, "CP-PAY") as websocket:
        for action in ("Heartbeat", "StatusNotification", "MeterValues"):
            assert (await exchange(websocket, [2, "p1", action, payload]))[:3] == [4, "p1", code]
        assert (await exchange(websocket, [2, "p2", "Heartbeat", {}]))[:2] == [3, "p2"]


@pytest.mark.parametrize("unique_id", [None, 123, {"a": 1}, ""])
async def test_201_a_call_whose_id_is_not_a_string_is_an_rpc_framework_error(daphne, unique_id):
    """OCPP 2.0.1 part 4 §4.1: the message id is a string; none readable is answered with id -1."""
    await ChargePoint.objects.acreate(charge_point_id="CP-ID", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-ID") as websocket:
        assert (await exchange(websocket, [2, unique_id, "Heartbeat", {}]))[:3] == [4, "-1", "RpcFrameworkError"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_call_nested_too_deep_is_answered_with_its_own_id(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-DEEP", heartbeat_interval=60)
    code = "FormationViolation" if version == "1.6" else "FormatViolation"
    deep = '[2,"deep","Heartbeat",' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "]"
    async with raw_socket(daphne, version, "CP-DEEP") as websocket:
        assert (await exchange(websocket, deep))[:3] == [4, "deep", code]
        assert (await exchange(websocket, [2, "h", "Heartbeat", {}]))[:2] == [3, "h"]


@pytest.mark.parametrize(
    ("version", "payload"),
    [
        ("1.6", {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}),
        (
            "2.0.1",
            {"timestamp": "2026-12-06T03:00:00Z", "connectorStatus": "Sleeping", "evseId": 1, "connectorId": 1},
        ),
    ],
)
async def test_a_value_outside_its_enum_is_a_property_constraint_violation(daphne, version, payload):
    """OCPP-J 1.6 §4.2.3 / 2.0.1 part 4 §4.3: the type is right, the value is not (was FormatViolation)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-ENUM", heartbeat_interval=60)
    async with raw_socket(daphne, version, "CP-ENUM") as websocket:
        answer = await exchange(websocket, [2, "e1", "StatusNotification", payload])
    assert answer[:3] == [4, "e1", "PropertyConstraintViolation"]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_refusal_does_not_send_the_frame_back(daphne, version):
    """A 60 KB DataTransfer with one unknown field got a 60 KB CALLERROR (the frame echoed)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-ECHO", heartbeat_interval=60)
    payload = {"vendorId": "Acme", "data": "x" * 60_000, "surprise": 1}
    async with raw_socket(daphne, version, "CP-ECHO") as websocket:
        await websocket.send(json.dumps([2, "d1", "DataTransfer", payload]))
        text = await asyncio.wait_for(websocket.recv(), timeout=5)
    assert json.loads(text)[:3] == [4, "d1", "FormationViolation" if version == "1.6" else "FormatViolation"]
    assert len(text) < 1000


@pytest.mark.parametrize(
    ("frame", "unique_id"),
    [
        ('[2,41,"DataTransfer",{"vendorId":"V","data":"%s"}]', 41),
        ('[2, -7 ,"DataTransfer",{"vendorId":"V","data":"%s"}]', -7),
        ('[2,"a\\"b\\\\c","DataTransfer",{"vendorId":"V","data":"%s"}]', 'a"b\\c'),
        ('[2,"caf\\u00e9","DataTransfer",{"vendorId":"V","data":"%s"}]', "café"),
    ],
    ids=["integer id", "negative integer id", "escaped quote and backslash", "escaped letter"],
)
async def test_16_an_oversized_call_is_answered_with_any_id_its_valid_calls_are(daphne, frame, unique_id):
    """A 1.6 CALL refused unread (over CSMS_MAX_FRAME_BYTES) was answered only when its id was a plain
    string: with an integer id (which 1.6 echoes in its answers) or an escaped character in its id
    it went unanswered, the charger waiting out its timeout."""
    await ChargePoint.objects.acreate(charge_point_id="CP-16BIGID", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-16BIGID") as websocket:
        answer = await exchange(websocket, frame % ("x" * 70_000))
        assert answer[:3] == [4, unique_id, "FormationViolation"] and "byte limit" in answer[3]
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


def test_the_id_at_a_calls_head_is_read_as_its_version_echoes_it():
    read = rpc_errors.leading_call_id
    assert read('[2,"a\\"b",', ocpp_version="2.0.1") == 'a"b'
    assert read('\ufeff [ 2 , "id" ,', ocpp_version="1.6") == "id"
    assert read("[2,41,", ocpp_version="1.6") == 41
    assert read("[2,41,", ocpp_version="2.0.1") is None  # 2.0.1: a message id is a string
    assert read('[3,"answer",', ocpp_version="1.6") is None  # only a CALL is answered
    assert read('[2,"",', ocpp_version="1.6") is None
    assert read('[2,"bad \\x escape",', ocpp_version="1.6") is None
    assert read('[2,"' + "i" * 65 + '",', ocpp_version="1.6") == "i" * 65
    assert read('[2,"' + "\\u00e9" * 255 + '",', ocpp_version="2.0.1") == "\u00e9" * 255  # escapes read
    assert read('[2,"' + "i" * 256 + '",', ocpp_version="1.6") is None  # over ECHOED_ID_CHARACTERS
    assert read('[2,"' + "i" * 5000 + '",', ocpp_version="2.0.1") is None


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_oversized_call_with_a_long_id_is_answered_with_it(daphne, version):
    """A CALL refused unread (here over CSMS_MAX_FRAME_BYTES) whose id was longer than 64 characters got
    no answer, the charger waiting out its timeout, though a CALL read is answered with any id. Its id
    is now echoed up to 255 characters (rpc_errors.ECHOED_ID_CHARACTERS), the answer bounded."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LONGID", heartbeat_interval=60)
    unique_id = "urn:uuid:" + "0123456789abcdef" * 6  # 105 characters
    frame = json.dumps([2, unique_id, "DataTransfer", {"vendorId": "V", "data": "x" * 70_000}])
    async with raw_socket(daphne, version, "CP-LONGID") as websocket:
        answer = await exchange(websocket, frame)
        assert answer[:2] == [4, unique_id] and "byte limit" in answer[3], answer[:4]
        assert (await exchange(websocket, [2, "hb", "Heartbeat", {}]))[:2] == [3, "hb"]


STATUS_201 = {"timestamp": "2026-12-06T03:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1}


@pytest.mark.parametrize(
    ("version", "action", "payload", "cause"),
    [
        (
            "1.6",
            "StatusNotification",
            {"connectorId": 1.0, "errorCode": "NoError", "status": "Available"},
            "1.0 is not of type 'integer'",
        ),
        (
            "1.6",
            "StatusNotification",
            {"connectorId": None, "errorCode": "NoError", "status": "Available"},
            "null is not of type 'integer'",
        ),
        ("2.0.1", "StatusNotification", {**STATUS_201, "evseId": True}, "true is not of type 'integer'"),
        ("2.0.1", "StatusNotification", {**STATUS_201, "connectorStatus": "Sleeping"}, '"Sleeping" is not one of'),
        ("2.0.1", "Heartbeats", {}, '"Heartbeats" is not an OCPP 2.0.1 action.'),
    ],
    ids=["16-decimal", "16-null", "201-true", "201-text", "201-unknown-action"],
)
async def test_a_refusal_names_the_value_as_json(daphne, version, action, payload, cause):
    """A CALLERROR's cause named the charger's value as Python writes it: ``Decimal('1.0') is not of type
    'integer'`` for a 1.6 connectorId of 1.0, ``True``, ``None``, ``'Sleeping'``. It is now its JSON text,
    as the charger sent it (the schema's own terms as jsonschema says them)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-JSON", heartbeat_interval=60)
    async with raw_socket(daphne, version, "CP-JSON") as websocket:
        answer = await exchange(websocket, [2, "j1", action, payload])
    assert answer[:2] == [4, "j1"] and answer[4]["cause"].startswith(cause), answer
