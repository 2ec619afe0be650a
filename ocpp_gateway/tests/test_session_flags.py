"""What a session is billed when the charger gave little to go on: no energy reading at all, a token
the CSMS did not accept, an Ended without stoppedReason. Real daphne, real sockets, PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from charging.models import AuthorizationStatus, IdTag, MeterSample, Transaction
from conftest import ahttp, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

T0, T1 = "2026-05-01T10:00:00Z", "2026-05-01T10:10:00Z"


async def charger_with_tariff(charge_point_id: str) -> None:
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    await Tariff.objects.acreate(
        name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00"), is_default=True
    )


async def call(websocket, unique_id: str, action: str, payload: dict) -> list:
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await websocket.recv())


def transaction_event(event_type: str, seq_no: int, timestamp: str, **extra: object) -> dict:
    return {
        "eventType": event_type,
        "timestamp": timestamp,
        "triggerReason": "Authorized" if event_type == "Started" else "EVDeparted",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": "TX-FLAGS"},
        **extra,
    }


async def test_a_v201_session_without_any_reading_is_flagged_and_ended_defaults_to_local(daphne, api_key):
    await charger_with_tariff("CP-NO-READINGS")
    await IdTag.objects.acreate(id_tag="TOKEN-OK")
    token = {"idToken": "TOKEN-OK", "type": "ISO14443"}
    async with raw_socket(daphne, "2.0.1", "CP-NO-READINGS") as websocket:
        started = transaction_event("Started", 0, T0, idToken=token, evse={"id": 1, "connectorId": 1})
        assert (await call(websocket, "t1", "TransactionEvent", started))[2]["idTokenInfo"]["status"] == "Accepted"
        ended = transaction_event("Ended", 1, T1)
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 1.0}]  # the fee

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.stop_reason, session.energy_wh) == ("Local", Decimal("0"))
    assert (session.anomalies, session.needs_review) == (["missing_readings"], True)
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.needs_review) == (Decimal("1.00"), True)
    status, records = await ahttp(
        f"{daphne.http_url}/api/v1/billing-records/?charge_point_id=CP-NO-READINGS", api_key=api_key
    )
    assert status == 200
    assert [(r["anomalies"], r["needs_review"]) for r in records["results"]] == [(["missing_readings"], True)]


async def test_readings_that_arrive_after_the_end_clear_missing_readings(daphne):
    await charger_with_tariff("CP-LATE-READINGS")
    async with raw_socket(daphne, "2.0.1", "CP-LATE-READINGS") as websocket:
        started = transaction_event("Started", 0, T0, evse={"id": 1, "connectorId": 1})
        await call(websocket, "t1", "TransactionEvent", started)
        await call(websocket, "t3", "TransactionEvent", transaction_event("Ended", 2, T1))
        session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
        assert (session.anomalies, session.needs_review) == (["missing_readings"], True)
        reading = [
            {"timestamp": T0, "sampledValue": [{"value": 4000}]},
            {"timestamp": T1, "sampledValue": [{"value": 6000}]},
        ]
        late = transaction_event("Updated", 1, T0, meterValue=reading)
        assert await call(websocket, "t2", "TransactionEvent", late) == [3, "t2", {}]

    await session.arefresh_from_db()
    assert (session.anomalies, session.needs_review, session.energy_wh) == ([], False, Decimal(2000))
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.needs_review) == (Decimal("1.60"), False)


async def test_a_session_with_one_register_reading_is_not_missing_readings(daphne):
    await charger_with_tariff("CP-ONE-READING")
    async with raw_socket(daphne, "2.0.1", "CP-ONE-READING") as websocket:
        reading = [{"timestamp": T0, "sampledValue": [{"value": 5000, "context": "Transaction.Begin"}]}]
        started = transaction_event("Started", 0, T0, meterValue=reading, evse={"id": 1, "connectorId": 1})
        await call(websocket, "t1", "TransactionEvent", started)
        ended = transaction_event("Ended", 1, T1, triggerReason="StopAuthorized")
        await call(websocket, "t2", "TransactionEvent", ended)
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.anomalies, session.needs_review) == ([], False)


@pytest.mark.parametrize(
    ("registered", "answered"),
    [(None, "Invalid"), (AuthorizationStatus.BLOCKED, "Blocked"), (AuthorizationStatus.EXPIRED, "Expired")],
)
async def test_a_v16_session_on_a_token_the_csms_did_not_accept_is_billed_and_flagged(daphne, registered, answered):
    await charger_with_tariff("CP16-UNAUTH")
    if registered:
        await IdTag.objects.acreate(id_tag="TAG-X", status=registered)
    async with raw_socket(daphne, "1.6", "CP16-UNAUTH") as websocket:
        start = {"connectorId": 1, "idTag": "TAG-X", "meterStart": 0, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        assert started["idTagInfo"]["status"] == answered
        stop = {"transactionId": started["transactionId"], "meterStop": 10000, "timestamp": T1}
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {}]

    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.id_tag_status, session.anomalies, session.needs_review) == (answered, ["unauthorized_token"], True)
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.id_tag, record.needs_review) == (Decimal("4.00"), "TAG-X", True)


async def test_a_v201_session_whose_token_came_later_and_was_refused_is_flagged(daphne):
    await charger_with_tariff("CP201-UNAUTH")
    await IdTag.objects.acreate(id_tag="TOKEN-BLOCKED", status=AuthorizationStatus.BLOCKED)
    reading = [{"timestamp": T0, "sampledValue": [{"value": 0, "context": "Transaction.Begin"}]}]
    async with raw_socket(daphne, "2.0.1", "CP201-UNAUTH") as websocket:
        plugged = transaction_event("Started", 0, T0, meterValue=reading, evse={"id": 1, "connectorId": 1})
        assert await call(websocket, "t1", "TransactionEvent", plugged) == [3, "t1", {}]
        tapped = transaction_event("Updated", 1, T0, idToken={"idToken": "TOKEN-BLOCKED", "type": "ISO14443"})
        assert (await call(websocket, "t2", "TransactionEvent", tapped))[2]["idTokenInfo"]["status"] == "Blocked"
        end_reading = [{"timestamp": T1, "sampledValue": [{"value": 2000, "context": "Transaction.End"}]}]
        ended = transaction_event("Ended", 2, T1, meterValue=end_reading)
        assert await call(websocket, "t3", "TransactionEvent", ended) == [3, "t3", {"totalCost": 1.6}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.anomalies, session.needs_review, session.energy_wh) == (["unauthorized_token"], True, Decimal(2000))
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.id_tag, record.total, record.needs_review) == ("TOKEN-BLOCKED", Decimal("1.60"), True)


@pytest.mark.parametrize("ended_with", [None, "UNKNOWN-Y"])
async def test_a_v201_token_the_csms_accepted_replaces_one_it_refused_and_no_refused_one_replaces_it(
    daphne, ended_with
):
    """A session started without a token: a refused card (UNKNOWNX, Unknown), then an accepted one
    (TAG2): the session and its bill are TAG2's, not flagged; a refused token after it (the Ended's
    UNKNOWN-Y) does not take it back."""
    await charger_with_tariff("CP201-RETRY")
    await IdTag.objects.acreate(id_tag="TAG2")
    reading = [{"timestamp": T0, "sampledValue": [{"value": 0, "context": "Transaction.Begin"}]}]
    async with raw_socket(daphne, "2.0.1", "CP201-RETRY") as websocket:
        plugged = transaction_event("Started", 0, T0, meterValue=reading, evse={"id": 1, "connectorId": 1})
        await call(websocket, "t1", "TransactionEvent", plugged)
        for seq_no, tag, answered in ((1, "UNKNOWNX", "Unknown"), (2, "TAG2", "Accepted")):
            tapped = transaction_event("Updated", seq_no, T0, idToken={"idToken": tag, "type": "ISO14443"})
            tapped["triggerReason"] = "Authorized"
            assert (await call(websocket, f"u{seq_no}", "TransactionEvent", tapped))[2]["idTokenInfo"]["status"] == (
                answered
            )
        end_reading = [{"timestamp": T1, "sampledValue": [{"value": 2000, "context": "Transaction.End"}]}]
        token = {"idToken": {"idToken": ended_with, "type": "ISO14443"}} if ended_with else {}
        await call(
            websocket, "t3", "TransactionEvent", transaction_event("Ended", 3, T1, meterValue=end_reading, **token)
        )

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.id_tag, session.id_tag_status, session.anomalies, session.needs_review) == (
        "TAG2",
        "Accepted",
        [],
        False,
    )
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.id_tag, record.total, record.needs_review) == ("TAG2", Decimal("1.60"), False)


TOKEN = {"idToken": "T-1", "type": "ISO14443"}


def charging_event(kind: str, seq_no: int, minute: int, state: str, spent: int | None = None, **extra: object) -> dict:
    info: dict[str, object] = {"transactionId": "TX-FLAGS", "chargingState": state}
    if spent is not None:
        info["timeSpentCharging"] = spent
    return {**transaction_event(kind, seq_no, f"2026-05-01T10:{minute:02d}:00Z"), "transactionInfo": info, **extra}


async def test_v201_idle_charging_state_is_not_idle_time(daphne):
    """2.0.1 ``Idle`` is no EV connected (a session authorized before the cable, E02): it was billed
    as idle time (round 40's probes: 20 minutes before the cable, an idle fee)."""
    await charger_with_tariff("CP-IDLE")
    started = charging_event("Started", 0, 0, "Idle", idToken=TOKEN, evse={"id": 1})
    async with raw_socket(daphne, "2.0.1", "CP-IDLE") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        await call(websocket, "t2", "TransactionEvent", charging_event("Updated", 1, 20, "Charging"))
        ended = charging_event("Ended", 2, 50, "Charging")
        assert await call(websocket, "t3", "TransactionEvent", ended) == [3, "t3", {"totalCost": 1.0}]
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert session.idle_seconds == 0


async def test_a_late_v201_event_s_smaller_time_spent_charging_does_not_shrink_it(daphne):
    """``timeSpentCharging`` is a running total: an Updated delivered after the Ended carried an
    earlier, smaller one, which was kept (the idle time billed grew by the difference)."""
    await charger_with_tariff("CP-SPENT")
    started = charging_event("Started", 0, 0, "Charging", idToken=TOKEN, evse={"id": 1})
    async with raw_socket(daphne, "2.0.1", "CP-SPENT") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        await call(websocket, "t2", "TransactionEvent", charging_event("Ended", 2, 50, "EVConnected", 2700))
        await call(websocket, "t3", "TransactionEvent", charging_event("Updated", 1, 10, "Charging", 600))
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.time_spent_charging, session.idle_seconds) == (2700, 50 * 60 - 2700)


@pytest.mark.parametrize(
    ("ended_spent", "idle_minutes", "total"),
    [(None, 10, "3.50"), (2700, 15, "6.00")],
    ids=["ended-without-total", "ended-with-its-total"],
)
async def test_a_v201_time_spent_charging_sent_only_at_the_start_does_not_bill_the_session_as_idle(
    daphne, ended_spent, idle_minutes, total
):
    """Helper 5's probe: a station that sends ``timeSpentCharging: 0`` in its Started (the total so
    far) and leaves it out of its later events had its whole session billed as idle time: 60 idle
    minutes (5.00 EUR of idle fee after the grace) for an EV that charged 50 of them. A total the
    Ended leaves out is the charging time up to its event only: the session's charging states bill
    what follows (never more idle time than the total leaves); an Ended's total is the session's."""
    await charger_with_tariff("CP-SPENT-0")
    await Tariff.objects.filter(is_default=True).aupdate(
        price_per_kwh=Decimal(0), idle_fee_per_minute=Decimal("0.50"), idle_grace_minutes=5
    )
    started = charging_event("Started", 0, 0, "Charging", 0, idToken=TOKEN, evse={"id": 1})
    ended = {**transaction_event("Ended", 2, "2026-05-01T11:00:00Z")}
    ended["transactionInfo"] = {"transactionId": "TX-FLAGS", "chargingState": "EVConnected"}
    if ended_spent is not None:
        ended["transactionInfo"]["timeSpentCharging"] = ended_spent
    async with raw_socket(daphne, "2.0.1", "CP-SPENT-0") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        await call(websocket, "t2", "TransactionEvent", charging_event("Updated", 1, 50, "SuspendedEV"))
        await call(websocket, "t3", "TransactionEvent", ended)
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.idle_seconds, record.charging_seconds) == (idle_minutes * 60, 3600 - idle_minutes * 60)
    assert (session.idle_seconds, record.total) == (idle_minutes * 60, Decimal(total))  # 1.00 fee + idle


async def test_v201_idle_time_ends_when_the_ev_leaves(daphne):
    """SuspendedEV then ``Idle`` (the cable gone before the transaction ends): idle time ends with it
    (round 41's probe: the unplugged minutes were billed as idle, 539 s for 60)."""
    await charger_with_tariff("CP-LEFT")
    started = charging_event("Started", 0, 0, "Charging", idToken=TOKEN, evse={"id": 1})
    async with raw_socket(daphne, "2.0.1", "CP-LEFT") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        await call(websocket, "t2", "TransactionEvent", charging_event("Updated", 1, 10, "SuspendedEV"))
        await call(websocket, "t3", "TransactionEvent", charging_event("Updated", 2, 11, "Idle"))
        assert (await call(websocket, "t4", "TransactionEvent", charging_event("Ended", 3, 50, "Idle")))[0] == 3
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert session.idle_seconds == 60


async def test_v16_idle_time_ends_when_the_ev_leaves_and_never_starts_before_the_session(daphne):
    """A status stamped before the start, sent after it, opens idle time at the start (round 41's
    probe: idle 3,900 s in a 3,600 s session); ``Available`` (the cable gone, the session still open)
    ends it."""
    await charger_with_tariff("CP-LEFT16")
    await IdTag.objects.acreate(id_tag="T1")

    def status(unique_id: str, name: str, minute: int) -> tuple:
        at = f"2026-05-01T10:{minute:02d}:00Z" if minute >= 0 else f"2026-05-01T09:{60 + minute:02d}:00Z"
        return (
            unique_id,
            "StatusNotification",
            {"connectorId": 1, "status": name, "errorCode": "NoError", "timestamp": at},
        )

    async with raw_socket(daphne, "1.6", "CP-LEFT16") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": T0}
        transaction_id = (await call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
        for frame in (
            status("1", "SuspendedEV", -5),
            status("2", "Charging", 10),
            status("3", "SuspendedEV", 20),
            status("4", "Available", 21),
        ):
            assert (await call(websocket, *frame))[0] == 3
        stop = {"transactionId": transaction_id, "meterStop": 1000, "timestamp": "2026-05-01T10:50:00Z"}
        assert (await call(websocket, "e", "StopTransaction", stop))[0] == 3
    session = await Transaction.objects.aget(pk=transaction_id)
    assert session.idle_seconds == 10 * 60 + 60


async def test_a_v16_offline_start_on_a_tag_valid_then_expired_since_is_not_flagged(daphne):
    """An offline charger queued a start on a tag valid at the time; it expired before the queue was
    delivered: the session was flagged ``unauthorized_token`` (judged at the delivery). The charger
    is still told Expired (the tag as it stands); the session, started while it was valid, is not
    flagged. A start after the expiry still is."""
    await charger_with_tariff("CP16-EXPIRED-SINCE")
    await IdTag.objects.acreate(id_tag="TAG-EXP", expiry_date=datetime(2026, 5, 1, 12, tzinfo=UTC))
    async with raw_socket(daphne, "1.6", "CP16-EXPIRED-SINCE") as websocket:
        sessions = []
        for connector_id, at, stop_at in ((1, T0, T1), (2, "2026-05-01T12:30:00Z", "2026-05-01T12:40:00Z")):
            start = {"connectorId": connector_id, "idTag": "TAG-EXP", "meterStart": 0, "timestamp": at}
            [_, _, started] = await call(websocket, f"s{connector_id}", "StartTransaction", start)
            assert started["idTagInfo"]["status"] == "Expired"
            stop = {"transactionId": started["transactionId"], "meterStop": 10000, "timestamp": stop_at}
            assert await call(websocket, f"e{connector_id}", "StopTransaction", stop) == [3, f"e{connector_id}", {}]
            sessions.append(started["transactionId"])

    valid_then = await Transaction.objects.aget(pk=sessions[0])
    assert (valid_then.id_tag_status, valid_then.anomalies, valid_then.needs_review) == ("Accepted", [], False)
    record = await BillingRecord.objects.aget(transaction=valid_then)
    assert (record.total, record.needs_review) == (Decimal("4.00"), False)
    expired_then = await Transaction.objects.aget(pk=sessions[1])
    assert (expired_then.id_tag_status, expired_then.anomalies) == ("Expired", ["unauthorized_token"])


@pytest.mark.parametrize("token_in", ["Started", "Updated", "Ended"])
async def test_a_v201_offline_session_on_a_token_valid_then_expired_since_is_not_flagged(daphne, token_in):
    """2.0.1: the token of a queued Started, of a later Updated (tapped after plug-in) or of the Ended,
    valid when the charger took it, expired before delivery: the session is that token's, Accepted,
    not flagged (the answer still tells Expired)."""
    await charger_with_tariff("CP201-EXPIRED-SINCE")
    await IdTag.objects.acreate(id_tag="TOKEN-EXP", expiry_date=datetime(2026, 5, 1, 12, tzinfo=UTC))
    token = {"idToken": {"idToken": "TOKEN-EXP", "type": "ISO14443"}}
    reading = [{"timestamp": T0, "sampledValue": [{"value": 0, "context": "Transaction.Begin"}]}]
    async with raw_socket(daphne, "2.0.1", "CP201-EXPIRED-SINCE") as websocket:
        started = transaction_event(
            "Started",
            0,
            T0,
            meterValue=reading,
            evse={"id": 1, "connectorId": 1},
            **(token if token_in == "Started" else {}),
        )
        answer = (await call(websocket, "t1", "TransactionEvent", started))[2]
        updated = transaction_event("Updated", 1, "2026-05-01T10:05:00Z", **(token if token_in == "Updated" else {}))
        updated["triggerReason"] = "Authorized"
        answer |= (await call(websocket, "t2", "TransactionEvent", updated))[2]
        end_reading = [{"timestamp": T1, "sampledValue": [{"value": 2000, "context": "Transaction.End"}]}]
        ended = transaction_event("Ended", 2, T1, meterValue=end_reading, **(token if token_in == "Ended" else {}))
        answer |= (await call(websocket, "t3", "TransactionEvent", ended))[2]
    assert answer["idTokenInfo"]["status"] == "Expired"

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.id_tag, session.id_tag_status, session.anomalies, session.needs_review) == (
        "TOKEN-EXP",
        "Accepted",
        [],
        False,
    )
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.id_tag, record.total, record.needs_review) == ("TOKEN-EXP", Decimal("1.60"), False)


def _late(seq_no: int, minute: int, **info: object) -> dict:
    event = transaction_event("Updated", seq_no, f"2026-05-01T11:{minute:02d}:00Z")
    event["transactionInfo"] = {"transactionId": "TX-FLAGS", **info}
    return event


@pytest.mark.parametrize(
    "after_the_end",
    [
        # SAP's simulator: a periodic reading and the running totals, a minute after the Ended
        _late(3, 1, chargingState="SuspendedEV", timeSpentCharging=3540)
        | {"meterValue": [{"timestamp": "2026-05-01T11:01:00Z", "sampledValue": [{"value": 10500}]}]},
        # a register reading the Ended's End reading would give way to
        _late(3, 0)
        | {
            "meterValue": [
                {"timestamp": "2026-05-01T11:00:01Z", "sampledValue": [{"value": 14000, "context": "Transaction.End"}]}
            ]
        },
        # the token of the next driver, tapped after the session ended
        _late(3, 2, chargingState="EVConnected") | {"idToken": {"idToken": "NEXT-DRIVER", "type": "ISO14443"}},
    ],
    ids=["readings-and-totals", "end-reading", "token"],
)
async def test_a_v201_event_after_its_sessions_ended_is_kept_but_changes_neither_bill_nor_end(daphne, after_the_end):
    """Probe: an Updated whose seqNo follows its session's Ended (the Ended is the last event of a
    transaction, E06), delivered after it, re-priced the session: its timeSpentCharging grew the
    charging time, its End-context reading the energy, its token became the bill's. Its readings are
    kept (the meter-values ledger), its seqNo seen (a resend is a replay); the bill, the end and the
    session stay as the Ended left them. An Updated that the Ended overtook (a lower seqNo) still
    re-prices it."""
    await charger_with_tariff("CP201-AFTER-END")
    await Tariff.objects.filter(is_default=True).aupdate(
        price_per_minute=Decimal("0.05"), idle_fee_per_minute=Decimal("0.10")
    )
    await IdTag.objects.acreate(id_tag="NEXT-DRIVER")
    begin = [{"timestamp": T0, "sampledValue": [{"value": 0, "context": "Transaction.Begin"}]}]
    async with raw_socket(daphne, "2.0.1", "CP201-AFTER-END") as websocket:
        started = transaction_event("Started", 0, T0, meterValue=begin, evse={"id": 1, "connectorId": 1})
        await call(websocket, "t0", "TransactionEvent", started)
        end = [{"timestamp": "2026-05-01T11:00:00Z", "sampledValue": [{"value": 10000, "context": "Transaction.End"}]}]
        ended = _late(2, 0, chargingState="EVConnected", timeSpentCharging=3000) | {
            "eventType": "Ended",
            "meterValue": end,
        }
        # 10 kWh x 0.30 + 50 min x 0.05 + 10 min idle x 0.10 + 1.00
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 7.5}]
        for copy in range(2):
            assert (await call(websocket, f"a{copy}", "TransactionEvent", after_the_end))[0] == 3
        overtaken = _late(1, 0) | {
            "timestamp": "2026-05-01T10:30:00Z",
            "meterValue": [{"timestamp": "2026-05-01T10:30:00Z", "sampledValue": [{"value": 4000}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", overtaken))[0] == 3

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.id_tag, session.stopped_at, session.stop_reason) == (
        "",
        datetime(2026, 5, 1, 11, tzinfo=UTC),
        "Local",
    )
    assert (session.energy_wh, session.time_spent_charging, session.idle_seconds) == (Decimal(10000), 3000, 600)
    assert session.seq_nos == [[0, 3]]
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.id_tag, record.total, record.energy_wh, record.charging_seconds) == (
        "",
        Decimal("7.50"),
        Decimal(10000),
        3000,
    )
    kept = [sample.timestamp async for sample in MeterSample.objects.filter(transaction=session).order_by("timestamp")]
    assert len(kept) == 3 + ("meterValue" in after_the_end)  # Begin, the overtaken one, End, the late one's


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_value_without_a_measurand_in_a_unit_of_another_quantity_is_no_energy_reading(daphne, version):
    """Helper 5's probe: a sampled value without ``measurand`` is the energy register (both versions'
    default), also one in amperes or volts (a station that leaves the measurand out of its current
    and voltage values): every 10 minutes the register seemed to fall from 502,000 Wh to 16 and
    climb back, and a clean 12 kWh session was flagged ``non_monotonic_register`` for review. Such
    a value is the measurand its unit names (A: Current.Import, V: Voltage, ...), stored, never an
    energy reading."""
    charge_point_id = f"CP-UNIT-{version}"
    await charger_with_tariff(charge_point_id)
    await IdTag.objects.acreate(id_tag="T-1")

    def values(minute: int, wh: int) -> list[dict]:
        at = f"2026-05-01T10:{minute:02d}:00Z"
        if version == "1.6":
            other: list[dict[str, Any]] = [{"value": "16", "unit": "A"}, {"value": "230.4", "unit": "V"}]
            return [{"timestamp": at, "sampledValue": [{"value": str(wh)}, *other]}]
        other = [{"value": 16, "unitOfMeasure": {"unit": "A"}}, {"value": 230.4, "unitOfMeasure": {"unit": "V"}}]
        return [{"timestamp": at, "sampledValue": [{"value": wh}, *other]}]

    async with raw_socket(daphne, version, charge_point_id) as websocket:
        if version == "1.6":
            start = {"connectorId": 1, "idTag": "T-1", "meterStart": 500000, "timestamp": T0}
            transaction_id = (await call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
            for minute in (10, 20, 30):
                sent = {
                    "connectorId": 1,
                    "transactionId": transaction_id,
                    "meterValue": values(minute, 500000 + 4000 * minute // 10),
                }
                assert (await call(websocket, f"m{minute}", "MeterValues", sent))[0] == 3
            live = await Transaction.objects.aget(pk=transaction_id)
            stop = {"transactionId": transaction_id, "meterStop": 512000, "timestamp": "2026-05-01T10:30:00Z"}
            assert (await call(websocket, "e", "StopTransaction", stop))[0] == 3
        else:
            begin = [{"timestamp": T0, "sampledValue": [{"value": 500000, "context": "Transaction.Begin"}]}]
            started = transaction_event("Started", 0, T0, idToken=TOKEN, evse={"id": 1}, meterValue=begin)
            await call(websocket, "t0", "TransactionEvent", started)
            for seq_no, minute in ((1, 10), (2, 20)):
                updated = transaction_event("Updated", seq_no, f"2026-05-01T10:{minute:02d}:00Z")
                updated["meterValue"] = values(minute, 500000 + 4000 * minute // 10)
                await call(websocket, f"t{seq_no}", "TransactionEvent", updated)
            live = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
            end = [
                {"timestamp": "2026-05-01T10:30:00Z", "sampledValue": [{"value": 512000, "context": "Transaction.End"}]}
            ]
            ended = transaction_event("Ended", 3, "2026-05-01T10:30:00Z", meterValue=end)
            await call(websocket, "t3", "TransactionEvent", ended)
    session = await Transaction.objects.aget(pk=live.pk)
    assert (session.energy_wh, session.anomalies, session.needs_review) == (12000, [], False)
    measurands = {
        (sample.measurand, sample.unit, sample.value)
        async for sample in MeterSample.objects.filter(transaction=session, raw_value__in=["16", "230.4"])
    }
    assert measurands == {("Current.Import", "A", 16), ("Voltage", "V", Decimal("230.4"))}


async def test_v16_a_pause_of_the_charger_s_own_is_not_idle_time(daphne):
    """OCPP 1.6 §4.9: ``SuspendedEVSE`` is the charger withholding energy (a smart charging limit: a
    site's pause at 0 A when not every session fits). Probe: a session the site paused for 30 minutes
    was billed 30 idle minutes (an idle fee for the CSMS's own pause). It now opens no idle time and
    ends none: an EV full (SuspendedEV) and then paused stays idle."""
    await charger_with_tariff("CP-PAUSE16")
    await IdTag.objects.acreate(id_tag="T1")

    def status(unique_id: str, name: str, minute: int) -> tuple:
        at = f"2026-05-01T10:{minute:02d}:00Z"
        return (
            unique_id,
            "StatusNotification",
            {"connectorId": 1, "status": name, "errorCode": "NoError", "timestamp": at},
        )

    async with raw_socket(daphne, "1.6", "CP-PAUSE16") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": T0}
        transaction_id = (await call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
        for frame in (
            status("1", "Charging", 0),
            status("2", "SuspendedEVSE", 10),
            status("3", "Charging", 40),
            status("4", "SuspendedEV", 45),
            status("5", "SuspendedEVSE", 47),
        ):
            assert (await call(websocket, *frame))[0] == 3
        stop = {"transactionId": transaction_id, "meterStop": 1000, "timestamp": "2026-05-01T10:50:00Z"}
        assert (await call(websocket, "e", "StopTransaction", stop))[0] == 3
    session = await Transaction.objects.aget(pk=transaction_id)
    assert session.idle_seconds == 5 * 60


async def test_v201_a_pause_of_the_station_s_own_is_not_idle_time(daphne):
    """As in 1.6: chargingState ``SuspendedEVSE`` (a site's pause at 0 A) was billed as idle time."""
    await charger_with_tariff("CP-PAUSE201")
    started = charging_event("Started", 0, 0, "Charging", idToken=TOKEN, evse={"id": 1})
    async with raw_socket(daphne, "2.0.1", "CP-PAUSE201") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        for seq_no, minute, state in (
            (1, 10, "SuspendedEVSE"),
            (2, 40, "Charging"),
            (3, 45, "SuspendedEV"),
            (4, 47, "SuspendedEVSE"),
        ):
            await call(websocket, f"u{seq_no}", "TransactionEvent", charging_event("Updated", seq_no, minute, state))
        assert (await call(websocket, "t9", "TransactionEvent", charging_event("Ended", 5, 50, "SuspendedEVSE")))[
            0
        ] == 3
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert session.idle_seconds == 5 * 60


async def test_v201_a_pause_of_the_station_s_own_is_not_idle_time_when_it_counts_its_charging_time(daphne):
    """Probe: a station that reports ``timeSpentCharging`` (the time energy flowed, E01-E07) had the
    site's 30-minute pause (SuspendedEVSE) billed as idle time all the same: its idle time is the
    session's time less the charging time, and the pause is in neither (35 idle minutes, 3.50 EUR of
    idle fee, for an EV idle 5). The station's pauses are left out of it, as the states leave them out;
    one that comes while the EV is idle already (minute 47) stays idle time."""
    await charger_with_tariff("CP-PAUSE-SPENT")
    await Tariff.objects.filter(is_default=True).aupdate(idle_fee_per_minute=Decimal("0.10"))
    started = charging_event("Started", 0, 0, "Charging", 0, idToken=TOKEN, evse={"id": 1})
    async with raw_socket(daphne, "2.0.1", "CP-PAUSE-SPENT") as websocket:
        await call(websocket, "t1", "TransactionEvent", started)
        for seq_no, minute, state, spent in (
            (1, 10, "SuspendedEVSE", 600),
            (2, 40, "Charging", 600),
            (3, 45, "SuspendedEV", 900),
            (4, 47, "SuspendedEVSE", 900),
        ):
            updated = charging_event("Updated", seq_no, minute, state, spent)
            await call(websocket, f"u{seq_no}", "TransactionEvent", updated)
        ended = charging_event("Ended", 5, 50, "SuspendedEVSE", 900)
        # 1.00 fee + 5 idle minutes x 0.10
        assert await call(websocket, "t9", "TransactionEvent", ended) == [3, "t9", {"totalCost": 1.5}]
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAGS")
    assert (session.time_spent_charging, session.idle_seconds) == (900, 5 * 60)
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.idle_seconds, record.charging_seconds) == (5 * 60, 45 * 60)


@pytest.mark.parametrize("named_in", ["Updated", "Ended"])
async def test_a_v201_event_naming_another_evse_keeps_the_session_s_and_flags_it(daphne, named_in):
    """Probe: a station's session on EVSE 1 whose next Updated (or its Ended) named EVSE 2, with that
    EVSE's meter at 50 kWh: silently accepted, the session left on EVSE 1 and billed 51 kWh against the
    meter start of EVSE 1's meter, no review. A transaction is on the EVSE it began on (2.0.1 E01, its
    transactionId names it): the session keeps EVSE 1, and is flagged ``evse_changed`` for review."""
    charge_point_id = f"CP-EVSE-MOVED-{named_in}"
    await charger_with_tariff(charge_point_id)
    await IdTag.objects.acreate(id_tag="TOKEN-OK")
    token = {"idToken": "TOKEN-OK", "type": "ISO14443"}

    def reading(at: str, wh: int, context: str) -> list[dict[str, Any]]:
        return [{"timestamp": at, "sampledValue": [{"value": wh, "context": context}]}]

    other = {"evse": {"id": 2, "connectorId": 1}}
    updated = {**(other if named_in == "Updated" else {}), "meterValue": reading(T1, 50000, "Sample.Periodic")}
    ended = {**(other if named_in == "Ended" else {}), "meterValue": reading(T1, 52000, "Transaction.End")}
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        begin = reading(T0, 1000, "Transaction.Begin")
        started = transaction_event("Started", 0, T0, idToken=token, evse={"id": 1, "connectorId": 1}, meterValue=begin)
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        assert (await call(websocket, "t2", "TransactionEvent", transaction_event("Updated", 1, T1, **updated)))[0] == 3
        assert (await call(websocket, "t3", "TransactionEvent", transaction_event("Ended", 2, T1, **ended)))[0] == 3

    session = await Transaction.objects.aget(
        ocpp_transaction_id="TX-FLAGS", charge_point__charge_point_id=charge_point_id
    )
    assert (session.status, session.evse_id, session.connector_id) == ("ended", 1, 1)
    assert (session.anomalies, session.needs_review) == (["evse_changed"], True)
    assert (await BillingRecord.objects.aget(transaction=session)).needs_review


@pytest.mark.parametrize(("connector_id", "flagged"), [(1, False), (2, True), (0, False)])
async def test_a_v16_meter_values_naming_the_session_on_another_connector_flags_it(daphne, connector_id, flagged):
    """The 1.6 side of the rule above: MeterValues of connector 2 naming the transaction on connector 1
    (a firmware that tags every connector's readings with its one transaction) had the other meter's
    1,500 Wh stored and billed with the session without a word. The session is flagged ``evse_changed``
    for review; its own connector's readings, or the charger's main meter's (connector 0), are not."""
    charge_point_id = f"CP-MV-ON-{connector_id}"
    await charger_with_tariff(charge_point_id)
    await IdTag.objects.acreate(id_tag="T1")
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": T0}
        transaction_id = (await call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
        values = {
            "connectorId": connector_id,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": "1500"}]}],
        }
        assert (await call(websocket, "m", "MeterValues", values))[0] == 3
        stop = {"transactionId": transaction_id, "meterStop": 2000, "timestamp": "2026-05-01T10:20:00Z"}
        assert (await call(websocket, "e", "StopTransaction", stop))[0] == 3
    session = await Transaction.objects.aget(pk=transaction_id)
    assert (session.connector_id, session.energy_wh) == (1, Decimal(1000))
    assert (session.anomalies, session.needs_review) == ((["evse_changed"], True) if flagged else ([], False))
    assert (await BillingRecord.objects.aget(transaction=session)).needs_review is flagged
