"""Record and replay: a live conversation exported from the message log replays with the same answers,
and the traces kept in tests/traces/ still get the answers they were recorded with."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from chargepoints.models import ChargePoint, OcppMessage
from charging.models import IdTag
from conftest import eventually, raw_socket
from ocpp_gateway.traces import (
    Trace,
    answer_differences,
    charge_point_trace,
    replay_trace,
)

pytestmark = pytest.mark.django_db(transaction=True)

TRACES = sorted((settings.BASE_DIR / "tests" / "traces").glob("*.jsonl"))

V16_CONVERSATION = [
    [2, "b1", "BootNotification", {"chargePointVendor": "Alfen", "chargePointModel": "Eve", "firmwareVersion": "4.1"}],
    [2, "s1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
    [2, "a1", "Authorize", {"idTag": "TAG-OK"}],
    [2, "a2", "Authorize", {"idTag": "TAG-UNKNOWN"}],
    [
        2,
        "t1",
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG-OK", "meterStart": 1000, "timestamp": "2026-11-25T10:00:00Z"},
    ],
    [
        2,
        "m1",
        "MeterValues",
        {
            "connectorId": 1,
            "meterValue": [
                {
                    "timestamp": "2026-11-25T10:10:00Z",
                    "sampledValue": [{"value": "3.5", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}],
                }
            ],
        },
    ],
    [2, "x1", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}],
    [2, "x2", "MadeUpAction", {}],
    [2, "d1", "DataTransfer", {"vendorId": "com.example"}],
    [2, "h1", "Heartbeat", {}],
]


V201_TX = {"transactionId": "TX-201", "chargingState": "Charging"}
V201_CONVERSATION = [
    [
        2,
        "b1",
        "BootNotification",
        {"reason": "PowerUp", "chargingStation": {"vendorName": "Alpitronic", "model": "HYC"}},
    ],
    [
        2,
        "s1",
        "StatusNotification",
        {"timestamp": "2026-11-25T10:00:00Z", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
    ],
    [2, "a1", "Authorize", {"idToken": {"idToken": "TAG-OK", "type": "ISO14443"}}],
    [
        2,
        "t1",
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": "2026-11-25T10:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": V201_TX,
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "TAG-OK", "type": "ISO14443"},
            "meterValue": [{"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [{"value": 1000}]}],
        },
    ],
    [
        2,
        "t2",
        "TransactionEvent",
        {
            "eventType": "Updated",
            "timestamp": "2026-11-25T10:10:00Z",
            "triggerReason": "MeterValuePeriodic",
            "seqNo": 1,
            "transactionInfo": V201_TX,
            "meterValue": [{"timestamp": "2026-11-25T10:10:00Z", "sampledValue": [{"value": 3500}]}],
        },
    ],
    [
        2,
        "n1",
        "NotifyEvent",
        {
            "generatedAt": "2026-11-25T10:11:00Z",
            "seqNo": 0,
            "eventData": [
                {
                    "eventId": 1,
                    "timestamp": "2026-11-25T10:11:00Z",
                    "trigger": "Delta",
                    "actualValue": "Occupied",
                    "eventNotificationType": "HardWiredNotification",
                    "component": {"name": "Connector"},
                    "variable": {"name": "AvailabilityState"},
                }
            ],
        },
    ],
    [2, "x1", "Heartbeat", {"unexpected": 1}],
    [
        2,
        "t3",
        "TransactionEvent",
        {
            "eventType": "Ended",
            "timestamp": "2026-11-25T10:30:00Z",
            "triggerReason": "StopAuthorized",
            "seqNo": 2,
            "transactionInfo": {**V201_TX, "stoppedReason": "Local"},
            "meterValue": [
                {"timestamp": "2026-11-25T10:30:00Z", "sampledValue": [{"value": 6000, "context": "Transaction.End"}]}
            ],
        },
    ],
]


def _stop(transaction_id: int) -> list:
    return [
        2,
        "e1",
        "StopTransaction",
        {"transactionId": transaction_id, "meterStop": 6000.5, "timestamp": "2026-11-25T10:30:00Z", "idTag": "TAG-OK"},
    ]


async def _converse(daphne, version: str, charge_point_id: str) -> list[list]:
    answers = []
    async with raw_socket(daphne, version, charge_point_id) as websocket:
        for frame in V16_CONVERSATION if version == "1.6" else V201_CONVERSATION:
            await websocket.send(json.dumps(frame))
            async with asyncio.timeout(10):
                answers.append(json.loads(await websocket.recv()))
        if version == "1.6":
            transaction_id = next(a[2]["transactionId"] for a in answers if a[1] == "t1")
            await websocket.send(json.dumps(_stop(transaction_id)))
            answers.append(json.loads(await asyncio.wait_for(websocket.recv(), 10)))
        await websocket.send('[2,"z1","Heartbeat"]')  # no payload: a FormationViolation
        answers.append(json.loads(await asyncio.wait_for(websocket.recv(), 10)))
    return answers


RECORDED_AS = {"1.6": "v16-session-with-bad-frames.jsonl", "2.0.1": "v201-session-with-bad-frames.jsonl"}
ANSWER_TYPES = {"1.6": [3, 3, 3, 3, 3, 3, 4, 4, 3, 3, 3, 4], "2.0.1": [3, 3, 3, 3, 3, 3, 4, 3, 4]}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_live_conversation_exports_and_replays_with_the_same_answers(daphne, version):
    await ChargePoint.objects.acreate(charge_point_id="CP-REC", heartbeat_interval=60)
    await ChargePoint.objects.acreate(charge_point_id="CP-REPLAY", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="TAG-OK")
    answers = await _converse(daphne, version, "CP-REC")
    assert [a[0] for a in answers] == ANSWER_TYPES[version]
    frames_sent = len(answers) * 2

    async def all_logged() -> bool:  # the message log is written in batches
        return await OcppMessage.objects.filter(charge_point__charge_point_id="CP-REC").acount() == frames_sent

    await eventually(all_logged, timeout=10)
    trace = await database_sync_to_async(charge_point_trace)(charge_point_id="CP-REC")
    assert len(trace.frames) == frames_sent and trace.ocpp_version == version
    assert Trace.from_jsonl(trace.to_jsonl()) == trace
    if os.environ.get("CSMS_RECORD_TRACES_DIR"):
        Path(os.environ["CSMS_RECORD_TRACES_DIR"], RECORDED_AS[version]).write_text(trace.to_jsonl())

    trace.charge_point_id = "CP-REPLAY"
    result = await replay_trace(trace, url=f"ws://127.0.0.1:{daphne.port}")
    assert result.exchanges == len(answers)
    assert result.mismatches == []


async def test_a_replay_reports_an_answer_that_changed(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-BLOCKED", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="TAG-OK", status="Blocked")
    trace = Trace(charge_point_id="CP-BLOCKED", ocpp_version="1.6")
    trace.frames = Trace.from_jsonl(
        "\n".join(
            [
                json.dumps({"trace": "dynamo-csms/1", "charge_point_id": "CP-BLOCKED", "ocpp_version": "1.6"}),
                json.dumps({"at": 0, "direction": "in", "frame": '[2,"a1","Authorize",{"idTag":"TAG-OK"}]'}),
                json.dumps({"at": 0, "direction": "out", "frame": '[3,"a1",{"idTagInfo":{"status":"Accepted"}}]'}),
            ]
        )
    ).frames
    result = await replay_trace(trace, url=f"ws://127.0.0.1:{daphne.port}")
    assert result.mismatches == ["Authorize a1: idTagInfo.status = 'Blocked', recorded 'Accepted'"]


def test_answers_differ_only_in_what_carries_a_decision():
    recorded = '[3,"1",{"currentTime":"2026-01-01T00:00:00Z","interval":300,"status":"Accepted"}]'
    assert (
        answer_differences(recorded, '[3,"1",{"currentTime":"2026-11-25T10:00:00Z","interval":60,"status":"Accepted"}]')
        == []
    )
    assert answer_differences(recorded, '[3,"1",{"currentTime":"x","interval":300,"status":"Rejected"}]') == [
        "status = 'Rejected', recorded 'Accepted'"
    ]
    assert answer_differences('[4,"1","FormationViolation","",{}]', '[4,"1","FormatViolation","",{}]') == [
        "error code 'FormatViolation', recorded 'FormationViolation'"
    ]


def _id_tags_in(trace: Trace) -> dict[str, str]:
    """Each id tag the trace's charger presented, with the status the CSMS answered then."""
    tags: dict[str, str] = {}
    for sent, answer in trace.exchanges():
        frame, reply = sent.parsed(), json.loads(answer.frame) if answer else None
        if not (isinstance(frame, list) and len(frame) == 4 and isinstance(frame[3], dict)) or not reply:
            continue
        payload, result = frame[3], reply[2] if reply[0] == 3 else {}
        token = payload.get("idTag") or (payload.get("idToken") or {}).get("idToken")
        info = result.get("idTagInfo") or result.get("idTokenInfo") or {}
        if isinstance(token, str) and info.get("status") in ("Accepted", "Blocked", "Expired", "Invalid"):
            tags.setdefault(token, info["status"])
    return tags


@pytest.mark.parametrize("path", TRACES, ids=[path.stem for path in TRACES])
async def test_kept_traces_get_the_answers_they_were_recorded_with(daphne, path):
    trace = Trace.from_jsonl(path.read_text())
    await ChargePoint.objects.acreate(
        charge_point_id=trace.charge_point_id, heartbeat_interval=60, ocpp_version=trace.ocpp_version
    )
    for id_tag, status in _id_tags_in(trace).items():
        if status != "Invalid":  # Invalid: the tag was unknown
            await IdTag.objects.acreate(id_tag=id_tag, status=status)
    result = await replay_trace(trace, url=f"ws://127.0.0.1:{daphne.port}")
    assert result.exchanges > 0
    assert result.mismatches == []
