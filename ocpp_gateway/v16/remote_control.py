"""OCPP 1.6 remote control (Core profile, as 2.0.1's Remote Control block): the warnings about a
RemoteStartTransaction or RemoteStopTransaction before it is sent, and the charging profile an
accepted RemoteStartTransaction installs (a session it starts arrives as StartTransaction, one it
stops as StopTransaction, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from charging.services import charging_profiles
from commands.models import Command
from configuration import selectors as configuration_selectors
from kernel.timestamps import utc_now
from ocpp_gateway.command_routes import answer, answer_accepted, answering_charge_point, request_check
from ocpp_gateway.v16.smart_charging import profile_target


class RemoteControlHandlers:
    @staticmethod
    @request_check(Action.remote_start_transaction)
    def remote_start_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.remote_start_token_warnings(
            id_tag=body["id_tag"],
            token_type="",
            charge_point_id=charge_point.charge_point_id,
            connector_id=body.get("connector_id"),
        )

    @staticmethod
    @request_check(Action.remote_stop_transaction)
    def remote_stop_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.remote_stop_warnings(charge_point=charge_point, transaction_id=body["transaction_id"])

    @staticmethod
    @answer(Action.remote_start_transaction)
    def after_remote_start(command: Command) -> None:
        """Its TxProfile is installed on its connector when accepted (§5.11: the charger sets it for
        the transaction it starts), awaited as long as its ConnectionTimeOut (a standard configuration key).
        Without a connector the charger chooses one: not recorded."""
        body = command.request
        if "charging_profile" in body and "connector_id" in body:
            charge_point, accepted = answering_charge_point(command), answer_accepted(command)
            awaited_until = None
            if accepted:  # a refused start awaits no EV: its profile is not installed
                timeout_s = configuration_selectors.configuration_key_number(
                    charge_point=charge_point, key="ConnectionTimeOut"
                )
                awaited_until = charging_profiles.remote_start_awaited_until(
                    accepted_at=command.completed_at or utc_now(), timeout_s=timeout_s
                )
            charging_profiles.charging_profile_set_follow(
                charge_point=charge_point,
                accepted=accepted,
                target=profile_target(body, "charging_profile"),
                awaited_until=awaited_until,
            )
