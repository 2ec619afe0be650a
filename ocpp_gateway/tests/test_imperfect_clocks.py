"""Chargers with untrusted clocks and reused transaction ids (issue 13 A, D), over real sockets:
a real daphne process on PostgreSQL, raw OCPP frames, and what the CSMS stored and billed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import BillingRecord, Tariff
from billing.pricing import round_money
from chargepoints.models import ChargePoint, Connector
from charging.metering import Anomaly
from charging.models import IdTag, MeterSample, ReconciliationItem, Transaction
from conftest import charger_row_held, raw_socket
from kernel.timestamps import format_ocpp_time

pytestmark = pytest.mark.django_db(transaction=True)

EPOCH_5S = "1970-01-01T00:00:05.000Z"
EPOCH = "1970-01-01T00:00:00.000Z"


def stamp(offset: timedelta = timedelta(0)) -> str:
    return format_ocpp_time(datetime.now(UTC) + offset)


async def charger_with_tag_and_default_tariff(charge_point_id: str) -> None:
    """A 1.6 or 2.0.1 charger, tag T1 Accepted, and the issue's tariff: 0.30 EUR/kWh + 0.05 EUR/min + 1.00."""
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="T1")
    await Tariff.objects.acreate(
        name="Standard",
        currency="EUR",
        price_per_kwh=Decimal("0.30"),
        price_per_minute=Decimal("0.05"),
        session_fee=Decimal("1.00"),
        is_default=True,
    )


async def call(websocket, unique_id: str, action: str, payload: dict) -> list:
    """Send one CALL frame as-is and return the decoded answer."""
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await websocket.recv())


async def result(websocket, unique_id: str, action: str, payload: dict) -> dict:
    """The CALLRESULT payload; fails on a CALLERROR."""
    answer = await call(websocket, unique_id, action, payload)
    assert answer[:2] == [3, unique_id], answer
    return answer[2]


async def session_with_record(pk: int) -> Transaction:
    return await Transaction.objects.select_related("billing_record").aget(pk=pk)


def charging_time_amount(seconds: int) -> Decimal:
    return round_money(Decimal(seconds) / 60 * Decimal("0.05"), "EUR")


async def test_v16_start_stamped_1970_is_billed_from_its_receipt_and_flagged(daphne):
    await charger_with_tag_and_default_tariff("CLK-1970")
    before = datetime.now(UTC)
    async with raw_socket(daphne, "1.6", "CLK-1970") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": EPOCH_5S}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 11000, "timestamp": stamp(), "idTag": "T1"}
        await result(websocket, "e1", "StopTransaction", stop)
    elapsed = datetime.now(UTC) - before

    session = await session_with_record(transaction_id)
    record = session.billing_record
    assert session.charger_started_at == datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert before <= session.started_at <= session.stopped_at
    assert 0 <= record.duration_seconds <= elapsed.total_seconds()
    assert record.energy_wh == Decimal(10000)
    assert record.total == Decimal("4.00") + charging_time_amount(record.charging_seconds)
    assert record.total < Decimal("4.10")
    assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies
    assert session.needs_review and record.needs_review


async def test_v16_start_and_stop_stamped_far_in_the_future_are_billed_from_their_receipt(daphne):
    await charger_with_tag_and_default_tariff("CLK-FUT")
    async with raw_socket(daphne, "1.6", "CLK-FUT") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(timedelta(hours=5))}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 11000, "timestamp": "2099-01-01T00:00:00Z"}
        await result(websocket, "e1", "StopTransaction", stop)
        # The same stop resent (its answer got lost) changes nothing and parks nothing.
        await result(websocket, "e2", "StopTransaction", stop)

    session = await session_with_record(transaction_id)
    assert session.charger_stopped_at == datetime(2099, 1, 1, tzinfo=UTC)
    assert session.stopped_at <= datetime.now(UTC)
    assert session.billing_record.total < Decimal("4.10")
    assert (Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies, session.needs_review) == (True, True)
    assert not await session.reconciliation_items.aexists()


@pytest.mark.parametrize(
    "available_at",
    [
        "1970-01-01T00:00:00.750Z",  # no real-time clock: time not set yet
        None,  # the same flow without a timestamp
        "2019-06-01T00:00:00.000Z",  # a clock restarted at the firmware's build date
        "9999-12-31T23:59:59.999Z",
    ],
)
async def test_v16_available_after_a_reboot_closes_the_interrupted_session_whatever_its_stamp(daphne, available_at):
    await charger_with_tag_and_default_tariff("CLK-BOOT")
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    async with raw_socket(daphne, "1.6", "CLK-BOOT") as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp()}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        charging = {"connectorId": 1, "status": "Charging", "errorCode": "NoError", "timestamp": stamp()}
        await result(websocket, "c1", "StatusNotification", charging)
    async with raw_socket(daphne, "1.6", "CLK-BOOT") as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        available = {"connectorId": 1, "status": "Available", "errorCode": "NoError"}
        if available_at:
            available["timestamp"] = available_at
        await result(websocket, "a1", "StatusNotification", available)

    connector = await Connector.objects.aget(charge_point__charge_point_id="CLK-BOOT", connector_id=1)
    assert connector.status == "Available"
    implausible = available_at in ("1970-01-01T00:00:00.750Z", "9999-12-31T23:59:59.999Z")
    assert (connector.charger_timestamp is not None) == implausible
    session = await session_with_record(transaction_id)
    assert (session.status, session.stop_reason, session.closed_by_csms) == ("ended", "Reboot", True)
    assert session.started_at <= session.stopped_at <= datetime.now(UTC)
    assert Anomaly.ENDED_BEFORE_STARTED not in session.anomalies
    assert session.billing_record.duration_seconds < 60


@pytest.mark.parametrize("behind", [0, 120])
async def test_a_status_stamped_in_the_future_does_not_freeze_the_connector(daphne, behind):
    """Whatever the charger's clock (here ``behind`` seconds late), the status after one whose time
    its receipt replaced (stamped in the future, unreadably or not at all) is applied (round 41's probe:
    a clock 120 s late left the connector Charging for good)."""
    await charger_with_tag_and_default_tariff("CLK-STAT")

    def charger_clock() -> str:
        return stamp(-timedelta(seconds=behind))

    async with raw_socket(daphne, "1.6", "CLK-STAT") as websocket:
        for unique_id, status, at in (
            ("0", "Available", charger_clock),
            ("1", "Charging", lambda: stamp(timedelta(days=365))),
            ("2", "Finishing", charger_clock),
            ("3", "Available", lambda: "2026-13-45T99:00:00Z"),  # unreadable: as if absent
            ("4", "Preparing", charger_clock),
            ("5", "Charging", lambda: None),
            ("6", "Finishing", charger_clock),
        ):
            payload = {"connectorId": 1, "status": status, "errorCode": "NoError", "timestamp": at()}
            await result(websocket, unique_id, "StatusNotification", {k: v for k, v in payload.items() if v})
            connector = await Connector.objects.aget(charge_point__charge_point_id="CLK-STAT")
            assert connector.status == status
            assert connector.status_timestamp <= datetime.now(UTC)
    async with raw_socket(daphne, "2.0.1", "CLK-STAT") as websocket:
        for unique_id, status, at in (
            ("7", "Available", charger_clock),
            ("8", "Occupied", lambda: "9999-12-31T23:59:59Z"),
            ("9", "Available", charger_clock),
        ):
            payload = {"timestamp": at(), "connectorStatus": status, "evseId": 1, "connectorId": 1}
            await result(websocket, unique_id, "StatusNotification", payload)
            connector = await Connector.objects.aget(charge_point__charge_point_id="CLK-STAT", evse_id=1)
            assert connector.status == status


async def test_v16_two_sessions_with_the_same_1970_start_get_different_ids_and_are_both_billed(daphne):
    await charger_with_tag_and_default_tariff("CLK-TWICE")
    start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": EPOCH}
    async with raw_socket(daphne, "1.6", "CLK-TWICE") as websocket:
        first = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": first, "meterStop": 3000, "timestamp": stamp(), "idTag": "T1"}
        await result(websocket, "e1", "StopTransaction", stop)
        second = (await result(websocket, "s2", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": second, "meterStop": 6500, "timestamp": stamp(), "idTag": "T1"}
        await result(websocket, "e2", "StopTransaction", stop)

    assert first != second
    records = [record async for record in BillingRecord.objects.order_by("transaction_id")]
    assert [(r.transaction_id, r.energy_wh) for r in records] == [(first, Decimal(3000)), (second, Decimal(6500))]
    assert all(record.needs_review for record in records)
    assert not await Transaction.objects.filter(reconciliation_items__isnull=False).aexists()


async def test_v16_a_start_resent_after_a_reconnect_while_open_returns_the_same_id(daphne):
    await charger_with_tag_and_default_tariff("CLK-RESEND")
    start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": EPOCH}
    async with raw_socket(daphne, "1.6", "CLK-RESEND") as websocket:
        first = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
    async with raw_socket(daphne, "1.6", "CLK-RESEND") as websocket:
        again = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
    assert again == first
    assert await Transaction.objects.acount() == 1


@pytest.mark.parametrize("named_id", [0, 987654])
async def test_v16_meter_values_with_an_id_never_issued_go_to_the_connectors_open_session(daphne, named_id):
    await charger_with_tag_and_default_tariff("CLK-MV")
    async with raw_socket(daphne, "1.6", "CLK-MV") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp()}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        meter_values = {
            "connectorId": 1,
            "transactionId": named_id,
            "meterValue": [{"timestamp": stamp(), "sampledValue": [{"value": "5000"}]}],
        }
        await result(websocket, "m1", "MeterValues", meter_values)

    session = await Transaction.objects.aget(pk=transaction_id)
    assert (session.last_register_wh, session.energy_wh) == (Decimal(5000), Decimal(4000))
    assert await MeterSample.objects.filter(transaction=session).acount() == 1


async def test_v16_meter_values_naming_the_ended_session_before_go_to_the_open_one(daphne):
    await charger_with_tag_and_default_tariff("CLK-MV-OLD")
    async with raw_socket(daphne, "1.6", "CLK-MV-OLD") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(-timedelta(minutes=30))}
        first = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": first, "meterStop": 2000, "timestamp": stamp(-timedelta(minutes=20))}
        await result(websocket, "e1", "StopTransaction", stop)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 2000, "timestamp": stamp(-timedelta(minutes=10))}
        second = (await result(websocket, "s2", "StartTransaction", start))["transactionId"]
        meter_values = {
            "connectorId": 1,
            "transactionId": first,
            "meterValue": [{"timestamp": stamp(), "sampledValue": [{"value": "5000"}]}],
        }
        await result(websocket, "m1", "MeterValues", meter_values)

    ended, open_session = await Transaction.objects.aget(pk=first), await Transaction.objects.aget(pk=second)
    assert (ended.energy_wh, open_session.energy_wh) == (Decimal(1000), Decimal(3000))
    assert await MeterSample.objects.filter(transaction=open_session).acount() == 1


async def test_v16_meter_values_stamped_1970_count_at_their_receipt_and_flag_the_session(daphne):
    await charger_with_tag_and_default_tariff("CLK-MV70")
    async with raw_socket(daphne, "1.6", "CLK-MV70") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp()}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        meter_values = {
            "connectorId": 1,
            "meterValue": [{"timestamp": EPOCH, "sampledValue": [{"value": "4000"}]}],
        }
        await result(websocket, "m1", "MeterValues", meter_values)
        stop = {"transactionId": transaction_id, "meterStop": 6000, "timestamp": stamp()}
        await result(websocket, "e1", "StopTransaction", stop)

    session = await Transaction.objects.aget(pk=transaction_id)
    sample = await MeterSample.objects.aget(transaction=session)
    assert sample.charger_timestamp == datetime(1970, 1, 1, tzinfo=UTC)
    assert sample.timestamp >= session.started_at
    assert session.energy_wh == Decimal(5000)
    assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies and session.needs_review


async def test_timestamps_of_year_1_and_9999_are_answered_and_flagged_never_an_error(daphne):
    await charger_with_tag_and_default_tariff("CLK-EDGE")
    async with raw_socket(daphne, "1.6", "CLK-EDGE") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": "0001-01-01T00:00:00+01:00"}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        status = {"connectorId": 1, "status": "Charging", "errorCode": "NoError", "timestamp": "0001-01-01T00:00:00Z"}
        await result(websocket, "c1", "StatusNotification", status)
        meter_values = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": "9999-12-31T23:59:59-01:00", "sampledValue": [{"value": "3000"}]}],
        }
        await result(websocket, "m1", "MeterValues", meter_values)
        stop = {"transactionId": transaction_id, "meterStop": 4000, "timestamp": "9999-12-31T23:59:59.999Z"}
        await result(websocket, "e1", "StopTransaction", stop)
    async with raw_socket(daphne, "2.0.1", "CLK-EDGE") as websocket:
        for seq_no, event_type, at in ((0, "Started", "0001-01-01T00:00:00Z"), (1, "Ended", "9999-12-31T23:59:59Z")):
            event = {
                "eventType": event_type,
                "timestamp": at,
                "triggerReason": "Authorized",
                "seqNo": seq_no,
                "transactionInfo": {"transactionId": "TX-EDGE"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": [{"timestamp": at, "sampledValue": [{"value": 1000 + 2000 * seq_no}]}],
            }
            await result(websocket, f"t{seq_no}", "TransactionEvent", event)

    for session in [s async for s in Transaction.objects.select_related("billing_record")]:
        assert session.status == "ended"
        assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies and session.needs_review
        assert session.started_at <= session.stopped_at <= datetime.now(UTC)
        assert session.billing_record.total < Decimal("2.00")
    assert await Transaction.objects.acount() == 2


async def test_v16_a_stop_stamped_before_its_start_is_flagged_and_billed_no_time(daphne):
    await charger_with_tag_and_default_tariff("CLK-BACK")
    async with raw_socket(daphne, "1.6", "CLK-BACK") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(-timedelta(minutes=10))}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 2000, "timestamp": stamp(-timedelta(minutes=30))}
        await result(websocket, "e1", "StopTransaction", stop)

    session = await session_with_record(transaction_id)
    assert Anomaly.ENDED_BEFORE_STARTED in session.anomalies
    assert (session.needs_review, session.billing_record.needs_review) == (True, True)
    assert session.billing_record.duration_seconds == 0
    assert session.billing_record.total == Decimal("1.30")


async def test_v16_a_start_stamped_years_back_after_2015_is_flagged_long(daphne):
    """A clock reset to a stale date (2016, plausible): billed as stamped, but flagged for review (round
    41's probe: 344,939,124 s, 57,491.15 EUR for 1 kWh, unflagged)."""
    await charger_with_tag_and_default_tariff("CLK-STALE")
    async with raw_socket(daphne, "1.6", "CLK-STALE") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": "2016-01-01T00:00:00Z"}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 2000, "timestamp": stamp()}
        await result(websocket, "e1", "StopTransaction", stop)
    session = await session_with_record(transaction_id)
    assert session.anomalies == [Anomaly.LONG_DURATION]
    assert (session.needs_review, session.billing_record.needs_review) == (True, True)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_start_that_a_reboot_set_the_clock_back_for_closes_the_session_the_reboot_interrupted(daphne, version):
    """The session open before the reboot started after the new start as stamped (2019: the
    firmware's build date, plausible). It stayed open beside the new session, its stop lost for
    good; it is closed at the boot, as the connector's Available after the boot would close it."""
    charge_point_id = f"CLK-SETBACK-{version}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"} if version == "1.6" else BOOT_201
    set_back = "2019-06-01T00:01:00.000Z"
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        if version == "1.6":
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(-timedelta(minutes=30))}
            await result(websocket, "s1", "StartTransaction", start)
        else:
            await result(
                websocket, "s1", "TransactionEvent", v201_event("Started", 0, stamp(-timedelta(minutes=30)), 1000, "A")
            )
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        if version == "1.6":
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 3000, "timestamp": set_back}
            await result(websocket, "s2", "StartTransaction", start)
        else:
            await result(websocket, "s2", "TransactionEvent", v201_event("Started", 0, set_back, 3000, "B"))

    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    interrupted, new = [s async for s in Transaction.objects.filter(charge_point=charge_point).order_by("pk")]
    assert (interrupted.status, interrupted.stop_reason, interrupted.closed_by_csms) == ("ended", "Superseded", True)
    assert interrupted.started_at < interrupted.stopped_at == charge_point.last_boot_at
    assert (new.status, new.started_at) == ("active", datetime(2019, 6, 1, 0, 1, tzinfo=UTC))


def v201_event(event_type: str, seq_no: int, at: str, wh: int, transaction_id: str = "1") -> dict:
    return {
        "eventType": event_type,
        "timestamp": at,
        "triggerReason": "Authorized" if event_type == "Started" else "EVDeparted",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "idToken": {"idToken": "T1", "type": "ISO14443"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": at,
                "sampledValue": [
                    {
                        "value": wh,
                        "context": "Transaction.Begin" if event_type == "Started" else "Transaction.End",
                    }
                ],
            }
        ],
    }


async def test_v201_an_ended_stamped_before_its_started_is_flagged(daphne):
    await charger_with_tag_and_default_tariff("CLK-V201-BACK")
    async with raw_socket(daphne, "2.0.1", "CLK-V201-BACK") as websocket:
        await result(websocket, "1", "TransactionEvent", v201_event("Started", 0, stamp(-timedelta(minutes=5)), 1000))
        await result(websocket, "2", "TransactionEvent", v201_event("Ended", 1, stamp(-timedelta(minutes=50)), 1000))
    session = await session_with_record((await Transaction.objects.aget()).pk)
    assert session.status == "ended"
    assert Anomaly.ENDED_BEFORE_STARTED in session.anomalies and session.billing_record.needs_review
    assert session.billing_record.duration_seconds == 0


async def test_v201_a_transaction_id_reused_after_its_session_ended_starts_a_new_session(daphne):
    await charger_with_tag_and_default_tariff("CLK-REUSE")
    first_at, second_at = stamp(-timedelta(minutes=40)), stamp(-timedelta(minutes=10))
    async with raw_socket(daphne, "2.0.1", "CLK-REUSE") as websocket:
        await result(websocket, "1", "TransactionEvent", v201_event("Started", 0, first_at, 1000))
        await result(websocket, "2", "TransactionEvent", v201_event("Ended", 1, stamp(-timedelta(minutes=30)), 3000))
        await result(websocket, "3", "TransactionEvent", v201_event("Started", 0, second_at, 3000))
        # A resend of the new session's Started (after a reconnect) is the same session.
        await result(websocket, "4", "TransactionEvent", v201_event("Started", 0, second_at, 3000))
        await result(websocket, "5", "TransactionEvent", v201_event("Ended", 1, stamp(), 7500))

    sessions = [s async for s in Transaction.objects.select_related("billing_record").order_by("pk")]
    assert [(s.ocpp_transaction_id, s.status, s.energy_wh) for s in sessions] == [
        ("1", "ended", Decimal(2000)),
        ("1", "ended", Decimal(4500)),
    ]
    assert [s.billing_record.energy_wh for s in sessions] == [Decimal(2000), Decimal(4500)]
    assert sessions[1].started_at > sessions[0].stopped_at


async def test_lower_case_rfc_3339_times_are_read_and_unreadable_ones_flagged(daphne):
    """RFC 3339 §5.6 allows ``t`` and ``z``: read as sent (were replaced by the receipt, unflagged,
    and a per-minute tariff billed 0 minutes). A time that cannot be read is replaced by its
    receipt and flagged, as a 1970 clock is; a resend of that start is still the same session."""
    await charger_with_tag_and_default_tariff("CP-LOWER")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    lower = start.strftime("%Y-%m-%dt%H:%M:%Sz")
    async with raw_socket(daphne, "1.6", "CP-LOWER") as websocket:
        first = await result(
            websocket, "s1", "StartTransaction", {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": lower}
        )
        stop_at = (start + timedelta(minutes=60)).strftime("%Y-%m-%dt%H:%M:%Sz")
        await result(
            websocket,
            "e1",
            "StopTransaction",
            {"transactionId": first["transactionId"], "meterStop": 0, "timestamp": stop_at},
        )
        unreadable = {"connectorId": 2, "idTag": "T1", "meterStart": 0, "timestamp": "not-a-date"}
        second = await result(websocket, "s2", "StartTransaction", unreadable)
        again = await result(websocket, "s3", "StartTransaction", unreadable)
    read = await session_with_record(first["transactionId"])
    assert (read.started_at, read.stopped_at, read.needs_review) == (start, start + timedelta(minutes=60), False)
    assert read.billing_record.total == Decimal("4.00")  # 60 minutes at 0.05 and the 1.00 fee
    assert again["transactionId"] == second["transactionId"]
    flagged = await Transaction.objects.aget(pk=second["transactionId"])
    assert Anomaly.CLOCK_IMPLAUSIBLE in flagged.anomalies and flagged.needs_review


async def test_v16_a_stop_at_a_leap_second_is_read_as_sent_not_replaced_by_its_receipt(daphne):
    """RFC 3339 §5.6 allows ``23:59:60``: it was unreadable, so the stop's receipt stood in and a
    session of one hour that ended at a leap second was billed every minute until the stop arrived."""
    await charger_with_tag_and_default_tariff("CP-LEAP")
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start, leap = format_ocpp_time(midnight - timedelta(hours=1)), (midnight - timedelta(days=1)).strftime("%Y-%m-%d")
    async with raw_socket(daphne, "1.6", "CP-LEAP") as websocket:
        start_payload = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": start}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start_payload))["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 10000, "timestamp": f"{leap}T23:59:60Z"}
        await result(websocket, "e1", "StopTransaction", stop)
    session = await session_with_record(transaction_id)
    assert (session.stopped_at, session.charger_stopped_at) == (midnight, None)
    assert (session.anomalies, session.needs_review) == ([], False)
    assert session.billing_record.total == Decimal("7.00")  # 10 kWh at 0.30, 60 minutes at 0.05, the 1.00 fee


def v201_reading(event_type: str, seq_no: int, at: str, wh: int, transaction_id: str) -> dict:
    """``v201_event`` with the Updated's reading a periodic one (neither its start nor its end)."""
    event = v201_event(event_type, seq_no, at, wh, transaction_id)
    if event_type == "Updated":
        event["triggerReason"] = "MeterValuePeriodic"
        event["meterValue"][0]["sampledValue"][0]["context"] = "Sample.Periodic"
    return event


@pytest.mark.parametrize("updated_first", [False, True])
async def test_v201_an_updated_stamped_a_day_before_its_started_moves_neither_start_nor_meter_start(
    daphne, updated_first
):
    """A clock glitch on one Updated (a day back, after 2015: plausible) leaves the session its
    Started's start and baseline, whichever of the two arrives first (probe D2: billed 86,399 s and
    1,300 Wh from the Updated's reading, 15.79 EUR for a 10-minute session)."""
    await charger_with_tag_and_default_tariff("CLK-GLITCH")
    started = v201_reading("Started", 0, stamp(-timedelta(minutes=10)), 1000, "J")
    updated = v201_reading("Updated", 1, stamp(-timedelta(days=1)), 1200, "J")
    async with raw_socket(daphne, "2.0.1", "CLK-GLITCH") as websocket:
        for n, event in enumerate([updated, started] if updated_first else [started, updated]):
            await result(websocket, f"e{n}", "TransactionEvent", event)
        await result(websocket, "end", "TransactionEvent", v201_reading("Ended", 2, stamp(), 2500, "J"))

    session = await session_with_record((await Transaction.objects.aget()).pk)
    record = session.billing_record
    assert (session.status, session.meter_start_wh, session.energy_wh) == ("ended", Decimal(1000), Decimal(1500))
    assert 590 <= record.duration_seconds <= 620 and (session.anomalies, record.needs_review) == ([], False)
    assert record.total == Decimal("1.45") + charging_time_amount(record.charging_seconds)
    assert await MeterSample.objects.filter(transaction=session).acount() == 3  # the glitch's reading kept


BOOT_201 = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "Two"}}


@pytest.mark.parametrize(
    ("started_at", "ended_at", "flags"),
    [
        # An implausible start (its receipt stands in, after the parked Ended's time).
        (lambda: EPOCH_5S, lambda: stamp(-timedelta(minutes=1)), {Anomaly.CLOCK_IMPLAUSIBLE}),
        (lambda: stamp(timedelta(hours=2)), lambda: stamp(-timedelta(minutes=1)), {Anomaly.CLOCK_IMPLAUSIBLE}),
        (lambda: stamp(timedelta(minutes=2)), lambda: stamp(-timedelta(minutes=1)), set()),  # ahead, within tolerance
        # Both plausible, the Ended stamped two hours before its Started: as in order.
        (lambda: stamp(-timedelta(minutes=5)), lambda: stamp(-timedelta(hours=2)), set()),
        # The Ended's clock at 1970: its receipt stands in, flagged as in order.
        (lambda: stamp(-timedelta(minutes=5)), lambda: EPOCH, {Anomaly.CLOCK_IMPLAUSIBLE}),
    ],
)
async def test_v201_an_ended_that_overtook_its_started_ends_it_whatever_their_clocks(
    daphne, started_at, ended_at, flags
):
    """An Ended parked before its Started ends the session when the Started arrives, flagged as it
    would be in order (probe D3: a Started stamped 1970, ahead of its receipt, or after its Ended,
    left its session open for good, unbilled, the Ended parked)."""
    await charger_with_tag_and_default_tariff("CLK-PARKED")
    async with raw_socket(daphne, "2.0.1", "CLK-PARKED") as websocket:
        await result(websocket, "b", "BootNotification", BOOT_201)
        await result(websocket, "e", "TransactionEvent", v201_event("Ended", 1, ended_at(), 2000, "S"))
        answer = await result(websocket, "s", "TransactionEvent", v201_event("Started", 0, started_at(), 1000, "S"))
    assert answer["idTokenInfo"]["status"] == "Accepted"

    session = await session_with_record((await Transaction.objects.aget()).pk)
    assert (session.status, session.energy_wh, session.billing_record.energy_wh) == ("ended", 1000, 1000)
    expected = flags | ({Anomaly.ENDED_BEFORE_STARTED} if session.stopped_at < session.started_at else set())
    assert set(session.anomalies) == expected and session.billing_record.needs_review == bool(expected)
    assert session.started_at <= datetime.now(UTC) and session.billing_record.duration_seconds <= 400
    item = await session.reconciliation_items.aget()
    assert item.state == "attached"


async def test_v201_an_id_restarted_by_a_reboot_that_set_the_clock_back_starts_a_new_session(daphne):
    """After a reboot, a Started naming the id of a session that ended before it, stamped within
    that session (the clock set back), is a new session, not a replay (probe D1: the second session
    answered and lost); a resend of it, and of the first Started, changes nothing."""
    await charger_with_tag_and_default_tariff("CLK-RESTART")
    first = v201_reading("Started", 0, stamp(-timedelta(seconds=1000)), 1000, "1")
    async with raw_socket(daphne, "2.0.1", "CLK-RESTART") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        await result(websocket, "1", "TransactionEvent", first)
        await result(
            websocket, "2", "TransactionEvent", v201_reading("Updated", 1, stamp(-timedelta(seconds=800)), 1500, "1")
        )
        await result(
            websocket, "3", "TransactionEvent", v201_reading("Ended", 2, stamp(-timedelta(seconds=500)), 2000, "1")
        )
    second = v201_reading("Started", 0, stamp(-timedelta(seconds=7200)), 2000, "1")
    async with raw_socket(daphne, "2.0.1", "CLK-RESTART") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        await result(websocket, "4", "TransactionEvent", second)
        await result(websocket, "5", "TransactionEvent", second)  # its resend
        await result(websocket, "6", "TransactionEvent", first)  # the first session's, resent
        await result(
            websocket, "7", "TransactionEvent", v201_reading("Updated", 1, stamp(-timedelta(seconds=7000)), 2600, "1")
        )
        await result(
            websocket, "8", "TransactionEvent", v201_reading("Ended", 2, stamp(-timedelta(seconds=6600)), 3200, "1")
        )

    sessions = [s async for s in Transaction.objects.select_related("billing_record").order_by("pk")]
    assert [(s.ocpp_transaction_id, s.status, s.energy_wh) for s in sessions] == [
        ("1", "ended", Decimal(1000)),
        ("1", "ended", Decimal(1200)),
    ]
    assert [s.billing_record.energy_wh for s in sessions] == [Decimal(1000), Decimal(1200)]
    assert 590 <= sessions[1].billing_record.duration_seconds <= 610
    assert not await Transaction.objects.filter(reconciliation_items__isnull=False).aexists()


async def test_v201_an_id_a_reboot_restarted_while_its_session_was_open_starts_a_new_session(daphne):
    """Power lost mid-session, the EV still plugged in (Occupied after the boot: no close), and the
    charger's counter restarted: its next session's Started named the open session's id with its
    seqNo 0 and was taken as a replay, so a day-old session absorbed the new one (the meter's
    climb in between, the new driver's energy, 24 hours of charging time). It is a new session,
    and closes the open one (its Ended lost); a resend of either Started changes nothing."""
    await charger_with_tag_and_default_tariff("CLK-RESTART-OPEN")
    first = v201_reading("Started", 0, stamp(-timedelta(days=1)), 1000, "1")
    async with raw_socket(daphne, "2.0.1", "CLK-RESTART-OPEN") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        await result(websocket, "1", "TransactionEvent", first)
        updated = v201_reading("Updated", 1, stamp(-timedelta(days=1) + timedelta(minutes=30)), 5000, "1")
        await result(websocket, "2", "TransactionEvent", updated)
    second = v201_reading("Started", 0, stamp(-timedelta(minutes=30)), 20000, "1")
    async with raw_socket(daphne, "2.0.1", "CLK-RESTART-OPEN") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        occupied = {"timestamp": stamp(), "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}
        await result(websocket, "o1", "StatusNotification", occupied)
        await result(websocket, "3", "TransactionEvent", second)
        await result(websocket, "4", "TransactionEvent", second)  # its resend
        await result(websocket, "5", "TransactionEvent", v201_reading("Ended", 1, stamp(), 25000, "1"))

    sessions = [s async for s in Transaction.objects.select_related("billing_record").order_by("pk")]
    assert [(s.ocpp_transaction_id, s.status, s.stop_reason, s.energy_wh) for s in sessions] == [
        ("1", "ended", "Superseded", Decimal(4000)),
        ("1", "ended", "Local", Decimal(5000)),
    ]
    assert sessions[0].closed_by_csms and not sessions[1].closed_by_csms
    assert 1790 <= sessions[1].billing_record.duration_seconds <= 1810


@pytest.mark.parametrize(
    ("states", "idle_seconds"),
    [
        ((("SuspendedEV", 2, 10), ("Charging", 1, 20)), 600),  # idle from -10 min: the late Charging ended it
        ((("Charging", 2, 10), ("SuspendedEV", 1, 20)), 0),  # from -20 to -10: the late SuspendedEV billed 20 min
    ],
)
async def test_v201_charging_states_arriving_out_of_order_bill_no_idle_time_they_did_not_see(
    daphne, states, idle_seconds
):
    """2.0.1 events may arrive out of order; their charging states were applied in arrival order: a
    late Charging ended idle time that began after it (the idle fee lost), and a late SuspendedEV
    opened idle time that a later Charging had ended (billed to the end). A late state now opens no
    idle time and closes none that began after it (a late SuspendedEV is not placed: no idle billed)."""
    charge_point_id = f"CLK-IDLE-{idle_seconds}"
    tariff = await Tariff.objects.acreate(
        name="Idle", currency="EUR", price_per_kwh=Decimal("0.30"), idle_fee_per_minute=Decimal("0.50")
    )
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, tariff=tariff)
    await IdTag.objects.acreate(id_tag="T1")
    started = v201_reading("Started", 0, stamp(-timedelta(minutes=30)), 1000, "1")
    started["transactionInfo"]["chargingState"] = "Charging"
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        await result(websocket, "s", "TransactionEvent", started)
        for state, seq_no, minutes_ago in states:
            event = v201_reading("Updated", seq_no, stamp(-timedelta(minutes=minutes_ago)), 1000, "1")
            event["transactionInfo"]["chargingState"] = state
            await result(websocket, f"u{seq_no}", "TransactionEvent", event)
        await result(websocket, "e", "TransactionEvent", v201_reading("Ended", 3, stamp(), 2000, "1"))
    session = await Transaction.objects.select_related("billing_record").aget(
        charge_point__charge_point_id=charge_point_id
    )
    assert idle_seconds - 2 <= session.billing_record.idle_seconds <= idle_seconds + 2


@pytest.mark.parametrize("token_in_every_event", [True, False])
async def test_v201_updated_events_whose_seq_nos_a_reboot_restarted_still_count_their_readings(
    daphne, token_in_every_event
):
    """A transaction kept through a reboot, its seqNo counter restarted: its Updated events repeat
    seqNos the session saw and were dropped as replays, so the energy after the reboot was lost
    (an Ended without a reading billed up to the last reading before it). They count; a real
    replay of an event from before the boot (same times) still adds nothing. Also for a station
    that sends the idToken only when it changes (OCPP 2.0.1 E01): such an Updated took the
    connection's kept session (``transaction_updated_record``), which dropped a seen seqNo unjudged."""
    await charger_with_tag_and_default_tariff("CLK-SEQ-RESTART")

    def reading(event_type: str, seq_no: int, at: str, wh: int) -> dict:
        event = v201_reading(event_type, seq_no, at, wh, "A")
        if event_type != "Started" and not token_in_every_event:
            del event["idToken"], event["evse"]
        return event

    before = [reading("Started", 0, stamp(-timedelta(minutes=60)), 1000)]
    before += [reading("Updated", n, stamp(-timedelta(minutes=60 - 5 * n)), 1000 + 1000 * n) for n in (1, 2)]
    async with raw_socket(daphne, "2.0.1", "CLK-SEQ-RESTART") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        for n, event in enumerate(before):
            await result(websocket, f"e{n}", "TransactionEvent", event)
    async with raw_socket(daphne, "2.0.1", "CLK-SEQ-RESTART") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        await result(websocket, "r", "TransactionEvent", before[2])  # a replay from the offline queue
        for n in (0, 1):
            event = reading("Updated", n, stamp(-timedelta(minutes=20 - 5 * n)), 10000 + 1000 * n)
            await result(websocket, f"u{n}", "TransactionEvent", event)
        ended = reading("Ended", 2, stamp(), 0)
        del ended["meterValue"]
        await result(websocket, "end", "TransactionEvent", ended)

    session = await Transaction.objects.aget(ocpp_transaction_id="A")
    assert (session.status, session.energy_wh) == ("ended", Decimal(10000))
    assert await MeterSample.objects.filter(transaction=session).acount() == 5


@pytest.mark.parametrize("token_in_every_event", [True, False])
async def test_v201_charging_states_after_a_reboot_that_restarted_the_seq_no_counter_are_in_their_own_order(
    daphne, token_in_every_event
):
    """A transaction kept through a reboot, its seqNo counter restarted at 0: every event after the
    boot was judged late (a seqNo below the highest the session saw before it), so its SuspendedEV
    opened no idle time (the idle fee lost) and a Charging closed none. They are in their own order,
    also from a station that sends the idToken only when it changes (they were dropped as replays)."""
    charge_point_id = "CLK-IDLE-REBOOT"
    tariff = await Tariff.objects.acreate(
        name="Idle", currency="EUR", price_per_kwh=Decimal("0.30"), idle_fee_per_minute=Decimal("0.50")
    )
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, tariff=tariff)
    await IdTag.objects.acreate(id_tag="T1")
    before = [v201_reading("Started", 0, stamp(-timedelta(minutes=60)), 1000, "R")]
    before += [
        v201_reading("Updated", n, stamp(-timedelta(minutes=60 - 3 * n)), 1000 + 100 * n, "R") for n in range(1, 11)
    ]
    for event in before:
        event["transactionInfo"]["chargingState"] = "Charging"
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        for n, event in enumerate(before):
            await result(websocket, f"e{n}", "TransactionEvent", event)
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        for n, (state, minutes_ago) in enumerate([("SuspendedEV", 20), ("Charging", 10)]):
            event = v201_reading("Updated", n, stamp(-timedelta(minutes=minutes_ago)), 5000 + 1000 * n, "R")
            event["transactionInfo"]["chargingState"] = state
            if not token_in_every_event:
                del event["idToken"], event["evse"]
            await result(websocket, f"u{n}", "TransactionEvent", event)
        await result(websocket, "end", "TransactionEvent", v201_reading("Ended", 2, stamp(), 7000, "R"))

    session = await Transaction.objects.select_related("billing_record").aget(ocpp_transaction_id="R")
    assert (session.status, session.energy_wh) == ("ended", Decimal(6000))
    assert 598 <= session.billing_record.idle_seconds <= 602


def status(connector_id: int, value: str, at: str) -> dict:
    return {"connectorId": connector_id, "status": value, "errorCode": "NoError", "timestamp": at}


async def test_v16_queued_statuses_after_the_current_one_still_time_their_sessions_idle_fee(daphne):
    """Probe: a charger back online sent its current status (Available, now), then its offline queue:
    the start, Charging, SuspendedEV an hour later, Finishing and the stop, all stamped hours back.
    The queued statuses, older than the connector's, were dropped whole: the session billed its hour
    parked as charging time and no idle fee. The connector keeps its newer status; the session takes
    its own states."""
    await charger_with_tag_and_default_tariff("CLK-IDLE")
    await Tariff.objects.filter(name="Standard").aupdate(idle_fee_per_minute=Decimal("0.10"))
    async with raw_socket(daphne, "1.6", "CLK-IDLE") as ws:
        await result(ws, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        await result(ws, "s0", "StatusNotification", status(1, "Available", stamp()))
        started = await result(
            ws,
            "st",
            "StartTransaction",
            {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(-timedelta(hours=5))},
        )
        for n, (value, hours) in enumerate((("Charging", 5), ("SuspendedEV", 4), ("Finishing", 3))):
            await result(ws, f"s{n + 1}", "StatusNotification", status(1, value, stamp(-timedelta(hours=hours))))
        await result(
            ws,
            "sp",
            "StopTransaction",
            {"transactionId": started["transactionId"], "meterStop": 5000, "timestamp": stamp(-timedelta(hours=3))},
        )
    session = await session_with_record(started["transactionId"])
    assert (session.idle_seconds, session.billing_record.charging_seconds) == (3600, 3600)
    assert {"kind": "idle_time", "quantity": "60", "amount": "6.00"}.items() <= session.billing_record.line_items[
        -1
    ].items()
    assert (
        await Connector.objects.aget(charge_point__charge_point_id="CLK-IDLE", connector_id=1)
    ).status == "Available"


async def test_v16_a_status_replayed_behind_one_its_session_took_opens_no_idle_time(daphne):
    """A SuspendedEV sent again after the Charging that ended it (its answer lost) is behind the
    session's state: it opens no idle time that would run to the stop."""
    await charger_with_tag_and_default_tariff("CLK-IDLE-RE")
    async with raw_socket(daphne, "1.6", "CLK-IDLE-RE") as ws:
        started = await result(
            ws,
            "st",
            "StartTransaction",
            {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": stamp(-timedelta(minutes=30))},
        )
        suspended = status(1, "SuspendedEV", stamp(-timedelta(minutes=20)))
        await result(ws, "s1", "StatusNotification", suspended)
        await result(ws, "s2", "StatusNotification", status(1, "Charging", stamp(-timedelta(minutes=10))))
        await result(ws, "s3", "StatusNotification", suspended)
        await result(
            ws,
            "sp",
            "StopTransaction",
            {"transactionId": started["transactionId"], "meterStop": 2000, "timestamp": stamp()},
        )
    session = await session_with_record(started["transactionId"])
    assert session.idle_seconds == 600
    assert (
        await Connector.objects.aget(charge_point__charge_point_id="CLK-IDLE-RE", connector_id=1)
    ).status == "Charging"


@pytest.mark.parametrize("ended_seq_no", [1, 2])
async def test_v201_an_ended_that_overtook_the_started_of_an_id_a_reboot_restarted_ends_the_new_session(
    daphne, ended_seq_no
):
    """Probe: after a factory reset the station's counter gave its next session the id of one that
    ended days before (its clock set back too), and its queue sent the new session's Ended before
    its Started. The Ended was taken as the old session's: a resend when its seqNo was one the old
    session saw (nothing kept), else a second stop (parked already_stopped, answered with the old
    session's totalCost). The new session stayed open, its energy unbilled, until a next start
    closed it. Now the Ended waits, parked, for its Started, which it ends."""
    await charger_with_tag_and_default_tariff("CLK-RESET")
    async with raw_socket(daphne, "2.0.1", "CLK-RESET") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        await result(websocket, "1", "TransactionEvent", v201_event("Started", 0, stamp(-timedelta(days=3)), 1000))
        ended_before = v201_event("Ended", 1, stamp(-timedelta(days=3, hours=-1)), 2000)
        await result(websocket, "2", "TransactionEvent", ended_before)
    async with raw_socket(daphne, "2.0.1", "CLK-RESET") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        assert await result(websocket, "3", "TransactionEvent", ended_before) == {
            "idTokenInfo": {"status": "Accepted"},
            "totalCost": 4.3,  # the old session's Ended, resent after the boot: still its own
        }
        back = -timedelta(days=10)
        ended = v201_event("Ended", ended_seq_no, stamp(back + timedelta(hours=1)), 5000)
        assert "totalCost" not in await result(websocket, "4", "TransactionEvent", ended)
        await result(websocket, "5", "TransactionEvent", v201_event("Started", 0, stamp(back), 3000))

    sessions = [s async for s in Transaction.objects.select_related("billing_record").order_by("pk")]
    assert [(s.status, s.energy_wh, s.closed_by_csms, s.billing_record.energy_wh) for s in sessions] == [
        ("ended", Decimal(1000), False, Decimal(1000)),
        ("ended", Decimal(2000), False, Decimal(2000)),
    ]
    assert 3590 <= sessions[1].billing_record.duration_seconds <= 3610
    assert [item.state async for item in ReconciliationItem.objects.all()] == ["attached"]


async def test_v201_an_updated_that_overtook_the_started_of_an_id_a_reboot_restarted_opens_the_new_session(daphne):
    """Probe: after a reboot the station's counter gave its next session the id of one that ended days
    before, and its queue sent the new session's first Updated (SuspendedEV, a reading) before its
    Started. The Updated was taken as the old session's (its seqNo one the old session saw: a resend,
    nothing kept): the new session lost its reading and its half hour parked (no idle fee). An Updated
    stamped outside the ended session, after a reboot since it reached the CSMS, is the new session's."""
    await charger_with_tag_and_default_tariff("CLK-RESET-UPD")
    await Tariff.objects.filter(name="Standard").aupdate(idle_fee_per_minute=Decimal("0.10"))
    async with raw_socket(daphne, "2.0.1", "CLK-RESET-UPD") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        await result(websocket, "1", "TransactionEvent", v201_event("Started", 0, stamp(-timedelta(days=3)), 1000))
        ended_before = v201_event("Ended", 1, stamp(-timedelta(days=3, hours=-1)), 2000)
        await result(websocket, "2", "TransactionEvent", ended_before)
    updated = v201_reading("Updated", 1, stamp(-timedelta(hours=1, minutes=30)), 4000, "1")
    updated["transactionInfo"]["chargingState"] = "SuspendedEV"
    async with raw_socket(daphne, "2.0.1", "CLK-RESET-UPD") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        await result(websocket, "3", "TransactionEvent", ended_before)  # the old session's, resent: still its own
        await result(websocket, "4", "TransactionEvent", updated)
        await result(websocket, "5", "TransactionEvent", v201_event("Started", 0, stamp(-timedelta(hours=2)), 3000))
        await result(websocket, "6", "TransactionEvent", v201_event("Ended", 2, stamp(-timedelta(hours=1)), 5000))

    sessions = [s async for s in Transaction.objects.select_related("billing_record").order_by("pk")]
    assert [(s.status, s.energy_wh, s.idle_seconds, s.anomalies) for s in sessions] == [
        ("ended", Decimal(1000), 0, []),
        ("ended", Decimal(2000), 1800, []),
    ]
    assert await MeterSample.objects.filter(transaction=sessions[1], raw_value="4000").aexists()
    assert not await ReconciliationItem.objects.aexists()


@pytest.mark.parametrize("closed_by", ["Reboot", "Superseded"])
async def test_v16_a_session_the_csms_closes_is_billed_its_time_up_to_its_last_evidence(daphne, closed_by):
    """Probe: a session whose charger went offline (its stop lost) was closed by the CSMS at the
    reboot's Available, or at the next start on its connector, 3 h after its last reading: its
    charging time (0.05 EUR/min) and its idle time (from SuspendedEV, 0.10 EUR/min) were billed to
    the close, through the hours the charger was offline. It is billed to its last evidence (its last
    register reading, the start of its open idle time); the energy is the register's, as before."""
    charge_point_id = f"CLK-EVIDENCE-{closed_by}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    await Tariff.objects.filter(is_default=True).aupdate(idle_fee_per_minute=Decimal("0.10"))
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def at(minutes: int) -> str:
        return format_ocpp_time(began + timedelta(minutes=minutes))

    def reading(minutes: int, wh: int) -> dict:
        return {
            "timestamp": at(minutes),
            "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register"}],
        }

    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": at(0)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading(30, 4000)]}
        await result(websocket, "m1", "MeterValues", values)
        suspended = {"connectorId": 1, "status": "SuspendedEV", "errorCode": "NoError", "timestamp": at(50)}
        await result(websocket, "c1", "StatusNotification", suspended)
        values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading(60, 5000)]}
        await result(websocket, "m2", "MeterValues", values)
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        if closed_by == "Reboot":
            await result(websocket, "b2", "BootNotification", boot)
            available = {"connectorId": 1, "status": "Available", "errorCode": "NoError", "timestamp": at(240)}
            await result(websocket, "a1", "StatusNotification", available)
        else:
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 5000, "timestamp": at(240)}
            await result(websocket, "s2", "StartTransaction", start)

    session = await session_with_record(transaction_id)
    assert (session.status, session.stop_reason, session.closed_by_csms) == ("ended", closed_by, True)
    assert session.stopped_at == began + timedelta(minutes=240)  # when the CSMS closed it
    record = session.billing_record
    assert (record.energy_wh, record.duration_seconds) == (Decimal(4000), 3600)
    assert (record.charging_seconds, record.idle_seconds) == (50 * 60, 10 * 60)
    # 4 kWh x 0.30 + 50 min x 0.05 + 10 min idle x 0.10 + the 1.00 fee
    assert record.total == Decimal("1.20") + Decimal("2.50") + Decimal("1.00") + Decimal("1.00")
    assert session.needs_review and record.needs_review


async def test_v201_a_queued_event_of_a_session_the_reboot_closed_bills_its_reading_with_its_time(daphne):
    """Probe: a 2.0.1 station's session, closed by the CSMS at the reboot's Available (its Ended still
    queued), then an Updated from the queue with a later reading: its time counted (the last
    evidence moved to it) but its energy did not (the close's meter stop was kept as if the charger
    had sent it): 20 more minutes billed for no more kWh. The reading moves both."""
    await charger_with_tag_and_default_tariff("CLK-QUEUED-201")
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)

    def event(event_type: str, seq_no: int, minutes: int, wh: int, context: str = "Sample.Periodic") -> dict:
        at = format_ocpp_time(began + timedelta(minutes=minutes))
        return {
            "eventType": event_type,
            "timestamp": at,
            "triggerReason": "Authorized",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": "Q1"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": at, "sampledValue": [{"value": wh, "context": context}]}],
        }

    async with raw_socket(daphne, "2.0.1", "CLK-QUEUED-201") as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        started = event("Started", 0, 0, 1000, "Transaction.Begin") | {"idToken": {"idToken": "T1", "type": "ISO14443"}}
        await result(websocket, "t0", "TransactionEvent", started)
        await result(websocket, "t1", "TransactionEvent", event("Updated", 1, 20, 2000))
    async with raw_socket(daphne, "2.0.1", "CLK-QUEUED-201") as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        available = {"timestamp": stamp(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        await result(websocket, "a1", "StatusNotification", available)
        session = await session_with_record((await Transaction.objects.aget(ocpp_transaction_id="Q1")).pk)
        assert (session.stop_reason, session.energy_wh, session.billing_record.duration_seconds) == (
            "Reboot",
            Decimal(1000),
            20 * 60,
        )
        await result(websocket, "t2", "TransactionEvent", event("Updated", 2, 40, 3000))

    session = await session_with_record(session.pk)
    assert (session.stop_reason, session.closed_by_csms, session.energy_wh) == ("Reboot", True, Decimal(2000))
    record = session.billing_record
    assert (record.energy_wh, record.duration_seconds) == (Decimal(2000), 40 * 60)
    assert record.total == Decimal("0.60") + charging_time_amount(40 * 60) + Decimal("1.00")


@pytest.mark.parametrize("close", ["Reboot", "Superseded"])
async def test_v16_queued_meter_values_of_a_session_the_csms_closed_bill_their_reading_with_its_time(daphne, close):
    """Probe: a 1.6 session closed by the CSMS (at the reboot's Available, or by a newer start on its
    connector that overtook the queue), then a MeterValues from the charger's queue naming it, with a
    later reading stamped before the close: stored, but the session stayed billed 1 kWh and 20 minutes
    (its last reading at the close), where the same reading in a 2.0.1 event re-prices it."""
    charge_point_id = f"CLK-QUEUED-16-{close}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)

    def reading(transaction_id: int, minutes: int, wh: int) -> dict:
        at = format_ocpp_time(began + timedelta(minutes=minutes))
        meter_value = [{"timestamp": at, "sampledValue": [{"value": str(wh)}]}]
        return {"connectorId": 1, "transactionId": transaction_id, "meterValue": meter_value}

    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": format_ocpp_time(began)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        await result(websocket, "m1", "MeterValues", reading(transaction_id, 20, 2000))
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        if close == "Reboot":
            await result(websocket, "b2", "BootNotification", boot)
            available = {"connectorId": 1, "status": "Available", "errorCode": "NoError", "timestamp": stamp()}
            await result(websocket, "a1", "StatusNotification", available)
        else:
            an_hour_in = format_ocpp_time(began + timedelta(hours=1))
            later = {"connectorId": 1, "idTag": "T1", "meterStart": 3000, "timestamp": an_hour_in}
            await result(websocket, "s2", "StartTransaction", later)
        session = await session_with_record(transaction_id)
        assert (session.stop_reason, session.energy_wh, session.billing_record.duration_seconds) == (
            close,
            Decimal(1000),
            20 * 60,
        )
        await result(websocket, "m2", "MeterValues", reading(transaction_id, 40, 3000))

    session = await session_with_record(transaction_id)
    assert (session.stop_reason, session.closed_by_csms, session.energy_wh) == (close, True, Decimal(2000))
    record = session.billing_record
    assert (record.energy_wh, record.duration_seconds) == (Decimal(2000), 40 * 60)
    assert record.total == Decimal("0.60") + charging_time_amount(40 * 60) + Decimal("1.00")


@pytest.mark.parametrize("closed_first", [False, True])
async def test_v16_a_power_loss_stop_stamped_1970_after_the_reboot_bills_no_hours_the_power_was_out(
    daphne, closed_first
):
    """Probe: a session charging 50 minutes, then 4 hours without power; back, the charger boots with its
    clock at 1970 and sends its StopTransaction (reason PowerLoss) stamped so. Its receipt stood in for
    its end: 5 hours billed (17.26 EUR), also when the CSMS had closed the session at the boot's
    Available, billed 50 minutes: the charger's stop replaced that close with the longer bill. The
    session ended before the boot: it ends at the boot at the latest, its time billed up to its last
    evidence, as the close was."""
    charge_point_id = f"CLK-POWER-LOSS-{closed_first}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": format_ocpp_time(began)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        at = format_ocpp_time(began + timedelta(minutes=50))
        reading = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": at, "sampledValue": [{"value": "5000"}]}],
        }
        await result(websocket, "m1", "MeterValues", reading)
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        booted_at = (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).last_boot_at
        if closed_first:
            available = {"connectorId": 1, "status": "Available", "errorCode": "NoError", "timestamp": EPOCH}
            await result(websocket, "a1", "StatusNotification", available)
        stop = {"transactionId": transaction_id, "meterStop": 5200, "timestamp": EPOCH_5S, "reason": "PowerLoss"}
        await result(websocket, "e1", "StopTransaction", stop)

    session = await session_with_record(transaction_id)
    record = session.billing_record
    assert (session.stop_reason, session.closed_by_csms, session.energy_wh) == ("PowerLoss", False, Decimal(4200))
    assert session.started_at < session.stopped_at <= booted_at
    assert record.duration_seconds == 50 * 60
    assert record.total == Decimal("1.26") + charging_time_amount(50 * 60) + Decimal("1.00")
    assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies and Anomaly.ENDED_BEFORE_STARTED not in session.anomalies


@pytest.mark.parametrize("closed_first", [False, True])
async def test_v16_a_power_loss_stop_stamped_after_the_reboot_bills_no_hours_the_power_was_out(daphne, closed_first):
    """Probe: a session charging 50 minutes, then 4 hours without power; back, the charger boots, its clock
    set again (the BootNotification's currentTime, NTP), and sends its StopTransaction (reason PowerLoss)
    stamped when it sent it, after the boot. Its time stood for the end: 5 hours billed, also when the
    CSMS had closed the session at the boot's Available, billed 50 minutes. A stop stamped after the boot
    tells no more than one stamped 1970 when the session ended: it ends at the boot at the latest, billed
    up to its last evidence."""
    charge_point_id = f"CLK-POWER-LOSS-STAMPED-{closed_first}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": format_ocpp_time(began)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        at = format_ocpp_time(began + timedelta(minutes=50))
        reading = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": at, "sampledValue": [{"value": "5000"}]}],
        }
        await result(websocket, "m1", "MeterValues", reading)
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        booted_at = (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).last_boot_at
        if closed_first:
            available = {"connectorId": 1, "status": "Available", "errorCode": "NoError", "timestamp": stamp()}
            await result(websocket, "a1", "StatusNotification", available)
        stop = {"transactionId": transaction_id, "meterStop": 5200, "timestamp": stamp(), "reason": "PowerLoss"}
        await result(websocket, "e1", "StopTransaction", stop)
        await result(websocket, "e2", "StopTransaction", stop)  # its answer lost: the same stop again

    assert not await ReconciliationItem.objects.filter(charge_point__charge_point_id=charge_point_id).aexists()
    session = await session_with_record(transaction_id)
    record = session.billing_record
    assert (session.stop_reason, session.closed_by_csms, session.energy_wh) == ("PowerLoss", False, Decimal(4200))
    assert session.started_at < session.stopped_at <= booted_at
    assert record.duration_seconds == 50 * 60
    assert record.total == Decimal("1.26") + charging_time_amount(50 * 60) + Decimal("1.00")


@pytest.mark.parametrize("stop_stamped", ["sent", "1970"])
async def test_v16_a_reset_stop_of_a_session_that_charged_on_after_a_reconnection_s_boot_ends_at_its_time(
    daphne, stop_stamped
):
    """Review: a boot on a reconnection (a network blip: a 1.6 charger boots on every new connection)
    ended no session: the charger went on reporting readings after it. Its later reset stop (SoftReset,
    sent before the reboot) was taken as ended at that boot, the readings since left out of its time:
    a 2-hour session billed 1 hour. A session with readings after the boot is not ended by it."""
    charge_point_id = f"CLK-BLIP-BOOT-{stop_stamped}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}

    def reading(transaction_id: int, at: datetime, wh: int) -> dict:
        meter_value = [{"timestamp": format_ocpp_time(at), "sampledValue": [{"value": str(wh)}]}]
        return {"connectorId": 1, "transactionId": transaction_id, "meterValue": meter_value}

    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": format_ocpp_time(began)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        await result(websocket, "m1", "MeterValues", reading(transaction_id, began + timedelta(hours=1), 3000))
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)  # the blip's: the car charges on
        booted_at = (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).last_boot_at
        await result(websocket, "m2", "MeterValues", reading(transaction_id, datetime.now(UTC), 5000))
        sent = stamp() if stop_stamped == "sent" else "1970-01-01T00:00:00Z"
        stop = {"transactionId": transaction_id, "meterStop": 5200, "timestamp": sent, "reason": "SoftReset"}
        await result(websocket, "e1", "StopTransaction", stop)

    session = await session_with_record(transaction_id)
    assert (session.stop_reason, session.energy_wh, session.end_unknown) == ("SoftReset", Decimal(4200), False)
    assert session.stopped_at > booted_at
    assert session.billing_record.duration_seconds >= 2 * 3600 - 60


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_power_loss_stop_ended_at_the_boot_stays_billed_to_its_evidence_when_late_readings_reprice_it(
    daphne, version
):
    """Probe: a session charging 50 minutes, 4 hours without power, then the charger's stop (PowerLoss,
    stamped 1970 after the boot) ends it at the boot, its time billed up to its last evidence (50 min).
    A late message of its queue then re-prices it (1.6: a MeterValues with its Transaction.Begin in
    place of a meter start of 0; 2.0.1: an Updated its Ended overtook, a lower seqNo): it was billed up
    to the boot, the 4 hours without power charged as charging time. It stays billed to its evidence."""
    charge_point_id = f"CLK-POWER-LOSS-REPRICED-{version}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    at_50 = format_ocpp_time(began + timedelta(minutes=50))
    if version == "1.6":
        boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    else:
        boot = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "One"}}

    def reading(at: str, wh: int, context: str) -> dict:
        return {"timestamp": at, "sampledValue": [{"value": wh, "context": context}]}

    def event(kind: str, seq_no: int, at: str, **fields) -> dict:
        return {
            "eventType": kind,
            "timestamp": at,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": "TX-PL", **fields.pop("info", {})},
            **fields,
        }

    async with raw_socket(daphne, version, charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        if version == "1.6":
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": format_ocpp_time(began)}
            transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
            body = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading(at_50, 5000, "")]}
            await result(websocket, "m1", "MeterValues", body)
        else:
            started = event(
                "Started",
                0,
                format_ocpp_time(began),
                idToken={"idToken": "T1", "type": "ISO14443"},
                evse={"id": 1, "connectorId": 1},
                meterValue=[reading(format_ocpp_time(began), 1000, "Transaction.Begin")],
            )
            await result(websocket, "s1", "TransactionEvent", started)
            later = event("Updated", 2, at_50, meterValue=[reading(at_50, 5000, "Sample.Periodic")])
            await result(websocket, "m1", "TransactionEvent", later)
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        if version == "1.6":
            stop = {"transactionId": transaction_id, "meterStop": 5200, "timestamp": EPOCH_5S, "reason": "PowerLoss"}
            await result(websocket, "e1", "StopTransaction", stop)
            assert (await BillingRecord.objects.aget(transaction_id=transaction_id)).duration_seconds == 50 * 60
            begin = [reading(format_ocpp_time(began), 1000, "Transaction.Begin")]
            late = {"connectorId": 1, "transactionId": transaction_id, "meterValue": begin}
            await result(websocket, "m2", "MeterValues", late)
        else:
            ended = event("Ended", 3, EPOCH_5S, info={"stoppedReason": "PowerLoss"})
            ended["triggerReason"] = "AbnormalCondition"
            ended["meterValue"] = [reading(EPOCH_5S, 5200, "Transaction.End")]
            await result(websocket, "e1", "TransactionEvent", ended)
            record = await BillingRecord.objects.aget(transaction__ocpp_transaction_id="TX-PL")
            assert record.duration_seconds == 50 * 60
            at_40 = format_ocpp_time(began + timedelta(minutes=40))
            overtaken = event("Updated", 1, at_40, meterValue=[reading(at_40, 4000, "Sample.Periodic")])
            await result(websocket, "m2", "TransactionEvent", overtaken)
            transaction_id = (await Transaction.objects.aget(ocpp_transaction_id="TX-PL")).pk

    session = await session_with_record(transaction_id)
    record = session.billing_record
    assert (session.stop_reason, session.closed_by_csms) == ("PowerLoss", False)
    assert record.energy_wh == 4200
    assert record.duration_seconds == 50 * 60
    assert record.total == Decimal("1.26") + charging_time_amount(50 * 60) + Decimal("1.00")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_start_stamped_with_a_date_and_no_time_of_day_is_unreadable_not_midnight(daphne, version):
    """A firmware that sends only its date (``2026-12-07``) tells no time of day: it was read as
    midnight UTC, a plausible time, and the session billed the hours since. Unreadable: its receipt
    stands in, flagged ``clock_implausible``, as for ``"not-a-date"``."""
    charge_point_id = f"CLK-DATE-{version}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    before = datetime.now(UTC)
    date_only = before.date().isoformat()
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        if version == "1.6":
            start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": date_only}
            transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
            stop = {"transactionId": transaction_id, "meterStop": 2000, "timestamp": stamp()}
            await result(websocket, "e1", "StopTransaction", stop)
        else:
            await result(websocket, "1", "TransactionEvent", v201_event("Started", 0, date_only, 1000))
            await result(websocket, "2", "TransactionEvent", v201_event("Ended", 1, stamp(), 2000))
            transaction_id = (await Transaction.objects.aget(charge_point__charge_point_id=charge_point_id)).pk

    session = await session_with_record(transaction_id)
    assert before <= session.started_at <= session.stopped_at
    assert session.billing_record.duration_seconds < 60
    assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies and session.needs_review


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_boots_current_time_is_the_time_it_is_answered_not_when_its_write_began(daphne, version):
    """The charger sets its clock by the BootNotification answer's ``currentTime``: it was the time
    the boot's write began, so a boot waiting for its charger's row (an admin's long transaction)
    set the charger's clock behind by that wait."""
    charge_point_id = f"CLK-BOOT-NOW-{version}"
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    boot = (
        {"chargePointVendor": "Acme", "chargePointModel": "One"}
        if version == "1.6"
        else {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "One"}}
    )
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        async with charger_row_held(charge_point_id, at_most=2.0):
            answer = await result(websocket, "b1", "BootNotification", boot)
        answered_at = datetime.now(UTC)
    assert answered_at - datetime.fromisoformat(answer["currentTime"]) < timedelta(seconds=0.5)


@pytest.mark.parametrize("closed_first", [False, True])
@pytest.mark.parametrize("stop_stamped", ["before the boot", "1970"])
async def test_v16_a_reset_stop_replacing_the_csms_close_bills_the_idle_time_it_would_have(
    daphne, closed_first, stop_stamped
):
    """Probe: a session charging 30 minutes, the EV full at 40 (SuspendedEV), then a hard reset; its
    StopTransaction (reason HardReset) comes after the boot. Stamped 60 (before the boot), it billed 20
    idle minutes, but none when the CSMS had closed the session at the boot's Available first: the
    close billed the idle time up to its last evidence (40) and ended it, and the stop found none open.
    Stamped 1970 (ended at the boot, billed to its last evidence), it billed 40 minutes, but 30 after
    the close (the start of its idle time no longer evidence). The close keeps the idle time open."""
    charge_point_id = f"CLK-RESET-IDLE-{closed_first}-{stop_stamped.replace(' ', '-')}"
    await charger_with_tag_and_default_tariff(charge_point_id)
    await Tariff.objects.filter(is_default=True).aupdate(idle_fee_per_minute=Decimal("0.10"))
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def at(minutes: int) -> str:
        return format_ocpp_time(began + timedelta(minutes=minutes))

    boot = {"chargePointVendor": "Acme", "chargePointModel": "One"}
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", boot)
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": at(0)}
        transaction_id = (await result(websocket, "s1", "StartTransaction", start))["transactionId"]
        reading = {"timestamp": at(30), "sampledValue": [{"value": "4000"}]}
        await result(
            websocket, "m1", "MeterValues", {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading]}
        )
        await result(websocket, "c1", "StatusNotification", status(1, "SuspendedEV", at(40)))
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", boot)
        if closed_first:
            await result(websocket, "a1", "StatusNotification", status(1, "Available", at(240)))
        stamped = at(60) if stop_stamped == "before the boot" else EPOCH_5S
        stop = {"transactionId": transaction_id, "meterStop": 4000, "timestamp": stamped, "reason": "HardReset"}
        await result(websocket, "e1", "StopTransaction", stop)

    session = await session_with_record(transaction_id)
    record = session.billing_record
    assert (session.closed_by_csms, session.idle_since, record.energy_wh) == (False, None, Decimal(3000))
    duration, idle = (60 * 60, 20 * 60) if stop_stamped == "before the boot" else (40 * 60, 0)
    assert (record.duration_seconds, record.idle_seconds) == (duration, idle)


async def test_v201_a_reset_ended_replacing_the_csms_close_leaves_the_station_s_pause_out_of_the_idle_time(daphne):
    """Probe: a station charging 30 minutes, then withholding energy (SuspendedEVSE, a site's pause),
    then reset; after the boot's Available closed the session, its Ended (ImmediateReset, stamped 60,
    timeSpentCharging 1800) came: the close had ended the pause at its last evidence (30), so the
    Ended's idle time (its time less the charging time less the pause) billed the 30 paused minutes
    as idle (3.00 at 0.10/min). The close keeps the pause open: the Ended ends it, no idle time."""
    charge_point_id = "CLK-RESET-WITHHELD"
    await charger_with_tag_and_default_tariff(charge_point_id)
    await Tariff.objects.filter(is_default=True).aupdate(idle_fee_per_minute=Decimal("0.10"))
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=4)

    def at(minutes: int) -> str:
        return format_ocpp_time(began + timedelta(minutes=minutes))

    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        await result(websocket, "b1", "BootNotification", BOOT_201)
        started = v201_event("Started", 0, at(0), 1000, "RW")
        started["transactionInfo"]["chargingState"] = "Charging"
        await result(websocket, "t0", "TransactionEvent", started)
        paused = v201_event("Updated", 1, at(30), 4000, "RW")
        paused["meterValue"][0]["sampledValue"][0]["context"] = "Sample.Periodic"
        paused["transactionInfo"]["chargingState"] = "SuspendedEVSE"
        await result(websocket, "t1", "TransactionEvent", paused)
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        await result(websocket, "b2", "BootNotification", BOOT_201)
        available = {"timestamp": at(240), "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        await result(websocket, "a1", "StatusNotification", available)
        assert (await Transaction.objects.aget(ocpp_transaction_id="RW")).closed_by_csms
        ended = v201_event("Ended", 2, at(60), 4000, "RW")
        ended["transactionInfo"].update(stoppedReason="ImmediateReset", timeSpentCharging=1800)
        await result(websocket, "t2", "TransactionEvent", ended)

    session = await Transaction.objects.select_related("billing_record").aget(ocpp_transaction_id="RW")
    record = session.billing_record
    assert (session.closed_by_csms, session.withheld_seconds, session.withheld_since) == (False, 1800, None)
    assert (record.duration_seconds, record.idle_seconds) == (3600, 0)
