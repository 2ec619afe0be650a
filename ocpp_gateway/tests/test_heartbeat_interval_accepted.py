"""The interval a charger takes from a CSMS push it answered (``heartbeat_interval_accepted``)."""

from __future__ import annotations

from typing import Any

import pytest

from ocpp_gateway.heartbeats import heartbeat_interval_accepted

_HB = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


@pytest.mark.parametrize(
    ("action", "payload", "answer", "taken"),
    [
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}, {"status": "Accepted"}, 30),
        ("ChangeConfiguration", {"key": "heartbeatinterval", "value": "30"}, {"status": "Accepted"}, 30),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "30"}, {"status": "RebootRequired"}, None),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "0"}, {"status": "Accepted"}, None),
        ("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}, {"status": "Accepted"}, None),
        (
            "SetVariables",
            {"setVariableData": [{**_HB, "attributeValue": "30"}]},
            {"setVariableResult": [{**_HB, "attributeStatus": "Accepted"}]},
            30,
        ),
        (
            "SetVariables",
            {"setVariableData": [{**_HB, "attributeValue": "30"}]},
            {"setVariableResult": [{**_HB, "attributeStatus": "RebootRequired"}]},
            None,
        ),
        (
            "SetVariables",
            {"setVariableData": [{**_HB, "attributeValue": "30", "attributeType": "Target"}]},
            {"setVariableResult": [{**_HB, "attributeStatus": "Accepted", "attributeType": "Target"}]},
            None,
        ),
        ("Reset", {"type": "Soft"}, {"status": "Accepted"}, None),
    ],
)
def test_only_an_accepted_push_of_the_heartbeat_interval_is_taken(
    action: str, payload: dict[str, Any], answer: dict[str, Any], taken: int | None
) -> None:
    assert heartbeat_interval_accepted(action, payload, answer) == taken
