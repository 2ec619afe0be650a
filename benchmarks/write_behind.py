"""A write-behind buffer's unit in a group-commit batch: the batch thread's CPU and statements per message.

Each measured batch is built as in a busy gateway: MESSAGES acknowledged units (``meter_values_record``
of a 1.6 reading, one per charger, each gathering its samples and its session's update), with one
buffer unit queued among them after the first half, its rows those of the real buffers (in turn: the
message log's frames, 2.5 per message; the chargers' sightings; their heartbeats). A blocker holds
the process's ``CommitGroup`` while the batch queues, so each batch is exactly those units. Two sides,
alternated ABBA in one process, ROUNDS rounds of BATCHES batches a side:

- ``ahead``: the buffer's unit queued ``ahead`` (this checkout's buffers): first in its batch;
- ``in place``: queued where it arrived (the base's buffers): after half the batch's units, so the
  batch writes what they gathered before the unit's savepoint, and the rest after the last unit;
- ``none``: the same batch without the buffer's unit (what the unit itself costs: ``ahead`` - ``none``).

Prints and writes the batch thread's CPU (``thread_time`` in ``batch_committed``) per acknowledged
message, PostgreSQL's, and the statements psycopg sent per batch (execute, executemany, COPY); and
per kind of buffer, the batch thread's µs per batch.

    .venv/bin/python benchmarks/write_behind.py --chargers 63 --rounds 8 --batches 6 --json out.json

Needs a migrated database of its own (DATABASE_URL); it adds chargers named ``WB-<run>-<n>``.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness
import statements

from asgiref.sync import sync_to_async

from chargepoints.services import LoggedFrame, ReceivedHeartbeat, charge_point_register
from chargepoints.services.liveness import Sighting
from charging.services.meter_ledger import meter_values_record
from charging.services.open_sessions import open_sessions_bind
from charging.services.transaction_start import transaction_start
from ocpp_gateway.buffers import WriteBehindBuffer
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.sightings import sightings
from ocpp_gateway.v16.transactions import sampled_values as sampled16

_FRAME = '[2,"{uid}","MeterValues",{{"connectorId":1,"transactionId":{tx},"meterValue":[{{"timestamp":"{at}",'
_FRAME += '"sampledValue":[{{"value":"{wh}","measurand":"Energy.Active.Import.Register"}}]}}]}}]'


def _buffer_rows(kind: int, names: list[str], at: datetime) -> tuple[WriteBehindBuffer[Any], list[Any]]:
    """The buffer of turn ``kind`` (log, sightings, heartbeats) and its rows for ``names``' messages."""
    if kind == 0:
        frames = []
        for n, name in enumerate(names):
            text = _FRAME.format(uid=uuid.uuid4().hex, tx=n, at=at.isoformat(), wh=1000 + n)
            frames.append(LoggedFrame(name, "in", text, at, 2, uuid.uuid4().hex, "MeterValues"))
            frames.append(LoggedFrame(name, "out", '[3,"x",{}]', at, 3, uuid.uuid4().hex, "MeterValues"))
            if n % 2 == 0:
                frames.append(LoggedFrame(name, "in", '[2,"y","Heartbeat",{}]', at, 2, uuid.uuid4().hex, "Heartbeat"))
        return message_log, frames
    if kind == 1:
        return sightings, [Sighting(charge_point_id=name, channel_name="bench", at=at) for name in names]
    return heartbeats, [ReceivedHeartbeat(charge_point_id=name, received_at=at) for name in names]


async def _batch(
    group: CommitGroup,
    contexts: list[contextvars.Context],
    reading: Callable[[int], dict[str, Any]],
    buffer: tuple[WriteBehindBuffer[Any], list[Any]],
    ahead: bool | None,
) -> tuple[int, float, float]:
    """One batch (``ahead`` None: without the buffer's unit): (statements, batch-thread CPU s, PostgreSQL CPU s)."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    blocker = asyncio.ensure_future(group.run(release.wait, timeout=5))
    await asyncio.sleep(0.01)
    half = len(contexts) // 2
    queued = []
    write, rows = buffer
    batch_at, database_at = statements._batch_cpu[0], harness.database_cpu_seconds()
    with statements.statements_counted() as sent:
        for n, context in enumerate(contexts):
            if n == half and ahead is not None:
                buffered = group.run(write._rows_written, in_savepoint=True, ahead=ahead, rows=rows)
                queued.append(loop.create_task(buffered, context=contextvars.Context()))
            queued.append(loop.create_task(group.run(meter_values_record, **reading(n)), context=context))
        release.set()
        await blocker
        await asyncio.gather(*queued)
        count = sent[0]
    return count, statements._batch_cpu[0] - batch_at, harness.database_cpu_seconds() - database_at


async def main(chargers: int, rounds: int, batches: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    names = [f"WB-{run}-{n}" for n in range(chargers)]
    await sync_to_async(lambda: [charge_point_register(charge_point_id=n, heartbeat_interval=60) for n in names])()
    contexts = []
    for _ in names:
        context = contextvars.copy_context()
        context.run(open_sessions_bind)
        contexts.append(context)
    group = CommitGroup(max_units=chargers + 2)  # the batch, its buffer unit and the blocker's room
    await statements._listening()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    started = []
    for n, name in enumerate(names):
        request = statements.start_request16(name, t0)
        started.append(
            asyncio.get_running_loop().create_task(group.run(transaction_start, request=request), context=contexts[n])
        )
    pks = [result.transaction.pk for result in await asyncio.gather(*started)]
    minute = [0]

    def reading(n: int) -> dict[str, Any]:
        at = t0 + timedelta(seconds=minute[0])
        samples = sampled16(statements._reading16(1000 + minute[0], at))
        return {"charge_point_id": names[n], "connector_id": 1, "ocpp_transaction_id": str(pks[n]), "samples": samples}

    ahead_of = {"ahead": True, "in place": False, "none": None}
    sides: dict[str, list[dict[str, float]]] = {side: [] for side in ahead_of}
    for round_ in range(rounds + 1):  # the first a warm-up, not kept
        order = list(ahead_of) if round_ % 2 == 0 else list(ahead_of)[::-1]
        for side in order:
            spent = [0, 0.0, 0.0]
            per_kind = [0.0, 0.0, 0.0]
            for b in range(batches):
                minute[0] += 1
                buffer = _buffer_rows(b % 3, names, datetime.now(UTC))
                sent, batch_cpu, database_cpu = await _batch(group, contexts, reading, buffer, ahead_of[side])
                spent = [spent[0] + sent, spent[1] + batch_cpu, spent[2] + database_cpu]
                per_kind[b % 3] += batch_cpu / len(range(b % 3, batches, 3))
            if round_:
                messages = batches * chargers
                figures = {
                    "statements_per_batch": spent[0] / batches,
                    "batch_us_per_message": spent[1] / messages * 1e6,
                    "pg_us_per_message": spent[2] / messages * 1e6,
                }
                for kind, name in enumerate(("log", "sightings", "heartbeats")):
                    figures[f"batch_us_per_batch_{name}"] = per_kind[kind] * 1e6
                sides[side].append(figures)
    for side, found in sides.items():
        medians = {key: statistics.median(r[key] for r in found) for key in found[0]}
        print(f"{side:9s} " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    pairs = zip(sides["ahead"], sides["in place"], strict=True)
    ratios = [a["batch_us_per_message"] / b["batch_us_per_message"] for a, b in pairs]
    print(f"ahead / in place, batch thread per message, per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"rounds ahead lower: {sum(r < 1 for r in ratios)} of {len(ratios)}")
    return {"sides": sides, "ratios": ratios, "chargers": chargers, "batches": batches}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=63, help="acknowledged messages a batch (one per charger)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds a side, after one warm-up round")
    parser.add_argument("--batches", type=int, default=6, help="batches a side per round")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    gc.freeze()  # as csms/asgi.py
    gc.set_threshold(20_000, 20, 10)
    statements._batch_thread_timed()
    started_at = time.monotonic()
    result = asyncio.run(main(args.chargers, args.rounds, args.batches))
    result["seconds"] = time.monotonic() - started_at
    args.json.write_text(json.dumps(result, indent=1))
