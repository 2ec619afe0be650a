"""Group commit with two lanes (``CSMS_GROUP_COMMIT_LANES``): a batch of other chargers is written
beside one being written; a charger's units never are in two batches at once, and keep their
order; a unit naming no charger and no ``locks`` is written alone; a write-behind buffer's unit,
which names the chargers its rows lock (``locks``), is written beside batches of other chargers."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable

import pytest

from chargepoints.models import ChargePoint
from kernel.log_format import charge_point_id_var
from ocpp_gateway.group_commit import CommitGroup

pytestmark = pytest.mark.django_db(transaction=True)

_WAIT_S = 10


class _Log:
    """What the units did, in order, from their batch threads; a gate a unit can wait at."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.gate = threading.Event()
        self._lock = threading.Lock()

    def note(self, event: str) -> None:
        with self._lock:
            self.events.append(event)


def _written(*, charge_point_id: str, log: _Log, name: str, held: bool = False) -> str:
    """Writes a row of the charger; ``held``: first waits at the log's gate (its batch stays open)."""
    log.note(f"{name} started")
    if held:
        assert log.gate.wait(_WAIT_S)
    ChargePoint.objects.get_or_create(charge_point_id=charge_point_id, defaults={"heartbeat_interval": 60})
    log.note(f"{name} done")
    return name


def _buffer_rows(*, log: _Log, name: str = "buffer") -> str:
    """A write-behind buffer's unit: its arguments name no charger."""
    log.note(f"{name} started")
    log.note(f"{name} done")
    return name


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(_WAIT_S * 100):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not reached: {what}")


async def test_another_charger_s_unit_is_written_beside_a_batch_being_written():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    held = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    # With one lane this waits for a1's batch, whose unit waits at the gate: it would time out.
    assert await asyncio.wait_for(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"), _WAIT_S) == "b1"
    assert "a1 done" not in log.events
    log.gate.set()
    assert await held == "a1"


async def test_a_charger_s_units_are_never_in_two_batches_at_once_and_keep_their_order():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    a2 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a2"))
    b1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"))
    assert await asyncio.wait_for(b1, _WAIT_S) == "b1"
    await asyncio.sleep(0.1)
    assert "a2 started" not in log.events  # its charger's batch is still being written
    log.gate.set()
    assert await asyncio.gather(a1, a2) == ["a1", "a2"]
    assert log.events.index("a1 done") < log.events.index("a2 started")


async def test_a_unit_naming_no_charger_is_written_alone():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    buffer = asyncio.ensure_future(group.run(_buffer_rows, ahead=True, in_savepoint=True, log=log))
    b1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"))
    await asyncio.sleep(0.2)
    # Neither starts beside a1: the buffer's unit waits for no batch to be written, b1 behind it.
    assert log.events == ["a1 started"]
    log.gate.set()
    assert await asyncio.gather(a1, buffer, b1) == ["a1", "buffer", "b1"]
    assert log.events.index("a1 done") < log.events.index("buffer started")


async def test_a_unit_naming_two_chargers_keeps_its_place_before_either_s_later_units():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    on_a = contextvars.copy_context()
    on_a.run(charge_point_id_var.set, "CP-LANE-A")  # its connection's charger; its argument names B
    both = asyncio.get_running_loop().create_task(
        group.run(_written, charge_point_id="CP-LANE-B", log=log, name="ab"), context=on_a
    )
    b1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"))
    c1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-C", log=log, name="c1"))
    assert await asyncio.wait_for(c1, _WAIT_S) == "c1"
    assert "b1 started" not in log.events  # behind "ab", which waits for A
    log.gate.set()
    assert await asyncio.gather(a1, both, b1) == ["a1", "ab", "b1"]
    assert log.events.index("ab done") < log.events.index("b1 started")


async def test_a_buffer_s_unit_locking_other_chargers_is_written_beside_a_batch_being_written():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    # Heartbeats or sightings of B, logged frames (which lock no charger's row): none waits for a1.
    beats = group.run(_buffer_rows, ahead=True, in_savepoint=True, locks=frozenset({"CP-LANE-B"}), log=log, name="b")
    assert await asyncio.wait_for(beats, _WAIT_S) == "b"
    frames = group.run(_buffer_rows, ahead=True, in_savepoint=True, locks=frozenset(), log=log, name="log")
    assert await asyncio.wait_for(frames, _WAIT_S) == "log"
    assert "a1 done" not in log.events
    log.gate.set()
    assert await a1 == "a1"


async def test_a_buffer_s_unit_locking_a_held_charger_waits_for_it_and_keeps_its_place_before_its_later_units():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    beats = asyncio.ensure_future(
        group.run(_buffer_rows, ahead=True, in_savepoint=True, locks=frozenset({"CP-LANE-A", "CP-LANE-B"}), log=log)
    )
    b1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"))
    c1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-C", log=log, name="c1"))
    assert await asyncio.wait_for(c1, _WAIT_S) == "c1"  # another charger's unit is not held back
    await asyncio.sleep(0.1)
    assert "buffer started" not in log.events and "b1 started" not in log.events
    log.gate.set()
    assert await asyncio.gather(a1, beats, b1) == ["a1", "buffer", "b1"]
    assert log.events.index("a1 done") < log.events.index("buffer started") < log.events.index("b1 started")
