"""Python heap per OCPP router (one per connected charger), measured with tracemalloc.

Builds ROUTERS routers of each version on one event loop, as the consumer does at connect, and
prints the bytes traced per router: the router's own share of a connection's memory (the
consumer, daphne's protocol and the socket buffers come on top; issue 15 allows 35 KB RSS per idle
connection in all).

    .venv/bin/python benchmarks/router_memory.py --routers 2000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc

import harness  # noqa: F401  (Django)

from ocpp_gateway.versions import ROUTERS


class Connection:
    async def send(self, text_data: str) -> None: ...


async def bytes_per_router(router_class: type, count: int) -> float:
    connections = [Connection() for _ in range(count)]
    router_class("WARM-UP", connections[0])
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    routers = [router_class(f"BENCH-R-{n}", connection) for n, connection in enumerate(connections)]
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    traced = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    del routers
    return traced / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--routers", type=int, default=2000)
    args = parser.parse_args()
    for version, router_class in ROUTERS.items():
        per_router = await bytes_per_router(router_class, args.routers)
        print(
            f"OCPP {version}: {per_router:.0f} bytes per {router_class.__name__} ({len(router_class.route_map)} routes)"
        )


if __name__ == "__main__":
    asyncio.run(main())
