"""OCPP 2.0.1 Remote Control block (F): the warnings about a RequestStartTransaction or
RequestStopTransaction before it is sent, and the charging profile an accepted RequestStartTransaction
installs (a session it starts arrives as TransactionEvent, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from charging.services import charging_profiles
from commands.models import Command
from configuration import selectors as configuration_selectors
from kernel.timestamps import utc_now
from ocpp_gateway.command_routes import answer, answer_accepted, answering_charge_point, request_check
from ocpp_gateway.v201.smart_charging import profile_target


class RemoteControlHandlers:
    @staticmethod
    @request_check(Action.request_start_transaction)
    def request_start_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        token = body["id_token"]
        return selectors.remote_start_token_warnings(
            id_tag=token["id_token"],
            token_type=str(token.get("type", "")),
            charge_point_id=charge_point.charge_point_id,
            evse_id=body.get("evse_id"),
        )

    @staticmethod
    @request_check(Action.request_stop_transaction)
    def request_stop_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.request_stop_warnings(charge_point=charge_point, transaction_id=body["transaction_id"])

    @staticmethod
    @answer(Action.request_start_transaction)
    def after_request_start(command: Command) -> None:
        """Its TxProfile is installed on its EVSE when accepted (F01.FR.08: the station uses it for
        the transaction it starts), awaited as long as its TxCtrlr.EVConnectionTimeOut. Without
        an EVSE the station chooses one: not recorded."""
        body = command.request
        if "charging_profile" in body and "evse_id" in body:
            charge_point, accepted = answering_charge_point(command), answer_accepted(command)
            awaited_until = None
            if accepted:  # a refused start awaits no EV: its profile is not installed
                timeout_s = configuration_selectors.device_model_limit(
                    charge_point=charge_point, component="TxCtrlr", variable="EVConnectionTimeOut"
                )
                awaited_until = charging_profiles.remote_start_awaited_until(
                    accepted_at=command.completed_at or utc_now(), timeout_s=timeout_s
                )
            charging_profiles.charging_profile_set_follow(
                charge_point=charge_point,
                accepted=accepted,
                target=profile_target(body),
                awaited_until=awaited_until,
            )
