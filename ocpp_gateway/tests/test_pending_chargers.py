"""A pending charger: told what it may use, and woken by commissioning (raw-frame chargers, real daphne)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client

from chargepoints.models import ChargePoint, Connector, LifecycleState, SecurityEvent
from commands.models import Command
from conftest import ahttp, eventually, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

BOOT = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "A1"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "A1"}},
}
AUTHORIZE = {"1.6": {"idTag": "TAG-1"}, "2.0.1": {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}}


async def exchange(websocket, frame: list) -> list:
    await websocket.send(json.dumps(frame))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=5))


async def booted_pending(websocket, version: str) -> None:
    boot = await exchange(websocket, [2, "b1", "BootNotification", BOOT[version]])
    assert boot[2]["status"] == "Pending"


async def woken_and_accepted(websocket, version: str) -> None:
    """The CSMS asks for a Boot at once; the Boot it gets is Accepted."""
    trigger = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
    assert trigger[0::2] == [2, "TriggerMessage"] and trigger[3] == {"requestedMessage": "BootNotification"}
    await websocket.send(json.dumps([3, trigger[1], {"status": "Accepted"}]))
    boot = await exchange(websocket, [2, "b2", "BootNotification", BOOT[version]])
    assert boot[2]["status"] == "Accepted"
    command = await eventually(lambda: Command.objects.filter(action="TriggerMessage", state="accepted").afirst())
    assert command.request == {"requested_message": "BootNotification"}


async def asked(
    daphne, api_key, websocket, version: str, command: str, body: dict, answer: dict, http_status: int = 200
) -> list:
    """The CSMS sends ``command`` (through the API) on the charger's connection; the charger
    answers ``answer`` (the API then ``http_status``). The CALL it got."""
    prefix = {"1.6": "ocpp16", "2.0.1": "ocpp201"}[version]
    request = asyncio.ensure_future(
        ahttp(f"{daphne.http_url}/api/v1/{prefix}/{CP_ID}/{command}", method="POST", api_key=api_key, body=body)
    )
    call = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
    await websocket.send(json.dumps([3, call[1], answer]))
    assert (await request)[0] == http_status
    return call


CP_ID = "CP-WAIT"
REPORT = {
    "requestId": 7,
    "generatedAt": "2026-12-06T03:00:00Z",
    "seqNo": 0,
    "tbc": False,
    "reportData": [
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
            "variableAttribute": [{"type": "Actual", "value": "60"}],
        }
    ],
}
STATUS = {
    "1.6": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "2.0.1": {"timestamp": "2026-12-06T03:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
}
METER_VALUES = {
    "1.6": {
        "connectorId": 1,
        "meterValue": [{"sampledValue": [{"value": "1000"}], "timestamp": "2026-12-06T03:00:00Z"}],
    },
    "2.0.1": {"evseId": 1, "meterValue": [{"sampledValue": [{"value": 1000}], "timestamp": "2026-12-06T03:00:00Z"}]},
}


@pytest.fixture
async def pending():
    return await ChargePoint.objects.acreate(charge_point_id=CP_ID, heartbeat_interval=60, lifecycle_state="pending")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_pending_charger_is_told_what_it_may_use(daphne, pending, version):
    async with raw_socket(daphne, version, CP_ID) as websocket:
        await booted_pending(websocket, version)
        refused = await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE[version]])
    description = {
        "1.6": "The charge point is not commissioned; only BootNotification, DiagnosticsStatusNotification, "
        "FirmwareStatusNotification, Heartbeat, LogStatusNotification, SecurityEventNotification, "
        "SignedFirmwareStatusNotification, StatusNotification and what the Central System asked for on this "
        "connection are served.",
        "2.0.1": "The station is Pending: only BootNotification, what the CSMS asked for on this connection "
        "(TriggerMessage, GetBaseReport, GetReport, UpdateFirmware, GetLog) and the statuses of an "
        "UpdateFirmware or GetLog it accepted earlier (by requestId) are served.",
    }[version]
    assert refused[:4] == [4, "a1", "SecurityError", description]


async def test_a_pending_2_0_1_station_is_refused_what_it_was_not_asked_for(daphne, pending):
    """B02.FR.09 (OCTT TC_B_30_CSMS): after a Pending answer, a CALL other than BootNotification
    that no TriggerMessage, GetBaseReport or GetReport of the CSMS asked for is a SecurityError."""
    notify_event = {
        "generatedAt": "2026-12-06T03:00:00Z",
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": "2026-12-06T03:00:00Z",
                "trigger": "Delta",
                "actualValue": "Available",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                "variable": {"name": "AvailabilityState"},
            }
        ],
    }
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        refused = [
            await exchange(websocket, [2, "s1", "StatusNotification", STATUS["2.0.1"]]),
            await exchange(websocket, [2, "h1", "Heartbeat", {}]),
            await exchange(websocket, [2, "e1", "NotifyEvent", notify_event]),
            await exchange(websocket, [2, "r1", "NotifyReport", REPORT]),
            await exchange(websocket, [2, "f1", "FirmwareStatusNotification", {"status": "Idle"}]),
        ]
        assert (await exchange(websocket, [2, "b2", "BootNotification", BOOT["2.0.1"]]))[2]["status"] == "Pending"
    assert [answer[:3] for answer in refused] == [
        [4, "s1", "SecurityError"],
        [4, "h1", "SecurityError"],
        [4, "e1", "SecurityError"],
        [4, "r1", "SecurityError"],
        [4, "f1", "SecurityError"],
    ]
    assert not await Connector.objects.aexists()


async def test_a_pending_1_6_charger_is_served_its_heartbeats_and_statuses_unasked(daphne, pending):
    """1.6 §4.2 forbids the charger to send them unasked, but mandates no refusal: many 1.6 chargers
    heartbeat and report their connectors while Pending, and are answered."""
    async with raw_socket(daphne, "1.6", CP_ID) as websocket:
        await booted_pending(websocket, "1.6")
        assert (await exchange(websocket, [2, "h1", "Heartbeat", {}]))[0] == 3
        assert await exchange(websocket, [2, "s1", "StatusNotification", STATUS["1.6"]]) == [3, "s1", {}]
        assert (await exchange(websocket, [2, "m1", "MeterValues", METER_VALUES["1.6"]]))[:3] == [
            4,
            "m1",
            "SecurityError",
        ]


async def test_a_pending_1_6_charger_is_served_its_security_notifications_unasked(daphne, pending):
    """The security whitepaper's notifications are served as their core twins are: a tamper alarm of
    a charger nobody commissioned yet is recorded, not refused and lost, and a SignedFirmwareStatusNotification
    is answered as a FirmwareStatusNotification is."""
    event = {"type": "TamperDetectionActivated", "timestamp": "2026-12-06T03:00:00Z", "techInfo": "lid opened"}
    async with raw_socket(daphne, "1.6", CP_ID) as websocket:
        await booted_pending(websocket, "1.6")
        answers = [
            await exchange(websocket, [2, "e1", "SecurityEventNotification", event]),
            await exchange(
                websocket, [2, "f1", "SignedFirmwareStatusNotification", {"status": "Idle", "requestId": 3}]
            ),
        ]
    assert answers == [[3, "e1", {}], [3, "f1", {}]]
    recorded = await eventually(lambda: SecurityEvent.objects.filter(charge_point=pending).afirst())
    assert (recorded.event_type, recorded.tech_info) == ("TamperDetectionActivated", "lid opened")


@pytest.mark.parametrize(
    ("version", "requested"),
    [
        # 1.6 serves a pending charger's heartbeats and statuses unasked (above): only what it refuses
        ("1.6", "MeterValues"),
        *(
            ("2.0.1", requested)
            for requested in ("StatusNotification", "Heartbeat", "MeterValues", "FirmwareStatusNotification")
        ),
    ],
)
async def test_a_pending_charger_is_served_what_a_trigger_asked_for(daphne, api_key, pending, version, requested):
    """1.6 §4.2 ("unless it has been instructed ... with a TriggerMessage.req"), 2.0.1 B02.FR.09: what
    a TriggerMessage of the CSMS asked for on the connection is answered, once (per connector or EVSE);
    the same message again was not asked for."""
    payloads = {
        "StatusNotification": STATUS[version],
        "Heartbeat": {},
        "MeterValues": METER_VALUES[version],
        "FirmwareStatusNotification": {"status": "Idle"},
    }
    # 2.0.1 F06.FR.13: a StatusNotification is asked of an EVSE (its connectors each report)
    evse = {"evse": {"id": 1}} if (version, requested) == ("2.0.1", "StatusNotification") else {}
    async with raw_socket(daphne, version, CP_ID) as websocket:
        await booted_pending(websocket, version)
        call = await asked(
            daphne,
            api_key,
            websocket,
            version,
            "trigger_message",
            {"requested_message": requested, **evse},
            {"status": "Accepted"},
        )
        assert call[2:] == ["TriggerMessage", {"requestedMessage": requested, **evse}]
        answers = [await exchange(websocket, [2, f"t{n}", requested, payloads[requested]]) for n in range(2)]
        refused = await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE[version]])
    assert [answer[:3] for answer in answers] == [[3, "t0", answers[0][2]], [4, "t1", "SecurityError"]]
    assert refused[:3] == [4, "a1", "SecurityError"]


async def test_a_pending_1_6_charger_is_served_what_an_extended_trigger_asked_for(daphne, api_key, pending):
    """The security whitepaper's ExtendedTriggerMessage (``extended_trigger_message``) asks as a
    TriggerMessage does: its requestedMessage is served on the connection, a refusal asks nothing."""
    async with raw_socket(daphne, "1.6", CP_ID) as websocket:
        await booted_pending(websocket, "1.6")
        body = {"requested_message": "MeterValues", "connector_id": 1}
        refused = await asked(
            daphne, api_key, websocket, "1.6", "extended_trigger_message", body, {"status": "Rejected"}, 409
        )
        unasked = await exchange(websocket, [2, "u1", "MeterValues", METER_VALUES["1.6"]])
        call = await asked(daphne, api_key, websocket, "1.6", "extended_trigger_message", body, {"status": "Accepted"})
        answers = [await exchange(websocket, [2, f"t{n}", "MeterValues", METER_VALUES["1.6"]]) for n in range(2)]
    assert refused[2:] == call[2:] == ["ExtendedTriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 1}]
    assert unasked[:3] == [4, "u1", "SecurityError"]
    assert [answer[:3] for answer in answers] == [[3, "t0", {}], [4, "t1", "SecurityError"]]


def session_event(event_type: str, trigger_reason: str, transaction_id: str, evse_id: int) -> dict:
    return {
        "eventType": event_type,
        "timestamp": "2026-12-06T03:00:00Z",
        "triggerReason": trigger_reason,
        "seqNo": 0,
        "transactionInfo": {"transactionId": transaction_id},
        "evse": {"id": evse_id, "connectorId": 1},
    }


async def test_a_pending_2_0_1_station_is_served_the_transaction_events_a_trigger_asked_for_only(
    daphne, api_key, pending
):
    """Review: a TriggerMessage of TransactionEvent accepted by a pending station served every
    TransactionEvent after it on the connection, sessions Started by a station nobody commissioned
    included. B02.FR.09: only the triggered ones (F06: Updated, reason Trigger, one per ongoing
    transaction of the EVSE asked)."""
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        body = {"requested_message": "TransactionEvent", "evse": {"id": 1}}
        await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, {"status": "Accepted"})
        answers = [
            await exchange(websocket, [2, "t1", "TransactionEvent", session_event("Updated", "Trigger", "TX-1", 1)]),
            await exchange(websocket, [2, "t2", "TransactionEvent", session_event("Updated", "Trigger", "TX-1", 1)]),
            await exchange(websocket, [2, "t3", "TransactionEvent", session_event("Started", "Authorized", "TX-2", 1)]),
        ]
        await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, {"status": "Accepted"})
        answers += [
            await exchange(websocket, [2, "t4", "TransactionEvent", session_event("Updated", "Trigger", "TX-3", 2)]),
            await exchange(websocket, [2, "t5", "TransactionEvent", session_event("Started", "Authorized", "TX-2", 1)]),
        ]
    assert [answer[:3] for answer in answers] == [
        [3, "t1", answers[0][2]],
        [4, "t2", "SecurityError"],
        [4, "t3", "SecurityError"],
        [4, "t4", "SecurityError"],
        [4, "t5", "SecurityError"],
    ]


async def test_a_pending_charger_is_served_a_triggered_status_per_connector_of_the_evses_asked(
    daphne, api_key, pending
):
    """A StatusNotification asked of an EVSE comes once per connector of it (F06.FR.13), each trigger's
    (the admin asks one per EVSE in a row, the statuses coming after); an EVSE not asked's, or a
    connector's second, was not asked for."""
    statuses = [(1, 1), (2, 1), (1, 2), (1, 1), (3, 1)]
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        for evse_id in (1, 2):
            body = {"requested_message": "StatusNotification", "evse": {"id": evse_id}}
            await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, {"status": "Accepted"})
        answers = []
        for n, (evse_id, connector_id) in enumerate(statuses):
            ids = {"evseId": evse_id, "connectorId": connector_id}
            answers.append(await exchange(websocket, [2, f"s{n}", "StatusNotification", {**STATUS["2.0.1"], **ids}]))
    assert [answer[:3] for answer in answers] == [
        [3, "s0", {}],
        [3, "s1", {}],
        [3, "s2", {}],
        [4, "s3", "SecurityError"],
        [4, "s4", "SecurityError"],
    ]
    assert {(c.evse_id, c.connector_id) async for c in Connector.objects.all()} == {(1, 1), (2, 1), (1, 2)}


async def test_a_message_no_trigger_asked_for_ends_no_other_trigger_s_allowance(daphne, api_key, pending):
    """Round 52: a message of a triggered action that no trigger covered (another EVSE's status, or a
    connector's second) ended every trigger of that action: EVSE 2's triggered statuses were refused
    SecurityError once EVSE 3 reported unasked, or EVSE 1 twice. It ends only the trigger whose EVSE it
    is of (its charger reports on its own now), and is refused."""
    statuses = [(1, 1), (3, 1), (1, 1), (2, 1), (1, 2), (2, 2)]
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        for evse_id in (1, 2):
            body = {"requested_message": "StatusNotification", "evse": {"id": evse_id}}
            await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, {"status": "Accepted"})
        answers = []
        for n, (evse_id, connector_id) in enumerate(statuses):
            ids = {"evseId": evse_id, "connectorId": connector_id}
            answers.append(await exchange(websocket, [2, f"s{n}", "StatusNotification", {**STATUS["2.0.1"], **ids}]))
    assert [answer[:3] for answer in answers] == [
        [3, "s0", {}],
        [4, "s1", "SecurityError"],  # EVSE 3 was not asked: no trigger ends
        [4, "s2", "SecurityError"],  # EVSE 1's connector again: EVSE 1's trigger ends
        [3, "s3", {}],
        [4, "s4", "SecurityError"],
        [3, "s5", {}],
    ]


async def test_a_1_6_reading_no_trigger_asked_for_ends_no_other_trigger_s_allowance(daphne, api_key, pending):
    """As above, 1.6 MeterValues asked of connectors 1 and 2: connector 3's reading, unasked, left
    connector 2's triggered reading refused."""
    async with raw_socket(daphne, "1.6", CP_ID) as websocket:
        await booted_pending(websocket, "1.6")
        for connector_id in (1, 2):
            body = {"requested_message": "MeterValues", "connector_id": connector_id}
            await asked(daphne, api_key, websocket, "1.6", "trigger_message", body, {"status": "Accepted"})
        answers = [
            await exchange(websocket, [2, f"m{n}", "MeterValues", {**METER_VALUES["1.6"], "connectorId": connector}])
            for n, connector in enumerate((3, 1, 2))
        ]
    assert [answer[:3] for answer in answers] == [[4, "m0", "SecurityError"], [3, "m1", {}], [3, "m2", {}]]


async def test_a_pending_1_6_charger_is_served_the_meter_values_of_the_connector_a_trigger_asked(
    daphne, api_key, pending
):
    """1.6 §5.17: a TriggerMessage of MeterValues for connector 1 asks for that connector's, once."""
    async with raw_socket(daphne, "1.6", CP_ID) as websocket:
        await booted_pending(websocket, "1.6")
        body = {"requested_message": "MeterValues", "connector_id": 1}
        await asked(daphne, api_key, websocket, "1.6", "trigger_message", body, {"status": "Accepted"})
        answers = [
            await exchange(websocket, [2, "m0", "MeterValues", METER_VALUES["1.6"]]),
            await exchange(websocket, [2, "m1", "MeterValues", {**METER_VALUES["1.6"], "connectorId": 2}]),
            await exchange(websocket, [2, "m2", "MeterValues", METER_VALUES["1.6"]]),
        ]
    assert [answer[:3] for answer in answers] == [
        [3, "m0", {}],
        [4, "m1", "SecurityError"],
        [4, "m2", "SecurityError"],
    ]


async def test_a_pending_2_0_1_station_is_served_the_meter_values_of_the_evse_a_trigger_named_with_its_connector(
    daphne, api_key, pending
):
    """Review: a TriggerMessage of MeterValues naming an EVSE and its connector (EVSEType allows it) asks
    for that EVSE's readings; a 2.0.1 MeterValues names its EVSE alone (no connectorId), and was refused
    SecurityError as not asked for."""
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        body = {"requested_message": "MeterValues", "evse": {"id": 1, "connector_id": 1}}
        await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, {"status": "Accepted"})
        answers = [
            await exchange(websocket, [2, "m0", "MeterValues", METER_VALUES["2.0.1"]]),
            await exchange(websocket, [2, "m1", "MeterValues", {**METER_VALUES["2.0.1"], "evseId": 2}]),
        ]
    assert [answer[:3] for answer in answers] == [[3, "m0", {}], [4, "m1", "SecurityError"]]


@pytest.mark.parametrize("answer", [{"status": "Rejected"}, {"status": "NotImplemented"}])
async def test_a_trigger_a_pending_station_refuses_asks_for_nothing(daphne, api_key, pending, answer):
    """Review: what a refused TriggerMessage named was served for the rest of the connection (a
    TriggerMessage of TransactionEvent refused, then any number of sessions opened by a stranger)."""
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        body = {"requested_message": "StatusNotification", "evse": {"id": 1}}
        await asked(daphne, api_key, websocket, "2.0.1", "trigger_message", body, answer, http_status=409)
        refused = await exchange(websocket, [2, "s1", "StatusNotification", STATUS["2.0.1"]])
    assert refused[:3] == [4, "s1", "SecurityError"]


async def test_a_pending_2_0_1_station_is_served_the_report_it_was_asked_for(daphne, api_key, pending):
    """B02.FR.01: in Pending the CSMS may ask GetBaseReport/GetReport; their NotifyReport is served."""
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        body = {"request_id": 7, "report_base": "FullInventory"}
        await asked(daphne, api_key, websocket, "2.0.1", "get_base_report", body, {"status": "Accepted"})
        answered = await exchange(websocket, [2, "r1", "NotifyReport", REPORT])
        refused = await exchange(websocket, [2, "h1", "Heartbeat", {}])
    assert answered == [3, "r1", {}]
    assert refused[:3] == [4, "h1", "SecurityError"]


@pytest.mark.parametrize(
    ("command", "body", "status"),
    [
        (
            "update_firmware",
            {
                "request_id": 3,
                "firmware": {"location": "https://example.com/fw.bin", "retrieve_date_time": "2031-05-01T12:00:00Z"},
            },
            ["FirmwareStatusNotification", {"status": "Downloading", "requestId": 3}],
        ),
        (
            "get_log",
            {"log_type": "DiagnosticsLog", "request_id": 4, "log": {"remote_location": "ftp://example.com/"}},
            ["LogStatusNotification", {"status": "Uploading", "requestId": 4}],
        ),
    ],
)
async def test_a_pending_2_0_1_station_is_served_the_upload_statuses_it_was_asked_for(
    daphne, api_key, pending, command, body, status
):
    """A firmware update or log upload the CSMS asked of a Pending station on the connection: the
    statuses reporting on it are served, untriggered ones before it were not."""
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        before = await exchange(websocket, [2, "u0", *status])
        await asked(daphne, api_key, websocket, "2.0.1", command, body, {"status": "Accepted"})
        after = await exchange(websocket, [2, "u1", *status])
    assert (before[:3], after) == ([4, "u0", "SecurityError"], [3, "u1", {}])


async def test_a_pending_2_0_1_station_is_served_the_firmware_statuses_it_sends_after_the_update_s_reboot(
    daphne, api_key, pending
):
    """A firmware update the CSMS asked of a Pending station (a campaign lists one by id) reboots it:
    its last statuses come on its new connection, Pending again, where nothing was asked. They were
    refused with SecurityError (the update's outcome lost). A status of the request the station
    accepted is served on any connection; one of a request never made, and anything else, is not."""
    body = {
        "request_id": 3,
        "firmware": {"location": "https://example.com/fw.bin", "retrieve_date_time": "2031-05-01T12:00:00Z"},
    }
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:
        await booted_pending(websocket, "2.0.1")
        await asked(daphne, api_key, websocket, "2.0.1", "update_firmware", body, {"status": "Accepted"})
        rebooting = await exchange(
            websocket, [2, "f1", "FirmwareStatusNotification", {"status": "InstallRebooting", "requestId": 3}]
        )
    assert rebooting == [3, "f1", {}]
    async with raw_socket(daphne, "2.0.1", CP_ID) as websocket:  # after its reboot
        await exchange(websocket, [2, "b2", "BootNotification", {**BOOT["2.0.1"], "reason": "FirmwareUpdate"}])
        installed = await exchange(
            websocket, [2, "f2", "FirmwareStatusNotification", {"status": "Installed", "requestId": 3}]
        )
        again = await exchange(
            websocket, [2, "f3", "FirmwareStatusNotification", {"status": "Installed", "requestId": 3}]
        )
        other = await exchange(
            websocket, [2, "f4", "FirmwareStatusNotification", {"status": "Installed", "requestId": 9}]
        )
        log = await exchange(websocket, [2, "l1", "LogStatusNotification", {"status": "Uploaded", "requestId": 3}])
        status = await exchange(websocket, [2, "s1", "StatusNotification", STATUS["2.0.1"]])
    assert (installed, again) == ([3, "f2", {}], [3, "f3", {}])
    assert [frame[:3] for frame in (other, log, status)] == [
        [4, "f4", "SecurityError"],
        [4, "l1", "SecurityError"],
        [4, "s1", "SecurityError"],
    ]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_commissioning_through_the_api_wakes_the_pending_charger(daphne, api_key, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-NEW", heartbeat_interval=300, lifecycle_state="pending")
    async with raw_socket(daphne, version, "CP-NEW") as websocket:
        await booted_pending(websocket, version)
        status, body = await ahttp(  # answered before the charger answers the trigger
            f"{daphne.http_url}/api/v1/chargepoints/CP-NEW",
            method="PATCH",
            api_key=api_key,
            body={"lifecycle_state": "commissioned"},
        )
        assert (status, body["lifecycle_state"]) == (200, "commissioned")
        await woken_and_accepted(websocket, version)
        assert (await exchange(websocket, [2, "a1", "Authorize", AUTHORIZE[version]]))[0] == 3


async def test_commissioning_in_the_admin_wakes_the_pending_charger(daphne):
    charge_point = await ChargePoint.objects.acreate(
        charge_point_id="CP-ADMIN", heartbeat_interval=300, lifecycle_state="pending"
    )

    def commission() -> int:
        client = Client()
        client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
        return client.post(f"/admin/chargepoints/chargepoint/{charge_point.pk}/lifecycle/commissioned/").status_code

    async with raw_socket(daphne, "2.0.1", "CP-ADMIN") as websocket:
        await booted_pending(websocket, "2.0.1")
        assert await sync_to_async(commission)() == 302
        await woken_and_accepted(websocket, "2.0.1")


async def test_commissioning_an_offline_charger_succeeds_and_sends_nothing(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-AWAY", heartbeat_interval=60, lifecycle_state="pending")
    status, body = await ahttp(
        f"{daphne.http_url}/api/v1/chargepoints/CP-AWAY",
        method="PATCH",
        api_key=api_key,
        body={"lifecycle_state": "commissioned"},
    )
    assert (status, body["lifecycle_state"]) == (200, LifecycleState.COMMISSIONED)
    assert not await Command.objects.aexists()


async def test_a_silent_charger_does_not_hold_up_its_commissioning(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-MUTE", heartbeat_interval=60, lifecycle_state="pending")
    async with raw_socket(daphne, "1.6", "CP-MUTE") as websocket:
        await booted_pending(websocket, "1.6")
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-MUTE",
            method="PATCH",
            api_key=api_key,
            body={"lifecycle_state": "commissioned"},
        )
        assert status == 200
        trigger = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
        assert trigger[2] == "TriggerMessage"  # never answered
    assert (await ChargePoint.objects.aget(charge_point_id="CP-MUTE")).lifecycle_state == "commissioned"


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_charger_commissioned_while_away_is_woken_when_it_reconnects_without_booting(daphne, api_key, version):
    """Answered Pending, it lost its connection; commissioned meanwhile (nothing to send then), it comes
    back without rebooting (no Boot before its Pending interval, up to a day, runs out): the CSMS asks
    it to boot as soon as its connection is accepted, and its Boot is Accepted."""
    await ChargePoint.objects.acreate(charge_point_id="CP-BACK", heartbeat_interval=86_400, lifecycle_state="pending")
    async with raw_socket(daphne, version, "CP-BACK") as websocket:
        await booted_pending(websocket, version)
    away = ChargePoint.objects.filter(charge_point_id="CP-BACK", connection_channel="")
    await eventually(away.aexists)  # its close handled: commissioned while away, not while connected
    status, _ = await ahttp(
        f"{daphne.http_url}/api/v1/chargepoints/CP-BACK",
        method="PATCH",
        api_key=api_key,
        body={"lifecycle_state": "commissioned"},
    )
    assert status == 200
    async with raw_socket(daphne, version, "CP-BACK") as websocket:  # it sends nothing: it takes itself as Pending
        await woken_and_accepted(websocket, version)
    assert not (await ChargePoint.objects.aget(charge_point_id="CP-BACK")).boot_pending
    async with raw_socket(daphne, version, "CP-BACK") as websocket:  # accepted now: its reconnects ask nothing
        heartbeat = await exchange(websocket, [2, "h1", "Heartbeat", {}])
        assert heartbeat[:2] == [3, "h1"]
    boots_asked = Command.objects.filter(action="TriggerMessage", request__requested_message="BootNotification")
    assert await boots_asked.acount() == 1


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_charger_reconnecting_still_pending_or_long_accepted_is_not_asked_to_boot(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-WAITS", heartbeat_interval=300, lifecycle_state="pending")
    await ChargePoint.objects.acreate(charge_point_id="CP-OLD", heartbeat_interval=300)
    for charge_point_id, answer in (("CP-WAITS", "Pending"), ("CP-OLD", "Accepted")):
        async with raw_socket(daphne, version, charge_point_id) as websocket:
            boot = await exchange(websocket, [2, "b1", "BootNotification", BOOT[version]])
            assert boot[2]["status"] == answer
        async with raw_socket(daphne, version, charge_point_id) as websocket:
            heartbeat = await exchange(websocket, [2, "h1", "Heartbeat", {}])  # a 2.0.1 one Pending: refused
            assert heartbeat[1] == "h1"
    assert not await Command.objects.filter(
        action="TriggerMessage", request__requested_message="BootNotification"
    ).aexists()
