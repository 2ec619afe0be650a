"""OCPP 2.0.1 Reservation block: ReservationStatusUpdate."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from charging.models import ReservationStatus
from charging.services import reservations
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
