"""OCPP 1.6 remote control (Core profile, as 2.0.1's Remote Control block): the warnings about a
RemoteStartTransaction or RemoteStopTransaction before it is sent (a session it starts arrives as
StartTransaction, one it stops as StopTransaction, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from ocpp_gateway.command_routes import request_check


class RemoteControlHandlers:
    @staticmethod
    @request_check(Action.remote_start_transaction)
    def remote_start_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.remote_start_token_warnings(id_tag=body["id_tag"], token_type="")

    @staticmethod
    @request_check(Action.remote_stop_transaction)
    def remote_stop_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.remote_stop_warnings(charge_point=charge_point, transaction_id=body["transaction_id"])
