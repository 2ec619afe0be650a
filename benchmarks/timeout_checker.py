"""daphne's timeout checker at N open WebSocket connections, in process: daphne 4.2.3's own (every
connection's ``check_timeouts``, every 2 s) against ``kernel.daphne_server.timeouts_checked`` (the
connections whose check may act). Prints each one's CPU µs per tick, the best of ``--passes``, each
pass ``--ticks`` ticks 2 s apart on a simulated clock, and the pings each sent (the same).

The connections are daphne's ``WebSocketProtocol`` objects, open, their last message or ping spread
over the last ``ping_interval`` (an idle fleet, or one between messages; ``--spread 2 --ticks 5``:
a connect burst's, none silent long enough for a ping); a ping is counted, not
written (``_sendAutoPing`` replaced; daphne's check then notes it as sent, as after a real one).

    .venv/bin/python benchmarks/timeout_checker.py --connections 5000
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any

import harness  # noqa: F401  (Django)

import daphne.server  # installs the asyncio reactor, as daphne's command line does
from daphne import cli
from daphne.ws_protocol import WebSocketProtocol

from kernel import daphne_server


TICK = 2.001  # s: daphne reschedules its check 2 s after the last one ended, never exactly 2 s later


def _fleet(server: Any, connections: int, now: float, pings: list[int], spread: float) -> None:
    def ping(protocol: Any) -> None:
        pings[0] += 1

    server.connections = {}
    for _ in range(connections):
        protocol = WebSocketProtocol.__new__(WebSocketProtocol)
        protocol.server, protocol.state = server, WebSocketProtocol.STATE_OPEN
        protocol.socket_opened = now - server.ping_interval
        protocol.last_ping = now - random.uniform(0, spread or server.ping_interval)
        protocol._sendAutoPing = ping.__get__(protocol)
        server.protocol_connected(protocol)


def main(connections: int, ticks: int, passes: int, spread: float = 0) -> dict[str, float]:
    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(application=None, endpoints=["tcp:0"], signal_handlers=False)
    reactor = daphne.server.reactor
    call_later, reactor.callLater = reactor.callLater, lambda *_: None  # no rescheduling
    real_time, clock = time.time, [time.time()]
    time.time = lambda: clock[0]  # daphne's checks read time.time()
    checkers = {
        "daphne": lambda: daphne.server.Server.timeout_checker(server),
        "ours": lambda: daphne_server.timeouts_checked(server),
    }
    result: dict[str, float] = {}
    try:
        for name, check in checkers.items():
            best, pinged = float("inf"), 0
            for _ in range(passes):
                random.seed(1)
                pings = [0]
                server.timeout_checks = daphne_server.TimeoutChecks()
                _fleet(server, connections, clock[0], pings, spread)
                clock[0] += TICK
                check()  # the first tick files every connection under its time (ours)
                pings[0] = 0
                started = time.process_time()
                for _ in range(ticks):
                    clock[0] += TICK
                    check()
                best = min(best, (time.process_time() - started) / ticks * 1e6)
                pinged = pings[0]
            result[f"{name}_us_per_tick"] = round(best, 1)
            result[f"{name}_pings"] = pinged
        return result
    finally:
        reactor.callLater = call_later
        time.time = real_time


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--spread", type=float, default=0, help="last messages spread over this many s (0: the ping interval)"
    )
    args = parser.parse_args()
    print(json.dumps({"connections": args.connections, **main(args.connections, args.ticks, args.passes, args.spread)}))
