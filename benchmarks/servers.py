"""daphne, uvicorn and granian on the same workload, back to back, beside the echo ceiling.

The same ASGI application (Channels, PostgreSQL + Redis on loopback) on each server, one process
each (granian: one worker under its main process), in the order given (every other round in
reverse), ROUNDS times over:

1. fleet (fleet.py's phases and generator): CHARGERS chargers connect, boot and report their
   connectors (``--handshakes`` in flight per generator, at most ``--connect-seconds``), then hold
   their sockets; RSS per idle connection = (server RSS with every socket open - RSS before) / N;
   then ``--idle-seconds`` of heartbeats;
2. sessions (sessions.py): the ``ocpp`` package's chargers run whole charging sessions at once;
   msg/s, server CPU per message, and the session messages (starts, readings, stops) whose rows are
   all in PostgreSQL, per second.

The echo server (echo_baseline.py) takes the fleet phase once per round. The machine may be shared:
compare servers within a round (ratios to daphne), not across rounds.

    .venv/bin/python benchmarks/servers.py                       # 2,000 chargers, 2 rounds, ~6 minutes
    .venv/bin/python benchmarks/servers.py --chargers 500 --rounds 1 --servers daphne,granian

Results: benchmarks/results/servers.json (or --json).
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import MACHINE, ROOT, SERVERS, free_port, process_tree, versions  # Django

import echo_baseline
import fleet
import sessions


def fleet_options(args: argparse.Namespace) -> argparse.Namespace:
    """fleet.drive's options for connect + idle RSS + a short heartbeat phase."""
    return argparse.Namespace(
        generators=args.generators,
        handshakes=args.handshakes,
        connect_seconds=args.connect_seconds,
        idle=True,
        duration=args.idle_seconds,
        heartbeat=30,
    )


def fleet_numbers(result: dict[str, Any]) -> dict[str, Any]:
    connect = result["connect"]
    return {
        "connected": connect["connected"],
        "connect_seconds": connect["seconds"],
        "connect_per_s": round(connect["connected"] / connect["seconds"], 1) if connect["seconds"] else None,
        "boot_p99_ms": connect.get("boot_p99_ms"),
        "handshake_errors": connect["handshake_errors"],
        "rss_before_mb": round(result["rss_before_kb"] / 1024, 1),
        "rss_per_idle_connection_kb": result["rss_per_connection_kb"],
        "connect_cpu_us_per_charger": round(connect["server_cpu_s"] / connect["connected"] * 1e6)
        if connect["connected"]
        else None,
        "held_at_end": result["connections_held_at_end"],
    }


def run_fleet(name: str, args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    var_dir, port = tempfile.mkdtemp(prefix=f"csms-bench-{name}-"), free_port()
    server = echo_baseline.start(port) if name == "echo" else SERVERS[name](port, var_dir, backlog=4096)
    try:
        result = fleet.drive(fleet_options(args), fleet_ids, [port], process_tree(server.pid))
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {**fleet_numbers(result), "log_dir": var_dir}


def run_sessions(name: str, args: argparse.Namespace) -> dict[str, Any]:
    options = argparse.Namespace(
        server=name, sessions=args.sessions, meter_values=args.meter_values, heartbeats=0, max_seconds=150
    )
    chargers = sessions.prepare(args.session_chargers)
    sessions.PORT = free_port()
    result = asyncio.run(sessions.run(options, chargers))
    persisted = sessions.verify(options, args.session_chargers)
    complete = persisted["sessions_with_expected_energy"] == persisted["sessions_expected"] and (
        persisted["meter_samples"] == persisted["meter_samples_expected"]
    )
    # Session messages with a synchronous write: start, each reading, stop (1.6 and 2.0.1 alike).
    written = persisted["sessions_ended"] * (args.meter_values + 2)
    return {
        "messages_per_s": result["messages_per_s"],
        "persisted_msgs_per_s": round(written / result["seconds"], 1) if complete else None,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "server_cpu_us_per_message": result["server_cpu_us_per_message"],
        "charger_errors": result["charger_error_count"],
        "all_persisted": complete,
    }


COLUMNS = [
    ("connect+boot/s", "fleet", "connect_per_s"),
    ("boot p99 ms", "fleet", "boot_p99_ms"),
    ("RSS/idle conn KB", "fleet", "rss_per_idle_connection_kb"),
    ("connect CPU us", "fleet", "connect_cpu_us_per_charger"),
    ("sessions msg/s", "sessions", "messages_per_s"),
    ("persisted msg/s", "sessions", "persisted_msgs_per_s"),
    ("CPU us/msg", "sessions", "server_cpu_us_per_message"),
]


def print_round(number: int, results: dict[str, dict[str, Any]]) -> None:
    print(f"round {number}: {'server':<10}" + "".join(f"{title:>18}" for title, _, _ in COLUMNS))
    base = results.get("daphne", {})
    for name, result in results.items():
        cells = []
        for _, part, key in COLUMNS:
            value = result.get(part, {}).get(key)
            ratio = base.get(part, {}).get(key)
            share = f" ({value / ratio:.2f})" if name != "daphne" and value and ratio else ""
            cells.append("-" if value is None else f"{value}{share}")
        print(f"{'':9}{name:<10}" + "".join(f"{cell:>18}" for cell in cells))


def summary(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per server and figure: the value in each round, and the ratio to daphne's in the same round."""
    out: dict[str, dict[str, Any]] = {}
    for name in rounds[0]:
        figures = {}
        for _, part, key in COLUMNS:
            values = [r[name].get(part, {}).get(key) for r in rounds]
            ratios = [
                round(v / r["daphne"][part][key], 2)
                for v, r in zip(values, rounds, strict=True)
                if v and r.get("daphne", {}).get(part, {}).get(key)
            ]
            figures[key] = {"rounds": values, "over_daphne": ratios}
            if ratios:
                figures[key]["over_daphne_mean"] = round(statistics.fmean(ratios), 2)
        out[name] = figures
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="daphne,uvicorn,granian", help="comma-separated, in run order")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chargers", type=int, default=2000, help="fleet chargers")
    parser.add_argument("--connect-seconds", type=float, default=90, help="give up connecting after this")
    parser.add_argument("--idle-seconds", type=float, default=5, help="heartbeat phase after the idle RSS")
    parser.add_argument("--generators", type=int, default=2)
    parser.add_argument("--handshakes", type=int, default=50, help="handshakes in flight per generator")
    parser.add_argument("--session-chargers", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--meter-values", type=int, default=5)
    parser.add_argument("--no-echo", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "servers.json")
    args = parser.parse_args()
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)  # the clients' "no handler for GetConfiguration"
    names = args.servers.split(",")
    if unknown := set(names) - set(SERVERS):
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    fleet_ids = fleet.prepare(args.chargers)
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(1, args.rounds + 1):
        results: dict[str, dict[str, Any]] = {}
        for name in names if number % 2 else reversed(names):  # every other round in reverse order
            results[name] = {"fleet": run_fleet(name, args, fleet_ids), "sessions": run_sessions(name, args)}
        if not args.no_echo:
            results["echo"] = {"fleet": run_fleet("echo", args, fleet_ids)}
        rounds.append(results)
        print_round(number, results)
        output = {
            "benchmark": "servers",
            "machine": {**MACHINE, "versions": versions()},
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "wall_seconds": round(time.monotonic() - started, 1),
            "rounds": rounds,
            "summary": summary(rounds),
        }
        args.json.write_text(json.dumps(output, indent=2) + "\n")  # after every round: a crash keeps it
    print(f"written to {args.json} in {output['wall_seconds']} s")


if __name__ == "__main__":
    main()
