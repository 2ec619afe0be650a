"""Hostile or broken frames cost nothing and break nothing (issue 14 B1-B3): a real daphne
process on PostgreSQL, raw WebSocket chargers, the right answer asserted."""

from __future__ import annotations

import asyncio
import json

import pytest

from chargepoints.models import ChargePoint, OcppMessage
from conftest import ahttp, eventually, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "7" * 5000  # over Python's 4300-digit limit for int()


async def register(charge_point_id: str) -> ChargePoint:
    return await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)


async def answer_to(websocket, unique_id: str) -> list:
    async with asyncio.timeout(5):
        while True:
            frame = json.loads(await websocket.recv())
            if frame[1] == unique_id:
                return frame


async def heartbeat_answered(websocket) -> bool:
    await websocket.send(json.dumps([2, "probe", "Heartbeat", {}]))
    return (await answer_to(websocket, "probe"))[0] == 3


async def connected(charge_point_id: str) -> bool:
    return (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).connected


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_call_with_a_5000_digit_integer_gets_a_type_constraint_violation_and_the_socket_lives(
    daphne, version
):
    await register("CP-HUGE")
    async with raw_socket(daphne, version, "CP-HUGE") as websocket:
        await websocket.send(f'[2,"x","Heartbeat",{{"x":{HUGE}}}]')
        answer = await answer_to(websocket, "x")
        assert answer[0] == 4 and answer[2] == "TypeConstraintViolation"
        assert await heartbeat_answered(websocket)
        assert await connected("CP-HUGE")


async def test_a_callresult_with_a_5000_digit_integer_fails_the_command_at_once_and_the_socket_lives(
    daphne, api_key
):
    await register("CP-HUGE")
    async with raw_socket(daphne, "1.6", "CP-HUGE") as websocket:
        command = asyncio.create_task(
            ahttp(f"{daphne.http_url}/api/v1/ocpp16/CP-HUGE/reset", method="POST", api_key=api_key, body={"type": "Soft"})
        )
        async with asyncio.timeout(10):
            call = json.loads(await websocket.recv())
        assert call[0] == 2 and call[2] == "Reset"
        await websocket.send(f'[3,"{call[1]}",{{"status":{HUGE}}}]')
        async with asyncio.timeout(10):  # not the 30 s call timeout
            status, body = await command
        assert status == 502 and body["error"] == "FormatViolation"
        assert await heartbeat_answered(websocket)
        assert await connected("CP-HUGE")


async def test_a_closed_socket_clears_presence_at_once(daphne):
    await register("CP-GONE")
    async with raw_socket(daphne, "1.6", "CP-GONE") as websocket:
        assert await heartbeat_answered(websocket)
        assert await connected("CP-GONE")
    assert await eventually(lambda: _offline("CP-GONE"), timeout=3)


async def _offline(charge_point_id: str) -> bool:
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    return not charge_point.connected and not charge_point.connection_channel
