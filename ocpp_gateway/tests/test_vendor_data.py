"""Vendor data is opaque: DataTransfer ``data`` and ``customData`` keep their keys both ways."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v201 import ChargePoint as V201ChargePoint
from ocpp.v201 import call_result

from chargepoints.models import ChargePoint
from conftest import ahttp, raw_socket
from kernel import payload_case

VENDOR_DATA = {"some_key": 1, "otherKey": {"nested_key": [{"deepKey": True}]}}


@pytest.mark.django_db(transaction=True)
async def test_201_data_transfer_data_reaches_the_charger_and_the_api_as_it_was_sent(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-VENDOR", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-VENDOR") as websocket:
        post = asyncio.create_task(
            ahttp(
                f"{daphne.http_url}/api/v1/ocpp201/CP-VENDOR/data_transfer",
                method="POST",
                api_key=api_key,
                body={"vendor_id": "com.example", "message_id": "m1", "data": VENDOR_DATA},
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        answer = {"status": "Accepted", "data": {"replyKey2": 1, "reply_key3": 2}}
        await websocket.send(json.dumps([3, call[1], answer]))
        status, reply = await post
    assert call[2:] == ["DataTransfer", {"vendorId": "com.example", "messageId": "m1", "data": VENDOR_DATA}]
    assert (status, reply) == (200, {"status": "Accepted", "data": {"replyKey2": 1, "reply_key3": 2}})


@pytest.mark.django_db(transaction=True)
async def test_201_custom_data_keeps_its_keys_except_vendor_id(daphne, api_key):
    await ChargePoint.objects.acreate(charge_point_id="CP-CUSTOM", heartbeat_interval=60)
    async with raw_socket(daphne, "2.0.1", "CP-CUSTOM") as websocket:
        post = asyncio.create_task(
            ahttp(
                f"{daphne.http_url}/api/v1/ocpp201/CP-CUSTOM/reset",
                method="POST",
                api_key=api_key,
                body={"type": "Immediate", "custom_data": {"vendor_id": "com.example", "some_key": 1, "otherKey": 2}},
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        answer = {"status": "Accepted", "customData": {"vendorId": "com.example", "replyKey": 3}}
        await websocket.send(json.dumps([3, call[1], answer]))
        status, reply = await post
    assert call[3] == {"type": "Immediate", "customData": {"vendorId": "com.example", "some_key": 1, "otherKey": 2}}
    assert (status, reply) == (200, {"status": "Accepted", "custom_data": {"vendor_id": "com.example", "replyKey": 3}})


class RecordingConnection:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, text: str) -> None:
        self.sent.append(text)


class DataTransferStation(V201ChargePoint):
    received: dict[str, Any]

    @on("DataTransfer")
    def on_data_transfer(self, **payload: Any) -> call_result.DataTransfer:
        self.received = payload
        return call_result.DataTransfer(status="Accepted", data={"reply_key": 1, "replyKey": 2})


async def test_an_inbound_data_transfer_reaches_its_handler_and_is_answered_with_vendor_data_as_is():
    connection = RecordingConnection()
    station = DataTransferStation("CP-IN", connection)
    payload = {"vendorId": "com.example", "data": VENDOR_DATA, "customData": {"vendorId": "v", "myKey": 1}}
    await station.route_message(json.dumps([2, "d1", "DataTransfer", payload]))
    assert station.received == {
        "vendor_id": "com.example",
        "data": VENDOR_DATA,
        "custom_data": {"vendor_id": "v", "myKey": 1},
    }
    assert json.loads(connection.sent[0]) == [3, "d1", {"status": "Accepted", "data": {"reply_key": 1, "replyKey": 2}}]


def test_ocpp_fields_are_still_converted():
    assert payload_case.camel_case({"evse_id": 1, "charging_profile": {"stack_level": 0}}) == {
        "evseId": 1,
        "chargingProfile": {"stackLevel": 0},
    }
    assert payload_case.snake_case({"idTokenInfo": {"status": "Accepted"}, "data": "x"}) == {
        "id_token_info": {"status": "Accepted"},
        "data": "x",
    }
