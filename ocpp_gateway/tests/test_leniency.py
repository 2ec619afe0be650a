"""What the gateway absorbs in session messages, and what it still refuses (pure functions, no socket;
the app has installed the relaxed 1.6 schemas)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from ocpp.exceptions import PropertyConstraintViolationError as PropertyConstraint
from ocpp.exceptions import ProtocolError
from ocpp.exceptions import TypeConstraintViolationError as TypeConstraint

from ocpp_gateway import leniency

AT = datetime(2026, 5, 1, 10, 0, 5, tzinfo=UTC)
T = "2026-05-01T10:00:00Z"
ENDED = {"eventType": "Ended", "timestamp": T, "seqNo": 3, "transactionInfo": {"transactionId": "T"}}


def accepted(version: str, action: str, payload: dict, lenient: bool = False) -> leniency.Accepted | None:
    return leniency.accepted(ocpp_version=version, action=action, payload=payload, lenient=lenient, received_at=AT)


def test_a_valid_message_and_a_strict_charger_s_other_messages_are_left_to_the_package():
    assert accepted("1.6", "StopTransaction", {"transactionId": 1, "meterStop": 5, "timestamp": T}) is None
    assert accepted("1.6", "BootNotification", {"chargePointVendor": "V" * 30, "chargePointModel": "M"}) is None


def test_numbers_as_strings_and_back_are_converted_and_each_kind_is_recorded_once():
    values = [{"value": 1}, {"value": 2.5}, {"value": "3"}]
    payload = {"connectorId": "2", "meterValue": [{"timestamp": T, "sampledValue": values}]}
    result = accepted("1.6", "MeterValues", payload)
    assert result is not None
    converted = [{"value": "1"}, {"value": "2.5"}, {"value": "3"}]
    assert result.payload == {"connectorId": 2, "meterValue": [{"timestamp": T, "sampledValue": converted}]}
    assert [(v.path, v.validator, v.value) for v in result.violations] == [
        ("connectorId", "type", "2"),
        ("meterValue/0/sampledValue/0/value", "type", 1),
    ]


def test_missing_fields_with_a_safe_default_are_filled_or_left_out():
    token = {"idToken": "TAG"}  # no type
    payload = {**ENDED, "idToken": token, "meterValue": [{"sampledValue": [{"value": 5}]}]}
    result = accepted("2.0.1", "TransactionEvent", payload)
    assert result is not None
    assert "triggerReason" not in result.payload and result.payload["idToken"] == {"idToken": "TAG"}
    assert result.payload["meterValue"][0]["timestamp"] == "2026-05-01T10:00:05.000Z"
    assert {(v.path, v.validator) for v in result.violations} == {
        ("triggerReason", "required"),
        ("idToken/type", "required"),
        ("meterValue/0/timestamp", "required"),
    }


def test_strings_are_kept_as_sent_up_to_what_the_csms_stores():
    long_id, long_reason = "T" * 40, "R" * 40
    info = {"transactionId": long_id, "stoppedReason": long_reason}
    payload = {**ENDED, "triggerReason": "Trigger", "transactionInfo": info}
    result = accepted("2.0.1", "TransactionEvent", payload)
    assert result is not None
    kept = result.payload["transactionInfo"]
    assert kept["stoppedReason"] == "R" * 32
    # an identifier keeps a digest of the whole: 27 characters, "~", 8 hex digits
    assert len(kept["transactionId"]) == 36 and kept["transactionId"].startswith("T" * 27 + "~")
    stop = {"transactionId": 1, "meterStop": 5, "timestamp": T, "idTag": "X" * 50}
    assert accepted("1.6", "StopTransaction", stop).payload["idTag"] == "X" * 50  # the services store 36


@pytest.mark.parametrize(
    ("version", "action", "payload", "refusal"),
    [
        ("1.6", "StopTransaction", {"meterStop": 5, "timestamp": T, "idTag": "X" * 21}, ProtocolError),
        ("1.6", "StopTransaction", {"transactionId": 1, "meterStop": "lots", "timestamp": T}, TypeConstraint),
        ("1.6", "StopTransaction", {"transactionId": True, "meterStop": 5, "timestamp": T}, TypeConstraint),
        (
            "1.6",
            "StartTransaction",
            {"connectorId": None, "idTag": "A", "meterStart": 0, "timestamp": T},
            ProtocolError,
        ),
        ("2.0.1", "TransactionEvent", {**ENDED, "triggerReason": "Trigger", "eventType": "Paused"}, PropertyConstraint),
        (
            "2.0.1",
            "MeterValues",
            {"evseId": {"id": 1}, "meterValue": [{"timestamp": T, "sampledValue": [{"value": 1}]}]},
            TypeConstraint,
        ),
    ],
)
def test_what_the_csms_cannot_apply_is_refused_with_the_code_of_that_violation(version, action, payload, refusal):
    with pytest.raises(refusal):
        accepted(version, action, payload)


def test_optional_fields_sent_null_and_fields_the_schema_does_not_name_are_left_out():
    """Were refused (TypeConstraintViolation, FormatViolation): a stop retried for ever, its session open."""
    sampled = {"value": 3000, "context": "Transaction.End", "phase": None, "unitOfMeasure": {"unit": "Wh", "x": 1}}
    payload = {
        **ENDED,
        "triggerReason": "EVDeparted",
        "offline": None,
        "reservationId": None,
        "vendorExtra": {"a": 1},
        "transactionInfo": {"transactionId": "T", "chargingState": None},
        "meterValue": [{"timestamp": None, "sampledValue": [sampled]}],
    }
    result = accepted("2.0.1", "TransactionEvent", payload)
    assert result is not None
    assert result.payload == {
        **ENDED,
        "triggerReason": "EVDeparted",
        "transactionInfo": {"transactionId": "T"},
        "meterValue": [
            {
                "timestamp": "2026-05-01T10:00:05.000Z",  # a required field's default, as when it is missing
                "sampledValue": [{"value": 3000, "context": "Transaction.End", "unitOfMeasure": {"unit": "Wh"}}],
            }
        ],
    }
    assert {(v.path, v.validator) for v in result.violations} >= {
        ("offline", "type"),
        ("vendorExtra", "additionalProperties"),
        ("meterValue/0/sampledValue/0/unitOfMeasure/x", "additionalProperties"),
    }
    stop = {"transactionId": 1, "meterStop": 5, "timestamp": T, "reason": None, "vendorField": "v"}
    assert accepted("1.6", "StopTransaction", stop).payload == {"transactionId": 1, "meterStop": 5, "timestamp": T}


def test_a_sampled_value_that_is_no_number_is_kept_raw_and_the_message_applies():
    """A 2.0.1 Ended whose End reading was "abc" was refused (TypeConstraintViolation) for ever."""
    values = [{"value": "abc", "context": "Transaction.End"}, {"value": "12.5"}, {"value": None}]
    result = accepted("2.0.1", "TransactionEvent", {**ENDED, "meterValue": [{"timestamp": T, "sampledValue": values}]})
    assert result is not None
    assert result.payload["meterValue"][0]["sampledValue"] == [
        {"value": "abc", "context": "Transaction.End"},
        {"value": 12.5},
        {"value": "null"},
    ]
    stop = {
        "transactionId": 1,
        "meterStop": 5,
        "timestamp": T,
        "transactionData": [{"timestamp": T, "sampledValue": [{"value": None}]}],
    }
    assert accepted("1.6", "StopTransaction", stop).payload["transactionData"][0]["sampledValue"] == [{"value": "null"}]


def test_thousands_of_violations_are_mended_each_and_recorded_once_leaving_the_payload_as_sent():
    samples = [{"value": str(n), "measurand": f"X{n}"} for n in range(3000)]
    payload = {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": samples}]}
    sent = copy.deepcopy(payload)
    result = accepted("2.0.1", "MeterValues", payload)
    assert result is not None and payload == sent
    mended = result.payload["meterValue"][0]["sampledValue"]
    assert mended == [{"value": n, "measurand": f"X{n}"} for n in range(3000)]
    assert [(v.path, v.validator, v.value) for v in result.violations] == [
        ("meterValue/0/sampledValue/0/value", "type", "0"),
        ("meterValue/0/sampledValue/0/measurand", "enum", "X0"),
    ]


def test_a_payload_with_nothing_to_cut_is_kept_as_it_is_and_one_cut_shares_the_rest():
    boot = {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.0"}
    assert leniency.truncated(boot, ocpp_version="1.6", action="BootNotification") is boot
    info = {"transactionId": "T" * 40, "chargingState": "Charging"}
    event = {**ENDED, "transactionInfo": info, "evse": {"id": 1}}
    cut = leniency.truncated(event, ocpp_version="2.0.1", action="TransactionEvent")
    assert cut["transactionInfo"]["transactionId"] == "T" * 27 + "~" + cut["transactionInfo"]["transactionId"][28:]
    assert event["transactionInfo"] is info and info["transactionId"] == "T" * 40
    assert cut["evse"] is event["evse"]


def test_a_lenient_model_s_16_data_transfer_data_that_is_no_string_is_handled_as_its_json_text():
    transfer = {"vendorId": "com.acme", "messageId": "state"}
    for data, text in (({"soc": 80, "ids": [1, 2]}, '{"soc": 80, "ids": [1, 2]}'), ([1, "x"], '[1, "x"]'), (17, "17")):
        kept = accepted("1.6", "DataTransfer", {**transfer, "data": data}, lenient=True)
        assert kept is not None and kept.payload == {**transfer, "data": text}
        assert [(v.path, v.validator) for v in kept.violations] == [("data", "type")]
        assert accepted("1.6", "DataTransfer", {**transfer, "data": data}) is None  # strict: the package refuses it
    kept = accepted("1.6", "DataTransfer", {**transfer, "data": None}, lenient=True)
    assert kept is not None and kept.payload == transfer
    # elsewhere a value that is no string is still refused: vendorId is no vendor text
    assert accepted("1.6", "DataTransfer", {"vendorId": 7}, lenient=True) is None
