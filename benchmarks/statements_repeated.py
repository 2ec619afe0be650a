"""statements.py's batch-thread CPU per message, its phases run several times in one process.

``statements.py --cpu`` runs each phase once in a fresh process: the first batches of a kind pay
its one-time costs (caches, prepared statements), and one phase per kind is a few batches, so two
runs of the same code differ by 10-20 %. This runs ``statements.main`` ITERATIONS times in one
process, with the collector settings of the gateway's processes (``csms/asgi.py``: ``gc.freeze()``,
``gc.set_threshold(20_000, 20, 10)``), and writes every run but the first (a warm-up) to OUT:
``[{"batch_us": {label: µs per message}, "pg_us": {...}}, ...]``. Runs against any commit's
``statements.py`` (a before checkout's too).

    .venv/bin/python benchmarks/statements_repeated.py --chargers 300 --readings 3 --iterations 3 --json out.json

``--max-units N``: batches of at most N units (64 by default); few, and a batch's fixed part shows.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import statements


def runs(chargers: int, readings: int, iterations: int, max_units: int = 64) -> list[dict[str, dict[str, float]]]:
    """Each run's batch-thread and PostgreSQL CPU µs per message, the first (a warm-up) left out."""
    gc.freeze()  # as csms/asgi.py, once Django and the benchmark are loaded
    gc.set_threshold(20_000, 20, 10)
    statements._batch_thread_timed()
    found: list[dict[str, dict[str, float]]] = []
    for _ in range(iterations):
        for per_message in (statements.cpu_us, statements.batch_us, statements.database_us):
            per_message.clear()
        asyncio.run(statements.main(chargers, readings, max_units))
        found.append({"batch_us": dict(statements.batch_us), "pg_us": dict(statements.database_us)})
    return found[1:]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=300)
    parser.add_argument("--readings", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=3, help="runs in this process, the first a warm-up")
    parser.add_argument("--max-units", type=int, default=64, help="units per batch at most (few: its fixed part shows)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    result: Any = runs(args.chargers, args.readings, args.iterations, args.max_units)
    args.json.write_text(json.dumps(result, indent=1))
    for label, value in result[-1]["batch_us"].items():
        print(f"{label:70s} {value:8.0f} µs")
