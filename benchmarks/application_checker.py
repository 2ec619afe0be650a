"""daphne's application checker at N open connections, in process: daphne 4.2.3's own (every
connection, every second) against ``kernel.daphne_server.application_checked`` (the connections that
ended). Prints each one's CPU µs per check, the best of ``--passes`` of ``--checks`` checks, with
``--connections`` connections whose application runs (an idle fleet, or the chargers a connect phase
has brought up so far).

    .venv/bin/python benchmarks/application_checker.py --connections 5000
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import harness  # noqa: F401  (Django)

import daphne.server  # installs the asyncio reactor, as daphne's command line does
from daphne import cli

from kernel import daphne_server


async def main(connections: int, checks: int, passes: int) -> dict[str, float]:
    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(application=None, endpoints=["tcp:0"], signal_handlers=False)
    server.connections = {}

    async def running(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    server.application = running
    for n in range(connections):
        server.protocol_connected(f"protocol-{n}")
        server.create_application(f"protocol-{n}", {"type": "http"})
    await asyncio.sleep(0)
    reactor = daphne.server.reactor
    call_later, reactor.callLater = reactor.callLater, lambda *_: None  # no rescheduling
    try:
        timings = {
            "daphne_us_per_check": lambda: daphne.server.Server.application_checker(server),
            "ours_us_per_check": lambda: daphne_server.application_checked(server),
        }
        result = {}
        for name, check in timings.items():
            best = float("inf")
            for _ in range(passes):
                started = time.process_time()
                for _ in range(checks):
                    check()
                best = min(best, (time.process_time() - started) / checks * 1e6)
            result[name] = round(best, 1)
        return result
    finally:
        reactor.callLater = call_later
        for details in server.connections.values():
            details["application_instance"].cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--checks", type=int, default=50)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    print(
        json.dumps({"connections": args.connections, **asyncio.run(main(args.connections, args.checks, args.passes))})
    )
