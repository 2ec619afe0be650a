"""Session messages are never refused for what the CSMS can absorb, whatever the charger model's
profile: over-long strings, numbers as strings and back, unknown enum values, required fields with a
safe default. Each is recorded with its frame. A real daphne, raw sockets, PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.models import BillingRecord, Tariff
from chargepoints.models import (
    ChargePoint,
    ChargerModelProfile,
    SchemaViolation,
    Strictness,
)
from charging.models import IdTag, MeterSample, ReconciliationItem, Transaction, TransactionStatus
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

T0, T_HALF, T1 = "2026-05-01T10:00:00Z", "2026-05-01T10:30:00Z", "2026-05-01T11:00:00Z"
REGISTER = "Energy.Active.Import.Register"
PROFILES = ["strict", "lenient"]


async def charger(charge_point_id: str, profile: str) -> ChargePoint:
    """A registered charger of a model whose profile is ``profile`` (strict is also the default)."""
    strictness = Strictness.LENIENT if profile == "lenient" else Strictness.STRICT
    await ChargerModelProfile.objects.aget_or_create(vendor="Acme", model="Field", defaults={"strictness": strictness})
    await Tariff.objects.acreate(
        name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00"), is_default=True
    )
    return await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, vendor="Acme", model="Field"
    )


async def call(websocket, unique_id: str, action: str, payload: dict) -> list:
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await websocket.recv())


async def violations(charge_point: ChargePoint) -> list[tuple[str, str, str, str]]:
    rows = SchemaViolation.objects.filter(charge_point=charge_point).order_by("received_at", "id")
    return [(row.action, row.path, row.validator, row.value) async for row in rows]


@pytest.mark.parametrize("profile", PROFILES)
async def test_v16_an_over_long_stop_id_tag_and_numeric_sampled_values_close_and_bill_the_session(daphne, profile):
    charge_point = await charger(f"CP16-{profile}", profile)
    await IdTag.objects.acreate(id_tag="LABTAG-OK")
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "LABTAG-OK", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        transaction_id = started["transactionId"]
        meter = {
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{"timestamp": T_HALF, "sampledValue": [{"value": 6000, "measurand": REGISTER}]}],
        }
        assert await call(websocket, "m1", "MeterValues", meter) == [3, "m1", {}]
        stop = {
            "transactionId": transaction_id,
            "meterStop": 11000,
            "timestamp": T1,
            "idTag": "LABTAG-TOO-LONG-12345",
            "transactionData": [
                {
                    "timestamp": T1,
                    "sampledValue": [{"value": 11000, "measurand": REGISTER, "context": "Transaction.End"}],
                }
            ],
        }
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {"idTagInfo": {"status": "Invalid"}}]

    session = await Transaction.objects.aget(pk=transaction_id)
    assert (session.status, session.stop_id_tag, session.energy_wh) == (
        TransactionStatus.ENDED,
        "LABTAG-TOO-LONG-12345",
        Decimal("10000"),
    )
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.id_tag, record.needs_review) == (Decimal("4.00"), "LABTAG-OK", False)
    stored = [
        (sample.source, sample.raw_value, sample.value)
        async for sample in MeterSample.objects.filter(transaction=session).order_by("timestamp")
    ]
    assert stored == [("MeterValues", "6000", Decimal("6000")), ("StopTransaction", "11000", Decimal("11000"))]
    assert await violations(charge_point) == [
        ("MeterValues", "meterValue/0/sampledValue/0/value", "type", "6000"),
        ("StopTransaction", "idTag", "maxLength", "LABTAG-TOO-LONG-12345"),
        ("StopTransaction", "transactionData/0/sampledValue/0/value", "type", "11000"),
    ]
    frame = await SchemaViolation.objects.filter(action="StopTransaction").values_list("frame", flat=True).afirst()
    assert json.loads(frame) == [2, "e1", "StopTransaction", stop]


@pytest.mark.parametrize("profile", PROFILES)
async def test_v201_an_ended_without_trigger_reason_closes_the_session(daphne, profile):
    charge_point = await charger(f"CP201-{profile}", profile)
    await IdTag.objects.acreate(id_tag="TOKEN-OK")
    event = {
        "timestamp": T0,
        "triggerReason": "Authorized",
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "TOKEN-OK", "type": "ISO14443"},
    }
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            **event,
            "eventType": "Started",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-1", "chargingState": "Charging"},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        # A 2.0.1 value is a number: sent as a string it is read all the same.
        meter = {"evseId": 1, "meterValue": [{"timestamp": T_HALF, "sampledValue": [{"value": "6000"}]}]}
        assert await call(websocket, "m1", "MeterValues", meter) == [3, "m1", {}]
        ended = {
            "eventType": "Ended",
            "timestamp": T1,
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-1"},
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 11000, "context": "Transaction.End"}]}],
        }
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 4.0}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-1")
    assert (session.status, session.stop_reason, session.energy_wh) == (
        TransactionStatus.ENDED,
        "Local",
        Decimal("10000"),
    )
    assert (await BillingRecord.objects.aget(transaction=session)).total == Decimal("4.00")
    sample = await MeterSample.objects.aget(source="MeterValues", charge_point=charge_point)
    assert (sample.raw_value, sample.value) == ("6000", Decimal("6000"))
    assert await violations(charge_point) == [
        ("MeterValues", "meterValue/0/sampledValue/0/value", "type", "6000"),
        ("TransactionEvent", "triggerReason", "required", ""),
    ]


@pytest.mark.parametrize("profile", PROFILES)
async def test_optional_whole_numbers_sent_with_a_fraction_are_left_out_and_the_session_proceeds(daphne, profile):
    """A float where an optional whole number goes (``timeSpentCharging: 600.5``) was refused with
    a TypeConstraintViolation: the Ended never applied, its session stayed open and the charger
    resent it forever. Left out, the session proceeds; an EVSE id with a fraction is still refused."""
    charge_point = await charger(f"CP-FRACTION-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-FRACTION", "remoteStartId": 7.5},
            "evse": {"id": 1, "connectorId": 1},
            "numberOfPhasesUsed": 3.5,
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        ended = {
            "eventType": "Ended",
            "timestamp": T1,
            "triggerReason": "EVDeparted",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-FRACTION", "timeSpentCharging": 600.5},
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 11000, "context": "Transaction.End"}]}],
        }
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 4.0}]
        other = {**started, "seqNo": 0, "transactionInfo": {"transactionId": "TX-OTHER"}, "evse": {"id": 1.5}}
        assert (await call(websocket, "t3", "TransactionEvent", other))[:3] == [4, "t3", "TypeConstraintViolation"]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FRACTION")
    assert (session.status, session.energy_wh, session.remote_start_id) == (TransactionStatus.ENDED, 10000, None)
    assert {(action, path) for action, path, _, _ in await violations(charge_point)} == {
        ("TransactionEvent", "transactionInfo/remoteStartId"),
        ("TransactionEvent", "numberOfPhasesUsed"),
        ("TransactionEvent", "transactionInfo/timeSpentCharging"),
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_optional_whole_numbers_no_reading_makes_one_are_left_out_and_the_session_ends(daphne, profile):
    """An optional whole number the session does not hang on sent as ``""``, ``"n/a"`` or ``true``
    (a firmware's unknown value) was refused with a TypeConstraintViolation, where one with a fraction
    is left out: the Ended never applied, its session stayed open and the station resent it forever.
    Left out the same way; an EVSE id no reading makes a number is still refused."""
    charge_point = await charger(f"CP-NOTNUM-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-NOTNUM", "remoteStartId": ""},
            "evse": {"id": 1, "connectorId": "n/a"},
            "reservationId": True,
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        ended = {
            "eventType": "Ended",
            "timestamp": T1,
            "triggerReason": "EVDeparted",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-NOTNUM", "timeSpentCharging": "n/a"},
            "numberOfPhasesUsed": "three",
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 11000, "context": "Transaction.End"}]}],
        }
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 4.0}]
        other = {**started, "seqNo": 0, "transactionInfo": {"transactionId": "TX-NOTNUM-2"}, "evse": {"id": "one"}}
        assert (await call(websocket, "t3", "TransactionEvent", other))[:3] == [4, "t3", "TypeConstraintViolation"]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-NOTNUM")
    assert (session.status, session.energy_wh, session.evse_id) == (TransactionStatus.ENDED, 10000, 1)
    assert {(action, path) for action, path, _, _ in await violations(charge_point)} == {
        ("TransactionEvent", "transactionInfo/remoteStartId"),
        ("TransactionEvent", "evse/connectorId"),
        ("TransactionEvent", "reservationId"),
        ("TransactionEvent", "transactionInfo/timeSpentCharging"),
        ("TransactionEvent", "numberOfPhasesUsed"),
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_empty_reading_lists_and_a_boolean_as_text_are_absorbed_and_the_session_ends(daphne, profile):
    """``"meterValue": []`` (no measurands configured) and ``"offline": "true"`` were refused
    (OccurrenceConstraintViolation, TypeConstraintViolation): the Ended never applied and its
    session stayed open, resent forever; an empty 1.6 MeterValues was refused too."""
    charge_point = await charger(f"CP-EMPTY-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "offline": "true",
            "transactionInfo": {"transactionId": "TX-EMPTY"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        updated = {**started, "eventType": "Updated", "seqNo": 1, "offline": "FALSE"}
        updated["meterValue"] = [{"timestamp": T_HALF, "sampledValue": []}]
        assert (await call(websocket, "t2", "TransactionEvent", updated))[:2] == [3, "t2"]
        ended = {**started, "eventType": "Ended", "timestamp": T1, "seqNo": 2, "meterValue": []}
        assert await call(websocket, "t3", "TransactionEvent", ended) == [3, "t3", {"totalCost": 1.0}]
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        assert await call(websocket, "m1", "MeterValues", {"connectorId": 1, "meterValue": []}) == [3, "m1", {}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-EMPTY")
    assert (session.status, session.stopped_at.isoformat(), session.energy_wh) == (
        TransactionStatus.ENDED,
        "2026-05-01T11:00:00+00:00",
        Decimal(0),
    )
    assert {(action, path, validator) for action, path, validator, _ in await violations(charge_point)} == {
        ("TransactionEvent", "offline", "type"),
        ("TransactionEvent", "meterValue/0/sampledValue", "minItems"),
        ("TransactionEvent", "meterValue", "minItems"),
        ("MeterValues", "meterValue", "minItems"),
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_the_offline_flag_as_a_number_or_unreadable_is_absorbed_and_the_session_ends(daphne, profile):
    """2.0.1 ``"offline": 1`` (a firmware writing its booleans as 0 and 1), ``"0"``, or a value no
    reading makes a boolean (``"yes"``) were refused (TypeConstraintViolation): the Ended never
    applied, its session stayed open and the station resent it forever. 0/1 (number or text) is the
    boolean; anything else is left out (the flag only tells how the event was queued), each recorded."""
    charge_point = await charger(f"CP-FLAG-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "offline": 1,
            "transactionInfo": {"transactionId": "TX-FLAG"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        updated = {**started, "eventType": "Updated", "seqNo": 1, "offline": "0", "timestamp": T_HALF}
        updated["meterValue"] = [{"timestamp": T_HALF, "sampledValue": [{"value": 2000}]}]
        assert (await call(websocket, "t2", "TransactionEvent", updated))[:2] == [3, "t2"]
        ended = {**started, "eventType": "Ended", "timestamp": T1, "seqNo": 2, "offline": "yes"}
        ended["meterValue"] = [{"timestamp": T1, "sampledValue": [{"value": 5000, "context": "Transaction.End"}]}]
        assert await call(websocket, "t3", "TransactionEvent", ended) == [3, "t3", {"totalCost": 2.2}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-FLAG")
    assert (session.status, session.stopped_at.isoformat(), session.energy_wh) == (
        TransactionStatus.ENDED,
        "2026-05-01T11:00:00+00:00",
        Decimal(4000),
    )
    assert [(path, validator, value) for _, path, validator, value in await violations(charge_point)] == [
        ("offline", "type", "1"),
        ("offline", "type", "0"),
        ("offline", "type", "yes"),
    ]


@pytest.mark.parametrize("profile", PROFILES)
async def test_optional_objects_missing_a_field_they_require_are_left_out_and_the_session_ends(daphne, profile):
    """``"evse": {}``, ``"customData": {}`` and a ``signedMeterValue`` without its data were refused
    (ProtocolError): the Ended never applied and its session stayed open, resent forever."""
    charge_point = await charger(f"CP-INCOMPLETE-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-INCOMPLETE"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        signed = {"signingMethod": "ECDSA"}  # signedMeterData, encodingMethod, publicKey missing
        ended = {
            **started,
            "eventType": "Ended",
            "timestamp": T1,
            "seqNo": 1,
            "evse": {},
            "customData": {},
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 11000, "signedMeterValue": signed}]}],
        }
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 4.0}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-INCOMPLETE")
    assert (session.status, session.energy_wh, session.evse_id) == (TransactionStatus.ENDED, 10000, 1)
    assert {(action, path) for action, path, _, _ in await violations(charge_point)} == {
        ("TransactionEvent", "evse/id"),
        ("TransactionEvent", "customData/vendorId"),
        ("TransactionEvent", "meterValue/0/sampledValue/0/signedMeterValue/signedMeterData"),
        ("TransactionEvent", "meterValue/0/sampledValue/0/signedMeterValue/encodingMethod"),
        ("TransactionEvent", "meterValue/0/sampledValue/0/signedMeterValue/publicKey"),
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_optional_objects_whose_required_field_is_null_are_left_out_and_the_session_ends(daphne, profile):
    """``"evse": {"id": null, ...}`` and ``"idToken": {"idToken": null, ...}`` (a serializer writing an
    unknown value as null) were refused with ProtocolError, where ``"evse": {}`` and ``"idToken": {}``
    are left out: the Ended never applied, its session stayed open and the station resent it forever.
    An object whose required field is null is now left out as one missing it, recorded the same way."""
    charge_point = await charger(f"CP-NULLS-{profile}", profile)
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-NULLS"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        ended = {
            **started,
            "eventType": "Ended",
            "timestamp": T1,
            "triggerReason": "EVDeparted",
            "seqNo": 1,
            "evse": {"id": None, "connectorId": 1},
            "idToken": {"idToken": None, "type": "ISO14443"},
            "meterValue": [{"timestamp": T1, "sampledValue": [{"value": 11000}]}],
        }
        assert await call(websocket, "t2", "TransactionEvent", ended) == [3, "t2", {"totalCost": 4.0}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-NULLS")
    assert (session.status, session.energy_wh, session.evse_id) == (TransactionStatus.ENDED, 10000, 1)
    assert {(action, path, validator) for action, path, validator, _ in await violations(charge_point)} == {
        ("TransactionEvent", "evse/id", "type"),
        ("TransactionEvent", "idToken/idToken", "type"),
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_an_incomplete_additional_id_token_is_left_out_and_the_session_ends(daphne, profile):
    """An idToken's ``additionalInfo`` entry without its ``type`` (or its ``additionalIdToken``), which
    the CSMS never reads, was refused with ProtocolError: the Ended never applied, its session stayed
    open and the station resent it forever. Such a list is left out; the token itself still counts."""
    charge_point = await charger(f"CP-EXTRA-{profile}", profile)
    await IdTag.objects.acreate(id_tag="TOKEN-EXTRA")
    token = {"idToken": "TOKEN-EXTRA", "type": "ISO14443", "additionalInfo": [{"additionalIdToken": "X1"}]}
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        started = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-EXTRA"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": token,
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        answer = await call(websocket, "t1", "TransactionEvent", started)
        assert answer == [3, "t1", {"idTokenInfo": {"status": "Accepted"}}]
        ended = {**started, "eventType": "Ended", "timestamp": T1, "seqNo": 1}
        ended["meterValue"] = [{"timestamp": T1, "sampledValue": [{"value": 11000}]}]
        answer = await call(websocket, "t2", "TransactionEvent", ended)
        assert answer == [3, "t2", {"idTokenInfo": {"status": "Accepted"}, "totalCost": 4.0}]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-EXTRA")
    assert (session.status, session.energy_wh, session.id_tag) == (TransactionStatus.ENDED, 10000, "TOKEN-EXTRA")
    assert {(path, validator) for _, path, validator, _ in await violations(charge_point)} == {
        ("idToken/additionalInfo/0/type", "required")
    }


async def test_v201_transaction_ids_over_36_characters_sharing_their_start_stay_two_sessions(daphne):
    """Cut to the column, they keep a digest of the whole (round 41's probe: two ids sharing their first
    36 characters merged into one session, the other's energy lost without a trace)."""
    charge_point = await charger("CP201-LONG-IDS", "strict")
    await IdTag.objects.acreate(id_tag="TOKEN-OK")
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        for evse, suffix in ((1, "-AAA"), (2, "-BBB")):
            transaction_id = "X" * 36 + suffix
            for seq_no, (kind, at, wh) in enumerate((("Started", T0, 1000 * evse), ("Ended", T1, 3000 * evse))):
                event = {
                    "eventType": kind,
                    "timestamp": at,
                    "triggerReason": "Authorized",
                    "seqNo": seq_no,
                    "evse": {"id": evse, "connectorId": 1},
                    "idToken": {"idToken": "TOKEN-OK", "type": "ISO14443"},
                    "transactionInfo": {"transactionId": transaction_id},
                    "meterValue": [{"timestamp": at, "sampledValue": [{"value": wh}]}],
                }
                assert (await call(websocket, f"{evse}-{seq_no}", "TransactionEvent", event))[0] == 3
    sessions = [s async for s in Transaction.objects.order_by("evse_id")]
    assert [(s.evse_id, s.status, s.energy_wh) for s in sessions] == [(1, "ended", 2000), (2, "ended", 4000)]
    assert all(len(s.ocpp_transaction_id) == 36 and s.ocpp_transaction_id.startswith("X" * 27) for s in sessions)


@pytest.mark.parametrize("profile", PROFILES)
async def test_v16_unknown_enums_numbers_as_text_and_a_missing_timestamp_are_absorbed(daphne, profile):
    charge_point = await charger(f"CP16-MORE-{profile}", profile)
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": "1", "idTag": "ANY", "meterStart": "1000", "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        assert started["idTagInfo"] == {"status": "Invalid"}
        meter = {
            "connectorId": 1,
            "meterValue": [
                {"sampledValue": [{"value": "2.5", "unit": "kWh", "measurand": "Energy.Active.Import.Total"}]}
            ],
        }
        assert await call(websocket, "m1", "MeterValues", meter) == [3, "m1", {}]
        transaction_id = str(started["transactionId"])
        stop = {"transactionId": transaction_id, "meterStop": "3000.0", "timestamp": T1, "reason": "Fuse"}
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {}]

    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.status, session.connector_id, session.stop_reason, session.energy_wh) == (
        TransactionStatus.ENDED,
        1,
        "Fuse",
        Decimal("2000"),
    )
    sample = await MeterSample.objects.aget(transaction=session, source="MeterValues")
    assert (sample.measurand, sample.value) == ("Energy.Active.Import.Total", Decimal("2500"))
    assert {(action, path, validator) for action, path, validator, _ in await violations(charge_point)} == {
        ("StartTransaction", "connectorId", "type"),
        ("StartTransaction", "meterStart", "type"),
        ("MeterValues", "meterValue/0/timestamp", "required"),
        ("MeterValues", "meterValue/0/sampledValue/0/measurand", "enum"),
        ("StopTransaction", "transactionId", "type"),
        ("StopTransaction", "meterStop", "type"),
        ("StopTransaction", "reason", "enum"),
    }


async def test_v16_a_start_and_a_stop_without_timestamp_resent_after_a_lost_answer_are_their_copies(daphne):
    """A missing timestamp is the time of receipt, which differs from copy to copy: the start's
    copy opened a second session (the first closed `Superseded`, billed its session fee), and the
    stop's copy, of its session or of an unknown one, parked a reconciliation item each time."""
    charge_point = await charger("CP16-NO-TIME", "strict")
    await IdTag.objects.acreate(id_tag="T1")
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        [_, _, again] = await call(websocket, "s2", "StartTransaction", {**start, "timestamp": None})
        assert again["transactionId"] == started["transactionId"]
        stop = {"transactionId": started["transactionId"], "meterStop": 3000}
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {}]
        assert await call(websocket, "e2", "StopTransaction", stop) == [3, "e2", {}]
        unknown = {"transactionId": 987654, "meterStop": 3000}
        assert await call(websocket, "e3", "StopTransaction", unknown) == [3, "e3", {}]
        assert await call(websocket, "e4", "StopTransaction", unknown) == [3, "e4", {}]
        # A session the CSMS closed (superseded) is not resent by a start like its own: a new session.
        [_, _, closed] = await call(websocket, "s3", "StartTransaction", {**start, "meterStart": 3000})
        await call(websocket, "s4", "StartTransaction", {**start, "meterStart": 3000, "idTag": "T2"})
        [_, _, again] = await call(websocket, "s5", "StartTransaction", {**start, "meterStart": 3000})
        assert again["transactionId"] not in (closed["transactionId"], started["transactionId"])

    first = await Transaction.objects.aget(pk=started["transactionId"])
    assert (first.status, first.energy_wh, first.anomalies) == (TransactionStatus.ENDED, Decimal(2000), [])
    assert await Transaction.objects.filter(charge_point=charge_point).acount() == 4
    items = [(item.reason, item.ocpp_transaction_id) async for item in ReconciliationItem.objects.all()]
    assert items == [("unknown_transaction", "987654")]


async def test_v16_an_id_tag_longer_than_any_column_starts_replays_and_stops_its_session(daphne):
    charge_point = await charger("CP16-HUGE-TAG", "strict")
    id_tag = "T" * 300
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": id_tag, "meterStart": 0, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        assert started["idTagInfo"] == {"status": "Invalid"}  # authorized whole: no registered tag is that long
        [_, _, replayed] = await call(websocket, "s2", "StartTransaction", start)
        assert replayed["transactionId"] == started["transactionId"]
        stop = {"transactionId": started["transactionId"], "meterStop": 1000, "timestamp": T1, "idTag": id_tag}
        assert (await call(websocket, "e1", "StopTransaction", stop))[:2] == [3, "e1"]

    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert (session.status, session.id_tag, session.stop_id_tag) == (TransactionStatus.ENDED, "T" * 36, "T" * 36)
    assert "unauthorized_token" in session.anomalies


@pytest.mark.parametrize("profile", PROFILES)
async def test_frames_that_cannot_be_applied_still_get_their_callerror(daphne, profile):
    charge_point = await charger(f"CP-UNAPPLIABLE-{profile}", profile)
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "ANY", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        no_session = {"meterStop": 2000, "timestamp": T1, "idTag": "LABTAG-TOO-LONG-12345"}
        assert (await call(websocket, "e1", "StopTransaction", no_session))[:3] == [4, "e1", "ProtocolError"]
        no_energy = {"transactionId": started["transactionId"], "meterStop": "lots", "timestamp": T1}
        assert (await call(websocket, "e2", "StopTransaction", no_energy))[:3] == [4, "e2", "TypeConstraintViolation"]
        no_place = {"connectorId": {"id": 1}, "meterValue": [{"timestamp": T1, "sampledValue": [{"value": "1"}]}]}
        assert (await call(websocket, "m1", "MeterValues", no_place))[:3] == [4, "m1", "TypeConstraintViolation"]
        assert (await call(websocket, "h1", "Heartbeat", {}))[:2] == [3, "h1"]
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        unknown_event = {
            "eventType": "Paused",
            "timestamp": T1,
            "triggerReason": "Trigger",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-9"},
        }
        answer = await call(websocket, "t1", "TransactionEvent", unknown_event)
        assert answer[:3] == [4, "t1", "PropertyConstraintViolation"]  # an eventType outside its enum
        no_transaction = {"eventType": "Ended", "timestamp": T1, "triggerReason": "Trigger", "seqNo": 0}
        answer = await call(websocket, "t2", "TransactionEvent", no_transaction)
        assert answer[:3] == [4, "t2", "ProtocolError"]

    session = await Transaction.objects.aget(pk=started["transactionId"])
    assert session.status == TransactionStatus.ACTIVE
    assert not await Transaction.objects.filter(ocpp_transaction_id="TX-9").aexists()
    assert await violations(charge_point) == []


@pytest.mark.parametrize("sent", ["absent", "null"])
async def test_v16_a_stop_without_meter_stop_ends_its_session_at_its_last_reading(daphne, sent):
    """Probe: a StopTransaction without ``meterStop`` (firmware that does not know its register at the
    stop), or with ``null``, got a ProtocolError CALLERROR: the charger retries a refused stop for
    ever and the session stayed open. It is absorbed (recorded) and ends the session at its last
    register reading (a ``transactionData`` one, else a MeterValues one), as a 2.0.1 Ended without
    readings does; its resent copy parks nothing."""
    charge_point = await charger(f"CP16-NO-METER-STOP-{sent}", "strict")
    await IdTag.objects.acreate(id_tag="T1")
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        transaction_id = started["transactionId"]
        reading = {"timestamp": T_HALF, "sampledValue": [{"value": "3500", "measurand": REGISTER}]}
        values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [reading]}
        assert (await call(websocket, "m1", "MeterValues", values))[0] == 3
        stop = {"transactionId": transaction_id, "timestamp": T1, **({"meterStop": None} if sent == "null" else {})}
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {}]
        assert await call(websocket, "e2", "StopTransaction", stop) == [3, "e2", {}]

    session = await Transaction.objects.aget(pk=transaction_id)
    assert (session.status, session.meter_stop_wh, session.energy_wh) == (
        TransactionStatus.ENDED,
        Decimal(3500),
        Decimal(2500),
    )
    assert session.stopped_at.isoformat() == "2026-05-01T11:00:00+00:00"
    record = await BillingRecord.objects.aget(transaction=session)
    assert record.total == Decimal("1.75")  # 2.5 kWh x 0.30 + 1.00
    assert not await ReconciliationItem.objects.filter(charge_point=charge_point).aexists()
    validator = "type" if sent == "null" else "required"
    assert ("StopTransaction", "meterStop", validator) in {
        (action, path, rule) for action, path, rule, _ in await violations(charge_point)
    }


@pytest.mark.parametrize("profile", PROFILES)
async def test_a_reading_list_sent_as_its_one_item_is_read_as_that_list_and_the_session_bills(daphne, profile):
    """Probe: a Huawei wallbox (lbbrhzn/ocpp#1144) sends ``"meterValue": {"timestamp": ..., "sampledValue":
    [...]}``, the one MeterValue as an object, not a list of it: every MeterValues was answered
    TypeConstraintViolation, its readings lost (and a StopTransaction's ``transactionData`` so sent
    refused the stop, resent for ever). A list of objects sent as its one object (``meterValue``,
    ``sampledValue``, ``transactionData``; 2.0.1 likewise) is read as the list of it, recorded."""
    charge_point = await charger(f"CP16-ONE-ITEM-{profile}", profile)
    await IdTag.objects.acreate(id_tag="T1")
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "T1", "meterStart": 0, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        transaction_id = started["transactionId"]
        begin = {"value": "0.00", "context": "Transaction.Begin", "measurand": REGISTER, "unit": "kWh"}
        one = {"timestamp": T0, "sampledValue": [begin]}
        values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": one}
        assert await call(websocket, "m1", "MeterValues", values) == [3, "m1", {}]
        half = {"value": "2.50", "measurand": REGISTER, "unit": "kWh"}
        one = {"timestamp": T_HALF, "sampledValue": half}
        values = {"connectorId": 1, "transactionId": transaction_id, "meterValue": [one]}
        assert await call(websocket, "m2", "MeterValues", values) == [3, "m2", {}]
        end = {"value": "5.00", "context": "Transaction.End", "measurand": REGISTER, "unit": "kWh"}
        stop = {
            "transactionId": transaction_id,
            "meterStop": 5000,
            "timestamp": T1,
            "transactionData": {"timestamp": T1, "sampledValue": end},
        }
        assert await call(websocket, "e1", "StopTransaction", stop) == [3, "e1", {}]

    session = await Transaction.objects.aget(pk=transaction_id)
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(5000))
    stored = [
        (sample.source, sample.context, sample.value)
        async for sample in MeterSample.objects.filter(transaction=session).order_by("timestamp")
    ]
    assert stored == [
        ("MeterValues", "Transaction.Begin", Decimal(0)),
        ("MeterValues", "Sample.Periodic", Decimal(2500)),
        ("StopTransaction", "Transaction.End", Decimal(5000)),
    ]
    record = await BillingRecord.objects.aget(transaction=session)
    assert (record.total, record.needs_review) == (Decimal("2.50"), False)
    assert [(action, path, rule) for action, path, rule, _ in await violations(charge_point)] == [
        ("MeterValues", "meterValue", "type"),
        ("MeterValues", "meterValue/0/sampledValue", "type"),
        ("StopTransaction", "transactionData", "type"),
        ("StopTransaction", "transactionData/0/sampledValue", "type"),
    ]


async def test_v201_a_reading_list_sent_as_its_one_item_is_read_as_that_list(daphne):
    """The same in 2.0.1: a TransactionEvent's and a MeterValues' ``meterValue`` (and a reading's
    ``sampledValue``) sent as its one object is read as the list of it."""
    charge_point = await charger("CP201-ONE-ITEM", "strict")
    await IdTag.objects.acreate(id_tag="TOKEN-OK")
    started = {
        "eventType": "Started",
        "timestamp": T0,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "TOKEN-OK", "type": "ISO14443"},
        "transactionInfo": {"transactionId": "TX-ONE", "chargingState": "Charging"},
        "meterValue": {"timestamp": T0, "sampledValue": {"value": 1000, "context": "Transaction.Begin"}},
    }
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        assert (await call(websocket, "t1", "TransactionEvent", started))[:2] == [3, "t1"]
        values = {"evseId": 1, "meterValue": {"timestamp": T_HALF, "sampledValue": [{"value": 3000}]}}
        assert await call(websocket, "m1", "MeterValues", values) == [3, "m1", {}]
        ended = {
            **started,
            "eventType": "Ended",
            "timestamp": T1,
            "triggerReason": "StopAuthorized",
            "seqNo": 1,
            "transactionInfo": {"transactionId": "TX-ONE", "stoppedReason": "Local"},
            "meterValue": {"timestamp": T1, "sampledValue": {"value": 6000, "context": "Transaction.End"}},
        }
        assert (await call(websocket, "t2", "TransactionEvent", ended))[:2] == [3, "t2"]

    session = await Transaction.objects.aget(ocpp_transaction_id="TX-ONE")
    assert (session.status, session.energy_wh) == (TransactionStatus.ENDED, Decimal(5000))
    assert await MeterSample.objects.filter(transaction=session).acount() == 2  # its Begin and End
    # the MeterValues' reading (2.0.1: outside any transaction) is kept too
    assert await MeterSample.objects.filter(charge_point=charge_point, source="MeterValues").acount() == 1


@pytest.mark.parametrize(("value", "raw"), [(True, "true"), ({"value": 2000}, '{"value": 2000}'), ([2000], "[2000]")])
async def test_a_reading_that_is_no_number_nor_text_is_kept_raw_and_the_session_ends(daphne, value, raw):
    """A sampled value sent as a boolean, an object or a list (no number, no text) was refused
    (TypeConstraintViolation) where ``null`` or ``"n/a"`` is kept raw: a 1.6 stop or a 2.0.1 Ended
    carrying one never applied, its session stayed open, resent forever."""
    charge_point = await charger("CP-ODD-READING", "strict")
    async with raw_socket(daphne, "1.6", charge_point.charge_point_id) as websocket:
        start = {"connectorId": 1, "idTag": "ANY", "meterStart": 1000, "timestamp": T0}
        [_, _, started] = await call(websocket, "s1", "StartTransaction", start)
        reading = [{"timestamp": T_HALF, "sampledValue": [{"value": value}]}]
        meter = {"connectorId": 1, "transactionId": started["transactionId"], "meterValue": reading}
        assert await call(websocket, "m1", "MeterValues", meter) == [3, "m1", {}]
        stop = {"transactionId": started["transactionId"], "meterStop": 3000, "timestamp": T1}
        assert await call(websocket, "e1", "StopTransaction", {**stop, "transactionData": reading}) == [3, "e1", {}]
    async with raw_socket(daphne, "2.0.1", charge_point.charge_point_id) as websocket:
        began = {
            "eventType": "Started",
            "timestamp": T0,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "TX-ODD"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": T0, "sampledValue": [{"value": 1000, "context": "Transaction.Begin"}]}],
        }
        assert (await call(websocket, "t1", "TransactionEvent", began))[:2] == [3, "t1"]
        meter = {"evseId": 1, "meterValue": [{"timestamp": T_HALF, "sampledValue": [{"value": value}]}]}
        assert await call(websocket, "m2", "MeterValues", meter) == [3, "m2", {}]
        end = [{"timestamp": T1, "sampledValue": [{"value": value, "context": "Transaction.End"}]}]
        ended = {**began, "eventType": "Ended", "timestamp": T1, "seqNo": 1, "meterValue": end}
        assert (await call(websocket, "t2", "TransactionEvent", ended))[:2] == [3, "t2"]

    sessions = [session async for session in Transaction.objects.order_by("pk")]
    assert [session.status for session in sessions] == [TransactionStatus.ENDED] * 2
    assert all("unparseable_value" in session.anomalies for session in sessions)
    kept = MeterSample.objects.filter(raw_value=raw, value=None)
    assert await kept.acount() == 4  # the 1.6 reading and its stop's, the 2.0.1 reading and its Ended's
    assert {(action, validator) for action, _, validator, _ in await violations(charge_point)} == {
        ("MeterValues", "type"),
        ("StopTransaction", "type"),
        ("TransactionEvent", "type"),
    }
