"""Group commit on PostgreSQL: the next batch runs its statements while the one before commits, and
two batches never run their statements at once; each unit is answered after its own batch's commit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from chargepoints.models import ChargePoint, Heartbeat
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import Refused

pytestmark = pytest.mark.django_db(transaction=True)


async def _registered_now() -> set[str]:
    return {cp async for cp in ChargePoint.objects.values_list("charge_point_id", flat=True)}


async def test_the_next_batch_runs_while_the_one_before_commits():
    """The first batch's ``on_commit`` callback (after its COMMIT, before its thread is done) waits
    for the second batch's unit: it runs only if the second batch started once the first sent its COMMIT."""
    first_ran, second_ran = threading.Event(), threading.Event()
    seen_after_commit: list[bool] = []

    def first(charge_point_id: str) -> None:
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
        transaction.on_commit(lambda: seen_after_commit.append(second_ran.wait(5)))
        first_ran.set()

    def second(charge_point_id: str) -> None:
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
        second_ran.set()

    group = CommitGroup(max_units=64)
    first_answered = asyncio.ensure_future(group.run(first, charge_point_id="CP-OV-1"))
    assert await asyncio.to_thread(first_ran.wait, 5)
    await group.run(second, charge_point_id="CP-OV-2")
    await first_answered
    assert seen_after_commit == [True]
    assert await _registered_now() == {"CP-OV-1", "CP-OV-2"}


async def test_two_batches_never_run_their_statements_at_once():
    """Units of many batches, some refused (their batch is written again, each unit in a savepoint):
    at most one runs at any time, so a batch holding row locks never waits for another one's."""
    running, most = [0], [0]
    lock = threading.Lock()

    def counted(charge_point_id: str, fail: bool) -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
            time.sleep(0.001)
            if fail:
                raise Refused(charge_point_id)
        finally:
            with lock:
                running[0] -= 1

    group = CommitGroup(max_units=4)
    outcomes = await asyncio.gather(
        *(group.run(counted, charge_point_id=f"CP-OV-N{n}", fail=n % 7 == 3) for n in range(60)),
        return_exceptions=True,
    )
    assert most[0] == 1
    assert [isinstance(outcome, Refused) for outcome in outcomes] == [n % 7 == 3 for n in range(60)]
    assert await _registered_now() == {f"CP-OV-N{n}" for n in range(60) if n % 7 != 3}


async def test_a_batch_whose_commit_fails_under_the_next_acknowledges_none_of_its_messages():
    """The first batch's COMMIT fails (a foreign key checked at COMMIT) while the second runs: every
    unit of the first gets the error, the second commits."""
    first_ran = threading.Event()

    def broken_at_commit(charge_point_id: str) -> None:
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        Heartbeat.objects.create(charge_point_id=2**40, received_at=timezone.now())
        first_ran.set()

    def register(charge_point_id: str) -> None:
        ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)

    group = CommitGroup(max_units=64)
    first = asyncio.ensure_future(group.run(broken_at_commit, charge_point_id="CP-OV-BROKEN"))
    assert await asyncio.to_thread(first_ran.wait, 5)
    second = asyncio.ensure_future(group.run(register, charge_point_id="CP-OV-NEXT"))
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(outcomes[0], IntegrityError) and outcomes[1] is None
    assert await _registered_now() == {"CP-OV-NEXT"}
