"""Group commit in several pipelines on PostgreSQL: two chargers' batches are written side by side,
each charger's units stay in order in its own pipeline, a batch that fails in one pipeline takes
none of the other's units with it, and a write-behind buffer writes each pipeline's chargers there."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from itertools import count

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from chargepoints.models import ChargePoint, Heartbeat
from kernel.log_format import charge_point_id_var
from ocpp_gateway import buffers
from ocpp_gateway.buffers import WriteBehindBuffer
from ocpp_gateway.group_commit import CommitGroup

pytestmark = pytest.mark.django_db(transaction=True)


def _chargers_apart(group: CommitGroup) -> tuple[str, str]:
    """Two charger ids that ``group`` writes in different pipelines."""
    first = "CP-PIPE-0"
    for n in count(1):
        other = f"CP-PIPE-{n}"
        if group.pipeline_of(other) != group.pipeline_of(first):
            return first, other
    raise AssertionError("unreachable")


def _registered_waiting(charge_point_id: str, release: threading.Event) -> bool:
    """Writes the charger's row, then holds its batch open until ``release`` (False if never)."""
    ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    return release.wait(timeout=10)


def _register(charge_point_id: str) -> str:
    ChargePoint.objects.create(charge_point_id=charge_point_id, heartbeat_interval=60)
    return threading.current_thread().name


async def _registered_now() -> set[str]:
    return {cp async for cp in ChargePoint.objects.values_list("charge_point_id", flat=True)}


async def test_two_chargers_in_different_pipelines_are_written_side_by_side():
    group = CommitGroup(max_units=64, pipelines=2)
    held, free = _chargers_apart(group)
    release = threading.Event()
    holding = asyncio.ensure_future(group.run(_registered_waiting, charge_point_id=held, release=release))
    # The other pipeline commits while the first one's batch is still open: one batch does not wait for the other.
    thread = await group.run(_register, charge_point_id=free)
    assert await _registered_now() == {free}
    release.set()
    assert await holding is True
    assert thread.startswith("csms-commit-")
    assert await _registered_now() == {held, free}


def _noted(order: list[int], n: int, charge_point_id: str = "") -> str:
    order.append(n)
    return threading.current_thread().name


async def test_a_chargers_units_stay_in_order_in_one_pipeline():
    group = CommitGroup(max_units=3, pipelines=4)
    order: list[int] = []

    async def from_the_connection(n: int) -> str:  # a unit named by its connection's context, as the consumer's are
        charge_point_id_var.set("CP-PIPE-ORDER")
        return await group.run(_noted, order=order, n=n)

    units = []
    for n in range(20):
        if n % 2:
            units.append(asyncio.ensure_future(group.run(_noted, order=order, n=n, charge_point_id="CP-PIPE-ORDER")))
        else:
            units.append(asyncio.create_task(from_the_connection(n), context=contextvars.Context()))
    threads = await asyncio.gather(*units)
    assert order == list(range(20))
    assert len(set(threads)) == 1


def _heartbeat_of_no_charger() -> None:
    """A row whose foreign key fails only at COMMIT: its whole batch is not committed."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    Heartbeat.objects.create(charge_point_id=2**40, received_at=timezone.now())


async def test_a_batch_that_fails_in_one_pipeline_leaves_the_others_units_alone():
    group = CommitGroup(max_units=64, pipelines=2)
    failing, other = _chargers_apart(group)
    release = threading.Event()
    pipeline = group.pipeline_of(failing)
    holding = asyncio.ensure_future(group.run(_registered_waiting, charge_point_id=failing, release=release))
    # Queued while the holder's batch is open: the next batch of its pipeline, together.
    doomed = [
        asyncio.ensure_future(group.run(_register, pipeline=pipeline, charge_point_id=f"{failing}-B")),
        asyncio.ensure_future(group.run(_heartbeat_of_no_charger, pipeline=pipeline)),
    ]
    kept = await asyncio.gather(*(group.run(_register, charge_point_id=f"{other}-{n}") for n in range(3)))
    release.set()
    assert await holding is True
    outcomes = await asyncio.gather(*doomed, return_exceptions=True)
    assert all(isinstance(outcome, IntegrityError) for outcome in outcomes)
    assert len(kept) == 3
    assert await _registered_now() == {failing, *(f"{other}-{n}" for n in range(3))}


async def test_a_buffer_writes_each_pipelines_chargers_in_that_pipeline(monkeypatch):
    group = CommitGroup(max_units=64, pipelines=2)
    monkeypatch.setattr(buffers, "commit_group", group)
    first, second = _chargers_apart(group)
    written: list[tuple[str, set[str]]] = []

    def write(rows: list[ChargePoint]) -> None:
        written.append((threading.current_thread().name, {row.charge_point_id for row in rows}))

    buffer = WriteBehindBuffer(name="test rows", write=write, flush_seconds=lambda: 60, max_batch=10)
    for charge_point_id in (first, second, first, second):
        buffer.add(ChargePoint(charge_point_id=charge_point_id))
    await buffer.flush()
    assert sorted(sorted(chargers) for _, chargers in written) == sorted([[first], [second]])
    assert len({thread for thread, _ in written}) == 2
