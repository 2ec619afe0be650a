"""What a charger's messages may make the CSMS keep is bounded: a real daphne process on PostgreSQL,
raw WebSocket chargers, rows counted."""

from __future__ import annotations

import asyncio
import json

import pytest

from chargepoints.models import ChargePoint, Connector
from charging.models import ExternalChargingLimit, InstalledChargingProfile, MeterSample
from configuration.models import DeviceModelReport
from conftest import raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

T = "2026-05-01T10:00:00Z"


async def answer_to(websocket, unique_id: str) -> list:
    async with asyncio.timeout(15):
        while True:
            frame = json.loads(await websocket.recv())
            if frame[1] == unique_id:
                return frame


async def answers(websocket, payloads: list[tuple[str, dict]]) -> list[list]:
    """Each CALL sent once the one before it was answered (unique ids "0", "1", ...); their answers."""
    got = []
    for n, (action, payload) in enumerate(payloads):
        await websocket.send(json.dumps([2, str(n), action, payload]))
        got.append(await answer_to(websocket, str(n)))
    return got


def status_16(connector_id: int) -> tuple[str, dict]:
    return "StatusNotification", {"connectorId": connector_id, "errorCode": "NoError", "status": "Available"}


def status_201(evse_id: int, connector_id: int) -> tuple[str, dict]:
    payload = {"timestamp": T, "connectorStatus": "Available", "evseId": evse_id, "connectorId": connector_id}
    return "StatusNotification", payload


@pytest.mark.parametrize(
    ("version", "refused", "kept"),
    [
        ("1.6", [status_16(2147483647), status_16(129)], [status_16(0), status_16(128)]),
        (
            "2.0.1",
            [status_201(2147483647, 1), status_201(1, 2147483647), status_201(129, 1)],
            [status_201(1, 1), status_201(128, 128)],
        ),
    ],
)
async def test_a_status_of_a_connector_id_beyond_the_maximum_is_refused_and_stores_no_connector(
    daphne, version, refused, kept
):
    """Each StatusNotification of a new connector id made a row: a charger counting up to 2^31 ids
    (20 a second, the frame rate) filled the connectors table without end."""
    await ChargePoint.objects.acreate(charge_point_id="CP-IDS", heartbeat_interval=60)
    async with raw_socket(daphne, version, "CP-IDS") as websocket:
        got = await answers(websocket, [*refused, *kept, ("Heartbeat", {})])
    assert [answer[0] for answer in got] == [4] * len(refused) + [3] * (len(kept) + 1), got
    assert {answer[2] for answer in got[: len(refused)]} == {"PropertyConstraintViolation"}
    assert "CSMS_MAX_CONNECTOR_ID" in got[0][3] and "128" in got[0][3]
    assert await Connector.objects.filter(charge_point__charge_point_id="CP-IDS").acount() == len(kept)


def availability_event(evse_id: int, connector_id: int) -> dict:
    return {
        "eventId": evse_id,
        "timestamp": T,
        "trigger": "Delta",
        "actualValue": "Available",
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": evse_id, "connectorId": connector_id}},
        "variable": {"name": "AvailabilityState"},
    }


async def test_a_notify_event_of_connector_ids_beyond_the_maximum_stores_no_connector(daphne):
    """A NotifyEvent's connector AvailabilityState is set as a StatusNotification's: 300 events of new
    connector ids in one frame made 300 rows."""
    await ChargePoint.objects.acreate(charge_point_id="CS-EVENTS", heartbeat_interval=60)
    events = [availability_event(1, 1), availability_event(128, 2147483647), availability_event(129, 1)]
    events += [availability_event(1000 + n, 1) for n in range(200)]
    payload = {"generatedAt": T, "seqNo": 0, "eventData": events}
    async with raw_socket(daphne, "2.0.1", "CS-EVENTS") as websocket:
        got = await answers(websocket, [("NotifyEvent", payload), ("Heartbeat", {})])
    assert [answer[0] for answer in got] == [3, 3], got
    stored = Connector.objects.filter(charge_point__charge_point_id="CS-EVENTS")
    assert [(c.evse_id, c.connector_id) async for c in stored] == [(1, 1)]


async def test_a_notify_event_sets_its_connector_statuses_within_the_frame_rate(daphne, daphne_factory):
    """Each connector status of a NotifyEvent was written as a StatusNotification is: one frame of 230
    statuses cost the CPU of 350 Heartbeats, past the frame rate that bounds StatusNotifications.
    Each status after the first now takes a turn of the rate, as its StatusNotification would, waiting
    for it 5 s at most (``FRAME_WORK_WAIT_MAX``)."""
    slow = daphne_factory(CSMS_MAX_FRAMES_PER_SECOND="1", CSMS_FRAME_BURST="5")
    await ChargePoint.objects.acreate(charge_point_id="CS-MANY", heartbeat_interval=60)
    events = [availability_event(evse_id, connector_id) for evse_id in range(1, 101) for connector_id in (1, 2)]
    payload = {"generatedAt": T, "seqNo": 0, "eventData": events}
    async with raw_socket(slow, "2.0.1", "CS-MANY") as websocket:
        got = await answers(websocket, [("NotifyEvent", payload)])
    assert got[0][0] == 3, got
    # The frame's own turn, the 4 left of the burst and the 5 the rate gave within the wait (a turn or so
    # more meanwhile), not 200.
    assert 10 <= await Connector.objects.filter(charge_point__charge_point_id="CS-MANY").acount() <= 12


async def test_a_station_catching_up_its_queue_has_every_connector_of_a_notify_event_set(daphne_factory):
    """The review's probe: a compliant station catching up its queue (80 frames, each sent once the last
    was answered: held for the rate, not refused) spent the frame rate; its NotifyEvent of its two
    connectors then had the second status dropped (answered, so never resent). The statuses wait for
    the rate, as the station's frames do."""
    server = daphne_factory(CSMS_MAX_FRAMES_PER_SECOND="20", CSMS_FRAME_BURST="60")
    await ChargePoint.objects.acreate(charge_point_id="CS-CATCHUP", heartbeat_interval=60)
    payload = {"generatedAt": T, "seqNo": 0, "eventData": [availability_event(1, 1), availability_event(2, 1)]}
    async with raw_socket(server, "2.0.1", "CS-CATCHUP") as websocket:
        got = await answers(websocket, [("Heartbeat", {})] * 80 + [("NotifyEvent", payload)])
    assert all(answer[0] == 3 for answer in got), [answer for answer in got if answer[0] != 3][:2]
    stored = Connector.objects.filter(charge_point__charge_point_id="CS-CATCHUP").order_by("evse_id")
    assert [(c.evse_id, c.connector_id) async for c in stored] == [(1, 1), (2, 1)]


def profile(profile_id: int) -> dict:
    schedule = {"id": profile_id, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}
    return {
        "id": profile_id,
        "stackLevel": profile_id,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [schedule],
    }


async def test_a_report_of_charging_profiles_records_them_within_the_frame_rate(daphne, daphne_factory):
    """Each CSMS profile a ReportChargingProfiles reports was recorded with five statements, asked for
    or not: one frame of 250 made-up profiles cost 640 ms of CPU (4000 Heartbeats') and made 250 rows.
    Each profile after the first now takes a turn of the rate, as the SetChargingProfile that set it,
    waiting for it 5 s at most (``FRAME_WORK_WAIT_MAX``)."""
    slow = daphne_factory(CSMS_MAX_FRAMES_PER_SECOND="1", CSMS_FRAME_BURST="5")
    await ChargePoint.objects.acreate(charge_point_id="CS-PROFILES", heartbeat_interval=60)
    payload = {
        "requestId": 1,
        "chargingLimitSource": "CSO",
        "evseId": 1,
        "chargingProfile": [profile(n) for n in range(1, 201)],
    }
    async with raw_socket(slow, "2.0.1", "CS-PROFILES") as websocket:
        got = await answers(websocket, [("ReportChargingProfiles", payload)])
    assert got[0][0] == 3, got
    recorded = InstalledChargingProfile.objects.filter(charge_point__charge_point_id="CS-PROFILES")
    assert 10 <= await recorded.acount() <= 12  # its own turn, the 4 left of the burst, 5 within the wait; not 200


async def test_a_report_part_numbered_beyond_the_variables_a_charger_may_keep_is_refused(daphne):
    """Each NotifyReport part's write checks the seqNos of its report's parts so far: a station sending
    parts 0, 1, 2, ... of one report without end made each cost more (6000 in: 12 ms of PostgreSQL's
    time a part, 20 a second). A report has at most CSMS_MAX_DEVICE_MODEL_VARIABLES (10000) parts."""
    await ChargePoint.objects.acreate(charge_point_id="CS-PARTS", heartbeat_interval=60)

    def part(seq_no: int) -> tuple[str, dict]:
        return "NotifyReport", {"requestId": 9, "generatedAt": T, "seqNo": seq_no, "tbc": True}

    async with raw_socket(daphne, "2.0.1", "CS-PARTS") as websocket:
        got = await answers(websocket, [part(10000), part(2147483647), part(-1), part(9999), part(0)])
    assert [answer[0] for answer in got] == [4, 4, 4, 3, 3], got
    assert {answer[2] for answer in got[:3]} == {"PropertyConstraintViolation"}
    report = await DeviceModelReport.objects.aget(charge_point__charge_point_id="CS-PARTS", request_id=9)
    assert report.seq_nos == [9999, 0]


async def test_an_external_limit_on_an_evse_beyond_the_maximum_is_refused_and_stores_nothing(daphne):
    """A NotifyChargingLimit is kept per EVSE and source, its schedules as sent (up to a frame's 64 KB):
    a station counting evseIds up (OCPP bounds none, up to 2^31-1) made a row and a webhook event for
    each, without end. An evseId over CSMS_MAX_CONNECTOR_ID is refused, as a StatusNotification's is."""
    await ChargePoint.objects.acreate(charge_point_id="CS-LIMITS", heartbeat_interval=60)
    schedule = {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}]}

    def limit(evse_id: int) -> tuple[str, dict]:
        payload = {"chargingLimit": {"chargingLimitSource": "SO"}, "evseId": evse_id, "chargingSchedule": [schedule]}
        return "NotifyChargingLimit", payload

    async with raw_socket(daphne, "2.0.1", "CS-LIMITS") as websocket:
        got = await answers(websocket, [limit(129), limit(2147483647), limit(0), limit(128)])
    assert [answer[0] for answer in got] == [4, 4, 3, 3], got
    assert {answer[2] for answer in got[:2]} == {"PropertyConstraintViolation"}
    assert "CSMS_MAX_CONNECTOR_ID" in got[0][3] and "128" in got[0][3]
    stored = ExternalChargingLimit.objects.filter(charge_point__charge_point_id="CS-LIMITS").order_by("evse_id")
    assert [limit.evse_id async for limit in stored] == [0, 128]


def readings(count: int) -> list[dict]:
    """One MeterValue of ``count`` sampled values (register readings, 1.6 and 2.0.1 alike)."""
    return [{"timestamp": T, "sampledValue": [{"value": str(n)} for n in range(count)]}]


STARTED = {
    "eventType": "Started",
    "timestamp": T,
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "tx-samples"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": readings(1000),
}


@pytest.mark.parametrize(
    ("version", "action", "payload"),
    [
        ("1.6", "MeterValues", {"connectorId": 1, "meterValue": readings(1000)}),
        ("2.0.1", "MeterValues", {"evseId": 1, "meterValue": readings(1000)}),
        ("2.0.1", "TransactionEvent", STARTED),
        ("1.6", "StopTransaction", {"meterStop": 10, "timestamp": T, "transactionData": readings(1000)}),
    ],
)
async def test_a_message_of_a_thousand_sampled_values_takes_the_frame_rate_of_as_many_messages_and_keeps_them(
    daphne_factory, version, action, payload
):
    """Each sampled value is a ledger row, and one frame carries thousands (3,400 within 64 KB: 84 ms of
    the process, so a charger at 20 frames a second asked for more than its two cores). A message's
    sampled values past the first 50 now take a turn of the frame rate for every 50, waiting for it
    (5 s at most, ``FRAME_WORK_WAIT_MAX``), as that many messages would: none is cut (they are readings
    to bill). The rate spent, the frames the charger sends next without waiting are refused."""
    slow = daphne_factory(CSMS_MAX_FRAMES_PER_SECOND="1", CSMS_FRAME_BURST="5")
    await ChargePoint.objects.acreate(charge_point_id="CS-SAMPLES", heartbeat_interval=60)
    async with raw_socket(slow, version, "CS-SAMPLES") as websocket:
        if action == "StopTransaction":  # of a session the CSMS started
            start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": T}
            started = await answers(websocket, [("StartTransaction", start)])
            payload = {**payload, "transactionId": started[0][2]["transactionId"]}
        await websocket.send(json.dumps([2, "big", action, payload]))
        got = [await answer_to(websocket, "big")]
        for n in range(3):
            await websocket.send(json.dumps([2, f"hb-{n}", "Heartbeat", {}]))
        after = [await answer_to(websocket, f"hb-{n}") for n in range(3)]
    assert got[0][0] == 3, got
    assert 4 in [answer[0] for answer in after], after  # without the turns: all 3 within the burst
    assert await MeterSample.objects.filter(charge_point__charge_point_id="CS-SAMPLES").acount() == 1000
