"""A write-behind buffer's units go ``ahead`` of the waiting messages, yet cannot starve them: a
buffer has one unit in the commit group at a time (its next waits for that one's commit), so each
batch carries at most one unit per buffer and the rest of the batch is the waiting messages'."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from ocpp_gateway import buffers
from ocpp_gateway.buffers import WriteBehindBuffer
from ocpp_gateway.group_commit import CommitGroup

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_buffer_pouring_rows_takes_one_place_per_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []

    def noted(name: str) -> None:
        runs.append(name)

    group = CommitGroup(max_units=4)
    monkeypatch.setattr(buffers, "commit_group", group)
    buffer: WriteBehindBuffer[int] = WriteBehindBuffer(
        name="probe", write=lambda rows: runs.extend(f"row {row}" for row in rows), flush_seconds=lambda: 0, max_batch=2
    )
    release = threading.Event()
    blocker = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.05)
    for row in range(12):  # six buffer units' worth, all waiting while the first batch is held
        buffer.add(row)
    waiting = [asyncio.ensure_future(group.run(noted, name=f"message {n}")) for n in range(6)]
    await asyncio.sleep(0.05)
    release.set()
    await blocker
    await asyncio.gather(*waiting)
    await buffer.flush()
    # The buffer's first unit went ahead of the waiting messages; its later ones did not push them
    # back: every message ran within the next two batches, before the buffer's third unit.
    assert runs[:2] == ["row 0", "row 1"]
    assert sorted(runs) == sorted([f"row {row}" for row in range(12)] + [f"message {n}" for n in range(6)])
    assert max(runs.index(f"message {n}") for n in range(6)) < runs.index("row 4")


async def test_a_buffer_fed_without_pause_writes_once_a_window_not_once_a_batch() -> None:
    """Rows added while a window's rows are being written wait for the next window: a busy process
    writes a buffer once a window (each buffer unit makes its batch one written alone, both lanes
    drained first), not again as soon as its last unit committed. Nothing added is lost."""
    window = 0.1
    writes: list[list[int]] = []

    def write(rows: list[int]) -> None:
        writes.append(rows)
        time.sleep(0.02)  # a write takes a while: rows keep coming meanwhile

    buffer: WriteBehindBuffer[int] = WriteBehindBuffer(
        name="probe", write=write, flush_seconds=lambda: window, max_batch=1000
    )
    started = time.monotonic()
    for row in range(120):  # a row every 5 ms: a charger fleet's log frames, without pause
        buffer.add(row)
        await asyncio.sleep(0.005)
    fed_for = time.monotonic() - started
    while len(buffer):
        await asyncio.sleep(window)
    await buffer.flush()  # the window being written, if any
    assert sorted(row for rows in writes for row in rows) == list(range(120))
    assert len(writes) <= fed_for / window + 2


async def test_a_window_ends_once_max_batch_rows_wait() -> None:
    """A buffer writes at the end of its window or as soon as ``max_batch`` rows wait, whichever
    comes first (README: heartbeats "at most this late, or once 500 wait")."""
    writes: list[list[int]] = []
    buffer: WriteBehindBuffer[int] = WriteBehindBuffer(
        name="probe", write=writes.append, flush_seconds=lambda: 60, max_batch=10
    )
    for row in range(9):
        buffer.add(row)
    await asyncio.sleep(0.2)
    assert writes == []  # the window is a minute
    buffer.add(9)
    async with asyncio.timeout(10):
        while not writes:
            await asyncio.sleep(0.01)
    assert writes == [list(range(10))]
