"""``?wait=false``: the command is sent on the event loop in the background, and the caller answers
with the pending command (202), whenever the outcome is recorded."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError, connections

from chargepoints.models import ChargePoint
from commands import services
from commands.models import Command, CommandState
from commands.rpc import CallOutcome, Outcome

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


def _completion_failing_once(monkeypatch) -> list[str]:
    """``command_complete`` refused once by the database (PostgreSQL restarting), as its first write
    after the charger answered; the attempts are listed."""
    attempts: list[str] = []
    complete = services.command_complete

    def flaky(*, command, outcome):
        attempts.append(command.action)
        if len(attempts) == 1:
            raise OperationalError("the database system is shutting down")
        return complete(command=command, outcome=outcome)

    monkeypatch.setattr(services, "command_complete", flaky)
    monkeypatch.setattr(services, "OUTCOME_RETRY_DELAYS", (0.05, 0.05), raising=False)
    return attempts


ACCEPTED = CallOutcome(Outcome.RESULT, payload={"status": "Accepted"})


async def _connected_charger(register_charge_point) -> None:
    await sync_to_async(register_charge_point)("CP-1", ocpp_version="1.6")
    await ChargePoint.objects.filter(charge_point_id="CP-1").aupdate(connected=True, connection_channel="specific.x!y")


async def test_an_answer_whose_outcome_the_database_refused_is_recorded_when_it_is_back(
    register_charge_point, monkeypatch
):
    """``?wait=false``: the charger answered, the outcome's write failed (PostgreSQL restarting),
    and the answer was lost: the command stayed pending until the sweep timed it out as abandoned
    by a process that had not stopped. It is written again."""
    await _connected_charger(register_charge_point)
    attempts = _completion_failing_once(monkeypatch)

    async def answered(*args, **kwargs):
        return ACCEPTED

    monkeypatch.setattr(services, "send_call", answered)
    request = services.CommandRequest(
        charge_point_id="CP-1", ocpp_version="1.6", command="reset", body={"type": "Soft"}
    )
    try:
        returned = await sync_to_async(services.command_send)(request=request, wait=False)
        assert await _state_recorded(returned.id) == CommandState.ACCEPTED
        assert attempts == ["Reset", "Reset"]
    finally:
        await sync_to_async(connections.close_all)()


async def test_a_waiting_caller_told_the_database_is_unavailable_has_the_answer_recorded_after(
    register_charge_point, monkeypatch
):
    """The caller that waited is told 503 DatabaseUnavailable (the OperationalError); the answer it
    could not be told is recorded once the database is back, for its Idempotency-Key's replay and
    its ``command.completed``, not the sweep's abandoned timeout."""
    await _connected_charger(register_charge_point)
    attempts = _completion_failing_once(monkeypatch)
    monkeypatch.setattr(services, "send_call_sync", lambda *args, **kwargs: ACCEPTED)
    request = services.CommandRequest(
        charge_point_id="CP-1", ocpp_version="1.6", command="reset", body={"type": "Soft"}
    )
    try:
        with pytest.raises(OperationalError):
            await sync_to_async(services.command_send)(request=request, wait=True)
        command = await Command.objects.aget()
        assert await _state_recorded(command.id) == CommandState.ACCEPTED
        assert attempts == ["Reset", "Reset"]
    finally:
        await sync_to_async(connections.close_all)()
