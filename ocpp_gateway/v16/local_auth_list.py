"""OCPP 1.6 Local Auth List Management profile: the answers to SendLocalList and GetLocalListVersion
(the list answers Authorize offline; Authorize itself is in ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging.services import charger_state
from commands.models import Command
from configuration import selectors
from configuration.selectors import ListLimit
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point, request_check


class LocalAuthListHandlers:
    @staticmethod
    @request_check(Action.send_local_list)
    def send_local_list_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        """More entries than the charger's SendLocalListMaxLength, a list over its
        LocalAuthListMaxLength (OCPP 1.6 9.4): it answers Failed. A Differential entry without
        idTagInfo removes its tag."""
        return selectors.local_list_request_warnings(
            charge_point=charge_point,
            full=body["update_type"] == "Full",
            entries={entry["id_tag"]: "id_tag_info" in entry for entry in body.get("local_authorization_list") or []},
            per_message=_reported(charge_point, "SendLocalListMaxLength"),
            capacity=_reported(charge_point, "LocalAuthListMaxLength"),
            version=body.get("list_version"),
        )

    @staticmethod
    @answer(Action.get_local_list_version)
    def after_get_local_list_version(command: Command) -> None:
        charger_state.local_list_version_follow(
            charge_point=answering_charge_point(command),
            version=(command.response or {}).get("list_version"),
            ocpp_version=command.ocpp_version,
        )

    @staticmethod
    @answer(Action.send_local_list)
    def after_send_local_list(command: Command) -> None:
        body = command.request
        entries = {
            entry["id_tag"]: (entry["id_tag_info"]["status"] if entry.get("id_tag_info") else None)
            for entry in body.get("local_authorization_list") or []
        }
        charger_state.local_list_follow(
            charge_point=answering_charge_point(command),
            status=answer_status(command),
            version=body["list_version"],
            full=body["update_type"] == "Full",
            entries=entries,
            ocpp_version=command.ocpp_version,
        )


def _reported(charge_point: ChargePoint, key: str) -> ListLimit:
    return ListLimit(key, selectors.configuration_key_number(charge_point=charge_point, key=key))
