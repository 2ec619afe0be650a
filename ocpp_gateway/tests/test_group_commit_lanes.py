"""Group commit with two lanes (``CSMS_GROUP_COMMIT_LANES``): a batch of other chargers is written
beside one being written; a charger's units never are in two batches at once, and keep their
order; a unit naming no charger is written alone; a write-behind buffer's unit names the chargers
of its rows, is written beside batches of other chargers while the lanes have room (alone, as one
naming no charger, while they are full) and before its chargers' later units."""

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


def _buffer_rows(*, log: _Log) -> str:
    """A write-behind buffer's unit: it names no charger."""
    log.note("buffer started")
    log.note("buffer done")
    return "buffer"


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


def _named_buffer_rows(*, log: _Log, name: str = "buffer") -> str:
    """A write-behind buffer's unit that names the chargers of its rows (``chargers=``)."""
    log.note(f"{name} started")
    log.note(f"{name} done")
    return name


async def test_a_buffer_s_unit_naming_other_chargers_is_written_beside_a_batch_being_written():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    rows_of_b = frozenset({"CP-LANE-B"})
    buffer = group.run(_named_buffer_rows, ahead=True, in_savepoint=True, chargers=rows_of_b, log=log)
    # Naming no charger, it would wait for a1's batch (written alone): a timeout here.
    assert await asyncio.wait_for(buffer, _WAIT_S) == "buffer"
    assert "a1 done" not in log.events
    log.gate.set()
    assert await a1 == "a1"


async def test_while_a_buffer_s_unit_waits_for_its_charger_other_chargers_go_on_and_its_charger_s_wait_behind_it():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    rows_of_a = frozenset({"CP-LANE-A", "CP-LANE-C"})
    buffer = asyncio.ensure_future(
        group.run(_named_buffer_rows, ahead=True, in_savepoint=True, chargers=rows_of_a, log=log)
    )
    a2 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a2"))
    c1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-C", log=log, name="c1"))
    # The lanes do not drain for it: another charger's unit is written beside a1 (with a buffer's
    # unit naming no charger queued, b1 would wait for a1 and the buffer: a timeout here).
    assert await asyncio.wait_for(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"), _WAIT_S) == "b1"
    await asyncio.sleep(0.1)
    # The buffer's rows are A's too: never beside a1's batch; A's and C's later units wait behind it.
    assert "buffer started" not in log.events
    assert "a2 started" not in log.events and "c1 started" not in log.events
    log.gate.set()
    assert await asyncio.gather(a1, buffer, a2, c1) == ["a1", "buffer", "a2", "c1"]
    assert log.events.index("a1 done") < log.events.index("buffer started")
    assert log.events.index("buffer done") < min(log.events.index("a2 started"), log.events.index("c1 started"))


async def test_a_buffer_s_unit_waiting_for_a_charger_is_not_overtaken_by_a_later_one_naming_its_chargers():
    group, log = CommitGroup(max_units=64, lanes=2), _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")

    def buffer_unit(chargers: set[str], name: str) -> asyncio.Future[str]:
        named = {"chargers": frozenset(chargers), "log": log, "name": name}
        return asyncio.ensure_future(group.run(_named_buffer_rows, ahead=True, in_savepoint=True, **named))

    first = buffer_unit({"CP-LANE-A", "CP-LANE-D"}, "first")
    later = buffer_unit({"CP-LANE-D"}, "later")
    assert await asyncio.wait_for(group.run(_written, charge_point_id="CP-LANE-B", log=log, name="b1"), _WAIT_S) == "b1"
    # D is free, but the first buffer's unit waits for it (and for A): the later one waits behind it,
    # or a buffer refilling could keep the first (and every unit of its chargers) waiting.
    assert "later started" not in log.events
    log.gate.set()
    assert await asyncio.gather(a1, first, later) == ["a1", "first", "later"]
    assert log.events.index("first done") < log.events.index("later started")


_MAX_UNITS = 4


async def _lanes_filled(group: CommitGroup, *, batches: int) -> None:
    """``batches`` full batches of other chargers' units (a saturated process's, as the closed
    loop's): both lanes held while they queue, so that each batch then takes ``max_units`` of them."""
    log = _Log()
    held = [
        asyncio.ensure_future(group.run(_written, charge_point_id=f"CP-FULL-{lane}", log=log, name=lane, held=True))
        for lane in ("x", "y")
    ]
    await _until(lambda: len(log.events) == 2, "both lanes held")
    queued = [
        asyncio.ensure_future(group.run(_written, charge_point_id=f"CP-FULL-{i}", log=log, name=str(i)))
        for i in range(batches * _MAX_UNITS)
    ]
    await asyncio.sleep(0.05)  # every one queued
    log.gate.set()
    await asyncio.gather(*held, *queued)


async def test_while_the_lanes_are_full_a_buffer_s_unit_naming_other_chargers_waits_for_the_batch_being_written():
    group = CommitGroup(max_units=_MAX_UNITS, lanes=2)
    await _lanes_filled(group, batches=8)
    log = _Log()
    a1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-A", log=log, name="a1", held=True))
    await _until(lambda: "a1 started" in log.events, "a1 started")
    rows_of_b = frozenset({"CP-LANE-B"})
    buffer = asyncio.ensure_future(
        group.run(_named_buffer_rows, ahead=True, in_savepoint=True, chargers=rows_of_b, log=log)
    )
    c1 = asyncio.ensure_future(group.run(_written, charge_point_id="CP-LANE-C", log=log, name="c1"))
    await asyncio.sleep(0.2)
    # Saturated, the lanes drain for it (beside a1 it would have started): the units queued behind
    # it wait too, and go in one batch with it once a1's is written.
    assert log.events == ["a1 started"]
    log.gate.set()
    assert await asyncio.gather(a1, buffer, c1) == ["a1", "buffer", "c1"]
    assert log.events.index("a1 done") < log.events.index("buffer started")
