from __future__ import annotations

from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call_result as result201


def answering_charger(base: type, answers: dict[str, Any]) -> type:
    """An ``ocpp`` ChargePoint that answers each action with a fixed response and records what it got."""
    attributes: dict[str, Any] = {}
    for action, answer in answers.items():

        def handler(self: Any, _action: str = action, _answer: Any = answer, **payload: Any) -> Any:
            self.received.append((_action, payload))
            return _answer

        handler.__name__ = f"on_{action}"
        attributes[handler.__name__] = on(action)(handler)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)  # type: ignore[misc]  # the base class's, called unbound
        self.received = []

    attributes["__init__"] = init
    return type(f"Answering{base.__name__}", (base,), attributes)


V16_ANSWERS = {
    "RemoteStartTransaction": result16.RemoteStartTransaction(status="Accepted"),
    "RemoteStopTransaction": result16.RemoteStopTransaction(status="Accepted"),
    "ChangeAvailability": result16.ChangeAvailability(status="Scheduled"),
    "SetChargingProfile": result16.SetChargingProfile(status="Accepted"),
    "ClearChargingProfile": result16.ClearChargingProfile(status="Accepted"),
    "Reset": result16.Reset(status="Accepted"),
    "TriggerMessage": result16.TriggerMessage(status="Accepted"),
    "ReserveNow": result16.ReserveNow(status="Occupied"),
    "CancelReservation": result16.CancelReservation(status="Rejected"),
    "ChangeConfiguration": result16.ChangeConfiguration(status="Accepted"),
    "GetConfiguration": result16.GetConfiguration(
        configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
    ),
}

V201_ANSWERS = {
    "RequestStartTransaction": result201.RequestStartTransaction(status="Accepted"),
    "RequestStopTransaction": result201.RequestStopTransaction(status="Accepted"),
    "ChangeAvailability": result201.ChangeAvailability(status="Accepted"),
    "SetChargingProfile": result201.SetChargingProfile(status="Accepted"),
    "ClearChargingProfile": result201.ClearChargingProfile(status="Unknown"),
    "Reset": result201.Reset(status="Scheduled"),
    "TriggerMessage": result201.TriggerMessage(status="Accepted"),
    "ReserveNow": result201.ReserveNow(status="Accepted"),
    "CancelReservation": result201.CancelReservation(status="Accepted"),
    "GetVariables": result201.GetVariables(
        get_variable_result=[
            {
                "attribute_status": "Accepted",
                "attribute_value": "60",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    ),
    "SetVariables": result201.SetVariables(
        set_variable_result=[
            {
                "attribute_status": "Accepted",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    ),
}

V16Charger = answering_charger(V16Client, V16_ANSWERS)
V201Charger = answering_charger(V201Client, V201_ANSWERS)


@pytest.fixture(scope="session")
def api_daphne(daphne_factory):
    """A second daphne process: commands are posted here while chargers sit on ``daphne``."""
    return daphne_factory(CSMS_OCPP_CALL_TIMEOUT="3")
