"""Session and meter-value leftovers of earlier rounds (round 45): each test names the defect a
charger saw, through the 2.0.1 handler or the 1.6 services, on PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from chargepoints.models import ChargePoint
from charging.models import Reservation, ReservationStatus, Transaction
from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_charger_ids = itertools.count()


def new_charger(register_charge_point, version: str = "2.0.1") -> str:
    charge_point_id = f"CP-R45-{next(_charger_ids)}"
    register_charge_point(charge_point_id, ocpp_version=version)
    return charge_point_id


def event(
    kind: str,
    seq_no: int,
    minute: float,
    sampled: list[dict[str, Any]] | None = None,
    *,
    transaction_id: str = "TX-1",
    **extra: Any,
) -> dict[str, Any]:
    """A 2.0.1 TransactionEventRequest as a charger sends it (camelCase)."""
    at = (T0 + timedelta(minutes=minute)).isoformat()
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": at,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id, **extra.pop("info", {})},
        **extra,
    }
    if kind == "Started":
        payload.setdefault("evse", {"id": 1, "connectorId": 1})
    if sampled:
        payload["meterValue"] = [{"timestamp": at, "sampledValue": sampled}]
    return payload


def register(wh: float, context: str, **fields: Any) -> dict[str, Any]:
    return {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register", **fields}


def session_of(charge_point_id: str) -> Transaction:
    return Transaction.objects.get(charge_point__charge_point_id=charge_point_id)


@pytest.mark.parametrize("location", ["Cable", "Inlet", "EV"])
def test_a_register_reported_only_away_from_the_outlet_is_billed(register_charge_point, location):
    """OCPP 2.0.1 SampledValueType: location defaults to Outlet; a charger whose energy register
    is located only at the Cable (or the Inlet, or the EV) still measured the session."""
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, [register(1000, "Transaction.Begin", location=location)]))
    _transaction_event(cp, event("Updated", 1, 10, [register(2500, "Sample.Periodic", location=location)]))
    _transaction_event(cp, event("Ended", 2, 20, [register(4000, "Transaction.End", location=location)]))
    session = session_of(cp)
    assert (session.status, session.meter_start_wh, session.energy_wh) == ("ended", Decimal(1000), Decimal(3000))
    assert session.anomalies == []


def test_the_outlet_register_wins_over_one_at_the_cable(register_charge_point):
    cp = new_charger(register_charge_point)
    both = [(1000, 900), (2500, 2380), (4000, 3850)]  # the outlet's, the cable's (after its losses)
    kinds = [("Started", "Transaction.Begin"), ("Updated", "Sample.Periodic"), ("Ended", "Transaction.End")]
    for seq_no, ((kind, context), (outlet, cable)) in enumerate(zip(kinds, both, strict=True)):
        sampled = [register(cable, context, location="Cable"), register(outlet, context)]
        _transaction_event(cp, event(kind, seq_no, 10 * seq_no, sampled))
    assert session_of(cp).energy_wh == Decimal(3000)


def phases(wh: dict[str, float], context: str) -> list[dict[str, Any]]:
    return [register(value, context, phase=phase) for phase, value in wh.items()]


def test_a_phase_missing_from_the_last_reading_bills_the_last_complete_set(register_charge_point):
    """Per-phase registers (no total) with L3 absent from the Ended's reading: their sum is not the
    meter's; the last complete set of phases stands (it was summed as the total: billed 1200 Wh and
    flagged ``non_monotonic_register``)."""
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000, "L2": 1000, "L3": 1000}, "Transaction.Begin")))
    _transaction_event(cp, event("Updated", 1, 10, phases({"L1": 2000, "L2": 2000, "L3": 2000}, "Sample.Periodic")))
    _transaction_event(cp, event("Ended", 2, 20, phases({"L1": 2100, "L2": 2100}, "Transaction.End")))
    session = session_of(cp)
    assert (session.meter_start_wh, session.energy_wh, session.anomalies) == (Decimal(3000), Decimal(3000), [])


def test_a_phase_missing_mid_session_is_no_register_going_back(register_charge_point):
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000, "L2": 1000, "L3": 1000}, "Transaction.Begin")))
    _transaction_event(cp, event("Updated", 1, 10, phases({"L1": 1400, "L2": 1400}, "Sample.Periodic")))
    _transaction_event(cp, event("Ended", 2, 20, phases({"L1": 3000, "L2": 3000, "L3": 3000}, "Transaction.End")))
    session = session_of(cp)
    assert (session.energy_wh, session.anomalies, session.needs_review) == (Decimal(6000), [], False)


def test_a_begin_reading_missing_a_phase_is_no_meter_start(register_charge_point):
    """Per-phase registers with L3 absent from the Started's Begin: L1 + L2 was taken as the meter
    start, so the session billed L3's lifetime (7000 Wh). The first complete set stands in, flagged
    ``missing_baseline``; an Ended repeating the Begin does not bring it back."""
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000, "L2": 1000}, "Transaction.Begin")))
    _transaction_event(cp, event("Updated", 1, 10, phases({"L1": 2000, "L2": 2000, "L3": 2000}, "Sample.Periodic")))
    assert session_of(cp).energy_wh == Decimal(0)
    end = [*phases({"L1": 3000, "L2": 3000, "L3": 3000}, "Transaction.End")]
    _transaction_event(cp, event("Ended", 2, 20, [*end, *phases({"L1": 1000, "L2": 1000}, "Transaction.Begin")]))
    session = session_of(cp)
    assert (session.meter_start_wh, session.energy_wh) == (Decimal(6000), Decimal(3000))
    assert (session.anomalies, session.needs_review) == (["missing_baseline"], True)


def test_a_late_started_whose_begin_misses_a_phase_sets_no_meter_start(register_charge_point):
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Updated", 1, 10, phases({"L1": 2000, "L2": 2000, "L3": 2000}, "Sample.Periodic")))
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000, "L2": 1000}, "Transaction.Begin")))
    _transaction_event(cp, event("Ended", 2, 20, phases({"L1": 3000, "L2": 3000, "L3": 3000}, "Transaction.End")))
    session = session_of(cp)
    assert (session.started_at, session.meter_start_wh, session.energy_wh) == (T0, Decimal(6000), Decimal(3000))
    assert session.anomalies == ["missing_baseline"]


def test_a_total_beside_incomplete_phases_is_the_reading(register_charge_point):
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000, "L2": 1000, "L3": 1000}, "Transaction.Begin")))
    end = [*phases({"L1": 2000, "L2": 2000}, "Transaction.End"), register(7500, "Transaction.End")]
    _transaction_event(cp, event("Ended", 1, 20, end))
    assert session_of(cp).energy_wh == Decimal(4500)


def test_the_live_register_moves_only_to_a_reading_of_the_register_the_session_holds(register_charge_point):
    """An Updated's own phases or its one value are not the session's register when the session
    read more phases, or a location nearer the outlet: its live ``last_register_wh`` and
    ``energy_wh`` dropped (L1 and L2 after a total) or took the EV's scale. A reading nearer the
    outlet, or of every phase, is the register (as billed from the ledger at the stop)."""
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, [register(900, "Transaction.Begin", location="EV")]))
    live = []
    updates = [
        [register(1500, "Sample.Periodic", location="EV")],  # the EV's register, all there is so far
        [register(1200, "Sample.Periodic")],  # the outlet's: nearer, it is the register from now on
        [register(1100, "Sample.Periodic", location="Cable")],  # further again: stands
        phases({"L1": 700, "L2": 700}, "Sample.Periodic"),  # fewer phases than the outlet's total
        [register(1600, "Sample.Periodic", phase="L1")],  # one phase alone
        phases({"L1": 600, "L2": 600, "L3": 600}, "Sample.Periodic"),  # every phase of the outlet
    ]
    for seq_no, sampled in enumerate(updates, start=1):
        _transaction_event(cp, event("Updated", seq_no, seq_no, sampled))
        session = session_of(cp)
        live.append((session.last_register_wh, session.energy_wh))
    assert live == [
        (Decimal(1500), Decimal(600)),
        (Decimal(1200), Decimal(300)),
        (Decimal(1200), Decimal(300)),
        (Decimal(1200), Decimal(300)),
        (Decimal(1200), Decimal(300)),
        (Decimal(1800), Decimal(900)),
    ]


def reserve(charge_point_id: str, reservation_id: int, evse_id: int | None = 2) -> Reservation:
    return Reservation.objects.create(
        charge_point=ChargePoint.objects.get(charge_point_id=charge_point_id),
        reservation_id=reservation_id,
        connector_id=evse_id or 0,
        evse_id=evse_id,
        id_tag="SOMEONE",
        expiry_date=T0 + timedelta(days=1),
    )


def _ended_naming_all(seq_no: int = 2) -> dict[str, Any]:
    return event(
        "Ended",
        seq_no,
        20,
        [register(4000, "Transaction.End")],
        evse={"id": 2, "connectorId": 1},
        reservationId=7,
        info={"remoteStartId": 42, "stoppedReason": "EVDisconnected"},
    )


def _names_all(session: Transaction) -> None:
    assert (session.status, session.evse_id, session.connector_id) == ("ended", 2, 1)
    assert session.remote_start_id == 42
    assert session.reservation is not None and session.reservation.reservation_id == 7
    assert Reservation.objects.get(reservation_id=7).status == ReservationStatus.USED


def test_a_parked_ended_applied_when_its_session_appears_tells_what_it_named(register_charge_point):
    """The Ended overtook the session's first event and was parked; the Updated that opens the
    session (its Started lost) ends it with the parked stop, which names the EVSE, reservation
    and remote start."""
    cp = new_charger(register_charge_point)
    reserve(cp, 7)
    _transaction_event(cp, _ended_naming_all())
    _transaction_event(cp, event("Updated", 1, 10, [register(2500, "Sample.Periodic")]))
    _names_all(session_of(cp))


def test_an_ended_event_tells_the_evse_reservation_and_remote_start_its_lost_started_had(register_charge_point):
    """The Started was lost; the session was first seen through an Updated without evse (E01.FR.16:
    evse comes once, in the first event after the EV connected). The Ended brings the EVSE, the
    reservation and the remote start: the session records them (they were ignored)."""
    cp = new_charger(register_charge_point)
    reserve(cp, 7)
    _transaction_event(cp, event("Updated", 1, 10, [register(2500, "Sample.Periodic")]))
    _transaction_event(cp, _ended_naming_all())
    _names_all(session_of(cp))


@pytest.fixture
def ops(client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def test_an_ended_whose_started_never_came_opens_its_session_from_the_admin(register_charge_point, ops):
    """Every event before the Ended was lost: it stays parked as unknown. The operator's action
    "Open a session from this Ended" opens the session it names (its start the earliest reading it
    brought), ends it with the stop and bills it, with its EVSE, token, reservation and remote start."""
    from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
    from django.contrib.auth.models import User

    from charging.models import ReconciliationItem, ReconciliationState

    cp = new_charger(register_charge_point)
    reserve(cp, 7)
    ended = _ended_naming_all()
    ended["meterValue"].insert(
        0,
        {"timestamp": (T0 + timedelta(minutes=1)).isoformat(), "sampledValue": [register(1000, "Transaction.Begin")]},
    )
    ended["idToken"] = {"idToken": "DRIVER", "type": "ISO14443"}
    _transaction_event(cp, ended)
    item = ReconciliationItem.objects.get(charge_point__charge_point_id=cp)
    assert not Transaction.objects.filter(charge_point__charge_point_id=cp).exists()

    response = ops.post(
        "/admin/charging/reconciliationitem/",
        {"action": "open_session", ACTION_CHECKBOX_NAME: [item.pk], "index": 0},
        follow=True,
    )

    assert response.status_code == 200
    session = session_of(cp)
    _names_all(session)
    assert (session.started_at, session.stopped_at) == (T0 + timedelta(minutes=1), T0 + timedelta(minutes=20))
    assert (session.meter_start_wh, session.energy_wh, session.id_tag) == (Decimal(1000), Decimal(3000), "DRIVER")
    assert session.seq_nos == [2]
    item.refresh_from_db()
    assert (item.state, item.transaction_id) == (ReconciliationState.ATTACHED, session.pk)
    assert item.resolved_by_id == User.objects.get(username="ops").pk
    # Once opened, the item is resolved: a second try opens nothing.
    ops.post(
        "/admin/charging/reconciliationitem/",
        {"action": "open_session", ACTION_CHECKBOX_NAME: [item.pk], "index": 0},
        follow=True,
    )
    assert Transaction.objects.filter(charge_point__charge_point_id=cp).count() == 1


def test_only_a_parked_ended_of_an_unknown_transaction_opens_a_session(register_charge_point):
    from charging.models import ReconciliationItem
    from charging.services.reconciliation import ReconciliationError
    from charging.services.transaction_start import reconciliation_item_session_open

    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, [register(1000, "Transaction.Begin")]))
    _transaction_event(cp, event("Ended", 1, 10, [register(2000, "Transaction.End")]))
    _transaction_event(cp, event("Ended", 2, 12, [register(2100, "Transaction.End")]))  # a second stop: parked
    item = ReconciliationItem.objects.get(charge_point__charge_point_id=cp)
    with pytest.raises(ReconciliationError, match=r"no 2\.0\.1 Ended of an unknown transaction"):
        reconciliation_item_session_open(item=item, user_id=None)
    assert Transaction.objects.filter(charge_point__charge_point_id=cp).count() == 1


def test_a_state_only_updated_whose_seq_no_a_reboot_restarted_is_applied(register_charge_point):
    """The charger rebooted mid-session and restarted its seqNo counter (README Imperfect chargers):
    its state-only Updated (SuspendedEV, no meter values) repeats a seqNo of before the boot. It
    was dropped as a replay and its idle time never billed; stamped after the boot, it is no copy
    of an event sent before it. A resend of the pre-boot event (stamped before the boot) still is."""
    from django.utils import timezone

    now = timezone.now().replace(microsecond=0)
    base = now - timedelta(hours=1)

    def at(minute: int) -> str:
        return (base + timedelta(minutes=minute)).isoformat()

    def updated(seq_no: int, minute: int, state: str) -> dict[str, Any]:
        payload = event("Updated", seq_no, 0, info={"chargingState": state})
        payload["timestamp"] = at(minute)
        return payload

    cp = new_charger(register_charge_point)
    started = event("Started", 0, 0, [register(1000, "Transaction.Begin")], info={"chargingState": "Charging"})
    started["timestamp"] = started["meterValue"][0]["timestamp"] = at(0)
    _transaction_event(cp, started)
    _transaction_event(cp, updated(1, 5, "Charging"))
    _transaction_event(cp, updated(2, 10, "Charging"))
    Transaction.objects.filter(charge_point__charge_point_id=cp).update(created_at=base)
    ChargePoint.objects.filter(charge_point_id=cp).update(last_boot_at=base + timedelta(minutes=20))
    _transaction_event(cp, updated(1, 5, "SuspendedEV"))  # a pre-boot seqNo 1, stamped before the boot: a copy
    assert session_of(cp).idle_since is None
    _transaction_event(cp, updated(1, 30, "SuspendedEV"))  # after the boot, the counter restarted
    ended = event("Ended", 2, 0, [register(3000, "Transaction.End")])
    ended["timestamp"] = ended["meterValue"][0]["timestamp"] = at(40)
    _transaction_event(cp, ended)
    session = session_of(cp)
    assert (session.status, session.idle_seconds) == ("ended", 600)


def test_a_meter_values_resent_after_a_lost_acknowledgement_is_stored_once(register_charge_point):
    """OCPP-J: a CALL whose CALLRESULT is lost is sent again, the same message. A 1.6 MeterValues
    resent (same connector, transactionId, timestamps and values) was stored twice; a copy adds
    nothing now, also one of an earlier message after a later one. A new message that shares a
    time but not its values is no copy."""
    from charging.models import MeterSample
    from charging.services.meter_ledger import SampledValue, meter_values_record
    from charging.services.transaction_start import StartRequest, transaction_start

    cp = new_charger(register_charge_point, "1.6")
    session = transaction_start(
        StartRequest(
            charge_point_id=cp,
            ocpp_version="1.6",
            start_key=f"1|TAG|1000|{T0.isoformat()}",
            started_at=T0,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(1000),
        )
    ).transaction

    def meter_values(minute: int, wh: str, power: str = "7200") -> None:
        at = T0 + timedelta(minutes=minute)
        meter_values_record(
            charge_point_id=cp,
            connector_id=1,
            ocpp_transaction_id=str(session.pk),
            samples=[
                SampledValue(timestamp=at, raw_value=wh, context="Sample.Periodic", location="Outlet"),
                SampledValue(timestamp=at, raw_value=power, measurand="Power.Active.Import", unit="W"),
            ],
        )

    def stored() -> int:
        return MeterSample.objects.filter(transaction=session).count()

    meter_values(1, "1500")
    meter_values(1, "1500")  # the copy
    assert stored() == 2
    meter_values(2, "2100")
    meter_values(1, "1500")  # a copy of the earlier one, after the later
    meter_values(2, "2100", power="7000")  # the same time, another value: no copy
    assert stored() == 6
    assert session_of(cp).energy_wh == Decimal(1100)


def test_a_meter_values_of_fewer_phases_resent_after_a_lost_acknowledgement_is_stored_once(register_charge_point):
    """A copy of a MeterValues whose reading the session's live register did not take (L1 and L2
    after L1, L2 and L3) is told from the ledger as any other copy: it was stored twice."""
    from charging.models import MeterSample
    from charging.services.meter_ledger import SampledValue, meter_values_record
    from charging.services.transaction_start import StartRequest, transaction_start

    cp = new_charger(register_charge_point, "1.6")
    session = transaction_start(
        StartRequest(
            charge_point_id=cp,
            ocpp_version="1.6",
            start_key=f"1|TAG|0|{T0.isoformat()}",
            started_at=T0,
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(0),
        )
    ).transaction

    def meter_values(minute: int, **by_phase: str) -> None:
        at = T0 + timedelta(minutes=minute)
        meter_values_record(
            charge_point_id=cp,
            connector_id=1,
            ocpp_transaction_id=str(session.pk),
            samples=[SampledValue(timestamp=at, raw_value=wh, phase=phase) for phase, wh in by_phase.items()],
        )

    meter_values(1, L1="900", L2="900", L3="900")
    meter_values(2, L1="1000", L2="1000")
    meter_values(2, L1="1000", L2="1000")  # the copy
    assert MeterSample.objects.filter(transaction=session).count() == 5
    assert session_of(cp).last_register_wh == Decimal(2700)


def test_a_single_phase_register_labelled_then_read_as_a_total_keeps_its_meter_start(register_charge_point):
    """The review's case: a single-phase station labels its register L1 in one sampled-data set and
    sends the total without a phase in another (its Ended's): the same register, not a phase added.
    It was taken as a Begin missing phases: meter start 3000, 0 Wh billed for 2000."""
    cp = new_charger(register_charge_point)
    _transaction_event(cp, event("Started", 0, 0, phases({"L1": 1000}, "Transaction.Begin")))
    _transaction_event(cp, event("Updated", 1, 10, phases({"L1": 2000}, "Sample.Periodic")))
    _transaction_event(cp, event("Ended", 2, 20, [register(3000, "Transaction.End")]))
    session = session_of(cp)
    assert (session.meter_start_wh, session.energy_wh) == (Decimal(1000), Decimal(2000))
