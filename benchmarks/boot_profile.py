"""A first BootNotification's profile lookup (``OcppRouter._current_profile``), in process.

A charger's first-ever connect loads no model at its handshake (it never booted), so its first Boot
looks its model's profile up. This runs that lookup for ``--chargers`` routers at once, ``--rounds``
times, in a process that listens to ``kernel.cache_changes`` as a gateway process does, on the
database of ``DATABASE_URL`` (the fleet's chargers name no profile: strict). Prints the process's
CPU µs per lookup (every thread: the event loop, the database thread) and PostgreSQL's, the best
of ``--passes`` passes.

    .venv/bin/python benchmarks/boot_profile.py --chargers 200 --rounds 10
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import harness  # Django

from ocpp.messages import Call

from chargepoints.selectors import STRICT_PROFILE
from kernel import cache_changes
from ocpp_gateway.versions import ROUTERS

BOOT16 = {"chargePointVendor": "Bench", "chargePointModel": "Fleet16"}


async def _pass(chargers: int, rounds: int) -> tuple[float, float]:
    """(process CPU µs, PostgreSQL CPU µs) per lookup over ``rounds`` rounds of ``chargers`` at once."""
    cpu, database = time.process_time(), harness.database_cpu_seconds()
    for round_ in range(rounds):
        routers = []
        for n in range(chargers):
            router = ROUTERS["1.6"](f"BENCH-PROFILE-{n}", connection=None)
            router.state_loaded(commissioned=True, profile=STRICT_PROFILE)  # a first connect: no model yet
            routers.append(router)
        await asyncio.gather(
            *(router._current_profile(Call(f"b{round_}", "BootNotification", BOOT16)) for router in routers)
        )
    lookups = chargers * rounds
    return (
        (time.process_time() - cpu) / lookups * 1e6,
        (harness.database_cpu_seconds() - database) / lookups * 1e6,
    )


async def main(chargers: int, rounds: int, passes: int) -> dict[str, float]:
    cache_changes.listener_started()
    deadline = time.monotonic() + 5
    while not cache_changes.listening() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await _pass(chargers, 1)  # warm: the database threads, the pool, the first read
    results = [await _pass(chargers, rounds) for _ in range(passes)]
    best = min(results)
    return {"process_cpu_us_per_lookup": round(best[0], 1), "database_cpu_us_per_lookup": round(best[1], 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = asyncio.run(main(args.chargers, args.rounds, args.passes))
    print(json.dumps(result))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"benchmark": "boot_profile", "options": vars(args) | {"json": str(args.json)}, **result}, indent=1
            )
        )
