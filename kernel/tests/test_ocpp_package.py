"""The ``ocpp`` package's internals are as kernel/ocpp_package.py assumes.

When one of these fails after an upgrade of the package, re-read the package where the failing
test points, adapt ocpp_package.py (and only it), and move the pin in requirements.txt.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import re
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from ocpp import charge_point, messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as V16ChargePoint
from ocpp.v16 import call_result

from kernel import ocpp_package, payload_case

_PIN = re.compile(r"^ocpp==(\S+)$", re.MULTILINE)


class Recording:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


class Handlers:
    """The same handlers, routed by the package (per instance) and by RoutedChargePoint (per class)."""

    after_runs: list[Any]

    @on("Heartbeat")
    async def on_heartbeat(self, call_unique_id: str, **_: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=f"2026-01-01T00:00:00Z/{call_unique_id}")

    @on("StatusNotification")
    def on_status_notification(self, **payload: Any) -> call_result.StatusNotification:
        if payload["error_code"] == "OtherError":
            raise ValueError("the handler failed")
        return call_result.StatusNotification()

    @after("StatusNotification")
    async def after_status_notification(self, connector_id: int, **_: Any) -> None:
        self.after_runs.append(connector_id)

    @on("DataTransfer", skip_schema_validation=True)
    def on_data_transfer(self, **payload: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="Accepted", data=str(sorted(payload)))


class PackageRouted(Handlers, V16ChargePoint):
    pass


class ClassRouted(Handlers, ocpp_package.RoutedChargePoint, V16ChargePoint):
    pass


def _status(error_code: str = "NoError", **extra: Any) -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": error_code, "status": "Available", **extra}


CALLS = [
    Call("h1", "Heartbeat", {}),
    Call("s1", "StatusNotification", _status()),
    Call("s2", "StatusNotification", _status("OtherError")),
    Call("d1", "DataTransfer", {"vendorId": 7, "unknownField": True}),
]


async def _outcome(cls: type, msg: Call, **dispatch: Any) -> tuple[list[Any], Any, list[Any]]:
    connection = Recording()
    router = cls("CP-1", connection) if cls is PackageRouted else cls("CP-1", connection, logger=charge_point.LOGGER)
    router.after_runs = []
    try:
        await (router.call_dispatched(msg, **dispatch) if dispatch else router._handle_call(msg))
        error = None
    except OCPPError as raised:
        error = (type(raised), raised.code, str(raised.details.get("cause")))
    await asyncio.sleep(0)  # let an @after hook run
    return connection.sent, error, router.after_runs


def test_the_pinned_release_is_the_one_installed():
    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
    assert version("ocpp") == _PIN.search(requirements).group(1) == "2.1.0", "re-check ocpp_package.py, then the pin"


@pytest.mark.parametrize("msg", CALLS, ids=lambda msg: msg.unique_id)
async def test_a_class_route_map_answers_as_the_package_answers(msg):
    package = await _outcome(PackageRouted, Call(msg.unique_id, msg.action, dict(msg.payload)))
    routed = await _outcome(ClassRouted, Call(msg.unique_id, msg.action, dict(msg.payload)))
    assert routed == package
    assert package[0], "every CALL here is answered"


async def test_an_invalid_request_is_refused_as_the_package_refuses_it():
    invalid = {"connectorId": "one", "errorCode": "NoError", "status": "Available"}
    package = await _outcome(PackageRouted, Call("s3", "StatusNotification", dict(invalid)))
    routed = await _outcome(ClassRouted, Call("s3", "StatusNotification", dict(invalid)))
    assert routed[0] == package[0] == [] and routed[2] == package[2]
    assert routed[1][:2] == package[1][:2] and package[1][1] == "TypeConstraintViolation"
    # the same cause, its value named in JSON terms (the package's is Python's repr)
    assert (package[1][2], routed[1][2]) == ("'one' is not of type 'integer'", "\"one\" is not of type 'integer'")


async def test_an_unvalidated_dispatch_runs_the_handler_of_an_invalid_request():
    sent, error, after_runs = await _outcome(
        ClassRouted, Call("s4", "StatusNotification", {**_status(), "connectorId": "one"}), validated=False
    )
    assert (error, after_runs) == (None, ["one"])
    assert sent == [[3, "s4", {}]]


def test_the_route_map_is_built_once_per_class_and_read_only():
    first = ClassRouted("A", Recording(), logger=charge_point.LOGGER)
    second = ClassRouted("B", Recording(), logger=charge_point.LOGGER)
    assert first.route_map is second.route_map is ClassRouted.route_map
    assert set(vars(first)) == {"id", "_connection", "logger"}
    assert ClassRouted.route_map["DataTransfer"].validated is False
    assert ClassRouted.route_map["Heartbeat"].on_takes_unique_id is True
    with pytest.raises(TypeError):
        ClassRouted.route_map["Heartbeat"] = None


def test_an_after_hook_without_its_handler_is_refused_when_the_class_is_made():
    with pytest.raises(TypeError, match="Reset"):

        class Broken(ocpp_package.RoutedChargePoint, V16ChargePoint):
            @after("Reset")
            def after_reset(self, **_: Any) -> None: ...


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
def test_request_validators_are_cached_under_the_keys_the_package_reads(ocpp_version):
    actions = ocpp_package.request_actions(ocpp_version)
    assert {"Authorize", "BootNotification", "Heartbeat"} <= set(actions)
    for action in actions:
        key = ocpp_package.request_validator_key(ocpp_version, action)
        assert messages.get_validator(MessageType.Call, action, ocpp_version) is ocpp_package.validator_cache()[key]
        assert ocpp_package.schema_path(ocpp_version, ocpp_package.request_schema_name(ocpp_version, action)).is_file()
    assert ocpp_package.validator_cache() is messages._validators
    assert messages.ASYNC_VALIDATION is False  # validation_inline(), at start


def _charging_profile(limit: float) -> dict[str, Any]:
    schedule = {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule,
    }
    return {"connectorId": 1, "csChargingProfiles": profile}


@pytest.mark.parametrize("action", sorted(ocpp_package.DECIMAL_CALLS_16))
async def test_the_package_reads_these_16_calls_with_decimal_numbers(action):
    payload = _charging_profile(10.1)
    if action == "RemoteStartTransaction":
        payload = {"idTag": "T", "chargingProfile": payload["csChargingProfiles"]}
    msg = Call("c1", action, payload)
    await messages.validate_payload(msg, "1.6")
    assert isinstance(json.loads(json.dumps(msg.payload, default=str)), dict)
    profile = msg.payload.get("csChargingProfiles") or msg.payload["chargingProfile"]
    assert profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == decimal.Decimal("10.1")


async def test_a_16_call_read_with_decimals_is_checked_and_converted_by_the_package():
    msg = Call("p1", "SetChargingProfile", _charging_profile(10.1))
    assert await ocpp_package.request_refusal(msg, "1.6") is None
    [period] = msg.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"]
    assert period["limit"] == decimal.Decimal("10.1")
    refusal = await ocpp_package.request_refusal(Call("p2", "SetChargingProfile", _charging_profile(10.15)), "1.6")
    assert refusal is not None and refusal.code == "FormatViolation" and "ocpp_message" not in refusal.details


async def test_a_refusal_is_jsonschemas_best_match_described_in_json_in_16():
    async def refusal(**status: Any) -> tuple[str, str] | None:
        payload = {"connectorId": 1, "errorCode": "NoError", "status": "Available", **status}
        refused = await ocpp_package.request_refusal(Call("s1", "StatusNotification", payload), "1.6")
        return None if refused is None else (refused.code, refused.details["cause"])

    assert await refusal() is None
    assert await refusal(connectorId=1.5) == ("TypeConstraintViolation", "1.5 is not of type 'integer'")
    code, cause = await refusal(connectorId=1.5, status="Sleeping")  # "status" is the greater path of the two
    assert code == "PropertyConstraintViolation" and cause.startswith('"Sleeping" is not one of')


def test_the_package_looks_its_case_conversions_up_at_each_use():
    for method in (charge_point.ChargePoint._handle_call, charge_point.ChargePoint.call):
        assert {"camel_to_snake_case", "snake_to_camel_case"} <= set(method.__code__.co_names)
    assert charge_point.camel_to_snake_case is payload_case.snake_case  # case_conversions_install(), at start
    assert charge_point.snake_to_camel_case is payload_case.camel_case
    assert ocpp_package.package_snake_case({"idTag": 1}) == {"id_tag": 1}


@pytest.mark.parametrize(
    ("message_type_id", "action", "ocpp_version"),
    [
        (MessageType.Call, "Authorize", "1.6"),
        (MessageType.CallResult, "Authorize", "1.6"),
        (MessageType.Call, "Authorize", "2.0.1"),
        (MessageType.CallResult, "BootNotification", "2.0.1"),
    ],
)
def test_the_validator_key_is_the_one_the_package_reads(message_type_id, action, ocpp_version):
    validator = messages.get_validator(message_type_id, action, ocpp_version)
    assert (
        ocpp_package.validator_cache()[ocpp_package.validator_key(message_type_id, action, ocpp_version)] is validator
    )


def test_a_valid_payload_is_valid_at_once_and_anything_else_goes_to_the_package():
    assert ocpp_package.valid_at_once(Call("a", "Authorize", {"idTag": "T"}), "1.6")
    assert not ocpp_package.valid_at_once(Call("a", "Authorize", {"idTag": 7}), "1.6")
    assert not ocpp_package.valid_at_once(Call("p", "SetChargingProfile", _charging_profile(10.1)), "1.6")


@dataclass
class _Inner:
    status: str
    expiry_date: str | None = None


@dataclass
class _Answer:
    id_token_info: _Inner
    list_of: list[Any] = field(default_factory=list)
    custom_data: dict[str, Any] | None = None
    none: None = None


ANSWERS = [
    call_result.Heartbeat(current_time="2026-01-01T00:00:00Z"),
    call_result.StatusNotification(),
    call_result.Authorize(id_tag_info={"status": "Accepted", "expiryDate": None}),
    _Answer(
        id_token_info=_Inner("Accepted"),
        list_of=[_Inner("Blocked", "x"), None, {"a": None, "b": [1, None]}],
        custom_data={"vendorId": "V", "some_key": None},
    ),
]


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda answer: type(answer).__name__)
def test_an_answer_is_serialized_as_the_package_serializes_it(answer):
    package = charge_point.remove_nones(charge_point.serialize_as_dict(answer))
    assert ocpp_package.answer_payload(answer) == package


def test_an_answer_holding_a_tuple_is_serialized_by_the_package():
    answer = _Answer(id_token_info=_Inner("Accepted"), list_of=[(1, None)])
    assert ocpp_package.answer_payload(answer) == charge_point.remove_nones(charge_point.serialize_as_dict(answer))


@pytest.mark.parametrize(
    "message",
    [
        Call("c1", "Reset", {"type": "Soft", "n": decimal.Decimal("1.5")}),
        messages.CallResult("c2", {"status": "Accepted", "s": "é\u2028"}),
        messages.CallError("c3", "FormatViolation", "bad", {"cause": "x"}),
    ],
    ids=lambda message: type(message).__name__,
)
def test_a_frame_is_the_text_the_package_writes(message):
    assert ocpp_package.frame_text(message) == message.to_json()


async def test_a_handler_s_failure_is_logged_without_the_call_s_payload(caplog):
    """The line named the whole CALL, payload and all: a frame carrying a secret (a 2.0.1 NotifyReport
    with the charger's BasicAuthPassword, which the message log redacts) put it in the log. It names
    the CALL's unique id and action; the frame is in the message log."""
    failing = Call("s9", "StatusNotification", _status("OtherError", info="SecretPassword-123"))
    sent, _, _ = await _outcome(ClassRouted, failing)
    assert sent[0][:3] == [4, "s9", "InternalError"]
    (line,) = [record for record in caplog.records if record.exc_info]
    assert line.getMessage() == (
        "Error while handling request 's9' (StatusNotification); its frame is in the message log"
    )
    assert "SecretPassword" not in caplog.text
