"""Reconnect storm: N booted chargers lose their server at once and all come back at once.

Registers CHARGERS chargers (``BENCH-F-<n>``, half OCPP 1.6, half 2.0.1), starts one daphne
(or --server uvicorn) process, or with ``--workers N`` ``make serve``'s N daphne workers sharing the
port with SO_REUSEPORT (scripts/serve.py), on PostgreSQL + Redis (loopback), connects and boots every
charger, then kills it (SIGKILL: no goodbye, the database still says "connected") and starts a
new one. Meanwhile every charger retries like a real fleet after a CSMS restart (0.5-1.5 s while
refused, after the server's ``Retry-After`` when a handshake is answered 503, exponential back-off
after any other failed handshake; ``--ignore-retry-after``: back-off after a 503 too). Measured
from the moment the new server listens (with ``--workers``, when scripts/serve.py has bound the
port: its workers' start-up counts; the time from its start to listening is
``listening_after_start_s``): the time until all N are booted again, the handshake errors
after it listens (refused connections before it listens are counted apart), and the Boot latencies.

    .venv/bin/python benchmarks/reconnect_storm.py                  # 10,000 chargers, about 1-2 minutes
    .venv/bin/python benchmarks/reconnect_storm.py --chargers 500
    .venv/bin/python benchmarks/reconnect_storm.py --workers 2       # the production shape on 2 cores

Bounded: the storm phase gives up after --max-seconds.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from harness import (  # also sets up Django
    MACHINE,
    ROOT,
    SERVERS,
    live_cpu_seconds,
    percentiles,
    process_tree,
    server_log_problems,
    versions,
)

import loadgen
from fleet import prepare

PORT = 18120


class ListenWatch(threading.Thread):
    """Records when the port starts accepting TCP connections (every 10 ms)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.listening_at = port, 0.0

    def run(self) -> None:
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.listening_at = time.monotonic()
                return
            except OSError:
                time.sleep(0.01)


def booted_per(done: list[float], width: float) -> list[int]:
    """How many chargers booted in each ``width`` seconds after listening (``done``: sorted seconds)."""
    counts = [0] * (int(done[-1] // width) + 1) if done else []
    for at in done:
        counts[max(0, int(at // width))] += 1
    return counts


def storm(args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    var_dir = tempfile.mkdtemp(prefix="csms-bench-")
    start_server = SERVERS[args.server]
    server = start_server(args.port, var_dir, backlog=args.backlog)
    fleet = loadgen.Fleet(fleet_ids, [args.port], args.generators)
    result: dict[str, Any] = {"chargers": len(fleet_ids), "server": args.server, "server_log_dir": var_dir}
    try:
        connect = fleet.run(
            "connect", concurrency=args.handshakes, retries=2, seconds=args.connect_seconds, join_mix=False
        )
        result["initial_connect"] = {
            "seconds": round(connect.seconds, 2),
            "booted": connect.count["booted"],
            "handshake_errors": connect.count["handshake_errors"],
        }
        for pid in reversed(process_tree(server.pid)):  # serve: its workers die with it
            os.kill(pid, signal.SIGKILL)
        server.wait()
        fleet.run("abandon")
        watch = ListenWatch(args.port)
        fleet.start(
            "storm", deadline=time.monotonic() + args.max_seconds, honour_retry_after=not args.ignore_retry_after
        )
        time.sleep(1)  # the fleet is already hammering a closed port
        watch.start()
        starting_at, load_at_start = time.monotonic(), os.getloadavg()[0]
        server = start_server(args.port, var_dir, backlog=args.backlog)
        stats = fleet.finish()
        server_cpu_s = live_cpu_seconds(process_tree(server.pid))  # a worker may have died and been replaced
        watch.join(timeout=5)
        done = sorted(at - watch.listening_at for at in stats.boot_done_at)
        booted = len(done)
        result["storm"] = {
            "booted": booted,
            "listening_after_start_s": round(watch.listening_at - starting_at, 2),
            "all_booted_after_listening_s": round(done[-1], 2) if booted == len(fleet_ids) else None,
            "first_booted_s": round(done[0], 2) if done else None,
            "half_booted_s": round(done[booted // 2], 2) if done else None,
            "p99_booted_s": round(done[min(booted - 1, int(0.99 * booted))], 2) if done else None,
            "last_booted_s": round(done[-1], 2) if done else None,
            "booted_per_5s": booted_per(done, 5.0),
            "booted_per_1s": booted_per(done, 1.0),
            "server_cpu_s": round(server_cpu_s, 1),
            "load_average": [round(load_at_start, 1), round(os.getloadavg()[0], 1)],
            "handshake_errors_after_listening": stats.count["handshake_errors"],
            "refused_while_down": stats.count["refused"],
            "retry_after_honoured": stats.count["retry_after_honoured"],
            "errors": dict(stats.errors.most_common(8)),
            **({"boot_" + k: v for k, v in percentiles(stats.boot_latencies).items()} if stats.boot_latencies else {}),
        }
    finally:
        fleet.close()
        server.terminate()
        server.wait(timeout=30)
    result["server_log_problems"] = server_log_problems(var_dir)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--handshakes", type=int, default=50, help="initial connect: handshakes in flight each")
    parser.add_argument("--connect-seconds", type=float, default=50, help="initial connect: give up after this")
    parser.add_argument("--backlog", type=int, default=4096, help="listen backlog (0: daphne's 50, uvicorn's 2048)")
    parser.add_argument("--port", type=int, default=PORT, help="the server's port")
    parser.add_argument("--server", choices=sorted(SERVERS), default="daphne", help="the ASGI server")
    parser.add_argument(
        "--workers", type=int, default=0, help="N: `make serve` with N daphne workers on one port (SO_REUSEPORT)"
    )
    parser.add_argument(
        "--ignore-retry-after", action="store_true", help="chargers back off on a 503 as on any failure"
    )
    parser.add_argument("--max-seconds", type=float, default=75, help="give up the storm after this")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "reconnect_storm.json")
    args = parser.parse_args()
    if args.workers:  # scripts/serve.py reads WORKERS; harness.start_serve waits for that many
        args.server = "serve"
        os.environ["WORKERS"] = str(args.workers)
    started = time.monotonic()
    result = {
        "benchmark": "reconnect_storm",
        "machine": {**MACHINE, "versions": versions()},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        **storm(args, prepare(args.chargers)),
        "wall_seconds": 0.0,
    }
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    s = result["storm"]
    print(
        f"{result['chargers']} chargers: {s['booted']} booted again, all within {s['all_booted_after_listening_s']} s "
        f"of listening (half {s['half_booted_s']} s, 99% {s['p99_booted_s']} s); handshake errors after listening "
        f"{s['handshake_errors_after_listening']}; server CPU {s['server_cpu_s']} s; "
        f"Boot p50 {s.get('boot_p50_ms')} ms, p99 {s.get('boot_p99_ms')} ms"
    )
    for error, count in s["errors"].items():
        print(f"  {count} x {error}")
    for problem, count in result["server_log_problems"].items():
        print(f"  server log: {count} x {problem}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main()
