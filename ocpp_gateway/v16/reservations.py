"""OCPP 1.6 Reservation profile: the warnings about a ReserveNow or CancelReservation before it is
sent, and the answers to both (a reservation ends in StartTransaction, ``transactions.py``)."""

from __future__ import annotations

from typing import Any

from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from charging import selectors
from charging.services import charger_state
from commands.models import Command
from configuration import selectors as configuration_selectors
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.command_routes import answer, answer_status, answering_charge_point, request_check

# 1.6 §9.4 (Reservation profile): whether the charger takes a reservation of connector 0.
_CONNECTOR_ZERO = "ReserveConnectorZeroSupported"


class ReservationHandlers:
    @staticmethod
    @request_check(Action.reserve_now)
    def reserve_now_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        """The reserved token's warnings, and a reservation of connector 0 (the charger's first free
        connector) a charger that reported ReserveConnectorZeroSupported other than true, or unknown,
        answers Rejected (1.6 §5.13, §9.4)."""
        warnings = selectors.reservation_token_warnings(id_tag=body["id_tag"], token_type="")
        if body.get("connector_id") == 0:
            reported = configuration_selectors.configuration_key_value(charge_point=charge_point, key=_CONNECTOR_ZERO)
            if reported is not None and (reported[1] or (reported[0] or "").strip().lower() != "true"):
                said = "unknown" if reported[1] else (reported[0] or "no value")
                warnings.append(
                    f"The charge point reported {_CONNECTOR_ZERO} {said}: it answers Rejected to a reservation"
                    " of connector 0; reserve one of its connectors."
                )
        return warnings

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
