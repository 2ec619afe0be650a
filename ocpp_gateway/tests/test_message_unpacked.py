"""``router.message_unpacked`` reads every frame as the package's ``unpack`` reads it."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp.exceptions import FormatViolationError, OCPPError, ProtocolError
from ocpp.messages import unpack

from ocpp_gateway.router import message_unpacked

FRAMES = [
    '[2,"1","Heartbeat",{}]',
    '[2, "1", "Heartbeat", {}]',
    ' [2,"1","Heartbeat",{}]',
    '[2,"1","Heartbeat",{}] ',
    '[2,"1","Heartbeat",{}]\n',
    '[2.0,"1","Heartbeat",{}]',
    '[true,"1","Heartbeat",{}]',
    '[2,1,"Heartbeat",{"a":[1,2.5,null,true,"\\u00e9"]}]',
    '[2,"1","Heartbeat"]',
    '[3,"1",{"currentTime":"2026-01-01T00:00:00Z"}]',
    '[4,"1","NotImplemented","",{}]',
    '[5,"1","Heartbeat",{}]',
    "[]",
    "{}",
    '"text"',
    "",
    "[2,",
    '[2,"1","Heartbeat",{}]]',
    '[2,"1","Heartbeat",{}][1]',
    '[2,"1","Heartbeat",{"n":NaN}]',
    '[2,"1","Heartbeat",{"n":' + "9" * 5000 + "}]",
    "[" * 100_000 + "]" * 100_000,
    '\ufeff[2,"1","Heartbeat",{}]',
]


def _read(reader: Any, raw: str) -> Any:
    try:
        msg = reader(raw)
    except (OCPPError, ValueError, RecursionError) as error:
        return type(error), str(error)
    return type(msg), vars(msg)


@pytest.mark.parametrize("raw", FRAMES, ids=lambda raw: raw[:30])
def test_a_frame_is_read_as_the_package_reads_it(raw):
    assert _read(message_unpacked, raw) == _read(unpack, raw)


@pytest.mark.parametrize("raw", ['[2,"1","Heartbeat",[]]', '[2,"1","Heartbeat",null]', '[2,"1","Heartbeat",7]'])
def test_a_call_whose_payload_is_not_an_object_is_a_format_violation(raw):
    """The package reads it as a CALL, then its validation called it a TypeConstraintViolation."""
    assert _read(message_unpacked, raw)[0] is FormatViolationError


@pytest.mark.parametrize("raw", ['[2,"1","Heartbeat",{},5]', '[2,"1","Heartbeat",{},{},{}]'])
def test_a_call_of_more_than_four_elements_is_a_protocol_error_that_says_so(raw):
    """The package's cause was "Message is missing elements." (its one cause for a wrong length)."""
    error_type, text = _read(message_unpacked, raw)
    assert error_type is ProtocolError
    assert "A CALL has 4 elements (type, id, action, payload), this one" in text and "missing" not in text
