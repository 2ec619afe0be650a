"""OCPP 2.0.1 Local Authorization List Management block (D): the answers to SendLocalList and
GetLocalListVersion (the list answers authorization offline; Authorize is in ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from charging.selectors import local_list_key
from charging.services import charger_state
from commands import catalog
from commands.models import Command
from configuration import selectors
from configuration.selectors import ListLimit
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point, request_check

_CONTROLLER = "LocalAuthListCtrlr"


class LocalAuthListHandlers:
    @staticmethod
    @request_check(Action.send_local_list)
    def send_local_list_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        """More entries than the station's LocalAuthListCtrlr.ItemsPerMessage, a frame over its
        BytesPerMessage, a list over its Entries maxLimit (OCPP 2.0.1 D01): it answers Failed or
        refuses the request. A Differential entry without idTokenInfo removes its token."""
        entries = {_key(entry): "id_token_info" in entry for entry in body.get("local_authorization_list") or []}
        entries_limit = selectors.device_model_max_limit(
            charge_point=charge_point, component=_CONTROLLER, variable="Entries"
        )
        return selectors.local_list_request_warnings(
            charge_point=charge_point,
            full=body["update_type"] == "Full",
            entries=entries,
            per_message=_reported(charge_point, "ItemsPerMessage"),
            capacity=ListLimit(f"{_CONTROLLER}.Entries maxLimit", entries_limit),
            size=catalog.call_frame_bytes(Action.send_local_list, body),
            bytes_per_message=_reported(charge_point, "BytesPerMessage"),
            version=body.get("version_number"),
        )

    @staticmethod
    @answer(Action.get_local_list_version)
    def after_get_local_list_version(command: Command) -> None:
        charger_state.local_list_version_follow(
            charge_point=answering_charge_point(command),
            version=(command.response or {}).get("version_number"),
            ocpp_version=command.ocpp_version,
        )

    @staticmethod
    @answer(Action.send_local_list)
    def after_send_local_list(command: Command) -> None:
        body = command.request
        entries = {
            _key(entry): (entry["id_token_info"]["status"] if entry.get("id_token_info") else None)
            for entry in body.get("local_authorization_list") or []
        }
        charger_state.local_list_follow(
            charge_point=answering_charge_point(command),
            status=answer_status(command),
            version=body["version_number"],
            full=body["update_type"] == "Full",
            entries=entries,
            ocpp_version=command.ocpp_version,
        )


def _key(entry: dict[str, Any]) -> str:
    """The entry's token with its type: 2.0.1 identifies a token by both (IdTokenType)."""
    return local_list_key(entry["id_token"]["id_token"], entry["id_token"]["type"])


def _reported(charge_point: ChargePoint, variable: str) -> ListLimit:
    most = selectors.device_model_limit(charge_point=charge_point, component=_CONTROLLER, variable=variable)
    return ListLimit(f"{_CONTROLLER}.{variable}", most)
