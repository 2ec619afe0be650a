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
