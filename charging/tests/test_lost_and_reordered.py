"""Sessions under lost, repeated and reordered messages (round 49): each test names what a charger
sent and what went wrong, through the handlers of both versions, on PostgreSQL."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from charging.models import Transaction
from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_charger_ids = itertools.count()


def new_charger(register_charge_point, version: str = "2.0.1") -> str:
    charge_point_id = f"CP-R49-{next(_charger_ids)}"
    register_charge_point(charge_point_id, ocpp_version=version)
    return charge_point_id


def event(kind: str, seq_no: int, minute: float, *, transaction_id: str = "TX-1", **extra: Any) -> dict[str, Any]:
    """A 2.0.1 TransactionEventRequest as a charger sends it (camelCase)."""
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": (T0 + timedelta(minutes=minute)).isoformat(),
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, **extra.pop("info", {})},
        **extra,
    }
    if kind == "Started":
        payload.setdefault("evse", {"id": 1, "connectorId": 1})
    return payload


def subscribed(*events: str) -> None:
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=list(events))


def announced(event_type: str) -> list[dict[str, Any]]:
    from webhooks.models import WebhookDelivery

    bodies = WebhookDelivery.objects.filter(event_type=event_type).order_by("created_at", "pk")
    return [json.loads(body)["data"] for body in bodies.values_list("body", flat=True)]


def test_a_late_started_announces_the_token_the_session_opened_without(register_charge_point):
    """An Updated that overtook its Started (the Started lost, then resent) opened the session
    without a token: transaction.started went out with ``id_tag`` null, and when the Started came
    with the idToken nothing told a subscriber until the session ended. The late Started
    announces the session again, with its token and start."""
    subscribed("transaction.started")
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Updated", 1, 5, evse={"id": 1, "connectorId": 1}))
    token = {"idToken": "RFID-49", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, idToken=token))
    first, second = announced("transaction.started")
    assert first["id_tag"] is None
    assert (second["transaction_id"], second["id_tag"]) == (first["transaction_id"], "RFID-49")
    assert second["started_at"] == "2026-05-01T10:00:00Z"
    _transaction_event(cp, event("Started", 0, 0, idToken=token))  # a resend of it: nothing new
    _transaction_event(cp, event("Updated", 2, 10))
    assert len(announced("transaction.started")) == 2


def test_a_late_started_of_an_ended_session_announces_its_end_again_with_the_token(register_charge_point):
    """The Updated and the Ended overtook the Started: transaction.ended went out with ``id_tag``
    null and the Updated's start (10:05); the late Started (10:00, RFID-49) re-priced the session
    (billing_record.created again) but the end a subscriber holds kept neither. It is sent once more."""
    subscribed("transaction.started", "transaction.ended")
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Updated", 1, 5, evse={"id": 1, "connectorId": 1}))
    _transaction_event(cp, event("Ended", 2, 30, info={"stoppedReason": "Local"}))
    _transaction_event(cp, event("Started", 0, 0, idToken={"idToken": "RFID-49", "type": "ISO14443"}))
    first, second = announced("transaction.ended")
    assert (first["id_tag"], first["started_at"]) == (None, "2026-05-01T10:05:00Z")
    assert (second["id_tag"], second["started_at"], second["status"]) == ("RFID-49", "2026-05-01T10:00:00Z", "ended")
    assert len(announced("transaction.started")) == 1


def test_a_charging_state_arriving_late_after_an_event_without_one_bills_its_idle_time(register_charge_point):
    """The EV was full at 10:10 (an Updated of chargingState SuspendedEV, seqNo 1) but that event
    reached the CSMS after the periodic Updated of 10:20 (seqNo 2, no chargingState): arriving late,
    it opened no idle time (a later event might have resumed charging), though none after it told a
    state. The session billed 60 charging minutes and no idle fee; it bills 50 idle minutes now. A
    late state with a later one told stays as before (it opens nothing)."""
    from decimal import Decimal

    from billing.models import BillingRecord, Tariff

    Tariff.objects.create(name="Idle", currency="EUR", price_per_kwh=0, idle_fee_per_minute="0.10", is_default=True)
    cp = new_charger(register_charge_point)
    state = {"info": {"chargingState": "Charging"}}
    _transaction_event(cp, event("Started", 0, 0, **state, idToken={"idToken": "T", "type": "ISO14443"}))
    _transaction_event(cp, event("Updated", 2, 20))
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    _transaction_event(cp, event("Ended", 3, 60, info={"stoppedReason": "EVDisconnected"}))
    session = Transaction.objects.get(charge_point__charge_point_id=cp)
    assert (session.idle_seconds, BillingRecord.objects.get(transaction=session).total) == (3000, Decimal("5.00"))

    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, **state, idToken={"idToken": "T", "type": "ISO14443"}))
    _transaction_event(cp, event("Updated", 2, 20, **state))  # charging again, told at 10:20
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    _transaction_event(cp, event("Ended", 3, 60, info={"stoppedReason": "EVDisconnected"}))
    assert Transaction.objects.get(charge_point__charge_point_id=cp).idle_seconds == 0


def test_a_charging_state_the_ended_overtook_bills_its_idle_time(register_charge_point):
    """The EV was full at 10:10 (Updated SuspendedEV, seqNo 1) but that event came after the Ended
    of 11:00 (seqNo 2, the EV unplugged): it re-priced the session and billed no idle time (only an
    open session took a state). It is idle from 10:10 to the end now: 5.00 at 0.10 per idle minute."""
    from decimal import Decimal

    from billing.models import BillingRecord, Tariff

    Tariff.objects.create(name="Idle", currency="EUR", price_per_kwh=0, idle_fee_per_minute="0.10", is_default=True)
    cp = new_charger(register_charge_point)
    token = {"idToken": "T", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, info={"chargingState": "Charging"}, idToken=token))
    _transaction_event(cp, event("Ended", 2, 60, info={"stoppedReason": "EVDisconnected"}))
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    session = Transaction.objects.get(charge_point__charge_point_id=cp)
    assert (session.idle_seconds, BillingRecord.objects.get(transaction=session).total) == (3000, Decimal("5.00"))


def test_a_charging_state_after_an_idle_one_both_the_ended_overtook_ends_its_idle_time(register_charge_point):
    """The review's probe: the EV was full at 10:10 (SuspendedEV, seqNo 1) and charging again at 10:30
    (Charging, seqNo 2), both events overtaken by the Ended of 11:00 (seqNo 3). The first, applied to
    the ended session, billed idle time to the end (50 minutes); the second found it billed and closed
    nothing: 5.00 instead of 2.00. It ends the idle time at 10:30 now: 20 idle minutes."""
    from decimal import Decimal

    from billing.models import BillingRecord, Tariff

    Tariff.objects.create(name="Idle", currency="EUR", price_per_kwh=0, idle_fee_per_minute="0.10", is_default=True)
    cp = new_charger(register_charge_point)
    token = {"idToken": "T", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, info={"chargingState": "Charging"}, idToken=token))
    _transaction_event(cp, event("Ended", 3, 60, info={"stoppedReason": "EVDisconnected"}))
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    _transaction_event(cp, event("Updated", 2, 30, info={"chargingState": "Charging"}))
    session = Transaction.objects.get(charge_point__charge_point_id=cp)
    assert (session.idle_seconds, BillingRecord.objects.get(transaction=session).total) == (1200, Decimal("2.00"))
    # A resend of either changes nothing; a Charging state told after the end neither
    _transaction_event(cp, event("Updated", 2, 30, info={"chargingState": "Charging"}))
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    assert Transaction.objects.get(pk=session.pk).idle_seconds == 1200


def test_a_late_charging_state_leaves_the_idle_time_a_stations_count_of_charging_time_billed(register_charge_point):
    """The review's probe: the Ended of 11:00 brought timeSpentCharging 2400 (idle 20 of 60 minutes:
    the station's count decides); the Charging state of 10:30 arriving after it subtracted the time
    from 10:30 to the end as if the end had billed idle time to the end: 0 idle minutes, the fee lost."""
    cp = new_charger(register_charge_point)
    token = {"idToken": "T", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, info={"chargingState": "Charging"}, idToken=token))
    _transaction_event(cp, event("Updated", 1, 10, info={"chargingState": "SuspendedEV"}))
    ended = {"stoppedReason": "EVDisconnected", "timeSpentCharging": 2400}
    _transaction_event(cp, event("Ended", 3, 60, info=ended))
    _transaction_event(cp, event("Updated", 2, 30, info={"chargingState": "Charging"}))
    assert Transaction.objects.get(charge_point__charge_point_id=cp).idle_seconds == 1200


def register(wh: int, minute: float, context: str = "Sample.Periodic") -> list[dict[str, Any]]:
    """A 2.0.1 meterValue of one energy register reading, in Wh."""
    at = (T0 + timedelta(minutes=minute)).isoformat()
    sampled = {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register"}
    return [{"timestamp": at, "sampledValue": [sampled]}]


def test_updated_readings_the_ended_overtook_move_the_meter_stop_they_precede(register_charge_point):
    """An offline station's queue, replayed out of order: the Ended (10:30, no reading of its own)
    before the Updated events of 10:10 (2 kWh) and 10:20 (3 kWh). The Ended's meter stop was the
    register it had then (the Started's 1 kWh) and stayed so: each late Updated re-priced the session
    against that stale stop, its readings a register going back to 1 kWh (non_monotonic_register,
    for review), billed 0 then 2 kWh by chance. The last reading up to the stop is the meter stop."""
    from decimal import Decimal

    from billing.models import BillingRecord, Tariff
    from charging.models import IdTag

    IdTag.objects.create(id_tag="T")
    Tariff.objects.create(name="Energy", currency="EUR", price_per_kwh="0.30", is_default=True)
    cp = new_charger(register_charge_point)
    token = {"idToken": "T", "type": "ISO14443"}
    _transaction_event(cp, event("Started", 0, 0, idToken=token, meterValue=register(1000, 0, "Transaction.Begin")))
    _transaction_event(cp, event("Ended", 3, 30, info={"stoppedReason": "Local"}))
    _transaction_event(cp, event("Updated", 1, 10, meterValue=register(2000, 10)))
    session = Transaction.objects.get(charge_point__charge_point_id=cp)
    assert (session.meter_stop_wh, session.energy_wh, session.anomalies) == (Decimal(2000), Decimal(1000), [])
    _transaction_event(cp, event("Updated", 2, 20, meterValue=register(3000, 20)))
    session = Transaction.objects.get(pk=session.pk)
    assert (session.meter_stop_wh, session.energy_wh, session.last_register_wh) == (3000, 2000, 3000)
    assert (session.anomalies, session.needs_review) == ([], False)
    assert BillingRecord.objects.get(transaction=session).total == Decimal("0.60")
