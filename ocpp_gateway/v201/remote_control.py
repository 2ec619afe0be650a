"""OCPP 2.0.1 Remote Control block (F): the warnings about a RequestStartTransaction before it is
sent (a session it starts arrives as TransactionEvent, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from ocpp_gateway.command_routes import request_check


class RemoteControlHandlers:
    @staticmethod
    @request_check(Action.request_start_transaction)
    def request_start_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        token = body["id_token"]
        return selectors.remote_start_token_warnings(id_tag=token["id_token"], token_type=str(token.get("type", "")))
