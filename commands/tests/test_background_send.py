"""``?wait=false``: the command is sent on the event loop in the background, and the caller answers
with the pending command (202), whenever the outcome is recorded."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from chargepoints.models import ChargePoint
from commands import services
from commands.models import Command, CommandState

pytestmark = pytest.mark.django_db(transaction=True)


async def _state_recorded(command_id: uuid.UUID) -> str:
    for _ in range(200):  # 10 s at most
        state = (await Command.objects.aget(id=command_id)).state
        if state != CommandState.PENDING:
            return str(state)
        await asyncio.sleep(0.05)
    return CommandState.PENDING


async def test_the_command_returned_stays_pending_when_its_outcome_is_recorded(register_charge_point):
    """The background send records its outcome on its own copy: the caller's command is the pending
    one it answers 202 with, whenever the outcome is recorded (here: the presence of a process that
    never acknowledges, not connected once the acknowledgement's wait is over)."""
    await sync_to_async(register_charge_point)("CP-1", ocpp_version="1.6")
    await ChargePoint.objects.filter(charge_point_id="CP-1").aupdate(
        connected=True, connection_channel="specific.gone!process"
    )
    request = services.CommandRequest(
        charge_point_id="CP-1", ocpp_version="1.6", command="Reset", body={"type": "Soft"}
    )
    try:
        returned = await sync_to_async(services.command_send)(request=request, wait=False)
        assert await _state_recorded(returned.id) == CommandState.NOT_CONNECTED
        assert returned.state == CommandState.PENDING
    finally:
        await sync_to_async(connections.close_all)()  # the send's thread's connection: the test database can go


async def test_a_charger_no_process_holds_is_not_connected_at_once(register_charge_point):
    """Its presence, read with the command's record, is empty: nothing is sent nor awaited, and the
    command returned is the finished one (the API's 503 NotConnected "at once")."""
    await sync_to_async(register_charge_point)("CP-1", ocpp_version="1.6")
    request = services.CommandRequest(
        charge_point_id="CP-1", ocpp_version="1.6", command="Reset", body={"type": "Soft"}
    )
    try:
        returned = await sync_to_async(services.command_send)(request=request, wait=False)
        assert returned.state == CommandState.NOT_CONNECTED
        assert (await Command.objects.aget(id=returned.id)).state == CommandState.NOT_CONNECTED
    finally:
        await sync_to_async(connections.close_all)()
