"""A 1.6 StartTransaction on connector 0 (OCPP 1.6 §6.45: connectorId > 0; 0 is the charger as a
whole), from a real charger over a real daphne."""

from __future__ import annotations

from decimal import Decimal

import pytest
from ocpp.v16 import call as call16

from chargepoints.models import ChargePoint
from charging.models import Transaction
from conftest import ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


def start(connector_id: int, id_tag: str, minute: int) -> call16.StartTransaction:
    return call16.StartTransaction(
        connector_id=connector_id, id_tag=id_tag, meter_start=1000, timestamp=f"2026-05-01T10:{minute:02}:00Z"
    )


async def test_starts_on_connector_zero_are_sessions_on_no_known_connector(daphne):
    """A firmware that starts its sessions on connector 0 opened them *on* connector 0, the
    charger's own, as one connector: a second car's start there closed the first car's session
    (Superseded, by the CSMS) while both charged. Such a session is on no known connector: a start
    beside it (on 0 or 1) closes nothing, a resend of it is the same session, its stop ends it."""
    await ChargePoint.objects.acreate(charge_point_id="CP16-Z0", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP16-Z0") as charger:
        await charger.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        first = await charger.call(start(0, "TAG-A", 0))
        assert (await charger.call(start(0, "TAG-A", 0))).transaction_id == first.transaction_id  # a resend
        second = await charger.call(start(0, "TAG-B", 5))
        third = await charger.call(start(1, "TAG-C", 6))
        sessions = Transaction.objects.filter(charge_point__charge_point_id="CP16-Z0").order_by("pk")
        assert [(s.status, s.connector_id) async for s in sessions] == [
            ("active", None),
            ("active", None),
            ("active", 1),
        ]
        assert third.transaction_id not in (first.transaction_id, second.transaction_id)
        stop = call16.StopTransaction(
            transaction_id=first.transaction_id, meter_stop=11000, timestamp="2026-05-01T11:00:00Z"
        )
        await charger.call(stop)
    session = await Transaction.objects.aget(pk=first.transaction_id)
    assert (session.status, session.stop_reason, session.energy_wh) == ("ended", "Local", Decimal(10000))
    assert session.closed_by_csms is False
