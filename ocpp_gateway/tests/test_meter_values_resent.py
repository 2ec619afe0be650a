"""A MeterValues resent after a reconnect (its CALLRESULT lost with the connection), from a real
charger over a real daphne."""

from __future__ import annotations

import pytest
from ocpp.v16 import call as call16

from chargepoints.models import ChargePoint
from charging.models import MeterSample
from conftest import ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


def readings(transaction_id: int, at: str, power: str) -> call16.MeterValues:
    """Power and state of charge, no energy register (a charger whose MeterValuesSampledData leaves it out)."""
    sampled = [
        {"value": power, "unit": "W", "measurand": "Power.Active.Import"},
        {"value": "57", "unit": "Percent", "measurand": "SoC", "location": "EV"},
    ]
    return call16.MeterValues(
        connector_id=1, transaction_id=transaction_id, meter_value=[{"timestamp": at, "sampledValue": sampled}]
    )


async def test_a_meter_values_without_a_register_reading_resent_after_a_reconnect_is_stored_once(daphne):
    """OCPP-J: a CALL whose answer is lost is sent again. A 1.6 MeterValues of power and SoC (no
    Energy.Active.Import.Register) resent after a reconnect was stored twice (4 ledger rows for 2
    readings): only a register reading was told from a copy. Now the session's latest reading of any
    measurand tells it: a message no later is read against the ledger, a later one is new."""
    await ChargePoint.objects.acreate(charge_point_id="CP16-MVR", heartbeat_interval=60)
    async with ocpp_charger(daphne, "1.6", "CP16-MVR") as charger:
        await charger.call(call16.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="TAG", meter_start=1000, timestamp="2026-05-01T10:00:00Z")
        )
        await charger.call(readings(started.transaction_id, "2026-05-01T10:10:00Z", "7200"))
    async with ocpp_charger(daphne, "1.6", "CP16-MVR") as charger:  # reconnected: the same message again
        await charger.call(readings(started.transaction_id, "2026-05-01T10:10:00Z", "7200"))
        await charger.call(readings(started.transaction_id, "2026-05-01T10:10:00Z", "7000"))  # another value: new
        await charger.call(readings(started.transaction_id, "2026-05-01T10:20:00Z", "7200"))  # later: new
        await charger.call(readings(started.transaction_id, "2026-05-01T10:20:00Z", "7200"))  # its copy
    stored = MeterSample.objects.filter(transaction_id=started.transaction_id, source="MeterValues")
    assert [(s.timestamp.minute, s.raw_value) async for s in stored.order_by("timestamp", "pk")] == [
        (10, "7200"),
        (10, "57"),
        (10, "7000"),
        (10, "57"),
        (20, "7200"),
        (20, "57"),
    ]
