"""Command round trip: API on daphne B -> Redis -> daphne A -> charger -> back.

Starts two daphne processes on PostgreSQL + Redis (loopback only), connects OCPP 1.6 chargers
(the ``ocpp`` package) and posts Reset commands to the REST API of the process that does not hold
the charger.

Phase "idle": one client, COMMANDS sequential commands (split: to one charger; crossed: to two, in turn).
Phase "concurrent": CHARGERS chargers, one client thread per charger, COMMANDS total.

Two layouts, both measured in every run (--layouts): "split" (the phases without a prefix) holds
every charger on A and posts every command to B, so B's core serves the API alone and A's the
chargers; "crossed" (phases "crossed_...") holds half the chargers on A and half on B, as ``make
serve``'s workers share them, and posts each command to the process that does NOT hold its charger,
so every command still crosses processes through Redis and each process serves half the API.
"crossed" measures the deployment's layout; it is not a faster command path. Both layouts'
chargers stay connected through every phase (the crossed layout's idle ones on B during the split
phases: twice round 13's connected chargers, all idle but the commanded ones).

With --under-load N the split layout's phases run again while N more chargers (loadgen.py, spread
over both processes) run the fleet session mix at --load-rate messages/s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dynamo_csms_bench \\
    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python benchmarks/command_roundtrip.py [--commands 500]
    .venv/bin/python benchmarks/command_roundtrip.py --under-load 2000 --load-rate 1000

Bounded: stops after the given number of commands or --max-seconds, whichever comes first.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import functools
import http.client
import json
import os
import subprocess
import sys
import tempfile
import signal
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import (
    MACHINE,
    ROOT,
    cpu_seconds,
    database_cpu_seconds,
    machine_busy_seconds,
    percentiles,
    start_daphne,
    versions,
)  # also sets up Django on the benchmark database

import echo_baseline
import fleet
import loadgen

from django.core.management import call_command
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call_result
from websockets.asyncio.client import connect

from chargepoints.models import ChargePoint
from commands.models import Command
from kernel.api_keys import api_key_create


# Each CALL's time in the simulated chargers (ms): from its frame's arrival to its answer written. A
# phase's round trips include it; it is the benchmark's, not the CSMS's (the ocpp package validates
# the CALL and the answer against their schemas in this process, which shares the two cores).
CHARGER_MS: list[float] = []


class ResettableCharger(V16Client):
    @on("Reset")
    def on_reset(self, **_: object) -> call_result.Reset:
        return call_result.Reset(status="Accepted")

    async def route_message(self, raw_msg: str) -> None:
        started = time.perf_counter()
        await super().route_message(raw_msg)
        if raw_msg.startswith("[2"):
            CHARGER_MS.append((time.perf_counter() - started) * 1000)


PORT_A, PORT_B = 18081, 18082
# A client's commands: (the API's port, the charger), taken in turn.
Targets = list[tuple[int, str]]


def post_commands(targets: Targets, key: str, count: int, stop_at: float) -> list[float]:
    """Sequential POSTs, to each of ``targets`` in turn, on one keep-alive connection per port;
    returns latencies in ms."""
    connections = {port: http.client.HTTPConnection("127.0.0.1", port, timeout=40) for port, _ in targets}
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"type": "Soft"})
    latencies = []
    for n in range(count):
        if time.monotonic() > stop_at:
            break
        port, charge_point_id = targets[n % len(targets)]
        connection = connections[port]
        started = time.perf_counter()
        connection.request("POST", f"/api/v1/ocpp16/{charge_point_id}/reset", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status} (daphne logs in $TMPDIR/csms-bench-*)")
        latencies.append((time.perf_counter() - started) * 1000)
    for connection in connections.values():
        connection.close()
    return latencies


def summarize(
    latencies: list[float], seconds: float, cpu: list[float], charger_ms: list[float] | None = None
) -> dict[str, float]:
    """Latency percentiles, throughput, and each process's CPU per command (``cpu``: seconds A, B,
    this client process and, when given (``servers_cpu``), PostgreSQL's backends of the benchmark
    database and the Redis server used during the phase, then the seconds every core of the machine
    was busy; in the split layout A holds the chargers and B serves the API, in the crossed one each
    does half of both; Redis and the machine count other users of them too); ``charger_ms``: the
    phase's CALLs' times in the simulated chargers (``CHARGER_MS``), their median as
    ``charger_p50_ms``. ``machine_busy``: the share of the cores busy during the phase (1.0: every
    core, all the time)."""
    per_command = [round(used * 1e6 / max(1, len(latencies))) for used in cpu]
    charger = {"charger_p50_ms": round(statistics.median(charger_ms), 3)} if charger_ms else {}
    beside = {}
    if len(cpu) == 6:  # servers_cpu's: PostgreSQL, Redis and the machine too
        beside = {
            "cpu_us_per_command_db": per_command[3],
            "cpu_us_per_command_redis": per_command[4],
            "cpu_us_per_command_machine": per_command[5],
            "machine_busy": round(cpu[5] / (seconds * (os.cpu_count() or 1)), 3),
        }
    return {
        "commands": len(latencies),
        **percentiles(latencies),
        "commands_per_s": round(len(latencies) / seconds, 1),
        "cpu_us_per_command_a": per_command[0],
        "cpu_us_per_command_b": per_command[1],
        "cpu_us_per_command_both": per_command[0] + per_command[1],
        "cpu_us_per_command_client": per_command[2],
        **beside,
        **charger,
    }


def servers_cpu(servers: list[int]) -> list[float]:
    """CPU seconds used so far by each server (A, B), by this process (the clients and chargers: on a
    2-core machine they take their share of the cores too), by PostgreSQL's backends of the benchmark
    database and by the Redis server (0 if not found), then the machine's busy seconds."""
    return [
        *(cpu_seconds(pid) for pid in [*servers, os.getpid()]),
        database_cpu_seconds(),
        cpu_seconds(REDIS_PID) if REDIS_PID else 0.0,
        machine_busy_seconds(),
    ]


def redis_server_pid() -> int:
    """The local Redis server's process id (Linux /proc), 0 if none is found."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "redis-server":
                return int(comm.parent.name)
        except OSError:
            continue
    return 0


REDIS_PID = redis_server_pid()


def prepare(chargers: int, layouts: list[str]) -> tuple[dict[str, list[str]], str]:
    """Migrate the benchmark database, register ``chargers`` chargers per layout and issue an API key."""
    call_command("migrate", verbosity=0)
    Command.objects.all().delete()
    ChargePoint.objects.filter(charge_point_id__startswith="BENCH-CMD-").delete()
    prefixes = {"split": "BENCH-CMD-", "crossed": "BENCH-CMD-X-"}
    ids = {layout: [f"{prefixes[layout]}{n}" for n in range(chargers)] for layout in layouts}
    everyone = [i for layout_ids in ids.values() for i in layout_ids]
    ChargePoint.objects.bulk_create([ChargePoint(charge_point_id=i, heartbeat_interval=300) for i in everyone])
    return ids, api_key_create(name="benchmark")[1]


def charger_port(layout: str, n: int) -> int:
    """The process that holds the layout's ``n``-th charger: A in "split", A and B in turn in "crossed"."""
    return PORT_B if layout == "crossed" and n % 2 else PORT_A


def api_port(layout: str, n: int) -> int:
    """The process the layout's ``n``-th charger's commands are posted to: never the one holding it."""
    return PORT_A if charger_port(layout, n) == PORT_B else PORT_B


def clients(layout: str, ids: list[str]) -> tuple[Targets, list[Targets]]:
    """The idle phase's client (split: the first charger; crossed: the first two, one on each
    process, in turn) and one client per charger for the concurrent phase."""
    per_charger = [[(api_port(layout, n), charge_point_id)] for n, charge_point_id in enumerate(ids)]
    idle = per_charger[0] + (per_charger[1] if layout == "crossed" and len(ids) > 1 else [])
    return idle, per_charger


def profiling_started(
    directory: str, servers: list[int], phase: str, *, gil: bool = False
) -> list[subprocess.Popen[bytes]]:
    """py-spy on each server (A, B) for a phase, raw stacks to ``directory`` (none if ""); with
    ``gil`` only the thread holding the GIL is sampled (CPU in Python, not threads waiting).
    ``directory`` is created if missing (py-spy writes nothing into a missing one, with no error here)."""
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--nonblocking",
                *(["--gil"] if gil else []),
                "--pid",
                str(pid),
                "--output",
                f"{directory}/{phase}_{name}.txt",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in zip("AB", servers, strict=True)
    ]


def profiling_stopped(profilers: list[subprocess.Popen[bytes]]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        profiler.wait(timeout=30)


async def measure(
    args: argparse.Namespace,
    ids: list[str],
    key: str,
    stop_at: float,
    servers: list[int],
    label: str = "",
    layout: str = "split",
) -> dict[str, object]:
    """The idle phase (one client, sequential) and the concurrent phase (a client per charger)."""
    loop = asyncio.get_running_loop()
    idle_targets, per_charger = clients(layout, ids)
    await loop.run_in_executor(None, post_commands, idle_targets, key, 20, stop_at)  # warm-up
    profilers = profiling_started(args.profile, servers, f"{label}idle", gil=args.profile_gil)
    started, cpu, calls = time.monotonic(), servers_cpu(servers), len(CHARGER_MS)
    idle = await loop.run_in_executor(None, post_commands, idle_targets, key, args.commands, stop_at)
    used = [after - before for before, after in zip(cpu, servers_cpu(servers), strict=True)]
    profiling_stopped(profilers)
    idle_summary = summarize(idle, time.monotonic() - started, used, CHARGER_MS[calls:])
    per_client = max(1, args.commands // len(ids))
    with ThreadPoolExecutor(len(ids)) as pool:
        profilers = profiling_started(args.profile, servers, f"{label}concurrent", gil=args.profile_gil)
        started, cpu, calls = time.monotonic(), servers_cpu(servers), len(CHARGER_MS)
        futures = [
            loop.run_in_executor(pool, post_commands, targets, key, per_client, stop_at) for targets in per_charger
        ]
        concurrent = [latency for batch in await asyncio.gather(*futures) for latency in batch]
        used = [after - before for before, after in zip(cpu, servers_cpu(servers), strict=True)]
        profiling_stopped(profilers)
        concurrent_summary = summarize(concurrent, time.monotonic() - started, used, CHARGER_MS[calls:])
    return {f"{label}idle": idle_summary, f"{label}concurrent_{len(ids)}_chargers": concurrent_summary}


async def echo_round_trips(port: int, count: int) -> dict[str, float]:
    """The machine's floor beside the run: ``count`` sequential OCPP CALLs (a ``Heartbeat``) over one
    WebSocket to the bare echo server (``echo_baseline.py``) and its answers, ms per round trip. A
    command crosses such a WebSocket once (B's consumer to the charger) besides its HTTP request
    and its Redis and PostgreSQL round trips."""
    echo = echo_baseline.start(port)
    try:
        latencies = []
        async with connect(f"ws://127.0.0.1:{port}/ocpp/1.6/ECHO", subprotocols=["ocpp1.6"]) as websocket:
            for n in range(count):
                started = time.perf_counter()
                await websocket.send(json.dumps([2, str(n), "Heartbeat", {}]))
                await websocket.recv()
                latencies.append((time.perf_counter() - started) * 1000)
        return {"round_trips": count, **percentiles(latencies)}
    finally:
        echo.terminate()
        echo.wait(timeout=10)


async def under_load(
    args: argparse.Namespace, ids: list[str], key: str, stop_at: float, load: loadgen.Fleet, servers: list[int]
) -> dict[str, object]:
    """Both phases again while the fleet runs its session mix at --load-rate messages/s."""
    loop = asyncio.get_running_loop()
    connect = await loop.run_in_executor(
        None, functools.partial(load.run, "connect", concurrency=50, retries=2, seconds=60)
    )
    load.start("rate", seconds=args.max_seconds, interval=load.size / args.load_rate)
    try:
        phases = await measure(args, ids, key, stop_at, servers, label="under_load_")
    finally:
        load.stop()
        mix = await loop.run_in_executor(None, load.finish)
    phases["fleet_load"] = {
        "chargers_booted": connect.count["booted"],
        "handshake_errors": connect.count["handshake_errors"],
        "target_msgs_per_s": args.load_rate,
        "acked_msgs_per_s": round(mix.count["acked"] / mix.seconds, 1),
        **(percentiles(mix.latencies) if mix.latencies else {}),
        "timeouts": mix.count["timeouts"],
    }
    return phases


async def run(
    args: argparse.Namespace, ids: dict[str, list[str]], key: str, load: loadgen.Fleet | None
) -> dict[str, object]:
    var_dir = tempfile.mkdtemp(prefix="csms-bench-")
    servers = [start_daphne(PORT_A, var_dir, backlog=4096), start_daphne(PORT_B, var_dir, backlog=4096)]
    stop_at = time.monotonic() + args.max_seconds
    try:
        sockets, tasks = [], []
        for layout, layout_ids in ids.items():
            for n, charge_point_id in enumerate(layout_ids):
                url = f"ws://127.0.0.1:{charger_port(layout, n)}/ocpp/1.6/{charge_point_id}"
                websocket = await connect(url, subprotocols=["ocpp1.6"])
                charger = ResettableCharger(charge_point_id, websocket)
                sockets.append(websocket)
                tasks.append(asyncio.create_task(charger.start()))
        pids = [server.pid for server in servers]
        phases: dict[str, object] = {"echo": await echo_round_trips(args.echo_port, args.commands)}
        for layout, layout_ids in ids.items():
            label = "" if layout == "split" else f"{layout}_"
            phases.update(await measure(args, layout_ids, key, stop_at, pids, label=label, layout=layout))
        if load is not None and "split" in ids:
            phases.update(await under_load(args, ids["split"], key, stop_at, load, pids))
        for task in tasks:
            task.cancel()
        for websocket in sockets:
            await websocket.close()
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    return {
        "benchmark": "command_roundtrip",
        "path": "HTTP POST on daphne B -> channel layer (Redis) -> consumer on daphne A -> OCPP charger -> back",
        "layouts": {
            "split": "phases without a prefix: every charger on A, every command posted to B",
            "crossed": "phases crossed_*: chargers on A and B in turn, each command posted to the other process",
        },
        "machine": {**MACHINE, "versions": versions()},
        **phases,
    }


def main() -> None:
    global PORT_A, PORT_B
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--chargers", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--under-load", type=int, default=0, metavar="N", help="repeat under N fleet chargers' mix")
    parser.add_argument("--load-rate", type=float, default=1000, help="fleet mix messages/s with --under-load")
    parser.add_argument("--port", type=int, default=18081, help="process A's port; process B listens on the next")
    parser.add_argument(
        "--profile", default="", metavar="DIR", help="py-spy both servers in each phase, raw stacks into DIR"
    )
    parser.add_argument("--profile-gil", action="store_true", help="with --profile: sample only the GIL's holder")
    parser.add_argument(
        "--layouts",
        default="split,crossed",
        help="comma-separated, measured in this order: split (every charger on A, the API on B) and/or "
        "crossed (chargers on both, each command posted to the process without its charger)",
    )
    parser.add_argument("--echo-port", type=int, default=None, help="the echo server's port (--port + 90)")
    parser.add_argument("--out", default="command_roundtrip.json", help="the results file in benchmarks/results/")
    args = parser.parse_args()
    layouts = args.layouts.split(",")
    if not layouts or set(layouts) - {"split", "crossed"}:
        parser.error("--layouts: split and/or crossed")
    PORT_A, PORT_B = args.port, args.port + 1
    if args.echo_port is None:
        args.echo_port = args.port + 90
    ids, key = prepare(args.chargers, layouts)
    load = None
    if args.under_load:
        load = loadgen.Fleet(fleet.prepare(args.under_load), [PORT_A, PORT_B], processes=1)
    try:
        result = asyncio.run(run(args, ids, key, load))
    finally:
        if load is not None:
            load.close()
    header = f"{'phase':<36}{'commands':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'cmd/s':>9}"
    print(f"{header}{'A µs/cmd':>10}{'B µs/cmd':>10}{'PG µs/cmd':>10}{'busy':>6}{'charger ms':>11}{'p50/echo':>9}")
    print("split: chargers on A, API on B; crossed_: chargers on A and B, each command to the other process")
    echo_p50 = result["echo"]["p50_ms"]  # type: ignore[index]
    print(f"echo: a WebSocket CALL round trip p50 {echo_p50} ms, p99 {result['echo']['p99_ms']} ms")  # type: ignore[index]
    if "fleet_load" in result:
        print("fleet load:", json.dumps(result["fleet_load"]))
    for phase, numbers in result.items():
        if isinstance(numbers, dict) and "commands" in numbers:
            print(
                f"{phase:<36}{numbers['commands']:>9}{numbers['p50_ms']:>9}{numbers['p95_ms']:>9}"
                f"{numbers['p99_ms']:>9}{numbers['commands_per_s']:>9}"
                f"{numbers['cpu_us_per_command_a']:>10}{numbers['cpu_us_per_command_b']:>10}"
                f"{numbers.get('cpu_us_per_command_db', ''):>10}{numbers.get('machine_busy', ''):>6}"
                f"{numbers.get('charger_p50_ms', ''):>11}{round(numbers['p50_ms'] / echo_p50, 1):>9}"
            )
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
