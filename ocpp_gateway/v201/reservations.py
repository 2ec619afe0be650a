"""OCPP 2.0.1 Reservation block (H): ReservationStatusUpdate, the warnings about a ReserveNow or
CancelReservation before it is sent, and the answers to both."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from charging.models import ReservationStatus
from charging.services import charger_state, reservations
from commands.models import Command
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point, request_check
from ocpp_gateway.group_commit import in_commit_group

_ENDED_AS = {"Expired": ReservationStatus.EXPIRED, "Removed": ReservationStatus.CANCELLED}


class ReservationHandlers:
    id: str

    @on(Action.reservation_status_update)
    async def on_reservation_status_update(
        self, reservation_id: int, reservation_update_status: str, **_: Any
    ) -> call_result.ReservationStatusUpdate:
        await in_commit_group(reservations.reservation_end)(
            charge_point_id=self.id, reservation_id=reservation_id, status=_ENDED_AS[reservation_update_status]
        )
        return call_result.ReservationStatusUpdate()

    @staticmethod
    @request_check(Action.reserve_now)
    def reserve_now_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        token = body["id_token"]
        return selectors.reservation_token_warnings(id_tag=token["id_token"], token_type=str(token.get("type", "")))

    @staticmethod
    @answer(Action.reserve_now)
    def after_reserve_now(command: Command) -> None:
        body = command.request
        expiry = parse_ocpp_time(body["expiry_date_time"])
        assert expiry is not None  # ``catalog.validate_body`` refused any other
        charger_state.reservation_follow(
            charge_point=answering_charge_point(command),
            status=answer_status(command),
            reservation_id=body["id"],
            connector_id=None,
            evse_id=body.get("evse_id"),
            id_tag=body["id_token"]["id_token"],
            token_type=body["id_token"]["type"],
            parent_id_tag=(body.get("group_id_token") or {}).get("id_token", ""),
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
