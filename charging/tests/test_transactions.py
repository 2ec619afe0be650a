"""Session services: replays, out-of-order events, stops that need reconciliation, idle time."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint, Connector
from charging.metering import Anomaly
from charging.models import (
    IdTag,
    MeterSample,
    ReconciliationItem,
    ReconciliationState,
    Reservation,
    ReservationStatus,
    Transaction,
    TransactionStatus,
)
from charging.services import reconciliation, reservations
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_end import (
    transaction_charging_state_set,
    transactions_close_after_reboot,
)
from charging.services.transaction_start import (
    StartRequest,
    StartResult,
    transaction_start,
)
from charging.services.transaction_stop import StopRequest, StopResult, transaction_stop
from commands import reset_sessions
from commands.models import Command, CommandState

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
_charger_ids = itertools.count()
db_settings = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def new_charger(register_charge_point, version: str = "1.6") -> str:
    charge_point_id = f"CP-{next(_charger_ids)}"
    register_charge_point(charge_point_id, ocpp_version=version)
    return charge_point_id


def start_v16(
    charge_point_id: str,
    connector_id: int = 1,
    id_tag: str = "TAG",
    meter_start: int = 1000,
    at: datetime = T0,
    **extra,
) -> StartResult:
    return transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"{connector_id}|{id_tag}|{meter_start}|{at.isoformat()}",
            started_at=at,
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start_wh=Decimal(meter_start),
            **extra,
        )
    )


def stop(
    charge_point_id: str,
    ocpp_transaction_id: str,
    meter_stop: Decimal | int,
    at: datetime = T0 + timedelta(hours=1),
    **extra,
) -> StopResult:
    return transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=ocpp_transaction_id,
            stopped_at=at,
            action="StopTransaction",
            payload={"transactionId": ocpp_transaction_id},
            meter_stop_wh=Decimal(meter_stop),
            **extra,
        )
    )


starts = st.tuples(
    st.integers(min_value=1, max_value=2), st.sampled_from(["A", "B"]), st.integers(min_value=0, max_value=3)
)


@db_settings
@given(st.lists(starts, min_size=1, max_size=12))
def test_replayed_starts_return_the_same_transaction_and_create_no_duplicate(register_charge_point, sequence):
    charge_point_id = new_charger(register_charge_point)
    ids = {}
    for connector_id, id_tag, minute in sequence:
        result = start_v16(charge_point_id, connector_id, id_tag, at=T0 + timedelta(minutes=minute))
        assert ids.setdefault((connector_id, id_tag, minute), result.transaction.pk) == result.transaction.pk
    assert Transaction.objects.filter(charge_point__charge_point_id=charge_point_id).count() == len(ids)


def v201_event(charge_point_id: str, kind: str, seq_no: int, wh: int, context: str = "Sample.Periodic") -> None:
    at = T0 + timedelta(minutes=seq_no)
    samples = [SampledValue(timestamp=at, raw_value=str(wh), context=context)]
    if kind == "Ended":
        transaction_stop(
            StopRequest(
                charge_point_id=charge_point_id,
                ocpp_transaction_id="TX",
                stopped_at=at,
                action="TransactionEvent",
                payload={},
                samples=samples,
                seq_no=seq_no,
            )
        )
        return
    transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="2.0.1",
            start_key="TX",
            ocpp_transaction_id="TX",
            started_at=at,
            evse_id=1,
            connector_id=1,
            authorize=False,
            samples=samples,
            seq_no=seq_no,
            baseline_expected=kind != "Started",
        )
    )


@db_settings
@given(st.lists(st.integers(min_value=1, max_value=6), max_size=10), st.randoms(use_true_random=False))
def test_v201_events_replayed_and_reordered_before_the_end_give_one_session_and_the_same_energy(
    register_charge_point, updates, random
):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    events = [("Started", 0, 1000, "Transaction.Begin")] + [
        ("Updated", n, 1000 + 100 * n, "Sample.Periodic") for n in updates
    ]
    random.shuffle(events)
    for kind, seq_no, wh, context in events + events[:3]:
        v201_event(charge_point_id, kind, seq_no, wh, context)
    v201_event(charge_point_id, "Ended", 7, 2000, "Transaction.End")

    [session] = Transaction.objects.filter(charge_point__charge_point_id=charge_point_id)
    assert (session.status, session.meter_start_wh, session.energy_wh) == ("ended", Decimal(1000), Decimal(1000))
    assert session.started_at == T0
    assert not session.needs_review
    assert not ReconciliationItem.objects.filter(charge_point=session.charge_point).exists()


def _seq_nos_bytes(session: Transaction) -> int:
    """The stored size of the session's ``seq_nos`` (PostgreSQL's ``pg_column_size``)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_column_size(seq_nos) FROM {Transaction._meta.db_table} WHERE id = %s", [session.pk])
        return cursor.fetchone()[0]


def test_a_long_session_keeps_its_seq_nos_small_and_a_resent_event_is_still_a_replay(register_charge_point):
    """1,000 events, a few s (``benchmarks/session_length.py`` measures 5,000): what each writes
    does not grow with the session (issue 15)."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    v201_event(charge_point_id, "Started", 0, 1000, "Transaction.Begin")
    for seq_no in range(1, 10):
        v201_event(charge_point_id, "Updated", seq_no, 1000 + seq_no)
    session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
    after_10 = _seq_nos_bytes(session)
    for seq_no in range(10, 1000):
        v201_event(charge_point_id, "Updated", seq_no, 1000 + seq_no)
    v201_event(charge_point_id, "Updated", 500, 1500)  # resent long after: changes nothing
    session.refresh_from_db()
    assert (session.seq_nos, session.energy_wh) == ([[0, 999]], Decimal(999))
    assert _seq_nos_bytes(session) <= after_10 + 2  # two numbers however long (the list: 1,000)
    assert MeterSample.objects.filter(transaction=session).count() == 1000


def test_events_after_a_gap_and_the_gap_filled_late_count_once_and_their_resends_are_replays(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    v201_event(charge_point_id, "Started", 0, 1000, "Transaction.Begin")
    for seq_no in (1, 2, 5, 6, 5, 1, 6):  # 3 and 4 still queued offline; resends after the gap and before it
        v201_event(charge_point_id, "Updated", seq_no, 1000 + 100 * seq_no)
    session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
    assert (session.seq_nos, session.energy_wh) == ([[0, 2], [5, 6]], Decimal(600))
    v201_event(charge_point_id, "Updated", 3, 1300)
    session.refresh_from_db()
    assert session.seq_nos == [[0, 3], [5, 6]]
    for seq_no in (4, 4, 3):  # the last of the gap, then resends of the late ones
        v201_event(charge_point_id, "Updated", seq_no, 1000 + 100 * seq_no)
    session.refresh_from_db()
    assert (session.seq_nos, session.energy_wh) == ([[0, 6]], Decimal(600))
    assert MeterSample.objects.filter(transaction=session).count() == 7


def test_a_second_stop_is_parked_and_does_not_change_the_session(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    stop(charge_point_id, str(session.pk), 5000)
    second = stop(charge_point_id, str(session.pk), 9000)
    assert second.reconciliation_item.reason == "already_stopped"
    session.refresh_from_db()
    assert (session.meter_stop_wh, session.energy_wh) == (Decimal(5000), Decimal(4000))
    assert BillingRecord.objects.filter(transaction=session).count() == 1


def test_attaching_a_parked_stop_ends_the_open_session_and_bills_it(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.50"), is_default=True)
    session = start_v16(charge_point_id).transaction
    start_v16(charge_point_id, connector_id=2, id_tag="OTHER")  # which of the two it ends is unclear
    item = stop(charge_point_id, "424242", 3000).reconciliation_item
    assert item.state == ReconciliationState.OPEN
    reconciliation.reconciliation_item_attach(item=item, transaction=session, user_id=None)
    session.refresh_from_db()
    item.refresh_from_db()
    assert (item.state, item.transaction_id) == (ReconciliationState.ATTACHED, session.pk)
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(2000))
    assert session.billing_record.total == Decimal("1.00")
    with pytest.raises(reconciliation.ReconciliationError):
        reconciliation.reconciliation_item_discard(item=item, user_id=None)


@pytest.mark.parametrize("transaction_id", ["424242", "-1"])
def test_a_stop_naming_an_unknown_id_ends_the_open_session_it_clearly_follows(register_charge_point, transaction_id):
    """A 1.6 charger whose StartTransaction answer was lost stops with a made-up id (or -1): the
    session stayed open until an operator attached the parked stop. The charger's only open session
    of the stop's idTag (case aside), started before it and metered below it, is ended with it; the
    item is kept, attached; a resent copy changes nothing."""
    charge_point_id = new_charger(register_charge_point)
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.50"), is_default=True)
    session = start_v16(charge_point_id, id_tag="TAG-1").transaction
    start_v16(charge_point_id, connector_id=2, id_tag="OTHER", meter_start=200)
    item = stop(charge_point_id, transaction_id, 3000, id_tag="tag-1").reconciliation_item
    session.refresh_from_db()
    assert (session.status, session.energy_wh, session.stop_id_tag) == (TransactionStatus.ENDED, Decimal(2000), "tag-1")
    assert (item.state, item.transaction_id, session.billing_record.total) == ("attached", session.pk, Decimal("1.00"))
    assert stop(charge_point_id, transaction_id, 3000, id_tag="tag-1").reconciliation_item == item
    assert ReconciliationItem.objects.filter(charge_point__charge_point_id=charge_point_id).count() == 1
    assert BillingRecord.objects.filter(transaction=session).count() == 1


@pytest.mark.parametrize(
    "stopped",
    [
        {"meter_stop": 900},  # below the session's meter start
        {"meter_stop": 3000, "at": T0 - timedelta(minutes=1)},  # before the session started
        {"meter_stop": 3000, "id_tag": "SOMEONE-ELSE"},
        {"meter_stop": 3000, "two_open": True},  # no idTag, two sessions open
        {"meter_stop": 3000, "booted": True},  # the session a reboot interrupted: a later one's stop
        # No idTag, two connectors (the review's case): connector 2's session whose start never reached
        # the CSMS stops; connector 1's open session must not take its energy.
        {"meter_stop": 50_000, "two_connectors": True},
        {"meter_stop": 50_000},  # no idTag, and no connector reported: how many it has is unknown
    ],
)
def test_a_stop_naming_an_unknown_id_that_no_open_session_clearly_meets_stays_parked(register_charge_point, stopped):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    if stopped.pop("two_open", False):
        start_v16(charge_point_id, connector_id=2)
    if stopped.pop("booted", False):
        ChargePoint.objects.filter(charge_point_id=charge_point_id).update(last_boot_at=timezone.now())
    if stopped.pop("two_connectors", False):
        charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
        for connector_id in (1, 2):
            Connector.objects.create(charge_point=charge_point, connector_id=connector_id, status="Charging")
    item = stop(charge_point_id, "424242", stopped.pop("meter_stop"), **stopped).reconciliation_item
    session.refresh_from_db()
    assert (item.state, item.reason, session.status) == ("open", "unknown_transaction", TransactionStatus.ACTIVE)


@override_settings(CSMS_MAX_OPEN_RECONCILIATION_ITEMS=3)
def test_stops_of_made_up_ids_park_no_more_than_the_chargers_queue_holds(register_charge_point):
    """Each stop of an id the CSMS never gave was a new reconciliation item: a charger sending them
    without end (20 a second, the frame rate) filled the operator's queue, and each later stop's look
    for its resent copy read the charger's items. Past CSMS_MAX_OPEN_RECONCILIATION_ITEMS open ones a
    new one is acknowledged, not parked; a resent copy of a parked one still finds it, an item
    resolved frees its place, and a stop that clearly ends a session open on the charger still does."""
    charge_point_id = new_charger(register_charge_point)
    other = new_charger(register_charge_point)
    items = [stop(charge_point_id, str(9000 + n), 3000, id_tag="NOBODY").reconciliation_item for n in range(5)]
    assert [item is not None for item in items] == [True, True, True, False, False]
    assert ReconciliationItem.objects.filter(charge_point__charge_point_id=charge_point_id).count() == 3
    assert stop(charge_point_id, "9000", 3000, id_tag="NOBODY").reconciliation_item == items[0]  # a resent copy
    assert stop(other, "9000", 3000, id_tag="NOBODY").reconciliation_item is not None  # another charger's queue
    reconciliation.reconciliation_item_discard(item=items[0], user_id=None)
    assert stop(charge_point_id, "9010", 3000, id_tag="NOBODY").reconciliation_item is not None
    assert stop(charge_point_id, "9011", 3000, id_tag="NOBODY").reconciliation_item is None
    session = start_v16(charge_point_id, id_tag="TAG-1").transaction
    item = stop(charge_point_id, "424242", 3000, id_tag="TAG-1").reconciliation_item
    session.refresh_from_db()
    assert (session.status, item.state, item.transaction_id) == (TransactionStatus.ENDED, "attached", session.pk)
    # A session this stop ends with a null idTag is parked for review however full the queue.
    session = start_v16(charge_point_id, id_tag="TAG-1").transaction
    ended = stop(charge_point_id, str(session.pk), 3000, id_tag_null=True)
    assert (ended.transaction.status, ended.reconciliation_item.reason) == (TransactionStatus.ENDED, "null_id_tag")


def test_a_late_stop_from_the_charger_replaces_the_csms_close_after_a_reboot(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    charge_point = session.charge_point
    charge_point.last_boot_at = timezone.now()  # after the session reached the CSMS
    charge_point.save()
    transactions_close_after_reboot(
        charge_point=charge_point, connector_id=1, evse_id=None, at=T0 + timedelta(minutes=40)
    )
    session.refresh_from_db()
    assert session.closed_by_csms and session.needs_review
    result = stop(charge_point_id, str(session.pk), 4000, reason="PowerLoss")
    assert result.reconciliation_item is None
    session.refresh_from_db()
    assert (session.closed_by_csms, session.stop_reason, session.energy_wh) == (False, "PowerLoss", Decimal(3000))
    assert Anomaly.CLOSED_BY_CSMS not in session.anomalies
    assert session.billing_record.energy_wh == Decimal(3000)


@pytest.mark.parametrize("closed_by", ["Reboot", "Superseded"])
def test_a_late_stop_after_the_csms_close_sends_the_end_and_the_billing_record_again(register_charge_point, closed_by):
    """Probe: the charger's queued stop replaced the CSMS's close (a reboot, or a new start on the
    connector), but ``transaction.ended`` was not sent again: receivers kept the CSMS-made end
    (its time, ``Reboot``/``Superseded``, ``closed_by_csms``). It is sent again with the real end, once
    (a resent copy of the stop sends nothing); the bill is the same record, sent again changed."""
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(
            url="http://127.0.0.1:9/hooks", events=["transaction.ended", "billing_record.created"]
        )
    Tariff.objects.create(name="T", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    IdTag.objects.bulk_create([IdTag(id_tag="TAG"), IdTag(id_tag="OTHER")])
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    if closed_by == "Reboot":
        ChargePoint.objects.filter(pk=session.charge_point_id).update(last_boot_at=timezone.now())
        session.charge_point.refresh_from_db()
        transactions_close_after_reboot(
            charge_point=session.charge_point, connector_id=1, evse_id=None, at=T0 + timedelta(minutes=40)
        )
    else:
        start_v16(charge_point_id, id_tag="OTHER", meter_start=5000, at=T0 + timedelta(minutes=40))
    for _copy in range(2):
        stop(charge_point_id, str(session.pk), 4000, reason="PowerLoss", at=T0 + timedelta(minutes=30))
    bodies = [
        json.loads(body) for body in WebhookDelivery.objects.order_by("created_at").values_list("body", flat=True)
    ]
    told = [(body["type"], body["data"].get("transaction_id")) for body in bodies]
    assert told == [("transaction.ended", session.pk), ("billing_record.created", session.pk)] * 2
    first_end, real_end = (body["data"] for body in bodies if body["type"] == "transaction.ended")
    assert (first_end["stop_reason"], first_end["anomalies"]) == (closed_by, ["closed_by_csms"])
    assert (real_end["stop_reason"], real_end["stopped_at"], real_end["energy_wh"], real_end["anomalies"]) == (
        "PowerLoss",
        "2026-05-01T10:30:00Z",
        3000,
        [],
    )
    first_bill, real_bill = (body["data"] for body in bodies if body["type"] == "billing_record.created")
    assert first_bill["billing_record_id"] == real_bill["billing_record_id"]  # the same record, replaced
    assert real_bill["total"] == "0.90"


def test_a_late_event_that_changes_nothing_billed_sends_no_second_billing_record(register_charge_point):
    """Probe: an offline 2.0.1 station's queue delivered an Updated after its Ended (a reading within
    the session): the session was re-priced to the same bill and billing_record.created went out
    again, identical but for its event id (a receiver charging each one billed the driver twice)."""
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["billing_record.created"])
    Tariff.objects.create(name="T", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")
    v201_start(charge_point_id, "TX-LATE", 0, T0, authorize=False, samples=[begin])
    end = SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="3000", context="Transaction.End")
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-LATE",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 2},
            samples=[end],
            seq_no=2,
        )
    )
    reading = SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="2000")
    v201_start(charge_point_id, "TX-LATE", 1, T0 + timedelta(minutes=30), authorize=False, samples=[reading])
    bodies = [json.loads(body) for body in WebhookDelivery.objects.values_list("body", flat=True)]
    assert [body["data"]["total"] for body in bodies] == ["0.60"]


def test_queued_readings_of_the_previous_session_stamped_before_the_start_count_no_energy(register_charge_point):
    """Probe: an offline charger's queue delivered the previous session's last MeterValues (no
    transactionId, stamped minutes before the next start) while the next session was open: they went
    to it, within the ledger's 10 minutes of clock slack, and the walk from its meterStart 5000 back
    to 4900 and on to its meterStop 8000 billed 3100 Wh, flagged: 100 Wh the previous session had
    billed already. The meter start is the session's baseline: nothing stamped before it counts."""
    IdTag.objects.create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=5000).transaction
    for minutes, value in ((-6, "0"), (-7, "4900")):
        meter_values_record(
            charge_point_id=charge_point_id,
            connector_id=1,
            samples=[SampledValue(timestamp=T0 + timedelta(minutes=minutes), raw_value=value)],
        )
    assert MeterSample.objects.filter(transaction=session).count() == 2
    stop(charge_point_id, str(session.pk), 8000)
    session.refresh_from_db()
    assert (session.energy_wh, session.anomalies) == (Decimal(3000), [])


def _register_read(charge_point_id: str, session: Transaction, minute: int, raw_value: str, unit: str) -> None:
    meter_values_record(
        charge_point_id=charge_point_id,
        ocpp_transaction_id=str(session.pk),
        samples=[SampledValue(timestamp=T0 + timedelta(minutes=minute), raw_value=raw_value, unit=unit)],
    )


def test_a_v16_stop_without_meter_stop_nor_any_reading_is_missing_readings(register_charge_point):
    """A lenient charger's StopTransaction without meterStop (required; absorbed) after a session that
    sent no MeterValues: its meter start stood in for the meter stop, and the session was billed 0 Wh,
    the session fee alone, without a flag (an hour of charging billed 1.00 EUR unseen). Its 0 Wh is
    not measured: ``missing_readings``, ``needs_review``, on the record too. A reading in the stop's
    transactionData measures it."""
    Tariff.objects.create(name="Fee", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=1, is_default=True)
    IdTag.objects.get_or_create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)

    def stopped(session: Transaction, samples: list[SampledValue]) -> Transaction:
        transaction_stop(
            StopRequest(
                charge_point_id=charge_point_id,
                ocpp_transaction_id=session.ocpp_id,
                stopped_at=session.started_at + timedelta(hours=1),
                action="StopTransaction",
                payload={"transactionId": session.ocpp_id, "reason": "EVDisconnected"},
                reason="EVDisconnected",
                samples=samples,
            )
        )
        session.refresh_from_db()
        return session

    unmeasured = stopped(start_v16(charge_point_id, meter_start=20000).transaction, [])
    assert (unmeasured.energy_wh, unmeasured.needs_review) == (0, True)
    assert unmeasured.anomalies == [Anomaly.MISSING_READINGS]
    assert (unmeasured.billing_record.total, unmeasured.billing_record.needs_review) == (Decimal("1.00"), True)
    end = SampledValue(timestamp=T0 + timedelta(hours=3), raw_value="30000", context="Transaction.End")
    measured = stopped(start_v16(charge_point_id, meter_start=20000, at=T0 + timedelta(hours=2)).transaction, [end])
    assert (measured.energy_wh, measured.anomalies, measured.needs_review) == (10000, [], False)


def test_a_meter_stop_below_the_sessions_own_wh_readings_is_flagged_not_billed_as_sent(register_charge_point):
    """Probe: meterStart 0, readings 500 and 900 Wh, meterStop 10 billed 10 Wh with no flag (a 1 kWh
    allowance meant for kWh-rounded registers). The readings up to 900 count; the fall is flagged."""
    IdTag.objects.create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=0).transaction
    _register_read(charge_point_id, session, 10, "500", "Wh")
    _register_read(charge_point_id, session, 20, "900", "Wh")
    stop(charge_point_id, str(session.pk), 10)
    session.refresh_from_db()
    assert (session.energy_wh, session.anomalies) == (Decimal(900), [Anomaly.NON_MONOTONIC_REGISTER])


def test_a_kwh_rounded_register_below_a_wh_meter_stop_is_rounding(register_charge_point):
    IdTag.objects.create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=12345).transaction
    _register_read(charge_point_id, session, 10, "12.3", "kWh")  # 45 Wh below the start: 100 Wh resolution
    _register_read(charge_point_id, session, 20, "14", "kWh")
    stop(charge_point_id, str(session.pk), 13500)  # 500 Wh below: 1000 Wh resolution
    session.refresh_from_db()
    assert (session.energy_wh, session.anomalies) == (Decimal(1155), [])


def test_the_reserved_id_tag_starting_on_the_reserved_connector_uses_the_reservation_without_naming_it(
    register_charge_point,
):
    """OCPP 1.6 §5.13: a transaction started for the reserved idTag on the reserved connector ends
    the reservation. Probe: a StartTransaction without reservationId left it active."""
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, connector_id, id_tag in ((1, 1, "tag"), (2, 2, "OTHER")):
        Reservation.objects.create(
            charge_point=charge_point,
            reservation_id=reservation_id,
            connector_id=connector_id,
            id_tag=id_tag,
            expiry_date=T0 + timedelta(days=1),
        )
    start_v16(charge_point_id, connector_id=2, id_tag="TAG")  # another connector's reservation, another tag
    session = start_v16(charge_point_id, connector_id=1, id_tag="TAG", at=T0 + timedelta(minutes=1)).transaction
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {1: ReservationStatus.USED, 2: ReservationStatus.ACTIVE}
    assert Transaction.objects.get(pk=session.pk).reservation.reservation_id == 1


def test_the_reserved_id_tag_starting_after_the_reservation_expired_does_not_use_it(register_charge_point):
    """h8's probe: a reservation past its expiry is gone at the charger (1.6 §5.13, 2.0.1 H01) but
    stays active for the CSMS until the next sweep (CSMS_RESERVATION_CHECK_INTERVAL); a start by its
    tag on its connector in between, naming none, used it, the session attributed to a reservation
    that had ended. It is left to the sweep; one started before the expiry still uses it."""
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, connector_id in ((1, 1), (2, 2)):
        Reservation.objects.create(
            charge_point=charge_point,
            reservation_id=reservation_id,
            connector_id=connector_id,
            id_tag="tag",
            expiry_date=T0 + timedelta(minutes=10),
        )
    late = start_v16(charge_point_id, connector_id=1, id_tag="TAG", at=T0 + timedelta(minutes=10, seconds=30))
    in_time = start_v16(charge_point_id, connector_id=2, id_tag="TAG", at=T0 + timedelta(minutes=9))
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {1: ReservationStatus.ACTIVE, 2: ReservationStatus.USED}
    assert Transaction.objects.get(pk=late.transaction.pk).reservation is None
    assert Transaction.objects.get(pk=in_time.transaction.pk).reservation.reservation_id == 2


def test_a_tag_of_the_reserved_group_starting_without_the_reservation_id_uses_it(register_charge_point):
    """OCPP 1.6 §5.13: a transaction started for the reserved idTag *or parentIdTag* ends the
    reservation. Probe: a start without reservationId by another card of the group the reservation
    was made for (ReserveNow parentIdTag) left it active until its expiry, the session without it."""
    fleet = IdTag.objects.create(id_tag="FLEET-1")
    IdTag.objects.create(id_tag="CARD-B", parent=fleet)
    IdTag.objects.create(id_tag="CARD-C")
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, connector_id in ((1, 1), (2, 2)):
        reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=reservation_id,
            id_tag="CARD-A",
            parent_id_tag="fleet-1" if reservation_id == 1 else "",
            expiry_date=T0 + timedelta(days=1),
            accepted=True,
            charger_status="Accepted",
            connector_id=connector_id,
        )
    no_group = start_v16(charge_point_id, connector_id=1, id_tag="CARD-C").transaction
    other = start_v16(charge_point_id, connector_id=2, id_tag="CARD-B", at=T0 + timedelta(minutes=1)).transaction
    grouped = start_v16(charge_point_id, connector_id=1, id_tag="CARD-B", at=T0 + timedelta(minutes=2)).transaction
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {1: ReservationStatus.USED, 2: ReservationStatus.ACTIVE}  # 2 was made for CARD-A alone
    assert Transaction.objects.get(pk=grouped.pk).reservation.reservation_id == 1
    assert Transaction.objects.get(pk=no_group.pk).reservation is None
    assert Transaction.objects.get(pk=other.pk).reservation is None


@pytest.mark.parametrize("answer", ["Occupied", "Accepted"])
def test_a_reservation_id_reused_after_a_session_used_it_leaves_that_session_s_reservation_as_it_was(
    register_charge_point, answer
):
    """OCPP 1.6 §5.13: a ReserveNow replaces the charger's reservation of its id, if it holds one;
    one a session used is over. Probe: the reuse's answer (refused, or accepted for another tag on
    another connector) was written over the used record: the session's reservation read refused
    (or active again), for the other tag."""
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)

    def reserve(id_tag: str, connector_id: int, status: str) -> Reservation:
        return reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=4,
            id_tag=id_tag,
            expiry_date=T0 + timedelta(days=1),
            accepted=status == "Accepted",
            charger_status=status,
            connector_id=connector_id,
        )

    reserve("TAG", 1, "Accepted")
    session = start_v16(charge_point_id, connector_id=1, id_tag="TAG", reservation_id=4).transaction
    again = reserve("OTHER", 2, answer)
    used = Transaction.objects.select_related("reservation").get(pk=session.pk).reservation
    assert (used.status, used.id_tag, used.connector_id) == (ReservationStatus.USED, "TAG", 1)
    assert again.pk != used.pk
    assert (again.status, again.id_tag) == (
        ReservationStatus.ACTIVE if answer == "Accepted" else ReservationStatus.REFUSED,
        "OTHER",
    )
    if answer == "Accepted":  # the new reservation is the one a later start of its id uses
        later = start_v16(charge_point_id, connector_id=2, id_tag="OTHER", reservation_id=4).transaction
        assert Transaction.objects.get(pk=later.pk).reservation_id == again.pk


def test_a_start_before_its_reservation_expired_uses_it_though_it_arrives_after_the_expiry_sweep(
    register_charge_point,
):
    """OCPP 1.6 §5.13: a transaction started on the reservation before its expiry uses it. Probe: an
    offline charger's StartTransaction naming it arrived after the sweep had expired it: the
    reservation stayed expired, the session had none. One started after the expiry does not use it."""
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, connector_id in ((5, 1), (6, 2)):
        reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=reservation_id,
            id_tag="TAG",
            expiry_date=T0 + timedelta(minutes=10),
            accepted=True,
            charger_status="Accepted",
            connector_id=connector_id,
        )
    assert reservations.reservations_expire(now=T0 + timedelta(minutes=30)) == 2
    in_time = start_v16(charge_point_id, connector_id=1, at=T0 + timedelta(minutes=9), reservation_id=5).transaction
    late = start_v16(charge_point_id, connector_id=2, at=T0 + timedelta(minutes=11), reservation_id=6).transaction
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {5: ReservationStatus.USED, 6: ReservationStatus.EXPIRED}
    assert Transaction.objects.get(pk=in_time.pk).reservation.reservation_id == 5
    assert Transaction.objects.get(pk=late.pk).reservation is None


def test_a_later_event_repeating_the_reservation_its_session_used_leaves_a_new_one_of_that_id(register_charge_point):
    """OCPP 2.0.1 H01: a reservation's id is free again once a session used it. Probe: an Updated
    event of that session repeating its reservationId used the new reservation of the id too (and
    the session swapped its reservation for it)."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)

    def reserve() -> Reservation:
        return reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=9,
            id_tag="TAG",
            expiry_date=T0 + timedelta(hours=1),
            accepted=True,
            charger_status="Accepted",
            evse_id=1,
        )

    first = reserve()
    session = v201_start(charge_point_id, "TX-R", 0, T0, id_tag="TAG", evse_id=1, reservation_id=9).transaction
    second = reserve()
    v201_start(charge_point_id, "TX-R", 1, T0 + timedelta(minutes=1), reservation_id=9)
    assert Transaction.objects.get(pk=session.pk).reservation_id == first.pk
    statuses = dict(Reservation.objects.values_list("pk", "status"))
    assert statuses == {first.pk: ReservationStatus.USED, second.pk: ReservationStatus.ACTIVE}


def test_idle_time_is_billed_after_the_grace_period(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    Tariff.objects.create(
        name="Idle",
        currency="EUR",
        price_per_kwh=Decimal(0),
        idle_fee_per_minute=Decimal("0.10"),
        idle_grace_minutes=10,
        is_default=True,
    )
    session = start_v16(charge_point_id).transaction
    charge_point = session.charge_point
    for minute, charging in ((20, False), (30, True), (40, False)):
        transaction_charging_state_set(
            charge_point=charge_point,
            connector_id=1,
            evse_id=None,
            charging=charging,
            at=T0 + timedelta(minutes=minute),
        )
    stop(charge_point_id, str(session.pk), 1000, at=T0 + timedelta(minutes=60))
    record = BillingRecord.objects.get(transaction=session)
    assert (record.idle_seconds, record.charging_seconds) == (30 * 60, 30 * 60)
    assert record.total == Decimal("2.00")  # (30 idle - 10 grace) min x 0.10


def test_a_session_without_a_tariff_gets_an_unpriced_record_for_review(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    stop(charge_point_id, str(session.pk), 2000)
    record = BillingRecord.objects.get(transaction=session)
    assert (record.total, record.currency, record.needs_review) == (Decimal("0.00"), "", True)


def test_the_chargers_own_tariff_applies_while_valid_then_the_default(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    Tariff.objects.create(name="Default", currency="EUR", price_per_kwh=Decimal("0.40"), is_default=True)
    own = Tariff.objects.create(
        name="Promo", currency="EUR", price_per_kwh=Decimal("0.20"), valid_to=T0 + timedelta(days=1)
    )
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(tariff=own)
    during = start_v16(charge_point_id, at=T0).transaction
    stop(charge_point_id, str(during.pk), 11000, at=T0 + timedelta(hours=1))
    after = start_v16(charge_point_id, at=T0 + timedelta(days=2)).transaction
    stop(charge_point_id, str(after.pk), 11000, at=T0 + timedelta(days=2, hours=1))
    assert BillingRecord.objects.get(transaction=during).total == Decimal("2.00")
    assert BillingRecord.objects.get(transaction=after).total == Decimal("4.00")


def test_session_events_reach_webhook_subscribers_in_the_same_transaction(register_charge_point):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(
            url="http://127.0.0.1:9/hooks",
            events=["transaction.started", "transaction.ended", "billing_record.created"],
        )
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    stop(charge_point_id, str(session.pk), 3000)
    events = list(WebhookDelivery.objects.order_by("created_at").values_list("event_type", flat=True))
    assert events == ["transaction.started", "transaction.ended", "billing_record.created"]
    ended = WebhookDelivery.objects.get(event_type="transaction.ended")
    assert '"energy_wh":2000,' in ended.body


def v201_start(charge_point_id: str, transaction_id: str, seq_no: int, at: datetime, **extra) -> StartResult:
    return transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="2.0.1",
            start_key=transaction_id,
            ocpp_transaction_id=transaction_id,
            started_at=at,
            seq_no=seq_no,
            **extra,
        )
    )


def test_a_start_without_an_id_tag_or_energy_so_far_announces_them_as_null_in_both_versions(register_charge_point):
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["transaction.started"])
    start_v16(new_charger(register_charge_point))
    begin = SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")
    v201_start(new_charger(register_charge_point, "2.0.1"), "TX-N", 0, T0, authorize=False, samples=[begin])
    v16, v201 = (
        json.loads(body)["data"]
        for body in WebhookDelivery.objects.order_by("created_at").values_list("body", flat=True)
    )
    assert (v16["id_tag"], v16["energy_wh"]) == ("TAG", None)
    assert (v201["id_tag"], v201["energy_wh"]) == (None, None)


def test_session_events_name_the_remote_start_and_the_reservation_that_led_to_the_session(register_charge_point):
    """2.0.1 F01: the remoteStartId ties a session to the RequestStartTransaction that asked for it;
    a reservation's id, to the ReserveNow. Probe: transaction.started and .ended named neither (the
    sessions API does), so a subscriber could not tell which of its requests a session answered."""
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["transaction.started", "transaction.ended"])
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    reservations.reservation_record(
        charge_point=ChargePoint.objects.get(charge_point_id=charge_point_id),
        reservation_id=9,
        id_tag="TAG",
        expiry_date=T0 + timedelta(hours=1),
        accepted=True,
        charger_status="Accepted",
        evse_id=1,
    )
    begin = SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")
    v201_start(
        charge_point_id, "TX-RS", 0, T0, id_tag="TAG", evse_id=1, remote_start_id=77, reservation_id=9, samples=[begin]
    )
    start_v16(new_charger(register_charge_point))  # neither: null
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-RS",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 1},
            samples=[SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="3000", context="Transaction.End")],
            seq_no=1,
        )
    )
    started, plain, ended = (
        json.loads(body)["data"]
        for body in WebhookDelivery.objects.order_by("created_at").values_list("body", flat=True)
    )
    assert (started["remote_start_id"], started["reservation_id"]) == (77, 9)
    assert (ended["status"], ended["remote_start_id"], ended["reservation_id"]) == ("ended", 77, 9)
    assert (plain["remote_start_id"], plain["reservation_id"]) == (None, None)


def test_a_session_without_an_id_tag_is_billed_with_a_null_id_tag_in_every_event(register_charge_point):
    """Probe: a 2.0.1 session without an idToken was announced with "id_tag": null by transaction.ended
    but "id_tag": "" by billing_record.created (README "Event payloads": null where a value is absent)."""
    from webhooks.models import WebhookDelivery
    from webhooks.services import webhook_subscription_create

    with override_settings(CSMS_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(
            url="http://127.0.0.1:9/hooks", events=["transaction.ended", "billing_record.created"]
        )
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")
    v201_start(charge_point_id, "TX-NB", 0, T0, authorize=False, samples=[begin])
    end = SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="3000", context="Transaction.End")
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-NB",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 1},
            samples=[end],
            seq_no=1,
        )
    )
    events = {
        event["type"]: event["data"]
        for event in map(json.loads, WebhookDelivery.objects.values_list("body", flat=True))
    }
    assert set(events) == {"transaction.ended", "billing_record.created"}
    assert events["transaction.ended"]["id_tag"] is None
    assert events["billing_record.created"]["id_tag"] is None


def test_a_token_and_evse_first_sent_in_an_updated_event_are_kept(register_charge_point):
    from charging.models import IdTag

    IdTag.objects.create(id_tag="LATE-TAP")
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    v201_start(charge_point_id, "TX-P", 0, T0, authorize=False, baseline_expected=False)
    updated = v201_start(
        charge_point_id,
        "TX-P",
        1,
        T0 + timedelta(minutes=1),
        evse_id=2,
        connector_id=1,
        id_tag="LATE-TAP",
        id_token_type="ISO14443",
    )
    assert updated.id_tag_info.status == "Accepted"
    session = updated.transaction
    assert (session.id_tag, session.id_tag_status, session.evse_id, session.started_at) == (
        "LATE-TAP",
        "Accepted",
        2,
        T0,
    )


@pytest.mark.parametrize("where", [{}, {"evse_id": 1, "connector_id": 1}])
def test_an_ended_event_that_overtook_its_started_ends_the_session_when_it_arrives(register_charge_point, where):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    end = [SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="3500", context="Transaction.End")]
    parked = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-E",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 1},
            samples=end,
            seq_no=1,
        )
    ).reconciliation_item
    assert parked.meter_stop_wh == Decimal(3500)
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    session = v201_start(
        charge_point_id, "TX-E", 0, T0, samples=begin, baseline_expected=False, started_event=True, **where
    ).transaction
    session.refresh_from_db()
    parked.refresh_from_db()
    assert (session.status, session.energy_wh) == ("ended", Decimal(2500))
    assert (parked.state, parked.transaction_id) == (ReconciliationState.ATTACHED, session.pk)
    # The parked stop's reading moved to the session with it.
    assert sorted(session.meter_samples.values_list("raw_value", flat=True)) == ["1000", "3500"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the sessions read with the parked stop's: PostgreSQL")
def test_a_started_event_reads_a_parked_stop_only_when_one_is_parked_under_its_id(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    transaction_stop(  # parked under another transactionId
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-OTHER",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 1},
            seq_no=1,
        )
    )
    with CaptureQueriesContext(connection) as queries:
        session = v201_start(
            charge_point_id, "TX-N", 0, T0, baseline_expected=False, started_event=True, evse_id=1, connector_id=1
        ).transaction
    reads = [query["sql"] for query in queries.captured_queries if "reconciliationitem" in query["sql"]]
    assert len(reads) == 1 and "LEFT JOIN LATERAL" in reads[0]  # the sessions read asked, and nothing more
    assert session.status == "active"


def test_an_end_reading_stamped_after_the_event_still_counts(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    begin = [SampledValue(timestamp=T0, raw_value="2000", context="Transaction.Begin")]
    v201_start(charge_point_id, "TX-T", 0, T0, samples=begin, baseline_expected=False)
    stopped_at = T0 + timedelta(hours=1)
    end = [SampledValue(timestamp=stopped_at + timedelta(seconds=1), raw_value="7000", context="Transaction.End")]
    result = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-T",
            stopped_at=stopped_at,
            action="TransactionEvent",
            payload={},
            samples=end,
            seq_no=1,
        )
    )
    assert (result.transaction.energy_wh, result.transaction.anomalies) == (Decimal(5000), [])


def test_a_new_start_on_a_connector_closes_the_session_whose_stop_was_lost(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    lost = start_v16(charge_point_id, meter_start=1000).transaction
    meter_values_record(
        charge_point_id=charge_point_id,
        connector_id=1,
        samples=[SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="4000")],
    )
    start_v16(charge_point_id, meter_start=5000, at=T0 + timedelta(hours=2))
    lost.refresh_from_db()
    assert (lost.status, lost.stop_reason, lost.closed_by_csms, lost.energy_wh) == ("ended", "Superseded", True, 3000)
    assert lost.needs_review


def test_resent_stops_are_acknowledged_once(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    assert stop(charge_point_id, str(session.pk), 5000).reconciliation_item is None
    assert stop(charge_point_id, str(session.pk), 5000).reconciliation_item is None
    reading = [SampledValue(timestamp=T0, raw_value="5000", context="Transaction.End")]
    first = stop(charge_point_id, "777", 5000, samples=reading).reconciliation_item
    assert stop(charge_point_id, "777", 5000, samples=reading).reconciliation_item == first
    assert ReconciliationItem.objects.filter(charge_point__charge_point_id=charge_point_id).count() == 1
    assert first.meter_samples.count() == 1


@pytest.mark.parametrize("transaction_id", ["--5", "²", "99999999999999999999999", "-1"])
def test_odd_transaction_ids_are_parked_not_fatal(register_charge_point, transaction_id):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    result = stop(charge_point_id, transaction_id, 100)
    expected = "invalid_transaction_id" if transaction_id == "-1" else "unknown_transaction"
    assert result.reconciliation_item.reason == expected


def test_absurd_meter_values_are_kept_raw_and_never_abort_the_message(register_charge_point):
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    at = T0 + timedelta(minutes=30)
    meter_values_record(
        charge_point_id=charge_point_id,
        ocpp_transaction_id=str(session.pk),
        samples=[
            SampledValue(timestamp=at, raw_value="2.5", unit="kWh"),
            SampledValue(timestamp=at, raw_value="1E+30", measurand="Power.Active.Import", unit="W"),
            SampledValue(timestamp=at, raw_value="9", measurand="Power.Active.Import", multiplier=40),
            SampledValue(timestamp=at, raw_value="3E50", format="SignedData", signed_data={"value": "3E50"}),
        ],
    )
    result = stop(charge_point_id, str(session.pk), Decimal("1E+30"))
    session.refresh_from_db()
    assert session.energy_wh == Decimal(1500)  # the stop was garbled: the last good reading ends it
    assert "unparseable_value" in session.anomalies
    assert [row.value for row in session.meter_samples.order_by("id")] == [Decimal(2500), None, None, None]
    assert result.transaction.meter_stop_wh == Decimal(2500)


def test_a_meter_values_resend_check_reads_a_bounded_number_of_rows(register_charge_point):
    """A MeterValues no later than the session's latest reading is looked up in the ledger as a
    possible copy: every row at its times was read. A charger sending thousands of new values under
    one old time, message after message, made each read all the earlier ones (2 s a message at
    200 000 rows, in the batch the other chargers wait for). The read is now bounded by the
    message's size; a copy is still told."""
    charge_point_id = new_charger(register_charge_point)
    at = timezone.now() - timedelta(minutes=1)
    session = start_v16(charge_point_id, at=at - timedelta(minutes=5)).transaction

    def voltages(first: int, count: int, when: datetime = at) -> list[SampledValue]:
        return [
            SampledValue(timestamp=when, raw_value=str(first + n), measurand="Voltage", unit="V") for n in range(count)
        ]

    def record(samples: list[SampledValue]) -> None:
        meter_values_record(
            charge_point_id=charge_point_id, connector_id=1, ocpp_transaction_id=str(session.pk), samples=samples
        )

    for message in range(12):
        record(voltages(message * 1000, 1000))
    rows_read: list[int] = []

    def counted(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.lstrip().upper().startswith("SELECT") and MeterSample._meta.db_table in sql:
            rows_read.append(context["cursor"].rowcount)
        return result

    with connection.execute_wrapper(counted):
        record(voltages(50_000, 100))
    assert rows_read and max(rows_read) <= 500, rows_read
    earlier = voltages(60_000, 100, at - timedelta(seconds=1))
    record(earlier)
    record(earlier)  # its copy (the answer was lost): stored once
    assert session.meter_samples.count() == 12_200


def test_the_newest_valid_default_tariff_wins_over_an_open_ended_one(register_charge_point):
    Tariff.objects.create(name="Always", currency="EUR", price_per_kwh=Decimal("0.10"), is_default=True)
    Tariff.objects.create(
        name="Since yesterday",
        currency="EUR",
        price_per_kwh=Decimal("0.20"),
        is_default=True,
        valid_from=T0 - timedelta(days=1),
    )
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id).transaction
    stop(charge_point_id, str(session.pk), 11000)
    assert BillingRecord.objects.get(transaction=session).total == Decimal("2.00")


def test_events_arriving_after_the_end_reprice_the_session(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")

    def reading(minute: int, wh: int, context: str) -> list[SampledValue]:
        return [SampledValue(timestamp=T0 + timedelta(minutes=minute), raw_value=str(wh), context=context)]

    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-R",
            stopped_at=T0 + timedelta(minutes=60),
            action="TransactionEvent",
            payload={},
            samples=reading(60, 7000, "Transaction.End"),
            seq_no=2,
        )
    )
    v201_start(charge_point_id, "TX-R", 1, T0 + timedelta(minutes=30), samples=reading(30, 5000, "Sample.Periodic"))
    session = Transaction.objects.get(ocpp_transaction_id="TX-R")
    assert (session.status, session.energy_wh, session.needs_review) == ("ended", Decimal(2000), True)
    v201_start(charge_point_id, "TX-R", 0, T0, samples=reading(0, 2000, "Sample.Periodic"), baseline_expected=False)
    session.refresh_from_db()
    assert (session.started_at, session.meter_start_wh, session.energy_wh) == (T0, Decimal(2000), Decimal(5000))
    assert (session.anomalies, session.needs_review) == ([], False)
    assert session.billing_record.energy_wh == Decimal(5000)
    assert session.seq_nos == [[0, 2]]  # compact: one run (session_rows.seq_nos_with)


def test_a_session_first_seen_through_an_updated_event_is_flagged_until_its_start_arrives(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    sample = [SampledValue(timestamp=T0 + timedelta(minutes=5), raw_value="5000")]
    session = v201_start(charge_point_id, "TX-U", 3, T0 + timedelta(minutes=5), samples=sample).transaction
    assert session.needs_review and "missing_baseline" in session.anomalies


def _parked_stop_of_1(charge_point_id: str, stopped_at: datetime) -> ReconciliationItem:
    item = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="1",
            stopped_at=stopped_at,
            action="TransactionEvent",
            payload={},
            seq_no=9,
        )
    ).reconciliation_item
    assert item is not None
    return item


def test_an_old_parked_stop_with_a_reused_id_does_not_end_a_new_session(register_charge_point):
    """Parked when it was sent, 60 days before the session started: an earlier session's."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    item = _parked_stop_of_1(charge_point_id, T0 - timedelta(days=60))
    ReconciliationItem.objects.filter(pk=item.pk).update(received_at=T0 - timedelta(days=60))
    session = v201_start(charge_point_id, "1", 0, T0, baseline_expected=False).transaction
    session.refresh_from_db()
    item.refresh_from_db()
    assert (session.status, item.state) == ("active", ReconciliationState.OPEN)


def test_a_stop_parked_before_the_chargers_last_boot_does_not_end_a_session_started_after_it(register_charge_point):
    """Ids that are counters restart at a reboot: a Started after the boot whose clock tells
    nothing (1970: its receipt stands in) is not the session a stop parked before the boot ended."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    item = _parked_stop_of_1(charge_point_id, timezone.now() - timedelta(minutes=1))
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(last_boot_at=timezone.now())
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    session = v201_start(charge_point_id, "1", 0, epoch, baseline_expected=False, started_event=True).transaction
    session.refresh_from_db()
    item.refresh_from_db()
    assert (session.status, item.state) == ("active", ReconciliationState.OPEN)
    assert session.charger_started_at == epoch


def test_a_queued_reading_from_another_day_does_not_count(register_charge_point):
    IdTag.objects.create(id_tag="TAG")
    charge_point_id = new_charger(register_charge_point)
    session = start_v16(charge_point_id, meter_start=11000).transaction
    meter_values_record(
        charge_point_id=charge_point_id,
        ocpp_transaction_id=str(session.pk),
        samples=[SampledValue(timestamp=T0 - timedelta(days=1), raw_value="5000")],
    )
    stop(charge_point_id, str(session.pk), 13000)
    session.refresh_from_db()
    assert (session.energy_wh, session.anomalies) == (Decimal(2000), [])


def test_garbled_stops_are_parked_or_applied_without_raising(register_charge_point):
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    item = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="unknown",
            stopped_at=T0,
            action="StopTransaction",
            payload={"meterStop": float("inf"), "x": float("nan")},
            meter_stop_wh=Decimal("Infinity"),
        )
    ).reconciliation_item
    assert item.payload == {"meterStop": "Infinity", "x": "NaN"}
    assert item.meter_stop_wh is None
    session = v201_start(charge_point_id, "TX-N", 0, T0, baseline_expected=False).transaction
    result = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="TX-N",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={},
            meter_stop_wh=Decimal("NaN"),
            time_spent_charging=2**40,
            seq_no=1,
        )
    )
    assert result.transaction.status == "ended"
    assert "unparseable_value" in result.transaction.anomalies
    assert session.pk == result.transaction.pk


def test_v201_a_started_event_numbered_0_after_the_csms_closed_a_session_starts_a_new_one(register_charge_point):
    """A transaction id reused by a new transaction (its counter restarted) starts at seqNo 0: a
    new session, even after a session the CSMS closed."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    for at in (T0, T0 + timedelta(minutes=20)):
        transaction_start(
            StartRequest(
                charge_point_id=charge_point_id,
                ocpp_version="2.0.1",
                start_key="TX-N",
                ocpp_transaction_id="TX-N",
                started_at=at,
                evse_id=1,
                connector_id=1,
                authorize=False,
                samples=[SampledValue(timestamp=at, raw_value="1000")],
                seq_no=0,
                started_event=True,
            )
        )
        if at == T0:
            charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
            charge_point.last_boot_at = timezone.now()  # after the session reached the CSMS
            charge_point.save()
            transactions_close_after_reboot(
                charge_point=charge_point, connector_id=1, evse_id=1, at=T0 + timedelta(minutes=6)
            )
    sessions = Transaction.objects.filter(charge_point__charge_point_id=charge_point_id).order_by("pk")
    assert [(s.status, s.closed_by_csms) for s in sessions] == [("ended", True), ("active", False)]


def test_v201_a_late_started_after_a_reboot_still_completes_its_ended_session(register_charge_point):
    """A Started that its Updated and Ended overtook, delivered only after a reboot: its seqNo is
    one its session never saw, so it completes that session, as without the reboot (a counter the
    reboot restarted would repeat a seqNo the session saw)."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    reading = [SampledValue(timestamp=T0 + timedelta(minutes=30), raw_value="1500")]
    v201_start(charge_point_id, "1", 1, T0 + timedelta(minutes=30), samples=reading)
    end = [SampledValue(timestamp=T0 + timedelta(hours=1), raw_value="3000", context="Transaction.End")]
    stopped = transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id="1",
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={},
            samples=end,
            seq_no=2,
        )
    ).transaction
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(last_boot_at=timezone.now())
    begin = [SampledValue(timestamp=T0, raw_value="1000", context="Transaction.Begin")]
    late = v201_start(charge_point_id, "1", 0, T0, samples=begin, started_event=True, evse_id=1, connector_id=1)
    assert late.transaction.pk == stopped.pk
    session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
    assert (session.started_at, session.energy_wh, session.anomalies) == (T0, Decimal(2000), [])


def test_a_reservation_inserted_without_its_group_as_the_release_before_does_is_stored(register_charge_point):
    """``migrate`` runs while the previous release serves (README "Upgrading"): its ReserveNow answers
    insert reservations naming no ``parent_id_tag``; the column had no default in the database
    (Django drops the one it adds with), so each was refused (review)."""
    charge_point = ChargePoint.objects.get(charge_point_id=new_charger(register_charge_point))
    table = connection.ops.quote_name(Reservation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (charge_point_id, reservation_id, id_tag, expiry_date, status, charger_status,"
            " created_at, updated_at) VALUES (%s, 5, 'OLD', %s, 'active', 'Accepted', %s, %s)",
            [charge_point.pk, T0 + timedelta(days=1), T0, T0],
        )
    assert Reservation.objects.get(reservation_id=5).parent_id_tag == ""


@pytest.mark.parametrize(
    ("request_body", "closed"), [({"type": "Immediate"}, 1), ({"type": "Immediate", "evse_id": 2}, 0)]
)
def test_a_v201_session_is_closed_after_an_accepted_reset_of_the_whole_station_only(
    register_charge_point, request_body, closed
):
    """2.0.1 B11: an accepted Reset without ``evse_id`` ends every transaction; one of another EVSE
    (no reboot of the station) says nothing of this session's."""
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    v201_event(charge_point_id, "Started", 0, 1000)
    session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
    charge_point = session.charge_point
    Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point_id,
        ocpp_version="2.0.1",
        command="reset",
        action="Reset",
        request=request_body,
        state=CommandState.ACCEPTED,
        response={"status": "Accepted"},
        completed_at=timezone.now(),
    )
    ChargePoint.objects.filter(pk=charge_point.pk).update(last_boot_at=timezone.now())
    Connector.objects.create(charge_point=charge_point, evse_id=1, connector_id=1, status="Unavailable")
    assert reset_sessions.transactions_close_after_reset() == closed
    session.refresh_from_db()
    assert (session.status, session.closed_by_csms) == (("ended", True) if closed else ("active", False))


def test_a_session_the_reset_sweep_cannot_close_does_not_keep_the_others_open(register_charge_point, caplog):
    """A session whose close raised (a fault in its billing, say) ended the sweep at once, every
    minute: each session listed after it stayed open for ever. It is logged and passed over; the
    others are closed."""
    sessions = []
    for _ in range(2):
        charge_point_id = new_charger(register_charge_point, "2.0.1")
        v201_event(charge_point_id, "Started", 0, 1000)
        session = Transaction.objects.get(charge_point__charge_point_id=charge_point_id)
        Command.objects.create(
            charge_point=session.charge_point,
            charge_point_identity=charge_point_id,
            ocpp_version="2.0.1",
            command="reset",
            action="Reset",
            request={"type": "Immediate"},
            state=CommandState.ACCEPTED,
            response={"status": "Accepted"},
            completed_at=timezone.now(),
        )
        ChargePoint.objects.filter(pk=session.charge_point_id).update(last_boot_at=timezone.now())
        Connector.objects.create(charge_point=session.charge_point, evse_id=1, connector_id=1, status="Unavailable")
        sessions.append(session)
    failing, other = sessions
    from charging.services import stranded_sessions

    finish = stranded_sessions.transaction_finish

    def failing_for_one(*, session, **kwargs):  # a fault injected into the one session's close
        if session.pk == failing.pk:
            raise RuntimeError("its billing failed")
        return finish(session=session, **kwargs)

    with mock.patch("charging.services.stranded_sessions.transaction_finish", side_effect=failing_for_one):
        assert reset_sessions.transactions_close_after_reset() == 1
    failing.refresh_from_db()
    other.refresh_from_db()
    assert (failing.status, other.status) == ("active", "ended")
    assert f"could not close session {failing.pk}" in caplog.text


def test_a_v201_session_authorized_before_its_evse_is_known_uses_its_token_s_reservation(register_charge_point):
    """OCPP 2.0.1 E03 (IdToken first) on a reservation (H01, H03): the Started carries the token
    and no EVSE (the driver has not plugged in yet), an Updated names the EVSE at plug-in, neither
    names the reservation. Probe: the token's reservation of any EVSE was not matched by the Started
    (it was looked for as a 1.6 connector's), and its reservation of one EVSE not when the EVSE
    became known (only a token learned late was matched): both stayed active, the session had none.
    A reservation made for the token's group is used alike; the reservation of another EVSE stays active."""
    fleet = IdTag.objects.create(id_tag="FLEET-E03")
    IdTag.objects.create(id_tag="CARD-E03", parent=fleet)
    charge_point_id = new_charger(register_charge_point, "2.0.1")
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, evse_id, id_tag, group in (
        (21, None, "TAG-ANY", ""),
        (22, 2, "TAG-TWO", ""),
        (23, 1, "TAG-TWO", ""),
        (24, 3, "CARD-OTHER", "fleet-e03"),
    ):
        reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=reservation_id,
            id_tag=id_tag,
            parent_id_tag=group,
            expiry_date=T0 + timedelta(hours=1),
            accepted=True,
            charger_status="Accepted",
            evse_id=evse_id,
        )
    anywhere = v201_start(charge_point_id, "TX-ANY", 0, T0, id_tag="tag-any", started_event=True).transaction
    assert Transaction.objects.get(pk=anywhere.pk).reservation.reservation_id == 21
    two = v201_start(charge_point_id, "TX-TWO", 0, T0, id_tag="TAG-TWO", started_event=True).transaction
    assert Transaction.objects.get(pk=two.pk).reservation is None  # its EVSE is not known yet
    v201_start(charge_point_id, "TX-TWO", 1, T0 + timedelta(minutes=1), evse_id=2, connector_id=1, authorize=False)
    assert Transaction.objects.get(pk=two.pk).reservation.reservation_id == 22
    grouped = v201_start(charge_point_id, "TX-G", 0, T0, id_tag="card-e03", started_event=True).transaction
    v201_start(charge_point_id, "TX-G", 1, T0 + timedelta(minutes=1), evse_id=3, connector_id=1, authorize=False)
    assert Transaction.objects.get(pk=grouped.pk).reservation.reservation_id == 24
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {
        21: ReservationStatus.USED,
        22: ReservationStatus.USED,
        23: ReservationStatus.ACTIVE,
        24: ReservationStatus.USED,
    }


@pytest.mark.parametrize("named", [-1, 0, 77])
def test_a_start_naming_a_reservation_the_charger_holds_none_of_uses_its_tag_s_reservation(
    register_charge_point, named
):
    """OCPP 1.6 §5.13: a transaction started for the reserved idTag on the reserved connector ends
    the reservation. MicroOcpp (issue 154) sends ``"reservationId": -1`` in every StartTransaction,
    the reserved tag's too; others 0, or a stale id. Probe: a start naming a reservation id the
    CSMS knows none of was taken as naming that one: the tag's reservation on the connector stayed
    active until its expiry, the session had none. Another tag's start naming it still uses none."""
    charge_point_id = new_charger(register_charge_point)
    charge_point = ChargePoint.objects.get(charge_point_id=charge_point_id)
    for reservation_id, connector_id in ((5, 1), (6, 2)):
        reservations.reservation_record(
            charge_point=charge_point,
            reservation_id=reservation_id,
            id_tag="TAG",
            expiry_date=T0 + timedelta(hours=1),
            accepted=True,
            charger_status="Accepted",
            connector_id=connector_id,
        )
    other = start_v16(charge_point_id, connector_id=2, id_tag="OTHER", reservation_id=named).transaction
    session = start_v16(charge_point_id, connector_id=1, id_tag="tag", reservation_id=named).transaction
    assert Transaction.objects.get(pk=session.pk).reservation.reservation_id == 5
    assert Transaction.objects.get(pk=other.pk).reservation is None
    statuses = dict(Reservation.objects.values_list("reservation_id", "status"))
    assert statuses == {5: ReservationStatus.USED, 6: ReservationStatus.ACTIVE}
