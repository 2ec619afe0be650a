"""Fuzzing the gateway: random and mutated OCPP frames sent to a real consumer in a real daphne process.

Whatever arrives, the gateway answers as OCPP says (a CALL gets a CALLRESULT or a CALLERROR with
its unique id; an answer to nothing, or a frame without a readable id, gets nothing), the socket
and the process live on (a Heartbeat is answered after every frame), and a refused frame writes
no row (a CALLERROR leaves the transactions and meter samples as they were).
Bounded: a fixed number of examples, each with a deadline; loopback only.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint
from charging.models import MeterSample, Transaction
from conftest import SUBPROTOCOL

pytestmark = pytest.mark.django_db(transaction=True)

CHARGER = "CP-FUZZ"
ANSWER_TIMEOUT = 5.0
# CALLERROR codes that say the frame was wrong. InternalError / GenericError would mean the gateway broke.
FRAME_ERRORS = {
    "FormationViolation",
    "FormatViolation",
    "ProtocolError",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "OccurrenceConstraintViolation",
    "TypeConstraintViolation",
    "NotImplemented",
    "NotSupported",
    "SecurityError",
    "MessageTypeNotSupported",
    "RpcFrameworkError",
}

V16_PAYLOADS: dict[str, dict[str, Any]] = {
    "BootNotification": {"chargePointVendor": "Fuzz", "chargePointModel": "F1"},
    "StatusNotification": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "Authorize": {"idTag": "FUZZ-TAG"},
    "StartTransaction": {"connectorId": 1, "idTag": "FUZZ-TAG", "meterStart": 100, "timestamp": "2026-11-25T10:00:00Z"},
    "MeterValues": {
        "connectorId": 1,
        "meterValue": [{"timestamp": "2026-11-25T10:05:00Z", "sampledValue": [{"value": "150"}]}],
    },
    "StopTransaction": {"transactionId": 1, "meterStop": 200, "timestamp": "2026-11-25T10:10:00Z"},
    "Heartbeat": {},
    "DataTransfer": {"vendorId": "x"},
}
V201_TRANSACTION = {"transactionId": "FUZZ-TX", "chargingState": "Charging"}
V201_PAYLOADS: dict[str, dict[str, Any]] = {
    "BootNotification": {"reason": "PowerUp", "chargingStation": {"vendorName": "Fuzz", "model": "F2"}},
    "StatusNotification": {
        "timestamp": "2026-11-25T10:00:00Z",
        "connectorStatus": "Available",
        "evseId": 1,
        "connectorId": 1,
    },
    "Authorize": {"idToken": {"idToken": "FUZZ-TAG", "type": "ISO14443"}},
    "TransactionEvent": {
        "eventType": "Started",
        "timestamp": "2026-11-25T10:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": V201_TRANSACTION,
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [{"value": 100}]}],
    },
    "MeterValues": {"evseId": 1, "meterValue": [{"timestamp": "2026-11-25T10:05:00Z", "sampledValue": [{"value": 1}]}]},
    "Heartbeat": {},
    "NotifyReport": {"requestId": 1, "generatedAt": "2026-11-25T10:00:00Z", "seqNo": 0},
}
VALID_PAYLOADS = {"1.6": V16_PAYLOADS, "2.0.1": V201_PAYLOADS}

# Text PostgreSQL cannot store (NUL, lone surrogates), and integers over Python's 4300-digit
# limit (json.dumps cannot write those: a token stands for one and is replaced in the frame's text).
UNSTORABLE = ["\u0000", "\ud800", "\udfff", "\udc00"]
HUGE_INTEGER_TOKEN = "<huge integer>"
HUGE_INTEGERS = {4301: "9" * 4301, 5000: "-" + "7" * 5000}
poisoned_texts = st.builds(
    lambda before, bad, after: before + bad + after,
    st.text(max_size=8),
    st.sampled_from(UNSTORABLE),
    st.text(max_size=8),
)
texts = st.one_of(st.text(max_size=30), poisoned_texts)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    st.sampled_from(["", "Available", "9" * 400, "2026-13-45T99:99:99Z", "\u0000", "🔌", HUGE_INTEGER_TOKEN]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_calls(draw: st.DrawFn, version: str) -> list[Any]:
    """A known action whose payload has one field replaced, dropped or added."""
    action = draw(st.sampled_from(sorted(VALID_PAYLOADS[version])))
    payload = json.loads(json.dumps(VALID_PAYLOADS[version][action]))
    mutation = draw(st.sampled_from(["replace", "drop", "add", "nest", "poison"]))
    if mutation == "poison":  # any string the payload holds, at any depth
        paths = _string_paths(payload)
        if paths:
            *parents, key = draw(st.sampled_from(paths))
            container = payload
            for parent in parents:
                container = container[parent]
            container[key] = draw(poisoned_texts | st.just(HUGE_INTEGER_TOKEN))
        return [2, draw(texts.filter(bool)), action, payload]
    if payload and mutation in ("replace", "drop"):
        key = draw(st.sampled_from(sorted(payload)))
        if mutation == "drop":
            del payload[key]
        else:
            payload[key] = draw(json_values)
    elif mutation == "nest":
        depth = draw(st.integers(min_value=1, max_value=200))
        payload["deep"] = json.loads("[" * depth + "]" * depth)
    else:
        payload[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return [2, draw(texts.filter(bool)), action, payload]


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, str):
        return [path]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [found for key, item in items for found in _string_paths(item, (*path, key))]


def _with_huge_integers(raw: str, digits: int) -> str:
    return raw.replace(json.dumps(HUGE_INTEGER_TOKEN), HUGE_INTEGERS[digits])


random_calls = st.builds(
    lambda unique_id, action, payload: [2, unique_id, action, payload],
    texts.filter(bool),
    st.one_of(st.sampled_from([*V16_PAYLOADS, *V201_PAYLOADS, "MadeUp", "", "boot_notification"]), texts),
    json_values,
)
wrong_frames = st.one_of(
    st.lists(json_values, max_size=5),  # wrong lengths, wrong message type ids, ids that are not strings
    st.builds(lambda n, uid: [n, uid, "Heartbeat", {}], st.integers(min_value=-5, max_value=9), texts),
    st.builds(lambda uid, payload: [3, uid, payload], texts, json_values),  # answers to nothing
    st.builds(lambda uid: [4, uid, "InternalError", "", {}], texts),
)
raw_texts = st.one_of(st.text(max_size=200), st.just("[" * 5000), st.just('{"a": 1}'), st.just("null"))


def frames(version: str) -> st.SearchStrategy[str]:
    as_json = st.one_of(mutated_calls(version), random_calls, wrong_frames).map(json.dumps)
    return st.one_of(
        st.builds(_with_huge_integers, as_json, st.sampled_from(sorted(HUGE_INTEGERS))),
        raw_texts,
    )


def _parsed(raw: str) -> Any:
    try:
        return json.loads(raw, parse_int=_int_or_huge)
    except (ValueError, RecursionError):
        return None


_HUGE = object()  # an integer over Python's 4300-digit limit, in a frame as the test reads it


def _int_or_huge(digits: str) -> Any:
    return int(digits) if len(digits.lstrip("-")) <= 4300 else _HUGE


def _readable_id(frame: Any) -> str | None:
    if isinstance(frame, list) and len(frame) >= 2 and isinstance(frame[1], str) and frame[1]:
        return frame[1]
    return None


def _expected_reply_id(raw: str) -> str | None:
    """The unique id OCPP requires an answer for: a CALL-shaped frame with a readable string id."""
    frame = _parsed(raw)
    unique_id = _readable_id(frame)
    return unique_id if unique_id is not None and frame[0] == 2 else None


def _reply_allowed(raw: str) -> bool:
    """Any other frame that has an id (even an empty or a numeric one) and is not itself an answer may be answered."""
    frame = _parsed(raw)
    return isinstance(frame, list) and len(frame) >= 2 and frame[0] not in (3, 4)


async def _exchange(url: str, subprotocol: Subprotocol, raw: str) -> tuple[list[Any] | None, list[Any]]:
    """Send ``raw``, then a Heartbeat; return the answer to ``raw`` (if one came) and the Heartbeat's."""
    reply_id = _readable_id(_parsed(raw))
    async with connect(url, subprotocols=[subprotocol], compression=None, max_size=2**22) as websocket:
        await websocket.send(raw)
        await websocket.send(json.dumps([2, "fuzz-heartbeat-probe", "Heartbeat", {}]))
        answer, probe = None, None
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while probe is None:
                message = json.loads(await websocket.recv())
                if message[1] == "fuzz-heartbeat-probe" and reply_id != "fuzz-heartbeat-probe":
                    probe = message
                else:
                    answer = message
        return answer, probe


def _rows() -> tuple[int, int]:
    return Transaction.objects.count(), MeterSample.objects.count()


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_random_and_mutated_frames_are_answered_and_never_break_the_gateway(daphne, version):
    ChargePoint.objects.create(charge_point_id=CHARGER, heartbeat_interval=60)
    url = daphne.ws_url(version, CHARGER)
    subprotocol = SUBPROTOCOL[version]
    payloads = VALID_PAYLOADS["1.6"]

    @settings(
        max_examples=int(os.environ.get("CSMS_FUZZ_EXAMPLES", "250")),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(raw=frames(version))
    @example(raw=json.dumps([2, "big", "StatusNotification", {**payloads["StatusNotification"], "connectorId": 2**70}]))
    @example(raw=json.dumps([2, "neg", "StatusNotification", {**payloads["StatusNotification"], "connectorId": -1}]))
    @example(raw=json.dumps([2, "huge", "StartTransaction", {**payloads["StartTransaction"], "meterStart": 1e308}]))
    @example(raw=json.dumps([2, "bigtx", "StopTransaction", {**payloads["StopTransaction"], "transactionId": 2**63}]))
    @example(raw=json.dumps([2, "dup", "Heartbeat", {}]) + " ")
    @example(raw='[2,"x","Heartbeat",{"x":' + "7" * 5000 + "}]")
    @example(raw=json.dumps([2, "\ud800", "Heartbeat", {}]))
    @example(
        raw=json.dumps([2, "nul", "BootNotification", {**payloads["BootNotification"], "chargePointVendor": "a\u0000"}])
    )
    @example(raw=json.dumps([2, "nul-tag", "Authorize", {"idTag": "T\u0000"}]))
    @example(raw="[" * 5000)
    @example(raw=json.dumps([2, "mvbig", "MeterValues", {**payloads["MeterValues"], "connectorId": 2**40}]))
    @example(raw=json.dumps([2, "stneg", "StartTransaction", {**payloads["StartTransaction"], "connectorId": -1}]))
    @example(raw=json.dumps([2, "stbig", "StartTransaction", {**payloads["StartTransaction"], "connectorId": 2**40}]))
    @example(raw=json.dumps([2, "mvneg", "MeterValues", {**payloads["MeterValues"], "transactionId": -(2**40)}]))
    def check(raw: str) -> None:
        before = _rows()
        answer, probe = asyncio.run(_exchange(url, subprotocol, raw))
        assert probe[0] == 3, f"the socket stopped answering after {raw[:200]!r}: {probe}"
        reply_id = _expected_reply_id(raw)
        if version == "2.0.1" and answer is not None and answer[1] == "-1":  # OCPP 2.0.1 part 4: id unreadable
            assert answer[2] in ("RpcFrameworkError", "MessageTypeNotSupported"), f"{raw[:200]!r} got {answer}"
            assert _rows() == before
            return
        if reply_id is None:
            if _reply_allowed(raw) and answer is not None:
                assert answer[1] == _parsed(raw)[1], f"{raw[:200]!r} got {answer}"
                assert answer[0] == 3 or answer[2] in FRAME_ERRORS, f"{raw[:200]!r} got {answer}"
            else:
                assert answer is None, f"{raw[:200]!r} needs no answer, got {answer}"
            assert _rows() == before
            return
        assert answer is not None and answer[1] == reply_id, f"{raw[:200]!r} was not answered: {answer}"
        assert answer[0] in (3, 4)
        if answer[0] == 4:
            assert answer[2] in FRAME_ERRORS, f"{raw[:200]!r} broke the gateway: {answer}"
            assert _rows() == before, f"{raw[:200]!r} was refused but wrote rows"

    check()
