"""What EVs tell 2.0.1 stations they need over ISO 15118 (K15-K17), kept for the operator: the CSMS
computes no schedule from it (the station is answered Rejected and goes on with the limits it holds)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.models import EvChargingNeeds, Transaction, TransactionStatus
from kernel.timestamps import parse_ocpp_time


def ev_charging_needs_record(*, charge_point_id: str, evse_id: int, needs: dict[str, Any]) -> EvChargingNeeds | None:
    """Record a NotifyEVChargingNeeds's ``needs`` (ChargingNeedsType as sent: ``{requestedEnergyTransfer,
    departureTime?, acChargingParameters?: {energyAmount, ...}, dcChargingParameters?: {energyAmount?,
    ...}}``, energy in Wh) on EVSE ``evse_id``, tied to the session open there. None: an unknown charger."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).only("pk").first()
    if charge_point is None:
        return None
    parameters = needs.get("acChargingParameters") or needs.get("dcChargingParameters") or {}
    energy = parameters.get("energyAmount")
    energy_ok = isinstance(energy, int) and not isinstance(energy, bool) and 0 <= energy < 2**31
    recorded = EvChargingNeeds.objects.create(
        charge_point=charge_point,
        evse_id=evse_id,
        transaction=Transaction.objects.filter(
            charge_point=charge_point, evse_id=evse_id, status=TransactionStatus.ACTIVE
        )
        .order_by("-started_at")
        .first(),
        requested_energy_transfer=str(needs["requestedEnergyTransfer"])[:32],
        departure_time=parse_ocpp_time(needs.get("departureTime")),
        energy_amount_wh=energy if energy_ok else None,
        needs=needs,
        received_at=timezone.now(),
    )
    # Only the charger's newest are kept (CSMS_MAX_EV_CHARGING_NEEDS): each holds the needs as sent, up to a
    # frame's 64 KB, and a station sending them without end filled the table. One statement.
    held = EvChargingNeeds.objects.filter(charge_point=charge_point).order_by("-received_at", "-id")
    EvChargingNeeds.objects.filter(pk__in=held.values("pk")[settings.CSMS_MAX_EV_CHARGING_NEEDS :]).delete()
    return recorded
