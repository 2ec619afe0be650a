"""The write-behind buffers name the chargers whose rows their writes lock (``locks``): the commit
group writes a buffer's unit beside batches of other chargers on that word, so it must be the
database's. Each buffer's write runs in a transaction on real PostgreSQL; another connection then
asks for each charger's row as strongly as a row can be locked (``FOR UPDATE NOWAIT``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction

from chargepoints.models import OcppMessage
from chargepoints.services import LoggedFrame, ReceivedHeartbeat
from chargepoints.services.liveness import Sighting
from ocpp_gateway import buffers
from ocpp_gateway.buffers import WriteBehindBuffer
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.sightings import sightings

pytestmark = pytest.mark.django_db(transaction=True)

_AT = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
_ROWS: dict[str, list[Any]] = {
    "OCPP log frame": [
        LoggedFrame(charge_point_id="CP-LOCK-A", direction="in", frame='[2,"1","Heartbeat",{}]', created_at=_AT)
    ],
    "heartbeat": [ReceivedHeartbeat(charge_point_id="CP-LOCK-A", received_at=_AT)],
    "last_seen": [Sighting(charge_point_id="CP-LOCK-A", channel_name="specific.lock!a", at=_AT)],
}


@pytest.fixture(autouse=True)
def _postgresql_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")


@pytest.mark.parametrize("buffer", [message_log, heartbeats, sightings], ids=lambda buffer: buffer.name)
def test_a_buffer_s_write_locks_the_rows_of_the_chargers_it_names_and_of_no_other(
    buffer: WriteBehindBuffer[Any],
    register_charge_point: Callable[..., Any],
    charger_locked_elsewhere: Callable[[str], bool],
) -> None:
    register_charge_point("CP-LOCK-A")
    register_charge_point("CP-LOCK-B")
    rows = _ROWS[buffer.name]
    with transaction.atomic():
        buffer._write(rows)  # what its unit runs in a batch (``_rows_written``)
        locked = {name for name in ("CP-LOCK-A", "CP-LOCK-B") if charger_locked_elsewhere(name)}
    assert buffer._chargers_locked(rows) == locked
    if buffer is message_log:
        assert OcppMessage.objects.filter(charge_point__charge_point_id="CP-LOCK-A").count() == 1


async def test_a_buffer_s_flush_is_written_beside_a_batch_of_another_charger(monkeypatch: pytest.MonkeyPatch) -> None:
    """A buffer whose rows lock no charger's row (logged frames) flushes while a batch is held open."""
    group, gate = CommitGroup(max_units=64, lanes=2), threading.Event()
    monkeypatch.setattr(buffers, "commit_group", group)

    def held(*, charge_point_id: str) -> None:
        assert gate.wait(10)

    batch = asyncio.ensure_future(group.run(held, charge_point_id="CP-LOCK-HELD"))
    try:
        await asyncio.sleep(0.05)
        written: list[str] = []
        frames: WriteBehindBuffer[str] = WriteBehindBuffer(
            name="probe", write=written.extend, flush_seconds=lambda: 60, max_batch=10, locks=lambda rows: frozenset()
        )
        frames.add("frame")
        await asyncio.wait_for(frames.flush(), 10)  # without ``locks``: it waits for the held batch
        assert written == ["frame"] and not batch.done()
    finally:
        gate.set()
        await batch
