"""ISO 15118 over OCPP 2.0.1 (K15-K17): an EV's charging needs are answered Rejected (the CSMS computes
no schedule) and recorded for the operator, tied to the session open on their EVSE."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from ocpp.v201 import call as call201

from chargepoints.models import ChargePoint
from charging.models import EvChargingNeeds, Transaction
from charging.services.ev_charging_needs import ev_charging_needs_record
from conftest import ocpp_charger
from csms.staff_groups import SUPPORT, staff_user_create

pytestmark = pytest.mark.django_db(transaction=True)

_AC_NEEDS = {
    "requestedEnergyTransfer": "AC_three_phase",
    "departureTime": "2026-11-25T17:30:00Z",
    "acChargingParameters": {"energyAmount": 24000, "evMinCurrent": 6, "evMaxCurrent": 32, "evMaxVoltage": 400},
}


async def test_an_evs_needs_are_refused_and_recorded_beside_its_session(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CS-K15", heartbeat_interval=60)
    async with ocpp_charger(daphne, "2.0.1", "CS-K15") as station:
        await station.call(
            call201.TransactionEvent(
                event_type="Started",
                timestamp="2026-11-25T09:00:00Z",
                trigger_reason="CablePluggedIn",
                seq_no=0,
                transaction_info={"transactionId": "TX-K15", "chargingState": "EVConnected"},
                evse={"id": 1, "connectorId": 1},
            )
        )
        answer = await station.call(call201.NotifyEVChargingNeeds(charging_needs=_AC_NEEDS, evse_id=1))
        assert answer.status == "Rejected"
        dc = {"requestedEnergyTransfer": "DC", "dcChargingParameters": {"evMaxCurrent": 200, "evMaxVoltage": 800}}
        await station.call(call201.NotifyEVChargingNeeds(charging_needs=dc, evse_id=2))

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-K15")
    recorded = [
        (n.evse_id, n.transaction_id, n.requested_energy_transfer, n.departure_time, n.energy_amount_wh, n.needs)
        async for n in EvChargingNeeds.objects.filter(charge_point__charge_point_id="CS-K15").order_by("evse_id")
    ]
    assert recorded == [
        (1, session.pk, "AC_three_phase", datetime(2026, 11, 25, 17, 30, tzinfo=UTC), 24000, _AC_NEEDS),
        (2, None, "DC", None, None, dc),
    ]


def test_support_staff_see_the_evs_needs(client, register_charge_point):
    EvChargingNeeds.objects.create(
        charge_point=register_charge_point("CS-K15-ADMIN"),
        evse_id=1,
        requested_energy_transfer="AC_three_phase",
        energy_amount_wh=24000,
        needs=_AC_NEEDS,
        received_at=datetime(2026, 11, 25, 9, 0, tzinfo=UTC),
    )
    client.force_login(staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT))
    listing = client.get("/admin/charging/evchargingneeds/?requested_energy_transfer=AC_three_phase")
    assert listing.status_code == 200 and "CS-K15-ADMIN" in listing.content.decode()


def test_a_charger_keeps_only_its_newest_needs_up_to_the_maximum(register_charge_point, settings):
    """Every NotifyEVChargingNeeds was a row kept for good, its needs as sent (up to a 64 KB frame's):
    a station sending 20 a second added 1.3 MB a second without end."""
    settings.CSMS_MAX_EV_CHARGING_NEEDS = 3
    register_charge_point("CS-NEEDY")
    other = register_charge_point("CS-CALM")
    EvChargingNeeds.objects.create(
        charge_point=other, evse_id=1, requested_energy_transfer="DC", needs={}, received_at=datetime.now(UTC)
    )
    for evse_id in range(1, 6):
        ev_charging_needs_record(charge_point_id="CS-NEEDY", evse_id=evse_id, needs=_AC_NEEDS)
    kept = EvChargingNeeds.objects.filter(charge_point__charge_point_id="CS-NEEDY").order_by("evse_id")
    assert [needs.evse_id for needs in kept] == [3, 4, 5]
    assert EvChargingNeeds.objects.filter(charge_point=other).count() == 1
