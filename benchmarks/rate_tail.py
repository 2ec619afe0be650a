"""The rate phase's latency in process: acknowledged readings at RATE/s beside the write-behind buffers.

CHARGERS chargers with open sessions each send a 1.6 MeterValues reading (``meter_values_record``
in the process's commit group, on the charger's connection context) at RATE messages/s in all,
open loop (each charger at its own random phase); each message also adds what the gateway's would
to the real write-behind buffers: two message-log frames (in and out), a heartbeat row every
ninth message, a sighting per charger every five seconds; and spends LOOP_US of the event loop's
CPU (the frame's parsing, validation and answer). A message's latency is from its arrival to its
unit's result (the batch committed). Sides (the settings named below) alternate in blocks of
SECONDS, ABBA, in one process; between blocks every unit is answered and the buffers flushed.

    .venv/bin/python benchmarks/rate_tail.py --chargers 1000 --rate 1000 --seconds 3 --rounds 6 --json out.json

Needs a migrated database of its own (DATABASE_URL); it adds chargers named ``RT-<run>-<n>``.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import random
import statistics
import time
import uuid
from operator import attrgetter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # noqa: F401  (Django)
import statements

from asgiref.sync import sync_to_async

from chargepoints.services import LoggedFrame, ReceivedHeartbeat, charge_point_register
from chargepoints.services.liveness import Sighting
from charging.services.meter_ledger import meter_values_record
from charging.services.open_sessions import open_sessions_bind
from charging.services.transaction_start import transaction_start
from kernel.log_format import charge_point_id_var
from ocpp_gateway.group_commit import commit_group
from ocpp_gateway.heartbeats import heartbeats
from ocpp_gateway.message_log import message_log
from ocpp_gateway.sightings import sightings
from ocpp_gateway.v16.transactions import sampled_values as sampled16

BUFFERS = (message_log, sightings, heartbeats)
CHARGER_OF = attrgetter("charge_point_id")
# what a buffer's unit names: its rows' chargers (this checkout), or none (the base: written alone)
SIDES = {"named": CHARGER_OF, "unnamed": None}


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


async def main(args: argparse.Namespace) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    names = [f"RT-{run}-{n}" for n in range(args.chargers)]
    await sync_to_async(lambda: [charge_point_register(charge_point_id=n, heartbeat_interval=60) for n in names])()
    contexts = []
    for name in names:
        context = contextvars.copy_context()
        context.run(open_sessions_bind)
        context.run(charge_point_id_var.set, name)
        contexts.append(context)
    loop = asyncio.get_running_loop()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    started = []
    for n, name in enumerate(names):
        request = statements.start_request16(name, t0)
        started.append(loop.create_task(commit_group.run(transaction_start, request=request), context=contexts[n]))
    await statements._listening()
    pks = [result.transaction.pk for result in await asyncio.gather(*started)]
    sent = [0] * len(names)
    seen_at = [0.0] * len(names)

    async def message(n: int, latencies: list[float]) -> None:
        arrived = time.perf_counter()
        now = datetime.now(UTC)
        sent[n] += 1
        name = names[n]
        _spin(args.loop_us / 2 / 1e6)
        message_log.add(
            LoggedFrame(name, "in", _frame(n, pks[n], now, sent[n]), now, 2, uuid.uuid4().hex, "MeterValues")
        )
        if sent[n] % 9 == 0:
            heartbeats.add(ReceivedHeartbeat(charge_point_id=name, received_at=now))
        if arrived - seen_at[n] >= 5:
            seen_at[n] = arrived
            sightings.add(Sighting(charge_point_id=name, channel_name="bench", at=now))
        at = t0 + timedelta(seconds=sent[n])
        samples = sampled16(statements._reading16(1000 + sent[n], at))
        await commit_group.run(
            meter_values_record, charge_point_id=name, connector_id=1, ocpp_transaction_id=str(pks[n]), samples=samples
        )
        _spin(args.loop_us / 2 / 1e6)
        message_log.add(LoggedFrame(name, "out", '[3,"x",{}]', now, 3, uuid.uuid4().hex, "MeterValues"))
        latencies.append((time.perf_counter() - arrived) * 1000)

    async def block(seconds: float) -> list[float]:
        latencies: list[float] = []
        tasks: list[asyncio.Task[None]] = []
        interval = len(names) / args.rate
        start = time.perf_counter()
        due = sorted((start + random.random() * interval, n) for n in range(len(names)))
        heap = due
        import heapq

        heapq.heapify(heap)
        while heap:
            at, n = heapq.heappop(heap)
            if at - start >= seconds:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(message(n, latencies), context=contexts[n]))
            heapq.heappush(heap, (at + interval, n))
        await asyncio.gather(*tasks)
        for buffer in BUFFERS:
            await buffer.flush()
        return latencies

    flushes = [0]
    for buffer in BUFFERS:
        buffer._write_batch = _counted(buffer._write_batch, flushes)  # type: ignore[method-assign]
    await block(2)  # warm-up
    sides: dict[str, list[dict[str, float]]] = {side: [] for side in args.sides}
    pooled: dict[str, list[float]] = {side: [] for side in args.sides}
    passes: list[float] = []

    def collected(phase: str, info: dict[str, Any]) -> None:
        passes.append(time.perf_counter() if phase == "start" else -time.perf_counter())

    gc.callbacks.append(collected)
    for round_ in range(args.rounds):
        order = args.sides if round_ % 2 == 0 else args.sides[::-1]
        for side in order:
            for buffer in BUFFERS:
                buffer._charger_of = SIDES[side]
            cpu = time.process_time()
            passes.clear()
            flushes[0] = 0
            latencies = sorted(await block(args.seconds))
            cpu = time.process_time() - cpu
            pooled[side] += latencies
            gc_ms = -sum(passes) * 1000 if len(passes) % 2 == 0 else 0.0  # each pass: end - start
            figures = {
                "n": len(latencies),
                "p50": latencies[len(latencies) // 2],
                "p90": latencies[int(len(latencies) * 0.9)],
                "p99": latencies[int(len(latencies) * 0.99)],
                "max": latencies[-1],
                "cpu_us_per_msg": cpu / len(latencies) * 1e6,
                "buffer_units_per_s": flushes[0] / args.seconds,
                "gc_passes": len(passes) / 2,
                "gc_ms": gc_ms,
            }
            sides[side].append(figures)
            print(round_, f"{side:11s}", ", ".join(f"{k} {v:.1f}" for k, v in figures.items()), flush=True)
    for side, found in sides.items():
        medians = {key: statistics.median(r[key] for r in found) for key in found[0]}
        print(f"{side:11s} median " + ", ".join(f"{key} {value:.1f}" for key, value in medians.items()))
    for side, found in pooled.items():
        found.sort()
        print(
            f"{side:11s} pooled p50 {found[len(found) // 2]:.1f} p99 {found[int(len(found) * 0.99)]:.1f} p99.9 {found[int(len(found) * 0.999)]:.1f}"
        )
    base = args.sides[0]
    for side in args.sides[1:]:
        ratios = [a["p99"] / b["p99"] for a, b in zip(sides[side], sides[base], strict=True)]
        print(
            f"{side} / {base} p99 per round: {', '.join(f'{r:.2f}' for r in ratios)}; lower {sum(r < 1 for r in ratios)} of {len(ratios)}"
        )
    return {"sides": sides, "args": {k: v for k, v in vars(args).items() if k != "json"}}


def _counted(write: Any, flushes: list[int]) -> Any:
    def counted(batch: list[Any]) -> None:
        flushes[0] += 1
        write(batch)

    return counted


def _frame(n: int, tx: int, at: datetime, seq: int) -> str:
    return (
        f'[2,"{uuid.uuid4().hex}","MeterValues",{{"connectorId":1,"transactionId":{tx},"meterValue":[{{"timestamp":'
        f'"{at.isoformat()}","sampledValue":[{{"value":"{1000 + seq}","measurand":"Energy.Active.Import.Register"}}]}}]}}]'
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1000, help="messages/s offered")
    parser.add_argument("--seconds", type=float, default=3, help="seconds a block")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--loop-us", type=float, default=120, help="event-loop CPU spent per message")
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=list(SIDES))
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    gc.freeze()  # as csms/asgi.py
    gc.set_threshold(20_000, 20, 10)
    started_at = time.monotonic()
    result = asyncio.run(main(args))
    result["seconds"] = time.monotonic() - started_at
    args.json.write_text(json.dumps(result, indent=1))
