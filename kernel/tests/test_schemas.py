"""The compiled check of a command's payload answers as the Decimal validator does."""

from __future__ import annotations

from typing import Any

import pytest

from kernel import ocpp_package, schemas

PAYLOADS: list[Any] = [
    {},
    {"type": "Soft"},
    {"type": "Sideways"},
    {"type": "Soft", "extra": 1},
    {"type": 1},
    {"key": "HeartbeatInterval", "value": "60"},
    {"key": "x" * 51, "value": "60"},
    {"requestedMessage": "BootNotification"},
    {"requestedMessage": "BootNotification", "connectorId": -1},
    {"idTag": "TAG-1", "connectorId": 1},
    {"idTag": "T" * 21},
    {"connectorId": 1, "type": "Inoperative"},
    {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0}},
    {"requestStartTransaction": 1, "idToken": {"idToken": "T", "type": "ISO14443"}, "remoteStartId": 1},
    {"idToken": {"idToken": "T", "type": "ISO14443"}, "remoteStartId": 1},
    {"idToken": {"idToken": "T", "type": "Nonsense"}, "remoteStartId": 1},
    {"transactionId": "abc"},
    {"evseId": 1, "connectorId": 2, "reservationId": 3},
    {"location": "https://example.com/x", "retrieveDateTime": "not a date"},
]


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
def test_the_compiled_check_finds_valid_only_what_the_decimal_validator_finds_valid(ocpp_version, tx_default_profile):
    compared = 0
    for action in ocpp_package.request_actions(ocpp_version):
        name = ocpp_package.request_schema_name(ocpp_version, action)
        assert schemas._compiled(ocpp_version, name) is not None, name
        for payload in [*PAYLOADS, tx_default_profile(16)]:
            at_once = schemas._valid_at_once(ocpp_version, name, payload)
            errors = schemas._errors(schemas._validator(ocpp_version, name), payload)
            assert at_once == (not errors), (action, payload, errors)
            compared += 1
    assert compared > 100


def test_a_payload_with_a_float_goes_to_the_decimal_validator(tx_default_profile):
    # 10.1 is a multiple of 0.1 in Decimals, not in floats: the Decimal validator accepts it.
    payload = tx_default_profile(10.1)
    assert not schemas._valid_at_once("1.6", "SetChargingProfile", payload)
    assert schemas.request_errors(ocpp_version="1.6", action="SetChargingProfile", payload=payload) == []


ANSWERS: list[Any] = [
    {},
    {"status": "Accepted"},
    {"status": "Rejected"},
    {"status": "Sideways"},
    {"status": "Accepted", "extra": 1},
    {"status": 1},
    {"status": "Accepted", "statusInfo": {"reasonCode": "NoError"}},
    {"status": "Accepted", "statusInfo": {"reasonCode": "x" * 21}},
    {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}], "unknownKey": []},
    {"configurationKey": [{"key": "HeartbeatInterval"}]},
    {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "C"}, "variable": {"name": "V"}}]},
    {"status": "Accepted", "fileName": "diag.zip"},
    {"status": "Accepted", "data": "x"},
]


@pytest.mark.parametrize("ocpp_version", ["1.6", "2.0.1"])
def test_the_compiled_check_of_an_answer_finds_valid_only_what_the_decimal_validator_finds_valid(ocpp_version):
    compared = valid = 0
    for action in ocpp_package.request_actions(ocpp_version):
        name = f"{action}Response"
        assert schemas._compiled(ocpp_version, name) is not None, name
        for payload in ANSWERS:
            at_once = schemas._valid_at_once(ocpp_version, name, payload)
            errors = schemas._errors(schemas._validator(ocpp_version, name), payload)
            assert at_once == (not errors), (action, payload, errors)
            compared, valid = compared + 1, valid + at_once
    assert compared > 100 and valid > 10


def test_a_valid_answer_is_checked_without_the_decimal_validator(monkeypatch):
    def unused(*args: Any) -> list[Any]:
        raise AssertionError("the Decimal validator checked a valid answer")

    monkeypatch.setattr(schemas, "_errors", unused)
    assert schemas.response_errors(ocpp_version="1.6", action="Reset", payload={"status": "Accepted"}) == []
    monkeypatch.undo()
    errors = schemas.response_errors(ocpp_version="1.6", action="Reset", payload={"status": "Sideways"})
    assert [error.validator for error in errors] == ["enum"]
