"""Compiled schema validation answers every payload exactly as the ocpp package's validators do."""

from __future__ import annotations

import decimal

import pytest
from jsonschema.exceptions import ValidationError
from ocpp import messages
from ocpp.messages import MessageType

from ocpp_gateway.compiled_schemas import CompiledValidator
from ocpp_gateway.frames import outgoing_frame

STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


def validator(action: str, version: str = "1.6") -> CompiledValidator:
    found = messages.get_validator(MessageType.Call, action, version)
    assert isinstance(found, CompiledValidator)
    return found


def test_every_cached_validator_is_compiled_and_validates_inline():
    assert messages._validators and all(isinstance(v, CompiledValidator) for v in messages._validators.values())
    assert messages.ASYNC_VALIDATION is False


@pytest.mark.parametrize(
    ("payload", "keyword"),
    [
        ({**STATUS, "connectorId": "1"}, "type"),
        ({**STATUS, "surplus": 1}, "additionalProperties"),
        ({"connectorId": 1, "status": "Available"}, "required"),
        ({**STATUS, "info": "x" * 51}, "maxLength"),
        ({**STATUS, "status": "Sleeping"}, "enum"),
        ({**STATUS, "connectorId": -1}, "minimum"),  # relaxed_schemas.py bounds connector ids
        ({**STATUS, "connectorId": 2**70}, "maximum"),  # beyond what the compiled form converts
    ],
)
def test_an_invalid_payload_raises_the_packages_own_error(payload, keyword):
    compiled = validator("StatusNotification")
    with pytest.raises(ValidationError) as raised:
        compiled.validate(payload)
    assert raised.value.validator == keyword
    assert [e.validator for e in compiled.iter_errors(payload)] == [
        e.validator for e in compiled.original.iter_errors(payload)
    ]
    assert not compiled.is_valid(payload)


def test_a_valid_payload_passes_and_has_no_errors():
    compiled = validator("StatusNotification")
    compiled.validate(STATUS)
    assert list(compiled.iter_errors(STATUS)) == [] and compiled.is_valid(STATUS)


def test_the_relaxed_schema_is_the_one_compiled():
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 10.5, "timestamp": "2026-01-01T00:00:00Z"}
    validator("StartTransaction").validate(start)  # meterStart is a number in relaxed_schemas.py


def test_decimal_payloads_of_the_decimal_parse_mode_validate(tx_default_profile):
    profile = tx_default_profile(decimal.Decimal("21.4"))
    validator("SetChargingProfile").validate(profile)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('[3,"id-1",{"status":"Accepted"}]', (3, "id-1", None)),
        ('[3,"a\\"b",{}]', (3, 'a"b', None)),
        ('[4,"id-2","FormationViolation","bad",{}]', (4, "id-2", [4, "id-2", "FormationViolation", "bad", {}])),
        ('[2,"id-3","Reset",{"type":"Soft"}]', (2, "id-3", [2, "id-3", "Reset", {"type": "Soft"}])),
        ("[3, 7, {}]", (3, "7", [3, 7, {}])),
    ],
)
def test_an_outgoing_frame_is_read_without_decoding_a_callresult(frame, expected):
    assert outgoing_frame(frame) == expected
