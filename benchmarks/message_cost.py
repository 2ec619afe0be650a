"""Server CPU per OCPP message type, beside the echo ceiling in the same run.

Registers CHARGERS chargers (``BENCH-F-<n>``, half OCPP 1.6, half 2.0.1), connects them to one
server process and sends one message type at a time (every charger of the version at once, each
awaiting its answer), ROUNDS times: Boot, StatusNotification, Heartbeat, Authorize, then a session
of start, METER readings and stop. After each phase the server is left to write what it buffered
(``--settle`` s) and its CPU over the phase, less its idle CPU over the same time, is divided by the
messages of the phase. The connect row is the WebSocket handshake alone. Then the same against
echo_baseline.py. Results in benchmarks/results/message_cost.json (or --json).

    .venv/bin/python benchmarks/message_cost.py --chargers 200 --rounds 3
    .venv/bin/python benchmarks/message_cost.py --profile /tmp/ours.raw   # py-spy stacks holding the GIL
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import MACHINE, ROOT, SERVERS, cpu_seconds, process_tree, versions  # Django

import echo_baseline
import fleet
import loadgen

Frame = tuple[str, dict[str, Any]]


class Run:
    """One server's phases: CPU and messages per row."""

    def __init__(self, pid: int, port: int, fleet_ids: list[tuple[str, str]], settle: float) -> None:
        self.pids, self.settle = process_tree(pid), settle  # serve: its workers too
        stats = loadgen.Stats()
        self.stats = stats
        self.chargers = [
            loadgen.Charger(cp, version, f"ws://127.0.0.1:{port}/ocpp/{version}/{cp}", stats, loadgen.source_address(n))
            for n, (cp, version) in enumerate(fleet_ids)
        ]
        self.cost: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self.idle_cpu_per_s = 0.0

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    async def closed(self) -> None:
        await asyncio.gather(*(c.websocket.close() for c in self.chargers if c.websocket is not None))

    async def idle_baseline(self, warm_up: float = 5.0, seconds: float = 3.0) -> None:
        await asyncio.sleep(warm_up)  # the server is still settling right after it first answers
        before = self.cpu()
        await asyncio.sleep(seconds)
        self.idle_cpu_per_s = (self.cpu() - before) / seconds

    async def phase(self, row: str, version: str | None, send: Callable[[loadgen.Charger], Any]) -> None:
        chargers = [c for c in self.chargers if version is None or c.version == version]
        before, started = self.cpu(), time.monotonic()
        results = await asyncio.gather(*(send(c) for c in chargers), return_exceptions=True)
        await asyncio.sleep(self.settle)
        cpu = self.cpu() - before - self.idle_cpu_per_s * (time.monotonic() - started)
        for result in results:
            if isinstance(result, BaseException):
                self.stats.note(loadgen.describe(result))
        self.cost[row][0] += cpu
        self.cost[row][1] += len(chargers) - sum(isinstance(r, BaseException) for r in results)

    async def call(self, charger: loadgen.Charger, frame: Frame) -> dict[str, Any] | None:
        return await charger.call(*frame, kind="other")

    async def session(self, version: str, readings: int) -> None:
        v16 = version == "1.6"

        async def start(charger: loadgen.Charger) -> None:
            answer = await self.call(charger, charger.frame_for("start"))
            if v16:
                charger.transaction_id = (answer or {}).get("transactionId", -1)

        names = (
            ("StartTransaction", "MeterValues", "StopTransaction")
            if v16
            else ("TransactionEvent Started", "TransactionEvent Updated", "TransactionEvent Ended")
        )
        await self.phase(f"{names[0]} ({version})", version, start)
        for _ in range(readings):
            await self.phase(f"{names[1]} ({version})", version, lambda c: self.call(c, c.frame_for("meter")))
        await self.phase(f"{names[2]} ({version})", version, lambda c: self.call(c, c.frame_for("stop")))

    async def run(self, rounds: int, readings: int, connect_rounds: int = 1) -> dict[str, Any]:
        await self.idle_baseline()
        for n in range(connect_rounds):
            if n:  # closed between rounds, not counted
                await self.closed()
                await asyncio.sleep(self.settle)
            await self.phase("connect (handshake)", None, lambda c: c.open())
        for _ in range(rounds):
            for version in ("1.6", "2.0.1"):
                await self.phase(f"BootNotification ({version})", version, lambda c: self.call(c, c.boot()))
                await self.phase(
                    f"StatusNotification ({version})", version, lambda c: self.call(c, c.status(1, "Available"))
                )
                await self.phase(f"Heartbeat ({version})", version, lambda c: self.call(c, ("Heartbeat", {})))
                await self.phase(f"Authorize ({version})", version, lambda c: self.call(c, c.frame_for("authorize")))
                await self.session(version, readings)
        await self.closed()
        return {
            "idle_cpu_ms_per_s": round(self.idle_cpu_per_s * 1000, 2),
            "rows": {
                row: {"messages": n, "cpu_us_per_msg": round(cpu / n * 1e6) if n else None}
                for row, (cpu, n) in self.cost.items()
            },
            "call_errors": self.stats.count["call_errors"],
            "errors": dict(self.stats.errors.most_common(5)),
        }


def measure(pid: int, port: int, fleet_ids: list[tuple[str, str]], args: argparse.Namespace) -> dict[str, Any]:
    return asyncio.run(Run(pid, port, fleet_ids, args.settle).run(args.rounds, args.readings, args.connect_rounds))


def run_ours(args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    var_dir = tempfile.mkdtemp(prefix="csms-cost-")
    server = SERVERS[args.server](args.port, var_dir, backlog=4096)
    profiler = None
    try:
        if args.profile:
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "--gil", "--format", "raw"]
            command += ["--rate", "200"]
            command += ["-o", str(args.profile), "--pid", str(server.pid)]
            profiler = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        return {**measure(server.pid, args.port, fleet_ids, args), "server_log_dir": var_dir}
    finally:
        server.terminate()
        server.wait(timeout=30)
        if profiler is not None:
            profiler.wait(timeout=60)


def run_echo(args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    server = echo_baseline.start(args.port + 90)
    try:
        return measure(server.pid, args.port + 90, fleet_ids, args)
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--port", type=int, default=18300, help="our server's port; the echo server's is 90 above")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--connect-rounds", type=int, default=1, help="handshakes of every charger for the connect row (closed between)"
    )
    parser.add_argument("--readings", type=int, default=4, help="meter readings per session")
    parser.add_argument("--settle", type=float, default=1.5, help="s after each phase for buffered writes")
    parser.add_argument("--server", choices=sorted(SERVERS), default="daphne")
    parser.add_argument("--profile", type=Path, help="py-spy raw output file for our server")
    parser.add_argument("--no-echo", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "message_cost.json")
    args = parser.parse_args()
    loadgen.raise_nofile()
    fleet_ids = fleet.prepare(args.chargers)
    ours = run_ours(args, fleet_ids)
    echo = {} if args.no_echo else run_echo(args, fleet_ids)
    print(f"{'message':<34}{'ours us':>10}{'echo us':>10}{'ours/echo':>11}{'messages':>10}")
    for row, numbers in ours["rows"].items():
        mine, theirs = numbers["cpu_us_per_msg"], echo.get("rows", {}).get(row, {}).get("cpu_us_per_msg")
        ratio = round(mine / theirs, 1) if mine and theirs and theirs > 0 else "-"
        print(f"{row:<34}{mine!s:>10}{theirs!s:>10}{ratio!s:>11}{numbers['messages']:>10}")
    print("call errors:", ours["call_errors"], ours["errors"] or "")
    result = {
        "benchmark": "message_cost",
        "machine": {**MACHINE, "versions": versions()},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "ours": ours,
        "echo": echo,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
