"""A group-commit batch's wall time alone and beside a thread that holds the GIL (issue 15, round 32).

In the fleet's rate phase a batch's wall time is 2.7-3.2x its thread's CPU (round 31's probe): the
batch thread gives up the GIL while psycopg waits, and gets it back only when the event loop's
thread gives it up. This runs one-unit batches through the real ``batch_committed`` on PostgreSQL,
first alone, then beside a thread that runs Python in bursts of ``--burst-ms`` with a short sleep
between them (as the event loop runs callbacks between its socket calls), and prints each batch's
wall time (p50/p95/p99, ms) and its thread's CPU, for units of 1 to ``--round-trips`` + 1 plain
statements: the first goes with the batch's BEGIN (one round trip), each other is its own, and
COMMIT goes alone. What the wall time grows by per round trip beside the busy thread is what a
round trip costs a batch under load. The busy thread also takes a core of this machine's: compare
runs of one machine, and repeat them (one run of each case is noisy).

    .venv/bin/python benchmarks/batch_contention.py [--batches 1500] [--burst-ms 0.5] [--round-trips 4]

Needs PostgreSQL (DATABASE_URL, ``harness``'s benchmark database by default); writes no rows. The
batches' metrics go to a directory of the run's own, removed at the end, unless ``CSMS_METRICS_DIR``
names one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import gc
import json
import os
import shutil
import threading
import time
from collections.abc import Callable

OWN_METRICS_DIR = f"/tmp/batch_contention-{os.getpid()}"  # the batches' metrics: not a server's to read
os.environ.setdefault("CSMS_METRICS_DIR", OWN_METRICS_DIR)

import harness  # noqa: E402  (sets up Django: after the metrics directory is chosen)

from kernel.plain_sql import bound_cursor  # noqa: E402
from ocpp_gateway.group_commit import _Unit, batch_committed  # noqa: E402


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def _unit(round_trips: int) -> Callable[[], None]:
    """A unit whose first statement goes with the batch's BEGIN (one round trip), then
    ``round_trips`` more statements, each waiting for its answer."""

    def unit() -> None:
        with bound_cursor() as cursor:
            for n in range(round_trips + 1):
                cursor.execute("SELECT %s::int", [n])
                cursor.fetchone()

    return unit


def _busy(stop: threading.Event, burst_s: float) -> None:
    """Python in bursts of ``burst_s`` (holding the GIL), a 0.1 ms sleep between them (giving it up)."""
    while not stop.is_set():
        started = time.perf_counter()
        while time.perf_counter() - started < burst_s:
            sum(range(50))
        time.sleep(0.0001)


def _batches(unit: Callable[[], None], batches: int, loop: asyncio.AbstractEventLoop) -> dict[str, float]:
    walls: list[float] = []
    cpu = 0.0
    for _ in range(batches):
        wall_at, cpu_at = time.perf_counter(), time.thread_time()
        [(ok, value)] = batch_committed([_Unit(unit, {}, loop.create_future(), contextvars.copy_context())], loop)
        cpu += time.thread_time() - cpu_at
        walls.append((time.perf_counter() - wall_at) * 1000)
        assert ok, value
    latencies = harness.percentiles(walls)
    return {**{key: latencies[key] for key in ("p50_ms", "p95_ms", "p99_ms")}, "cpu_us": round(cpu / batches * 1e6)}


def main(batches: int, burst_ms: float, round_trips: int) -> dict[str, dict[str, dict[str, float]]]:
    gc.freeze()
    loop = asyncio.new_event_loop()  # never run: the batch only needs its futures
    _batches(_unit(0), 10, loop)  # the pool's connections opened, the statements' plans cached
    results: dict[str, dict[str, dict[str, float]]] = {}
    for trips in range(round_trips + 1):
        label = f"{trips + 2} round trips (BEGIN with the first statement, {trips} more, COMMIT)"
        results[label] = {"alone": _batches(_unit(trips), batches, loop)}
        stop = threading.Event()
        busy = threading.Thread(target=_busy, args=(stop, burst_ms / 1000), daemon=True)
        busy.start()
        try:
            results[label]["beside a busy thread"] = _batches(_unit(trips), batches, loop)
        finally:
            stop.set()
            busy.join()
    loop.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=_positive, default=1500, help="batches per measurement")
    parser.add_argument("--burst-ms", type=float, default=0.5, help="the busy thread's bursts holding the GIL")
    parser.add_argument("--round-trips", type=_positive, default=4, help="plain statements after the first, at most")
    try:
        args = parser.parse_args()
        report = {"machine": harness.MACHINE, "options": vars(args), "batches": main(**vars(args))}
        print(json.dumps(report, indent=1))
    finally:
        shutil.rmtree(OWN_METRICS_DIR, ignore_errors=True)
