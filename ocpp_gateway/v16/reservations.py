"""OCPP 1.6 Reservation profile: the warnings about a ReserveNow or CancelReservation before it is
sent, and the answers to both (a reservation ends in StartTransaction, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from charging.services import charger_state
from commands.models import Command
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point, request_check


class ReservationHandlers:
    @staticmethod
    @request_check(Action.reserve_now)
    def reserve_now_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.reservation_token_warnings(id_tag=body["id_tag"], token_type="")

    @staticmethod
    @answer(Action.reserve_now)
    def after_reserve_now(command: Command) -> None:
        body = command.request
        expiry = parse_ocpp_time(body["expiry_date"])
        assert expiry is not None  # ``catalog.validate_body`` refused any other
        charger_state.reservation_follow(
            charge_point=answering_charge_point(command),
            status=answer_status(command),
            reservation_id=body["reservation_id"],
            connector_id=body.get("connector_id"),
            evse_id=None,
            id_tag=body["id_tag"],
            parent_id_tag=body.get("parent_id_tag", ""),
            expiry_date=expiry,
        )

    @staticmethod
    @request_check(Action.cancel_reservation)
    def cancel_reservation_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        return selectors.cancel_reservation_warnings(charge_point=charge_point, reservation_id=body["reservation_id"])

    @staticmethod
    @answer(Action.cancel_reservation)
    def after_cancel_reservation(command: Command) -> None:
        charger_state.reservation_cancel_follow(
            charge_point=answering_charge_point(command),
            status=answer_status(command),
            reservation_id=command.request["reservation_id"],
        )
