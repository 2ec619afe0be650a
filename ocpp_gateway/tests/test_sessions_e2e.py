"""Charging sessions end to end: a real daphne process, chargers from the ``ocpp`` package over real
WebSockets, and the REST API reading back what the CSMS made of them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from billing.models import BillingRecord, Tariff
from chargepoints.models import ChargePoint
from charging.metering import Anomaly
from charging.models import (
    AuthorizationStatus,
    IdTag,
    MeterSample,
    ReconciliationItem,
    Reservation,
    ReservationStatus,
    Transaction,
)
from charging.services.stranded_sessions import transactions_close_after_version_change
from commands.reset_sessions import transactions_close_after_reset
from conftest import ahttp, ocpp_charger, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

T0 = "2026-05-01T10:00:00Z"
T_HALF = "2026-05-01T10:30:00Z"
T1 = "2026-05-01T11:00:00Z"
EPOCH = "1970-01-01T00:00:00.000Z"


async def register(charge_point_id: str) -> ChargePoint:
    return await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


async def tariff_030_eur_with_1_eur_fee() -> Tariff:
    return await Tariff.objects.acreate(
        name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00"), is_default=True
    )


async def raw_call(websocket, unique_id: str, action: str, payload: dict) -> list:
    """Send one CALL frame as-is (no client-side validation) and return the decoded answer."""
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await websocket.recv())


async def test_v16_session_authorize_start_replay_meter_values_stop_and_billing(daphne, api_key):
    await register("CP16-S")
    await IdTag.objects.acreate(id_tag="RFID-OK")
    await IdTag.objects.acreate(id_tag="RFID-BLOCKED", status=AuthorizationStatus.BLOCKED)
    await tariff_030_eur_with_1_eur_fee()

    async with ocpp_charger(daphne, "1.6", "CP16-S") as charger:
        answers = [
            (await charger.call(call16.Authorize(id_tag=tag))).id_tag_info["status"]
            for tag in ("RFID-OK", "RFID-UNKNOWN", "RFID-BLOCKED", "rfid-ok")
        ]
        assert answers == ["Accepted", "Invalid", "Blocked", "Accepted"]

        start = call16.StartTransaction(connector_id=1, id_tag="RFID-OK", meter_start=1000, timestamp=T0)
        started = await charger.call(start)
        assert isinstance(started.transaction_id, int)
        assert started.id_tag_info["status"] == "Accepted"
        replayed = await charger.call(start)
        assert replayed.transaction_id == started.transaction_id
        assert await Transaction.objects.filter(charge_point__charge_point_id="CP16-S").acount() == 1

        await charger.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[
                    {
                        "timestamp": T_HALF,
                        "sampledValue": [
                            {"value": "6.0", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
                            {"value": "11000", "unit": "W", "measurand": "Power.Active.Import"},
                            {"value": "57", "unit": "Percent", "measurand": "SoC", "location": "EV"},
                        ],
                    }
                ],
            )
        )
        stopped = await charger.call(
            call16.StopTransaction(
                transaction_id=started.transaction_id, meter_stop=11000, timestamp=T1, id_tag="RFID-OK", reason="Local"
            )
        )
        assert stopped.id_tag_info["status"] == "Accepted"

    status, body = await ahttp(f"{daphne.http_url}/api/v1/transactions/{started.transaction_id}", api_key=api_key)
    assert status == 200
    assert body["energy_wh"] == 10000
    assert body["status"] == "ended"
    assert body["stop_reason"] == "Local"
    assert body["anomalies"] == []
    assert body["billing_record"]["total"] == "4.00"
    assert body["billing_record"]["currency"] == "EUR"

    status, records = await ahttp(f"{daphne.http_url}/api/v1/billing-records/?charge_point_id=CP16-S", api_key=api_key)
    assert status == 200
    [record] = records["results"]
    assert (record["total"], record["currency"], record["energy_wh"]) == ("4.00", "EUR", 10000)
    assert [(line["kind"], line["amount"]) for line in record["line_items"]] == [
        ("energy", "3.00"),
        ("session_fee", "1.00"),
    ]

    samples = MeterSample.objects.filter(transaction_id=started.transaction_id)
    assert await samples.acount() == 3
    energy = await samples.aget(measurand="Energy.Active.Import.Register")
    assert (energy.raw_value, energy.unit, energy.value) == ("6.0", "kWh", Decimal("6000"))


async def test_v16_stops_that_cannot_simply_be_applied_are_answered_and_parked(daphne):
    await register("CP16-R")
    await IdTag.objects.acreate(id_tag="RFID-OK")
    async with raw_socket(daphne, "1.6", "CP16-R") as websocket:
        start = {"connectorId": 1, "idTag": "RFID-OK", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await raw_call(websocket, "s1", "StartTransaction", start)
        transaction_id = started["transactionId"]

        fractional = {"transactionId": transaction_id, "meterStop": 11000.5, "timestamp": T1, "idTag": "RFID-OK"}
        assert await raw_call(websocket, "f1", "StopTransaction", fractional) == [
            3,
            "f1",
            {"idTagInfo": {"status": "Accepted"}},
        ]
        again = {"transactionId": transaction_id, "meterStop": 12000, "timestamp": T1}
        assert await raw_call(websocket, "a1", "StopTransaction", again) == [3, "a1", {}]
        unknown = {"transactionId": 987654, "meterStop": 500, "timestamp": T1}
        assert await raw_call(websocket, "u1", "StopTransaction", unknown) == [3, "u1", {}]
        minus_one = {"transactionId": -1, "meterStop": 500, "timestamp": T1}
        assert await raw_call(websocket, "m1", "StopTransaction", minus_one) == [3, "m1", {}]

        [_, _, second] = await raw_call(
            websocket, "s2", "StartTransaction", {**start, "meterStart": 20000, "timestamp": T1}
        )
        null_tag = {"transactionId": second["transactionId"], "meterStop": 21000, "timestamp": T1, "idTag": None}
        assert await raw_call(websocket, "n1", "StopTransaction", null_tag) == [3, "n1", {}]

        # Still schema-checked everywhere else: a meterStop that is no number is refused.
        wrong = {"transactionId": transaction_id, "meterStop": "lots", "timestamp": T1}
        answer = await raw_call(websocket, "w1", "StopTransaction", wrong)
        assert answer[:3] == [4, "w1", "TypeConstraintViolation"]

    session = await Transaction.objects.aget(pk=transaction_id)
    assert session.energy_wh == Decimal("10000.5")
    assert session.meter_stop_wh == Decimal("11000.5")
    assert "fractional_wh" in session.anomalies
    assert not session.needs_review
    items = [
        (item.reason, item.ocpp_transaction_id, item.transaction_id)
        async for item in ReconciliationItem.objects.order_by("received_at")
    ]
    assert items == [
        ("already_stopped", str(transaction_id), transaction_id),
        ("unknown_transaction", "987654", None),
        ("invalid_transaction_id", "-1", None),
        ("null_id_tag", str(second["transactionId"]), second["transactionId"]),
    ]
    parked = await ReconciliationItem.objects.aget(reason="unknown_transaction")
    assert parked.payload == unknown
    assert parked.meter_stop_wh == Decimal("500")
    # The stop with a null idTag still ended its session.
    assert (await Transaction.objects.aget(pk=second["transactionId"])).energy_wh == Decimal("1000")


async def test_a_v16_stop_with_a_made_up_id_ends_the_session_its_lost_start_answer_opened(daphne):
    """The charger never got its StartTransaction answer and stops under an id of its own: the
    session stayed open until an operator attached the parked stop; it ends with the stop now."""
    await register("CP16-LOST")
    async with raw_socket(daphne, "1.6", "CP16-LOST") as websocket:
        start = {"connectorId": 1, "idTag": "RFID-9", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await raw_call(websocket, "s1", "StartTransaction", start)
        made_up = {"transactionId": 77, "meterStop": 4000, "timestamp": T1, "idTag": "rfid-9"}
        assert (await raw_call(websocket, "p1", "StopTransaction", made_up))[:2] == [3, "p1"]
    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.status, session.energy_wh, session.stop_reason) == ("ended", Decimal(3000), "Local")
    item = await ReconciliationItem.objects.aget(charge_point__charge_point_id="CP16-LOST")
    assert (item.state, item.transaction_id) == ("attached", session.pk)


async def test_v201_started_updated_ended_is_one_billed_transaction(daphne, api_key):
    await register("CP201-S")
    await IdTag.objects.acreate(id_tag="TOKEN-1", token_type="ISO14443")
    await tariff_030_eur_with_1_eur_fee()

    def event(event_type: str, seq_no: int, timestamp: str, wh: int, context: str, **extra: object):
        return call201.TransactionEvent(
            event_type=event_type,
            timestamp=timestamp,
            trigger_reason="Authorized" if event_type == "Started" else "MeterValuePeriodic",
            seq_no=seq_no,
            transaction_info={"transactionId": "TX-201-A", "chargingState": "Charging"},
            meter_value=[
                {
                    "timestamp": timestamp,
                    "sampledValue": [{"value": wh, "context": context, "unitOfMeasure": {"unit": "Wh"}}],
                }
            ],
            **extra,
        )

    async with ocpp_charger(daphne, "2.0.1", "CP201-S") as charger:
        authorized = await charger.call(call201.Authorize(id_token={"idToken": "TOKEN-1", "type": "ISO14443"}))
        assert authorized.id_token_info["status"] == "Accepted"
        unknown = await charger.call(call201.Authorize(id_token={"idToken": "NOPE", "type": "ISO14443"}))
        assert unknown.id_token_info["status"] == "Unknown"  # 2.0.1 has it: "Identifier is unknown"
        await IdTag.objects.acreate(id_tag="REVOKED", status=AuthorizationStatus.INVALID)
        revoked = await charger.call(call201.Authorize(id_token={"idToken": "REVOKED", "type": "ISO14443"}))
        assert revoked.id_token_info["status"] == "Invalid"  # registered, and Invalid

        token = {"idToken": "TOKEN-1", "type": "ISO14443"}
        started = event("Started", 0, T0, 2000, "Transaction.Begin", id_token=token, evse={"id": 1, "connectorId": 1})
        answer = await charger.call(started)
        assert answer.id_token_info["status"] == "Accepted"
        await charger.call(started)  # a replay (same seqNo): changes nothing
        await charger.call(event("Updated", 1, T_HALF, 4500, "Sample.Periodic"))
        await charger.call(event("Ended", 2, T1, 7000, "Transaction.End"))

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-201-A")
    assert await Transaction.objects.filter(ocpp_transaction_id="TX-201-A").acount() == 1
    status, body = await ahttp(f"{daphne.http_url}/api/v1/transactions/{session.pk}", api_key=api_key)
    assert status == 200
    assert (body["transaction_id"], body["energy_wh"], body["status"]) == ("TX-201-A", 5000, "ended")
    assert (body["evse_id"], body["connector_id"], body["id_tag"]) == (1, 1, "TOKEN-1")
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.currency) == (Decimal("2.50"), "EUR")
    assert await MeterSample.objects.filter(transaction=session).acount() == 3


async def test_v201_signed_readings_are_billed_by_their_value_and_keep_their_signature(daphne, api_key):
    """A 2.0.1 sampledValue's ``value`` is the reading; a ``signedMeterValue`` comes beside it (2.0.1
    SampledValueType), unlike 1.6's SignedData format, whose value is the signed blob."""
    await register("CP201-SIG")
    await tariff_030_eur_with_1_eur_fee()

    def event(event_type: str, seq_no: int, timestamp: str, wh: float, context: str, **extra: object):
        signed = {
            "signedMeterData": f"OCMF|{wh}",
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
        }
        sampled = {"value": wh, "context": context, "unitOfMeasure": {"unit": "Wh"}, "signedMeterValue": signed}
        return call201.TransactionEvent(
            event_type=event_type,
            timestamp=timestamp,
            trigger_reason="CablePluggedIn" if event_type == "Started" else "MeterValuePeriodic",
            seq_no=seq_no,
            transaction_info={"transactionId": "TX-201-SIG"},
            meter_value=[{"timestamp": timestamp, "sampledValue": [sampled]}],
            **extra,
        )

    async with ocpp_charger(daphne, "2.0.1", "CP201-SIG") as charger:
        await charger.call(event("Started", 0, T0, 0, "Transaction.Begin", evse={"id": 1, "connectorId": 1}))
        await charger.call(event("Updated", 1, T_HALF, 1500.5, "Sample.Periodic"))
        await charger.call(event("Ended", 2, T1, 5000, "Transaction.End"))

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-201-SIG")
    assert (session.meter_start_wh, session.meter_stop_wh, session.energy_wh) == (0, 5000, 5000)
    assert session.anomalies == []
    record = await BillingRecord.objects.aget(transaction=session)
    assert record.total == Decimal("2.50")
    samples = [sample async for sample in MeterSample.objects.filter(transaction=session).order_by("timestamp")]
    assert [sample.value for sample in samples] == [0, Decimal("1500.5"), 5000]
    assert [sample.signed_data["signed_meter_data"] for sample in samples] == ["OCMF|0", "OCMF|1500.5", "OCMF|5000"]
    status, body = await ahttp(f"{daphne.http_url}/api/v1/transactions/{session.pk}", api_key=api_key)
    assert (status, body["energy_wh"]) == (200, 5000)


async def test_v201_events_out_of_order_and_an_unknown_ended_are_handled(daphne):
    await register("CP201-O")
    async with ocpp_charger(daphne, "2.0.1", "CP201-O") as charger:

        def event(event_type: str, seq_no: int, timestamp: str, wh: int, context: str, transaction_id: str):
            return call201.TransactionEvent(
                event_type=event_type,
                timestamp=timestamp,
                trigger_reason="MeterValuePeriodic",
                seq_no=seq_no,
                transaction_info={"transactionId": transaction_id},
                evse={"id": 2, "connectorId": 1},
                meter_value=[{"timestamp": timestamp, "sampledValue": [{"value": wh, "context": context}]}],
            )

        # The Updated overtakes its Started (a charger flushing its queue after a reconnect).
        await charger.call(event("Updated", 1, T_HALF, 1500, "Sample.Periodic", "TX-O"))
        await charger.call(event("Started", 0, T0, 1000, "Transaction.Begin", "TX-O"))
        await charger.call(event("Ended", 2, T1, 3000, "Transaction.End", "TX-O"))
        answer = await charger.call(event("Ended", 7, T1, 3000, "Transaction.End", "TX-NEVER-SEEN"))
        assert answer.id_token_info is None

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-O")
    assert session.started_at.isoformat() == "2026-05-01T10:00:00+00:00"
    assert (session.meter_start_wh, session.energy_wh, session.needs_review) == (Decimal(1000), Decimal(2000), False)
    item = await ReconciliationItem.objects.aget(charge_point__charge_point_id="CP201-O")
    assert (item.reason, item.ocpp_transaction_id, item.action) == (
        "unknown_transaction",
        "TX-NEVER-SEEN",
        "TransactionEvent",
    )


@pytest.mark.parametrize("status", ["Available", "Preparing", "Reserved"])
async def test_a_session_interrupted_by_a_reboot_is_closed_when_the_connector_has_no_transaction(daphne, status):
    """A connector reporting no transaction after its charger's boot (not only Available: a round 39
    probe left the session open for ever after Preparing)."""
    await register("CP16-BOOT")
    async with ocpp_charger(daphne, "1.6", "CP16-BOOT") as charger:
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="ANY", meter_start=100, timestamp=T0)
        )
        await charger.call(
            call16.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[{"timestamp": T_HALF, "sampledValue": [{"value": "2100"}]}],
            )
        )
    async with ocpp_charger(daphne, "1.6", "CP16-BOOT") as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call16.StatusNotification(connector_id=1, error_code="NoError", status=status))

    session = await Transaction.objects.aget(pk=started.transaction_id)
    assert (session.status, session.stop_reason, session.closed_by_csms) == ("ended", "Reboot", True)
    assert session.energy_wh == Decimal(2000)
    assert session.needs_review
    assert "closed_by_csms" in session.anomalies


async def test_v201_after_a_reboot_another_connector_of_the_evse_closes_no_session(daphne):
    """Only the session's own connector reporting no transaction closes it (round 41's probe: EVSE 2
    connector 2 Available closed the session on connector 1)."""
    await register("CP201-TWO")
    started = {
        "eventType": "Started",
        "timestamp": T0,
        "triggerReason": "CablePluggedIn",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-TWO"},
        "evse": {"id": 2, "connectorId": 1},
        "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 100, "context": "Transaction.Begin"}]}],
    }
    async with raw_socket(daphne, "2.0.1", "CP201-TWO") as websocket:
        assert (await raw_call(websocket, "t1", "TransactionEvent", started))[0] == 3
    async with raw_socket(daphne, "2.0.1", "CP201-TWO") as websocket:
        boot = {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}}
        assert (await raw_call(websocket, "b", "BootNotification", boot))[0] == 3
        for unique_id, connector, status in (("s2", 2, "Available"), ("s1", 1, "Available")):
            available = {"timestamp": T1, "connectorStatus": status, "evseId": 2, "connectorId": connector}
            assert (await raw_call(websocket, unique_id, "StatusNotification", available))[0] == 3
            session = await Transaction.objects.aget(ocpp_transaction_id="TX-TWO")
            assert session.status == ("active" if connector == 2 else "ended")


async def test_a_start_with_a_reservation_id_consumes_the_reservation_and_its_time_is_stored_as_utc(daphne):
    charge_point = await register("CP16-RES")
    await Reservation.objects.acreate(
        charge_point=charge_point,
        reservation_id=42,
        connector_id=1,
        id_tag="RFID-R",
        expiry_date=datetime(2099, 1, 1, tzinfo=UTC),
    )
    async with ocpp_charger(daphne, "1.6", "CP16-RES") as charger:
        started = await charger.call(
            call16.StartTransaction(
                connector_id=1, id_tag="RFID-R", meter_start=0, timestamp="2026-05-01T12:00:00+02:00", reservation_id=42
            )
        )
    reservation = await Reservation.objects.aget(reservation_id=42)
    assert reservation.status == ReservationStatus.USED
    session = await Transaction.objects.aget(pk=started.transaction_id)
    assert session.reservation_id == reservation.pk
    assert session.started_at.isoformat() == "2026-05-01T10:00:00+00:00"  # stored as UTC


@pytest.mark.parametrize("token_in", ["Updated", "Ended"])
async def test_a_v201_session_started_at_plug_in_uses_the_reservation_of_the_token_that_authorizes_it_later(
    daphne, token_in
):
    """2.0.1 E02 on a reserved EVSE (H01): the transaction starts at plug-in without idToken, the
    reserved token comes in a later Updated (or first in the Ended) that names no reservationId. The
    reservation stayed active after its token's session (a later session of that token took it): it
    is used by the session its token authorized, on its EVSE. Another token's stays active."""
    charge_point = await register("CP201-RESV")
    for reservation_id, evse_id, id_tag in ((7, 1, "RFID-R"), (8, 2, "RFID-R"), (9, 1, "OTHER")):
        await Reservation.objects.acreate(
            charge_point=charge_point,
            reservation_id=reservation_id,
            evse_id=evse_id,
            id_tag=id_tag,
            expiry_date=datetime(2099, 1, 1, tzinfo=UTC),
        )
    event = {"timestamp": T0, "transactionInfo": {"transactionId": "TX-RESV", "chargingState": "EVConnected"}}
    started = {**event, "eventType": "Started", "triggerReason": "CablePluggedIn", "seqNo": 0}
    started["evse"] = {"id": 1, "connectorId": 1}
    authorized = {**event, "eventType": token_in, "triggerReason": "Authorized", "seqNo": 1}
    authorized["idToken"] = {"idToken": "rfid-r", "type": "ISO14443"}
    async with raw_socket(daphne, "2.0.1", "CP201-RESV") as websocket:
        assert (await raw_call(websocket, "e0", "TransactionEvent", started))[2] == {}
        answer = await raw_call(websocket, "e1", "TransactionEvent", authorized)
        assert answer[2]["idTokenInfo"] == {"status": "Unknown"}  # the reservation does not register the token
    statuses = {r.reservation_id: r.status async for r in Reservation.objects.all()}
    assert statuses == {7: ReservationStatus.USED, 8: ReservationStatus.ACTIVE, 9: ReservationStatus.ACTIVE}
    session = await Transaction.objects.select_related("reservation").aget(ocpp_transaction_id="TX-RESV")
    assert (session.id_tag, session.reservation.reservation_id) == ("rfid-r", 7)


@pytest.mark.parametrize("token_in", ["Updated", "Ended"])
async def test_a_v201_session_started_at_plug_in_uses_its_token_s_group_reservation(daphne, token_in):
    """As above for a reservation made for a group (ReserveNow groupIdToken): another card of the
    group authorizing later used it at a Started, not at a later Updated or the Ended (review)."""
    charge_point = await register("CP201-GRESV")
    fleet = await IdTag.objects.acreate(id_tag="FLEET-G")
    await IdTag.objects.acreate(id_tag="CARD-G", parent=fleet)
    await Reservation.objects.acreate(
        charge_point=charge_point,
        reservation_id=17,
        evse_id=1,
        id_tag="CARD-A",
        parent_id_tag="FLEET-G",
        expiry_date=datetime(2099, 1, 1, tzinfo=UTC),
    )
    event = {"timestamp": T0, "transactionInfo": {"transactionId": "TX-GRESV", "chargingState": "EVConnected"}}
    started = {**event, "eventType": "Started", "triggerReason": "CablePluggedIn", "seqNo": 0}
    started["evse"] = {"id": 1, "connectorId": 1}
    authorized = {**event, "eventType": token_in, "triggerReason": "Authorized", "seqNo": 1}
    authorized["idToken"] = {"idToken": "CARD-G", "type": "ISO14443"}
    async with raw_socket(daphne, "2.0.1", "CP201-GRESV") as websocket:
        assert (await raw_call(websocket, "e0", "TransactionEvent", started))[2] == {}
        await raw_call(websocket, "e1", "TransactionEvent", authorized)
    reservation = await Reservation.objects.aget(reservation_id=17)
    assert reservation.status == ReservationStatus.USED
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-GRESV")
    assert session.reservation_id == reservation.pk


async def test_a_v201_session_authorized_before_the_cable_uses_the_reservation_of_the_evse_it_plugs_into(daphne):
    """2.0.1 E03 (IdToken first) on a reserved EVSE (H01): the Started carries the reserved token
    and no EVSE, the Updated at plug-in names EVSE 2, neither names the reservation. It stayed
    active (only a token coming after the EVSE was matched): it is the session's. The same token's
    reservation of EVSE 1 stays active."""
    charge_point = await register("CP201-E03")
    for reservation_id, evse_id in ((31, 1), (32, 2)):
        await Reservation.objects.acreate(
            charge_point=charge_point,
            reservation_id=reservation_id,
            evse_id=evse_id,
            id_tag="RFID-E03",
            expiry_date=datetime(2099, 1, 1, tzinfo=UTC),
        )
    await IdTag.objects.acreate(id_tag="RFID-E03")
    event = {"timestamp": T0, "transactionInfo": {"transactionId": "TX-E03"}}
    started = {**event, "eventType": "Started", "triggerReason": "Authorized", "seqNo": 0}
    started["idToken"] = {"idToken": "rfid-e03", "type": "ISO14443"}
    plugged = {**event, "eventType": "Updated", "triggerReason": "CablePluggedIn", "seqNo": 1}
    plugged["evse"] = {"id": 2, "connectorId": 1}
    plugged["transactionInfo"] = {"transactionId": "TX-E03", "chargingState": "EVConnected"}
    async with raw_socket(daphne, "2.0.1", "CP201-E03") as websocket:
        answer = await raw_call(websocket, "e0", "TransactionEvent", started)
        assert answer[2]["idTokenInfo"] == {"status": "Accepted"}
        assert (await raw_call(websocket, "e1", "TransactionEvent", plugged))[2] == {}
    statuses = {r.reservation_id: r.status async for r in Reservation.objects.all()}
    assert statuses == {31: ReservationStatus.ACTIVE, 32: ReservationStatus.USED}
    session = await Transaction.objects.select_related("reservation").aget(ocpp_transaction_id="TX-E03")
    assert (session.evse_id, session.reservation.reservation_id) == (2, 32)


async def test_a_v201_stop_authorized_in_an_updated_is_who_stopped_the_session_that_ends_at_unplug(daphne):
    """2.0.1 E07 with TxStopPoint EVConnected: the driver's tap to stop comes in an Updated
    (triggerReason StopAuthorized, its idToken), the Ended follows at unplug without one. Who stopped
    the session was lost (stop_id_tag empty): it is that token. An Ended's own token still wins."""
    await register("CP201-STOPBY")
    for tag in ("RFID-START", "RFID-STOP"):
        await IdTag.objects.acreate(id_tag=tag)

    def event(event_type: str, seq_no: int, trigger: str, transaction_id: str, **extra: object) -> dict:
        info = {"transactionId": transaction_id, "chargingState": "EVConnected"}
        return (
            {"eventType": event_type, "timestamp": T0, "triggerReason": trigger, "seqNo": seq_no}
            | {"transactionInfo": info}
            | extra
        )

    async with raw_socket(daphne, "2.0.1", "CP201-STOPBY") as websocket:
        for transaction_id, ended_token in (("TX-SB1", None), ("TX-SB2", "RFID-START")):
            start_token = {"idToken": "RFID-START", "type": "ISO14443"}
            evse = {"id": 1, "connectorId": 1}
            await raw_call(
                websocket,
                "s",
                "TransactionEvent",
                event("Started", 0, "Authorized", transaction_id, idToken=start_token, evse=evse),
            )
            stop_token = {"idToken": "RFID-STOP", "type": "ISO14443"}
            answer = await raw_call(
                websocket,
                "u",
                "TransactionEvent",
                event("Updated", 1, "StopAuthorized", transaction_id, idToken=stop_token),
            )
            assert answer[2] == {"idTokenInfo": {"status": "Accepted"}}
            ended = event("Ended", 2, "EVCommunicationLost", transaction_id)
            ended["transactionInfo"]["stoppedReason"] = "EVDisconnected"
            if ended_token:
                ended["idToken"] = {"idToken": ended_token, "type": "ISO14443"}
            await raw_call(websocket, "e", "TransactionEvent", ended)
    sessions = {t.ocpp_transaction_id: t async for t in Transaction.objects.all()}
    assert (sessions["TX-SB1"].id_tag, sessions["TX-SB1"].stop_id_tag) == ("RFID-START", "RFID-STOP")
    assert (sessions["TX-SB2"].id_tag, sessions["TX-SB2"].stop_id_tag) == ("RFID-START", "RFID-START")


async def test_a_v201_session_whose_evse_a_later_event_names_closes_the_one_whose_ended_was_lost(daphne):
    """2.0.1 E01: authorized before the cable (TxStartPoint Authorized), a Started names no EVSE (the
    station does not know it yet), its first event after plug-in does (E01.FR.16). A session still
    open on that EVSE lost its Ended: it is closed (Superseded, at the new session's start), as a
    Started naming the EVSE closes it, also when the Ended is the first event to name it."""
    await register("CP201-EVSE-LATER")
    await IdTag.objects.acreate(id_tag="RFID-LATE-EVSE")
    token = {"idToken": "RFID-LATE-EVSE", "type": "ISO14443"}

    def event(event_type: str, seq_no: int, at: str, transaction_id: str, wh: int, **extra: object) -> dict:
        reading = {"timestamp": at, "sampledValue": [{"value": wh}]}
        info = {"transactionId": transaction_id, "chargingState": "Charging"}
        trigger = "Authorized" if event_type == "Started" else "CablePluggedIn"
        return {
            "eventType": event_type,
            "timestamp": at,
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": info,
            "meterValue": [reading],
        } | extra

    evse = {"id": 1, "connectorId": 1}
    async with raw_socket(daphne, "2.0.1", "CP201-EVSE-LATER") as websocket:
        await raw_call(
            websocket, "a0", "TransactionEvent", event("Started", 0, T0, "TX-LOST", 1000, idToken=token, evse=evse)
        )
        await raw_call(
            websocket, "a1", "TransactionEvent", event("Updated", 1, "2026-05-01T10:20:00Z", "TX-LOST", 4000)
        )
        # TX-LOST's Ended never comes; the next driver taps first, then plugs in
        await raw_call(websocket, "b0", "TransactionEvent", event("Started", 0, T_HALF, "TX-NEXT", 4000, idToken=token))
        await raw_call(
            websocket, "b1", "TransactionEvent", event("Updated", 1, "2026-05-01T10:31:00Z", "TX-NEXT", 4000, evse=evse)
        )
        await raw_call(websocket, "b2", "TransactionEvent", event("Updated", 2, T1, "TX-NEXT", 9000))
        # On EVSE 2 the Ended is the first event to name it (the plug-in's Updated lost too)
        evse_2 = {"id": 2, "connectorId": 1}
        await raw_call(websocket, "c0", "TransactionEvent", event("Started", 0, T0, "TX-LOST-2", 1000, evse=evse_2))
        await raw_call(websocket, "d0", "TransactionEvent", event("Started", 0, T_HALF, "TX-NEXT-2", 5000))
        ended = event("Ended", 1, T1, "TX-NEXT-2", 9000, evse=evse_2)
        await raw_call(websocket, "d1", "TransactionEvent", ended)
    sessions = {session.ocpp_transaction_id: session async for session in Transaction.objects.all()}
    lost, following = sessions["TX-LOST"], sessions["TX-NEXT"]
    assert (lost.status, lost.stop_reason, lost.closed_by_csms) == ("ended", "Superseded", True)
    assert (lost.stopped_at, lost.energy_wh) == (datetime(2026, 5, 1, 10, 30, tzinfo=UTC), 3000)
    assert (following.status, following.evse_id, following.connector_id) == ("active", 1, 1)
    lost, following = sessions["TX-LOST-2"], sessions["TX-NEXT-2"]
    assert (lost.status, lost.stop_reason, lost.stopped_at) == (
        "ended",
        "Superseded",
        datetime(2026, 5, 1, 10, 30, tzinfo=UTC),
    )
    assert (following.status, following.evse_id, following.energy_wh) == ("ended", 2, 4000)


async def test_garbled_numbers_from_chargers_are_answered_and_kept(daphne):
    """Schema-valid but absurd values: huge numbers, odd units and multipliers, ids beyond any column."""
    await register("CP201-G")
    async with raw_socket(daphne, "2.0.1", "CP201-G") as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-G", "remoteStartId": 2**40},
            "evse": {"id": 2**40, "connectorId": 1},
            "meterValue": [
                {
                    "timestamp": T0,
                    "sampledValue": [
                        {"value": 1.5, "context": "Transaction.Begin", "unitOfMeasure": {"unit": "KWH"}},
                        {"value": 1e20, "measurand": "Power.Active.Import"},
                        {
                            "value": 7,
                            "measurand": "Current.Import",
                            "unitOfMeasure": {"unit": "A", "multiplier": 99999},
                        },
                        {"value": 3, "measurand": "Voltage", "unitOfMeasure": {"unit": "VeryLongUnitName1234"}},
                    ],
                }
            ],
        }
        assert await raw_call(websocket, "g1", "TransactionEvent", started) == [3, "g1", {}]
        ended = {
            **started,
            "eventType": "Ended",
            "seqNo": 1,
            "timestamp": T1,
            "triggerReason": "EVDeparted",
            "transactionInfo": {"transactionId": "--5"},
        }
        assert await raw_call(websocket, "g2", "TransactionEvent", ended) == [3, "g2", {}]
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-G")
    assert (session.meter_start_wh, session.evse_id, session.remote_start_id) == (Decimal(1500), None, None)
    assert await MeterSample.objects.filter(transaction=session).acount() == 4
    assert await ReconciliationItem.objects.filter(ocpp_transaction_id="--5").aexists()


async def test_a_v16_stop_with_a_nan_meter_value_is_answered(daphne):
    await register("CP16-NAN")
    async with raw_socket(daphne, "1.6", "CP16-NAN") as websocket:
        start = {"connectorId": 1, "idTag": "ANY", "meterStart": 100, "timestamp": T0}
        [_, _, started] = await raw_call(websocket, "s1", "StartTransaction", start)
        frame = '[2,"n1","StopTransaction",{"transactionId":%d,"meterStop":NaN,"timestamp":"%s"}]'
        await websocket.send(frame % (started["transactionId"], T1))
        assert json.loads(await websocket.recv()) == [3, "n1", {}]
    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert session.status == "ended"
    assert "unparseable_value" in session.anomalies


async def test_session_messages_with_nulls_unknown_fields_and_an_unreadable_reading_end_their_sessions(daphne):
    """Were refused (TypeConstraintViolation, FormatViolation) on every resend: the sessions stayed open, unbilled."""
    await tariff_030_eur_with_1_eur_fee()
    await register("CP16-NULLS")
    async with raw_socket(daphne, "1.6", "CP16-NULLS") as websocket:
        start = {"connectorId": 1, "idTag": "ANY", "meterStart": 100, "timestamp": T0, "reservationId": None}
        [kind, _, started] = await raw_call(websocket, "s1", "StartTransaction", {**start, "vendorField": "x"})
        assert kind == 3
        stop = {"transactionId": started["transactionId"], "meterStop": 2100, "timestamp": T1, "reason": None}
        assert await raw_call(websocket, "s2", "StopTransaction", stop) == [3, "s2", {}]
    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.status, session.energy_wh) == ("ended", Decimal(2000))
    await register("CP201-NULLS")
    async with raw_socket(daphne, "2.0.1", "CP201-NULLS") as websocket:
        begin = {"value": 1000, "context": "Transaction.Begin", "phase": None}
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "offline": None,
            "transactionInfo": {"transactionId": "TX-NULLS", "remoteStartId": None},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [begin]}],
            "vendorExtra": {"a": 1},
        }
        assert await raw_call(websocket, "t1", "TransactionEvent", started) == [3, "t1", {}]
        end = {"value": "abc", "context": "Transaction.End", "unitOfMeasure": {"unit": "Wh", "foo": 1}}
        ended = {
            **started,
            "eventType": "Ended",
            "seqNo": 1,
            "timestamp": T1,
            "triggerReason": "EVDeparted",
            "meterValue": [{"timestamp": T1, "sampledValue": [end]}],
        }
        assert (await raw_call(websocket, "t2", "TransactionEvent", ended))[:2] == [3, "t2"]
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-NULLS")
    assert session.status == "ended"
    assert {"unparseable_value", "unreadable_meter_start_or_stop"} <= set(session.anomalies)
    assert await MeterSample.objects.filter(transaction=session, raw_value="abc", value=None).aexists()
    assert await BillingRecord.objects.filter(transaction=session, needs_review=True).aexists()


async def test_a_boot_on_the_same_connection_is_no_reboot_and_closes_nothing(daphne):
    """A TriggerMessage's BootNotification (OCPP 1.6 §5.17) comes on the socket that booted: the
    charger did not restart, so its Available before its queued stop does not close the session."""
    await register("CP16-TRIG")
    async with ocpp_charger(daphne, "1.6", "CP16-TRIG") as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        started = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="ANY", meter_start=1000, timestamp=T0)
        )
        await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        session = await Transaction.objects.aget(pk=started.transaction_id)
        assert (session.status, session.closed_by_csms) == ("active", False)
        await charger.call(
            call16.StopTransaction(transaction_id=started.transaction_id, meter_stop=6000, timestamp=T_HALF)
        )
    session = await Transaction.objects.aget(pk=started.transaction_id)
    assert (session.status, session.energy_wh, session.closed_by_csms) == ("ended", Decimal(5000), False)
    assert "closed_by_csms" not in session.anomalies  # ("ANY" is no registered tag: unauthorized_token)


async def test_a_2_0_1_triggered_boot_on_a_new_connection_is_no_reboot_and_closes_nothing(daphne):
    """2.0.1 BootNotification reason ``Triggered`` (F06: a TriggerMessage's) says the station did not
    restart, on whichever connection it comes: a station that reconnected without rebooting (B04: no
    boot then) and was asked for its boot kept its session open; its EVSE Available (the cable gone,
    the transaction kept) closed it as one a reboot interrupted (round 45's probe: stop_reason Reboot,
    closed_by_csms, billed 0 Wh, and ``last_boot_at`` moved to the trigger)."""
    charge_point = await register("CP201-TRIG")
    started = {
        "eventType": "Started",
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-TRIG"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
    }
    boot = {"chargingStation": {"vendorName": "V", "model": "M"}}
    async with raw_socket(daphne, "2.0.1", "CP201-TRIG") as websocket:
        assert (await raw_call(websocket, "b", "BootNotification", {**boot, "reason": "PowerUp"}))[0] == 3
        assert (await raw_call(websocket, "t0", "TransactionEvent", started))[0] == 3
    booted_at = (await ChargePoint.objects.aget(pk=charge_point.pk)).last_boot_at
    async with raw_socket(daphne, "2.0.1", "CP201-TRIG") as websocket:
        assert (await raw_call(websocket, "b", "BootNotification", {**boot, "reason": "Triggered"}))[0] == 3
        status = {"timestamp": T_HALF, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        assert await raw_call(websocket, "s", "StatusNotification", status) == [3, "s", {}]
        session = await Transaction.objects.aget(ocpp_transaction_id="TX-TRIG")
        assert (session.status, session.closed_by_csms) == ("active", False)
        assert (await ChargePoint.objects.aget(pk=charge_point.pk)).last_boot_at == booted_at
        ended = {
            **started,
            "eventType": "Ended",
            "timestamp": T1,
            "seqNo": 1,
            "triggerReason": "StopAuthorized",
            "transactionInfo": {"transactionId": "TX-TRIG", "stoppedReason": "Local"},
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 4000, "context": "Transaction.End"}]}],
        }
        assert (await raw_call(websocket, "t1", "TransactionEvent", ended))[0] == 3
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-TRIG")
    assert (session.status, session.stop_reason, session.energy_wh, session.closed_by_csms) == (
        "ended",
        "Local",
        Decimal(3000),
        False,
    )


async def test_v201_a_triggered_boot_on_a_new_connection_is_no_reboot_and_closes_nothing(daphne):
    """A 2.0.1 BootNotification of reason ``Triggered`` answers a TriggerMessage (F06, B01's
    BootReasonEnumType): the station did not restart, also when it comes on a connection opened
    after a network blip. It was taken as a reboot: the connector's Available (a session
    authorized before the cable, E02) closed the running session (``closed_by_csms``). Any
    other reason on a new connection still is one."""
    await register("CP201-TRIG2")
    started = {
        "eventType": "Started",
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-TRIG2", "chargingState": "Idle"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "ANY", "type": "ISO14443"},
    }
    boot = {"reason": "PowerUp", "chargingStation": {"vendorName": "V", "model": "M"}}
    available = {"timestamp": T1, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}
    async with raw_socket(daphne, "2.0.1", "CP201-TRIG2") as websocket:
        assert (await raw_call(websocket, "b", "BootNotification", boot))[0] == 3
        assert (await raw_call(websocket, "t1", "TransactionEvent", started))[0] == 3
    async with raw_socket(daphne, "2.0.1", "CP201-TRIG2") as websocket:
        triggered = {**boot, "reason": "Triggered"}
        assert (await raw_call(websocket, "b", "BootNotification", triggered))[0] == 3
        assert (await raw_call(websocket, "s1", "StatusNotification", available))[0] == 3
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-TRIG2")
    assert (session.status, session.closed_by_csms) == ("active", False)

    async with raw_socket(daphne, "2.0.1", "CP201-TRIG2") as websocket:
        assert (await raw_call(websocket, "b", "BootNotification", {**boot, "reason": "Watchdog"}))[0] == 3
        assert (await raw_call(websocket, "s1", "StatusNotification", available))[0] == 3
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-TRIG2")
    assert (session.status, session.closed_by_csms) == ("ended", True)


@pytest.mark.parametrize(("token_type", "status"), [("NoAuthorization", "Accepted"), ("ISO14443", "Unknown")])
async def test_an_event_with_an_empty_id_token_is_answered_its_id_token_info(daphne, token_type, status):
    """2.0.1 TransactionEventResponse: idTokenInfo is required when the request carried an idToken,
    an empty one too (an Ended with it was answered {})."""
    await register("CP201-EMPTY")
    token = {"idToken": "", "type": token_type}
    event = {
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "TX-E"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": token,
    }
    async with raw_socket(daphne, "2.0.1", "CP201-EMPTY") as websocket:
        for unique_id, event_type, seq_no in (("e0", "Started", 0), ("e1", "Ended", 1)):
            frame = {**event, "eventType": event_type, "seqNo": seq_no}
            await websocket.send(json.dumps([2, unique_id, "TransactionEvent", frame]))
            answer = json.loads(await websocket.recv())
            assert answer[:2] == [3, unique_id]
            assert answer[2]["idTokenInfo"]["status"] == status
        await websocket.send(json.dumps([2, "a1", "Authorize", {"idToken": token}]))
        assert json.loads(await websocket.recv())[2]["idTokenInfo"]["status"] == status


async def test_a_no_authorization_token_ending_a_session_is_accepted_and_flags_nothing(daphne):
    """A station charging without authorization names its NoAuthorization token (a string of its own,
    "FREEVEND") in its events: the Started and Authorize were answered Accepted, the Ended Unknown,
    and a session started without a token and ended with it was flagged unauthorized_token."""
    await register("CP201-FREE")
    token = {"idToken": "FREEVEND", "type": "NoAuthorization"}
    event = {"triggerReason": "EVCommunicationLost", "evse": {"id": 1, "connectorId": 1}}
    answers = []
    async with raw_socket(daphne, "2.0.1", "CP201-FREE") as websocket:
        for unique_id, event_type, seq_no, transaction_id, sent in (
            ("s1", "Started", 0, "TX-F1", token),
            ("e1", "Ended", 1, "TX-F1", token),
            ("s2", "Started", 0, "TX-F2", None),  # plugged in: no token yet
            ("e2", "Ended", 1, "TX-F2", token),
        ):
            frame = {
                **event,
                "eventType": event_type,
                "seqNo": seq_no,
                "timestamp": T0,
                "transactionInfo": {"transactionId": transaction_id, "stoppedReason": "EVDisconnected"},
                **({"idToken": sent} if sent else {}),
            }
            await websocket.send(json.dumps([2, unique_id, "TransactionEvent", frame]))
            answers.append(json.loads(await websocket.recv())[2].get("idTokenInfo"))
    assert answers == [{"status": "Accepted"}, {"status": "Accepted"}, None, {"status": "Accepted"}]
    sessions = Transaction.objects.filter(charge_point__charge_point_id="CP201-FREE").order_by("ocpp_transaction_id")
    assert [(s.id_tag, s.id_tag_status, "unauthorized_token" in s.anomalies) async for s in sessions] == [
        ("FREEVEND", "", False),
        ("FREEVEND", "", False),
    ]


def _event201(event_type: str, seq_no: int, timestamp: str, wh: int, transaction_id: str) -> dict:
    """A TransactionEvent's payload as sent, its register reading ``wh``."""
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event_type, "Sample.Periodic")
    return {
        "eventType": event_type,
        "timestamp": timestamp,
        "triggerReason": "Authorized" if event_type == "Started" else "MeterValuePeriodic",
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": timestamp, "sampledValue": [{"value": wh, "context": context}]}],
    }


async def test_v201_an_ended_is_answered_with_its_total_cost_also_when_resent(daphne):
    """I03: the Ended's answer says what the session cost (5.5 kWh at 0.30 plus 1.00: 2.65, as a JSON
    number with its cents); a resent Ended gets the same; an Updated says nothing of cost."""
    await register("CP201-COST")
    await tariff_030_eur_with_1_eur_fee()
    async with raw_socket(daphne, "2.0.1", "CP201-COST") as websocket:
        await raw_call(websocket, "e0", "TransactionEvent", _event201("Started", 0, T0, 1000, "TX-COST"))
        updated = await raw_call(websocket, "e1", "TransactionEvent", _event201("Updated", 1, T_HALF, 3000, "TX-COST"))
        ended = _event201("Ended", 2, T1, 6500, "TX-COST")
        answer = await raw_call(websocket, "e2", "TransactionEvent", ended)
        resent = await raw_call(websocket, "e2-again", "TransactionEvent", ended)

    assert updated == [3, "e1", {}]
    assert answer == [3, "e2", {"totalCost": 2.65}]
    assert resent == [3, "e2-again", {"totalCost": 2.65}]
    record = await BillingRecord.objects.aget(transaction__ocpp_transaction_id="TX-COST")
    assert record.total == Decimal("2.65")


async def test_v201_an_ended_without_a_tariff_claims_no_cost(daphne):
    """No tariff priced the session: its record's 0.00 is not "free", so no totalCost is sent."""
    await register("CP201-NOCOST")
    async with raw_socket(daphne, "2.0.1", "CP201-NOCOST") as websocket:
        await raw_call(websocket, "e0", "TransactionEvent", _event201("Started", 0, T0, 1000, "TX-NOCOST"))
        ended = _event201("Ended", 1, T1, 6500, "TX-NOCOST")
        answer = await raw_call(websocket, "e1", "TransactionEvent", ended)
        resent = await raw_call(websocket, "e1-again", "TransactionEvent", ended)

    assert answer == [3, "e1", {}]
    assert resent == [3, "e1-again", {}]
    assert (await BillingRecord.objects.aget(transaction__ocpp_transaction_id="TX-NOCOST")).total == Decimal("0.00")


async def test_v16_live_energy_never_drops_for_a_reading_of_fewer_phases_or_another_location(daphne, api_key):
    """1.6 §7.31/§7.33: a charger's MeterValues may carry fewer phases of its per-phase register
    (L1 and L2 after L1, L2 and L3) or a register located elsewhere (the EV's, the inlet's). Such a
    message's sum (or its one value) is not the register the session was read from: the session's
    live energy (the API's ``energy_wh`` while it charges, its ``last_register_wh``) dropped to
    2000 Wh, then 1100 Wh, then jumped to the EV's scale. Now it stands until a reading of the
    register it holds comes (phases and location as billed at the stop, which reads the ledger)."""
    await register("CP16-LIVE")

    def reading(minute: int, *values: tuple[str, str, str]) -> dict:
        sampled = [
            {"value": value, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            | ({"phase": phase} if phase else {})
            | ({"location": location} if location else {})
            for value, phase, location in values
        ]
        return {"timestamp": f"2026-05-01T10:{minute:02d}:00Z", "sampledValue": sampled}

    sequence = [
        reading(5, ("900", "L1", ""), ("900", "L2", ""), ("900", "L3", "")),  # 2700 Wh, every phase
        reading(10, ("1000", "L1", ""), ("1000", "L2", "")),  # L3 left out: 2000 is no register reading
        reading(15, ("1100", "L1", "Outlet")),  # one phase alone
        reading(20, ("5000", "", "EV")),  # the EV's register alone
        reading(25, ("4000", "L1", "Inlet"), ("4000", "L2", "Inlet"), ("4000", "L3", "Inlet")),  # the inlet's
        reading(30, ("1200", "L1", ""), ("1200", "L2", ""), ("1200", "L3", "")),  # 3600 Wh, every phase again
    ]
    live = []
    async with ocpp_charger(daphne, "1.6", "CP16-LIVE") as charger:
        started = await charger.call(call16.StartTransaction(connector_id=1, id_tag="ANY", meter_start=0, timestamp=T0))
        url = f"{daphne.http_url}/api/v1/transactions/{started.transaction_id}"
        for meter_value in sequence:
            await charger.call(
                call16.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=[meter_value])
            )
            status, body = await ahttp(url, api_key=api_key)
            session = await Transaction.objects.aget(pk=started.transaction_id)
            live.append((status, body["status"], body["energy_wh"], session.last_register_wh))
        await charger.call(
            call16.StopTransaction(transaction_id=started.transaction_id, meter_stop=3700, timestamp=T1, reason="Local")
        )
    assert live == [
        (200, "active", 2700, Decimal(2700)),
        (200, "active", 2700, Decimal(2700)),
        (200, "active", 2700, Decimal(2700)),
        (200, "active", 2700, Decimal(2700)),
        (200, "active", 2700, Decimal(2700)),
        (200, "active", 3600, Decimal(3600)),
    ]
    session = await Transaction.objects.aget(pk=started.transaction_id)
    assert (session.status, session.energy_wh) == ("ended", Decimal(3700))


async def test_a_pin_code_that_is_not_valid_is_answered_invalid_not_unknown(daphne):
    """OCPP 2.0.1 C04.FR.01: a keyCode (idToken type KeyCode, a PIN typed at the station) not valid
    there is answered Invalid; an unregistered card stays Unknown. Probe: the PIN was answered Unknown,
    in Authorize and in the TransactionEvent that carried it."""
    await register("CP201-PIN")
    await IdTag.objects.acreate(id_tag="4711", token_type="KeyCode")
    async with raw_socket(daphne, "2.0.1", "CP201-PIN") as websocket:
        authorized = [
            (await raw_call(websocket, f"a{n}", "Authorize", {"idToken": {"idToken": token, "type": kind}}))[2]
            for n, (token, kind) in enumerate((("0000", "KeyCode"), ("4711", "KeyCode"), ("CARD-X", "ISO14443")))
        ]
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-PIN"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "0000", "type": "KeyCode"},
        }
        event = (await raw_call(websocket, "e0", "TransactionEvent", started))[2]
        ended = {**started, "eventType": "Ended", "seqNo": 1, "triggerReason": "StopAuthorized"}
        ended_answer = (await raw_call(websocket, "e1", "TransactionEvent", ended))[2]
    assert [answer["idTokenInfo"]["status"] for answer in authorized] == ["Invalid", "Accepted", "Unknown"]
    assert (event["idTokenInfo"], ended_answer["idTokenInfo"]) == ({"status": "Invalid"}, {"status": "Invalid"})


_BOOT16 = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _session_open_when_reset(daphne, api_key, charge_point_id: str, *, answer: str | None) -> int:
    """Boot, a session on connector 1, then (``answer``: the charger's) a Reset through the API;
    the socket closes (the reboot). The session's transactionId."""
    await register(charge_point_id)
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await raw_call(websocket, "b", "BootNotification", _BOOT16)
        start = {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": T0}
        transaction_id = (await raw_call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
        if answer is not None:
            url = f"{daphne.http_url}/api/v1/ocpp16/{charge_point_id}/reset"
            post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Hard"}))
            call = json.loads(await asyncio.wait_for(websocket.recv(), 5))
            assert call[2] == "Reset"
            await websocket.send(json.dumps([3, call[1], {"status": answer}]))
            assert (await post)[0] in (200, 409)  # 409: refused by the charger
    return transaction_id


async def _after_boot(daphne, charge_point_id: str, status: str, *, boot: bool = True) -> None:
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        if boot:
            await raw_call(websocket, "b2", "BootNotification", _BOOT16)
        notification = {"connectorId": 1, "errorCode": "NoError", "status": status}
        assert await raw_call(websocket, "n", "StatusNotification", notification) == [3, "n", {}]


@pytest.mark.parametrize("status", ["Unavailable", "Faulted", "Finishing"])
async def test_v16_a_session_whose_stop_an_accepted_reset_lost_is_closed_after_the_boot(daphne, api_key, status):
    """OCPP 1.6 §5.14: a charger that accepted a Reset ends its transactions. Its StopTransaction
    lost, and its connector reporting Unavailable (left Inoperative), Faulted or Finishing after the
    boot, the session stayed open (only Available, Preparing or Reserved closed it). The beat sweep
    closes it, as a reboot's close (``closed_by_csms``, for review)."""
    charge_point_id = f"CP16-RST-{status}"
    transaction_id = await _session_open_when_reset(daphne, api_key, charge_point_id, answer="Accepted")
    await _after_boot(daphne, charge_point_id, status)
    assert await sync_to_async(transactions_close_after_reset)() == 1
    session = await Transaction.objects.aget(charge_point__charge_point_id=charge_point_id, pk=transaction_id)
    assert (session.status, session.stop_reason, session.closed_by_csms) == ("ended", "Reboot", True)
    assert await BillingRecord.objects.filter(transaction=session).aexists()
    assert await sync_to_async(transactions_close_after_reset)() == 0


@pytest.mark.parametrize(
    ("answer", "boot", "status"),
    [(None, True, "Unavailable"), ("Rejected", True, "Unavailable"), ("Accepted", False, "Unavailable"),
     ("Accepted", True, "Charging")],
)  # fmt: skip
async def test_v16_a_session_without_an_accepted_reset_and_a_boot_after_it_stays_open(
    daphne, api_key, answer, boot, status
):
    """No Reset, a refused one, none followed by a boot (the connector made Unavailable
    mid-session), or a connector charging after the boot (a charger that kept its transaction):
    the session stays open."""
    charge_point_id = f"CP16-NORST-{answer}-{boot}-{status}"
    transaction_id = await _session_open_when_reset(daphne, api_key, charge_point_id, answer=answer)
    await _after_boot(daphne, charge_point_id, status, boot=boot)
    assert await sync_to_async(transactions_close_after_reset)() == 0
    session = await Transaction.objects.aget(charge_point__charge_point_id=charge_point_id, pk=transaction_id)
    assert session.status == "active"


@pytest.mark.parametrize("booted", [True, False])
async def test_a_v16_session_open_when_its_charger_moved_to_v201_is_closed_after_the_boot(daphne, booted):
    """A firmware update moves the charger from 1.6 to 2.0.1 mid-session (its StopTransaction lost):
    the 2.0.1 station cannot end a 1.6 session, and its Available, per EVSE, never named the 1.6
    session's connector: the session stayed open. The sweep closes it once the charger booted on
    2.0.1 (``closed_by_csms``); connected over 2.0.1 without a boot since the session, it waits."""
    charge_point_id = f"CP-MOVED-{booted}"
    await register(charge_point_id)
    async with raw_socket(daphne, "1.6", charge_point_id) as websocket:
        await raw_call(websocket, "b", "BootNotification", _BOOT16)
        start = {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": T0}
        transaction_id = (await raw_call(websocket, "s", "StartTransaction", start))[2]["transactionId"]
    async with raw_socket(daphne, "2.0.1", charge_point_id) as websocket:
        if booted:
            boot = {"reason": "FirmwareUpdate", "chargingStation": {"vendorName": "V", "model": "M"}}
            assert (await raw_call(websocket, "b", "BootNotification", boot))[2]["status"] == "Accepted"
        status = {
            "timestamp": datetime.now(UTC).isoformat(),
            "connectorStatus": "Available",
            "evseId": 1,
            "connectorId": 1,
        }
        assert await raw_call(websocket, "n", "StatusNotification", status) == [3, "n", {}]
        assert await sync_to_async(transactions_close_after_version_change)() == int(booted)
    session = await Transaction.objects.aget(pk=transaction_id)
    expected = ("ended", "Reboot", True) if booted else ("active", "", False)
    assert (session.status, session.stop_reason, session.closed_by_csms) == expected


async def test_v201_the_begin_reading_an_ended_brings_is_the_meter_start_a_later_reading_stood_in_for(daphne):
    """J02: an Ended carries the readings of the whole transaction (SampledDataTxEndedMeasurands), its
    ``Transaction.Begin`` among them. Probe: a station whose Started carried no reading (no
    SampledDataTxStartedMeasurands) had its first periodic reading stand in for the meter start, and the
    Begin the Ended brought was dropped: 4 kWh billed for the 8 the register counted. The Begin is the
    meter start when none came before it (a repeat of a Begin the Started sent, rounded, moves nothing)."""
    await register("CP201-ENDED-BEGIN")
    await tariff_030_eur_with_1_eur_fee()

    def reading(timestamp: str, wh: int, context: str) -> dict:
        return {"timestamp": timestamp, "sampledValue": [{"value": wh, "context": context}]}

    started = _event201("Started", 0, T0, 0, "TX-ENDED-BEGIN")
    del started["meterValue"]
    ended = _event201("Ended", 2, T1, 9000, "TX-ENDED-BEGIN")
    ended["meterValue"] = [
        reading(T0, 1000, "Transaction.Begin"),
        reading(T_HALF, 5000, "Sample.Periodic"),
        reading(T1, 9000, "Transaction.End"),
    ]
    async with raw_socket(daphne, "2.0.1", "CP201-ENDED-BEGIN") as websocket:
        await raw_call(websocket, "e0", "TransactionEvent", started)
        await raw_call(websocket, "e1", "TransactionEvent", _event201("Updated", 1, T_HALF, 5000, "TX-ENDED-BEGIN"))
        answer = await raw_call(websocket, "e2", "TransactionEvent", ended)

    assert answer == [3, "e2", {"totalCost": 3.4}]  # 8 kWh x 0.30 + 1.00
    session = await Transaction.objects.aget(ocpp_transaction_id="TX-ENDED-BEGIN")
    assert (session.meter_start_wh, session.meter_stop_wh, session.energy_wh) == (1000, 9000, 8000)
    assert (session.anomalies, session.needs_review) == ([], False)


async def test_v16_late_readings_of_a_session_its_charger_stopped_change_its_bill_with_it(daphne):
    """Probe: a 1.6 charger that does not know its register at the start (meterStart 0) stopped its
    session (meterStop 9000, 9 kWh billed), then its queue delivered a MeterValues naming it, stamped
    within its time, with the Transaction.Begin reading (1000): the session's meter start moved to 1000
    and it claimed 8 kWh while its bill kept 9 (3.70 EUR); a reading with an implausible clock flagged
    the session for review, its bill not. The session is billed again with what it learned (3.40 EUR)."""
    await register("CP16-LATE-BEGIN")
    await IdTag.objects.acreate(id_tag="T1")
    await tariff_030_eur_with_1_eur_fee()

    def reading(timestamp: str, wh: int, context: str) -> dict:
        return {"timestamp": timestamp, "sampledValue": [{"value": str(wh), "context": context}]}

    async with raw_socket(daphne, "1.6", "CP16-LATE-BEGIN") as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": T0}
        transaction_id = (await raw_call(websocket, "s1", "StartTransaction", start))[2]["transactionId"]
        stop = {"transactionId": transaction_id, "meterStop": 9000, "timestamp": T1, "reason": "EVDisconnected"}
        await raw_call(websocket, "e1", "StopTransaction", stop)
        record = await BillingRecord.objects.aget(transaction_id=transaction_id)
        assert (record.energy_wh, record.total) == (9000, Decimal("3.70"))
        late = [reading(T0, 1000, "Transaction.Begin"), reading(T_HALF, 5000, "Sample.Periodic")]
        body = {"connectorId": 1, "transactionId": transaction_id, "meterValue": late}
        assert (await raw_call(websocket, "m1", "MeterValues", body))[:2] == [3, "m1"]

        session = await Transaction.objects.select_related("billing_record").aget(pk=transaction_id)
        assert (session.meter_start_wh, session.meter_stop_wh, session.energy_wh) == (1000, 9000, 8000)
        record = session.billing_record
        assert (record.energy_wh, record.total, record.needs_review) == (8000, Decimal("3.40"), False)

        skewed = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading(EPOCH, 9000, "")]}
        assert (await raw_call(websocket, "m2", "MeterValues", skewed))[:2] == [3, "m2"]

    session = await Transaction.objects.select_related("billing_record").aget(pk=transaction_id)
    assert Anomaly.CLOCK_IMPLAUSIBLE in session.anomalies and session.needs_review
    record = session.billing_record
    assert (record.energy_wh, record.total, record.needs_review) == (8000, Decimal("3.40"), True)
