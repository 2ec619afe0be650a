"""The hot actions' ``@on_payload`` handlers answer as the package's general path answered.

Each reference router below routes the same actions through the general path (snake_case keyword
arguments, the ``call_result`` dataclass, its conversion back to camelCase), with the handlers as
they were before they took the payload (round 8). Both get the same frames, valid and invalid, with
the same services stubbed: the frames they send and the service calls they make must be the same.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16ChargePoint
from ocpp.v16 import call_result as call_result16
from ocpp.v201 import ChargePoint as V201ChargePoint
from ocpp.v201 import call_result as call_result201

from chargepoints import services
from chargepoints.selectors import STRICT_PROFILE
from charging.metering import ENERGY_REGISTER, unit_default
from charging.selectors import IdTagInfo
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from kernel import ocpp_package, payload_case
from kernel.timestamps import format_ocpp_time, parse_ocpp_time
from ocpp_gateway import group_commit, id_tags
from ocpp_gateway.group_commit import in_commit_group
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.router import OcppRouter
from ocpp_gateway.v16 import provisioning as provisioning16
from ocpp_gateway.v16 import transactions as transactions16
from ocpp_gateway.v16.router import V16Router
from ocpp_gateway.v201 import provisioning as provisioning201
from ocpp_gateway.v201 import transactions as transactions201
from ocpp_gateway.v201.router import V201Router

NOW = datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)
EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)
T = "2026-11-30T09:00:00Z"


def _wh(value: int | float) -> Decimal:
    return Decimal(str(value))


def _sampled_values16(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    now = timezone.now()
    samples = []
    for meter_value in meter_values:
        at = parse_ocpp_time(meter_value.get("timestamp")) or now
        for sampled in meter_value.get("sampled_value", []):
            signed = sampled.get("format") == "SignedData"
            samples.append(
                SampledValue(
                    timestamp=at,
                    raw_value=str(sampled.get("value", "")),
                    measurand=sampled.get("measurand", ENERGY_REGISTER),
                    phase=sampled.get("phase", ""),
                    unit=sampled.get("unit", unit_default(sampled.get("measurand", ENERGY_REGISTER))),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    format=sampled.get("format", "Raw"),
                    signed_data={"format": "SignedData", "value": sampled.get("value")} if signed else None,
                )
            )
    return samples


def _sampled_values201(meter_values: list[dict[str, Any]]) -> list[SampledValue]:
    now = timezone.now()
    samples = []
    for meter_value in meter_values:
        at = parse_ocpp_time(meter_value.get("timestamp")) or now
        for sampled in meter_value.get("sampled_value", []):
            unit = sampled.get("unit_of_measure") or {}
            signed = sampled.get("signed_meter_value")
            samples.append(
                SampledValue(
                    timestamp=at,
                    raw_value=str(sampled.get("value", "")),
                    measurand=sampled.get("measurand", ENERGY_REGISTER),
                    phase=sampled.get("phase", ""),
                    unit=unit.get("unit", unit_default(sampled.get("measurand", ENERGY_REGISTER))),
                    multiplier=unit.get("multiplier", 0),
                    context=sampled.get("context", "Sample.Periodic"),
                    location=sampled.get("location", "Outlet"),
                    signed_data=signed,
                )
            )
    return samples


_CHARGING201 = {"Charging": True, "EVConnected": False, "SuspendedEV": False, "Idle": False}


def _reference_transaction_event(charge_point_id: str, payload: dict[str, Any]) -> IdTagInfo | None:
    """Round 8's ``_transaction_event`` (the snake_case payload), remote starts left out."""
    info = payload["transaction_info"]
    at = parse_ocpp_time(payload["timestamp"]) or timezone.now()
    samples = _sampled_values201(payload.get("meter_value") or [])
    sent_token = payload.get("id_token") or {}
    if payload["event_type"] == "Ended":
        stopped = transactions201.transaction_stop(
            StopRequest(
                charge_point_id=charge_point_id,
                ocpp_transaction_id=info["transaction_id"],
                stopped_at=at,
                action="TransactionEvent",
                payload=payload_case.camel_case(payload),
                reason=info.get("stopped_reason", "Local"),
                id_tag=sent_token.get("id_token", ""),
                id_token_type=sent_token.get("type", ""),
                samples=samples,
                seq_no=payload["seq_no"],
                time_spent_charging=info.get("time_spent_charging"),
            )
        )
        return stopped.id_tag_info
    evse, token_type = payload.get("evse") or {}, sent_token.get("type", "")
    started = transactions201.transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="2.0.1",
            start_key=info["transaction_id"],
            ocpp_transaction_id=info["transaction_id"],
            started_at=at,
            evse_id=evse.get("id"),
            connector_id=evse.get("connector_id"),
            id_tag=sent_token.get("id_token", ""),
            id_token_type=token_type,
            authorize=bool(sent_token) and token_type != "NoAuthorization",
            charging=_CHARGING201.get(info.get("charging_state", "")),
            reservation_id=payload.get("reservation_id"),
            remote_start_id=info.get("remote_start_id"),
            samples=samples,
            seq_no=payload["seq_no"],
            time_spent_charging=info.get("time_spent_charging"),
            baseline_expected=bool(payload.get("offline")) or payload["event_type"] != "Started",
            started_event=payload["event_type"] == "Started",
        )
    )
    if token_type == "NoAuthorization":
        return IdTagInfo(status="Accepted")
    return started.id_tag_info if sent_token else None


def _id_tag_info16(info: IdTagInfo) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": info.status}
    if info.expiry_date is not None:
        answer["expiry_date"] = format_ocpp_time(info.expiry_date)
    if info.parent_id_tag:
        answer["parent_id_tag"] = info.parent_id_tag
    return answer


def _id_token_info201(info: IdTagInfo) -> dict[str, Any]:
    answer: dict[str, Any] = {"status": info.status}
    if info.expiry_date is not None:
        answer["cache_expiry_date_time"] = format_ocpp_time(info.expiry_date)
    if info.parent_id_tag:
        answer["group_id_token"] = {"id_token": info.parent_id_tag, "type": info.parent_token_type or "Central"}
    return answer


class Reference16(OcppRouter, V16ChargePoint):
    """The 1.6 hot handlers as the general path ran them (round 8)."""

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> call_result16.Heartbeat:
        heartbeats.add(services.ReceivedHeartbeat(charge_point_id=self.id, received_at=NOW))
        return call_result16.Heartbeat(current_time=format_ocpp_time(NOW))

    @on("StatusNotification")
    async def on_status_notification(
        self,
        connector_id: int,
        error_code: str,
        status: str,
        info: str = "",
        timestamp: str | None = None,
        vendor_id: str = "",
        vendor_error_code: str = "",
        **_: Any,
    ) -> call_result16.StatusNotification:
        charging = {"Charging": True, "SuspendedEV": False, "Finishing": False}
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            connector_id=connector_id,
            status=status,
            error_code=error_code,
            info=info,
            vendor_id=vendor_id,
            vendor_error_code=vendor_error_code,
            timestamp=parse_ocpp_time(timestamp),
            charging=charging.get(status),
        )
        return call_result16.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_tag: str, **_: Any) -> call_result16.Authorize:
        info = await id_tags.id_tag_authorize(id_tag=id_tag, charge_point_id=self.id)
        return call_result16.Authorize(id_tag_info=_id_tag_info16(info))

    @on("StartTransaction")
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int | float,
        timestamp: str,
        reservation_id: int | None = None,
        **_: Any,
    ) -> call_result16.StartTransaction:
        started_at = parse_ocpp_time(timestamp) or timezone.now()
        result = await in_commit_group(transaction_start)(
            request=StartRequest(
                charge_point_id=self.id,
                ocpp_version="1.6",
                start_key=f"{connector_id}|{id_tag.lower()}|{_wh(meter_start)}|{started_at.isoformat()}",
                started_at=started_at,
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start_wh=_wh(meter_start),
                reservation_id=reservation_id,
            )
        )
        assert result.id_tag_info is not None
        return call_result16.StartTransaction(
            transaction_id=result.transaction.pk, id_tag_info=_id_tag_info16(result.id_tag_info)
        )

    @on("MeterValues")
    async def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], transaction_id: int | None = None, **_: Any
    ) -> call_result16.MeterValues:
        await in_commit_group(meter_values_record)(
            charge_point_id=self.id,
            connector_id=connector_id,
            ocpp_transaction_id=str(transaction_id) if transaction_id is not None else "",
            samples=_sampled_values16(meter_value),
        )
        return call_result16.MeterValues()

    @on("StopTransaction")
    async def on_stop_transaction(self, **payload: Any) -> call_result16.StopTransaction:
        id_tag = payload.get("id_tag")
        result = await in_commit_group(transaction_stop)(
            request=StopRequest(
                charge_point_id=self.id,
                ocpp_transaction_id=str(payload["transaction_id"]),
                stopped_at=parse_ocpp_time(payload["timestamp"]) or timezone.now(),
                action="StopTransaction",
                payload=payload_case.camel_case(payload),
                meter_stop_wh=_wh(payload["meter_stop"]),
                reason=payload.get("reason", "Local"),
                id_tag=id_tag or "",
                id_tag_null="id_tag" in payload and id_tag is None,
                samples=_sampled_values16(payload.get("transaction_data") or []),
            )
        )
        info = result.id_tag_info
        return call_result16.StopTransaction(id_tag_info=_id_tag_info16(info) if info else None)


class Reference201(OcppRouter, V201ChargePoint):
    """The 2.0.1 hot handlers as the general path ran them (round 8)."""

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> call_result201.Heartbeat:
        heartbeats.add(services.ReceivedHeartbeat(charge_point_id=self.id, received_at=NOW))
        return call_result201.Heartbeat(current_time=format_ocpp_time(NOW))

    @on("StatusNotification")
    async def on_status_notification(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> call_result201.StatusNotification:
        await in_commit_group(services.connector_status_set)(
            charge_point_id=self.id,
            evse_id=evse_id,
            connector_id=connector_id,
            status=connector_status,
            timestamp=parse_ocpp_time(timestamp),
        )
        return call_result201.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result201.Authorize:
        info = await id_tags.id_tag_authorize(
            id_tag=id_token["id_token"], token_type=id_token["type"], charge_point_id=self.id
        )
        return call_result201.Authorize(id_token_info=_id_token_info201(info))

    @on("TransactionEvent")
    async def on_transaction_event(self, **payload: Any) -> call_result201.TransactionEvent:
        info = await in_commit_group(_reference_transaction_event)(charge_point_id=self.id, payload=payload)
        return call_result201.TransactionEvent(id_token_info=_id_token_info201(info) if info else None)

    @on("MeterValues")
    async def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> call_result201.MeterValues:
        await in_commit_group(meter_values_record)(
            charge_point_id=self.id,
            evse_id=evse_id,
            samples=_sampled_values201(meter_value),
        )
        return call_result201.MeterValues()


class Recording:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


AUTHORIZED = IdTagInfo(status="Accepted", expiry_date=EXPIRY, parent_id_tag="FLEET", parent_token_type="Central")


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """The services and buffers stubbed: the commit group records its calls and answers for them."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def session_change(request: Any) -> Any:
        calls.append((type(request).__name__, vars(request)))
        return SimpleNamespace(transaction=SimpleNamespace(pk=42), id_tag_info=AUTHORIZED, ended=True, total_cost=None)

    async def run(func: Any, **kwargs: Any) -> Any:
        if func in (transactions201._transaction_event, _reference_transaction_event):  # its requests are recorded
            return func(**kwargs)
        calls.append((func.__name__, kwargs))
        if func.__name__ in ("transaction_start", "transaction_stop"):
            return session_change(kwargs["request"])
        return None

    async def authorize(*, id_tag: str, token_type: str = "", charge_point_id: str = "") -> IdTagInfo:
        calls.append(
            ("id_tag_authorize", {"id_tag": id_tag, "token_type": token_type, "charge_point_id": charge_point_id})
        )
        return AUTHORIZED

    monkeypatch.setattr(group_commit.commit_group, "run", run)
    monkeypatch.setattr(id_tags, "id_tag_authorize", authorize)
    monkeypatch.setattr(message_log, "add", lambda frame: None)
    monkeypatch.setattr(heartbeats, "add", lambda heartbeat: calls.append(("heartbeat", dict(vars(heartbeat)))))
    monkeypatch.setattr(transactions201, "transaction_start", session_change)
    monkeypatch.setattr(transactions201, "transaction_stop", session_change)
    monkeypatch.setattr(timezone, "now", lambda: NOW)
    for module in (provisioning16, provisioning201, transactions16, transactions201):
        monkeypatch.setattr(module, "utc_now", lambda: NOW)
    return calls


_SAMPLES16 = [
    {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "kWh", "context": "Sample.Clock"},
    {"value": "16", "measurand": "Current.Import", "phase": "L1", "unit": "A", "location": "Outlet"},
    {"value": "c2lnbmVk", "format": "SignedData"},
]
_SAMPLES201 = [
    {"value": 1234.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "kWh", "multiplier": 3}},
    {"value": 16, "measurand": "Current.Import", "phase": "L1", "context": "Sample.Periodic", "location": "Outlet"},
    {
        "value": 7,
        "signedMeterValue": {
            "signedMeterData": "c2lnbmVk",
            "signingMethod": "ECDSA",
            "encodingMethod": "OCMF",
            "publicKey": "a2V5",
        },
    },
]
_EVENT: dict[str, Any] = {
    "eventType": "Updated",
    "timestamp": T,
    "triggerReason": "MeterValuePeriodic",
    "seqNo": 3,
    "transactionInfo": {"transactionId": "TX-1", "chargingState": "Charging", "timeSpentCharging": 60},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [{"timestamp": T, "sampledValue": _SAMPLES201}],
}

_READINGS16 = [{"timestamp": T, "sampledValue": _SAMPLES16}]
V16_FRAMES: list[tuple[str, Any]] = [
    ("Heartbeat", {}),
    ("Heartbeat", {"unexpected": 1}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": T}),
    (
        "StatusNotification",
        {
            "connectorId": 2,
            "errorCode": "OtherError",
            "status": "Faulted",
            "info": "hot",
            "vendorId": "ACME",
            "vendorErrorCode": "E42",
        },
    ),
    ("StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Charging"}),
    ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}),
    ("StatusNotification", {"connectorId": 1, "status": "Available"}),
    ("Authorize", {"idTag": "RFID-1"}),
    ("Authorize", {"idTag": "X" * 21}),
    ("Authorize", {}),
    ("StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "meterStart": 1000, "timestamp": T}),
    ("StartTransaction", {"connectorId": 2, "idTag": "rfid-2", "meterStart": 0, "timestamp": T, "reservationId": 7}),
    ("StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "meterStart": 1.5, "timestamp": T}),
    ("StartTransaction", {"connectorId": 1, "idTag": "RFID-1", "timestamp": T}),
    (
        "MeterValues",
        {"connectorId": 1, "transactionId": 42, "meterValue": [{"timestamp": T, "sampledValue": _SAMPLES16}]},
    ),
    ("MeterValues", {"connectorId": 0, "meterValue": [{"timestamp": T, "sampledValue": [{"value": "1"}]}]}),
    ("MeterValues", {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}),
    ("MeterValues", {"connectorId": 1, "meterValue": "none"}),
    ("StopTransaction", {"transactionId": 42, "meterStop": 2000, "timestamp": T}),
    (
        "StopTransaction",
        {
            "transactionId": 42,
            "meterStop": 2000,
            "timestamp": T,
            "idTag": "RFID-1",
            "reason": "EVDisconnected",
            "transactionData": [{"timestamp": T, "sampledValue": _SAMPLES16}],
        },
    ),
    ("StopTransaction", {"transactionId": 42, "meterStop": 2000, "timestamp": T, "reason": "Unplugged"}),
    ("StopTransaction", {"transactionId": "42", "meterStop": 2000, "timestamp": T}),
]
V201_FRAMES: list[tuple[str, Any]] = [
    ("Heartbeat", {}),
    ("Heartbeat", {"customData": {"vendorId": "ACME", "someKey": 1}}),
    ("Heartbeat", {"unexpected": 1}),
    ("StatusNotification", {"timestamp": T, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
    ("StatusNotification", {"timestamp": T, "connectorStatus": "Charging", "evseId": 1, "connectorId": 1}),
    ("StatusNotification", {"connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
    ("Authorize", {"idToken": {"idToken": "RFID-1", "type": "ISO14443"}}),
    ("Authorize", {"idToken": {"idToken": "RFID-1", "type": "Central"}, "customData": {"vendorId": "ACME"}}),
    ("Authorize", {"idToken": {"idToken": "RFID-1"}}),
    ("TransactionEvent", _EVENT),
    (
        "TransactionEvent",
        {
            **_EVENT,
            "eventType": "Started",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "offline": True,
            "reservationId": 5,
            "idToken": {"idToken": "RFID-1", "type": "ISO14443"},
            "transactionInfo": {"transactionId": "TX-1", "remoteStartId": 9},
        },
    ),
    (
        "TransactionEvent",
        {
            **_EVENT,
            "eventType": "Ended",
            "triggerReason": "StopAuthorized",
            "idToken": {"idToken": "RFID-1", "type": "NoAuthorization"},
            "transactionInfo": {"transactionId": "TX-1", "stoppedReason": "EVDisconnected"},
        },
    ),
    ("TransactionEvent", {**_EVENT, "eventType": "Paused"}),
    ("TransactionEvent", {key: value for key, value in _EVENT.items() if key != "seqNo"}),
    ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": _SAMPLES201}]}),
    ("MeterValues", {"evseId": 1, "meterValue": []}),
    ("MeterValues", {"evseId": "1", "meterValue": [{"timestamp": T, "sampledValue": _SAMPLES201}]}),
]


async def _outcome(router_class: type[OcppRouter], action: str, payload: Any, calls: list[Any]) -> Any:
    connection = Recording()
    router = router_class("CP-FAST", connection)
    router.state_loaded(commissioned=True, profile=STRICT_PROFILE)
    call_dispatched, payloads = router.call_dispatched, []

    async def dispatched_with_unchanged_payload(msg: Any, **kwargs: Any) -> Any:
        """The dispatch; the payload its handler was handed must be the same after (never changed)."""
        before = copy.deepcopy(msg.payload)
        try:
            return await call_dispatched(msg, **kwargs)
        finally:
            payloads.append((before, msg.payload))

    router.call_dispatched = dispatched_with_unchanged_payload  # type: ignore[method-assign]
    calls.clear()
    await router.route_message(json.dumps([2, "u1", action, payload]))
    assert payloads and all(before == after for before, after in payloads)
    return connection.sent, list(calls)


@pytest.mark.parametrize(("action", "payload"), V16_FRAMES, ids=lambda value: str(value)[:40])
async def test_v16_hot_actions_answer_as_the_general_path(stubbed, action, payload):
    assert V16Router.route_map[action].takes_payload
    reference = await _outcome(Reference16, action, payload, stubbed)
    assert await _outcome(V16Router, action, payload, stubbed) == reference


@pytest.mark.parametrize(("action", "payload"), V201_FRAMES, ids=lambda value: str(value)[:40])
async def test_v201_hot_actions_answer_as_the_general_path(stubbed, action, payload):
    assert V201Router.route_map[action].takes_payload
    assert await _outcome(V201Router, action, payload, stubbed) == await _outcome(
        Reference201, action, payload, stubbed
    )


async def test_the_frames_cover_answers_with_every_field_and_refusals(stubbed):
    routed = [(V16Router, *frame) for frame in V16_FRAMES] + [(V201Router, *frame) for frame in V201_FRAMES]
    answers = [json.loads((await _outcome(*route, stubbed))[0][0]) for route in routed]
    assert {"expiryDate", "parentIdTag"} <= set(answers[7][2]["idTagInfo"])
    assert {"TypeConstraintViolation", "FormationViolation", "OccurenceConstraintViolation"} & {
        answer[2] for answer in answers if answer[0] == 4
    }
    assert sum(answer[0] == 4 for answer in answers) >= 8


def test_a_payload_handler_must_be_a_coroutine_function():
    with pytest.raises(TypeError, match="coroutine"):

        @ocpp_package.on_payload("Heartbeat")
        def on_heartbeat(self: Any, payload: dict[str, Any]) -> dict[str, Any]:
            return {}
