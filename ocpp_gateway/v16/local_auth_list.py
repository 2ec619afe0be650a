"""OCPP 1.6 Local Auth List Management profile: the answers to SendLocalList and GetLocalListVersion
(the list answers Authorize offline; Authorize itself is in ``transactions.py``)."""

from __future__ import annotations

from ocpp.v16.enums import Action

from charging.services import charger_state
from commands.models import Command
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point


class LocalAuthListHandlers:
    @staticmethod
    @answer(Action.get_local_list_version)
    def after_get_local_list_version(command: Command) -> None:
        charger_state.local_list_version_follow(
            charge_point=answering_charge_point(command), version=(command.response or {}).get("list_version")
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
        )
