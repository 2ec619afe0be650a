"""One idle command's round trip on a timeline: where its milliseconds go, step by step, with
timestamps from the client, the API process (B) and the process holding the charger (A).

The same path as ``command_roundtrip.py``'s idle phase (a ``Reset`` POSTed to B for a charger held
by A, one at a time), with both daphne processes running ``command_timeline_app`` (``csms.asgi``
writing a timestamp at each step: a diagnostic, not the product). Each command's steps are cut
into consecutive spans whose sum is its round trip; each span's median, p90 and p99, and for a
span within one process the CPU that process used meanwhile (the rest is waiting: for Redis,
PostgreSQL, the other process, the charger, or a core).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/dynamo_csms_bench \\
    REDIS_URL=redis://127.0.0.1:6379/8 .venv/bin/python benchmarks/command_timeline.py --commands 500

Bounded: COMMANDS commands after 40 of warm-up, each within the HTTP client's 40 s timeout.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import MACHINE, ROOT, launch, wait_listening  # also sets up Django on the benchmark database

import command_roundtrip
from ocpp.routing import on
from ocpp.v16 import call_result
from websockets.asyncio.client import connect

# (span, from event, to event, process): consecutive, so that the spans add up to the round trip.
# "C" the client (HTTP client and charger), "B" the API process, "A" the charger's process.
SPANS = [
    ("client's request read and parsed by daphne", "post>", "http_request>", ""),
    ("daphne, Django's handler, the hop to the request's thread, middleware", "http_request>", "view>", "B"),
    ("DRF: the API key (remembered)", "view>", "auth<", "B"),
    ("the throttle (a Redis round trip)", "auth<", "throttle<", "B"),
    ("DRF's request, the body, the view", "throttle<", "command_send>", "B"),
    ("the body validated, the statement built", "command_send>", "record>", "B"),
    ("the pending row's statement (PostgreSQL, no WAL flush)", "record>", "record<", "B"),
    ("the request for A built", "record<", "send_receive>", "B"),
    ("B's send through Redis to A's receiver", "send_receive>", "delivered>", ""),
    ("A: the consumer, its queue, the CALL's frame", "delivered>", "ws_send<", "A"),
    ("the frame to the charger (the client process)", "ws_send<", "charger>", ""),
    ("the charger's answer back to A", "charger>", "ws_received>", ""),
    ("A: the answer matched and checked, the reply sent", "ws_received>", "layer_send>", "A"),
    ("A's reply through Redis to B's waiting thread", "layer_send>", "send_receive<", ""),
    ("the outcome read", "send_receive<", "outcome>", "B"),
    ("the outcome's UPDATE and its commit (a WAL flush)", "outcome>", "outcome<", "B"),
    ("the HTTP answer built, middleware, the hop back to the event loop", "outcome<", "send_response>", "B"),
    ("daphne writes the answer", "send_response>", "send_response<", "B"),
    ("the client reads it", "send_response<", "post<", ""),
]
EVENTS: list[tuple[str, int, int]] = []  # the client's own: (name, wall ns, process CPU ns)


def event(name: str) -> None:
    EVENTS.append((name, time.time_ns(), time.process_time_ns()))


class TimedCharger(command_roundtrip.ResettableCharger):
    @on("Reset")
    def on_reset(self, **_: object) -> call_result.Reset:
        event("charger>")
        return call_result.Reset(status="Accepted")


def start(port: int, var_dir: str, trace_dir: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "command_timeline_app:application"]
    python_path = os.pathsep.join(filter(None, [str(ROOT / "benchmarks"), os.environ.get("PYTHONPATH")]))
    process = launch("daphne", command, port, var_dir, CSMS_TIMELINE_DIR=trace_dir, PYTHONPATH=python_path)
    wait_listening(process, port, "daphne")
    return process


def post(port: int, charge_point_id: str, key: str, count: int, *, recorded: bool) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=40)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    for _ in range(count):
        if recorded:
            event("post>")
        connection.request("POST", f"/api/v1/ocpp16/{charge_point_id}/reset", json.dumps({"type": "Soft"}), headers)
        response = connection.getresponse()
        response.read()
        if recorded:
            event("post<")
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        time.sleep(0.002)  # as a client that does something between commands
    connection.close()


async def run(args: argparse.Namespace, trace_dir: str, charge_point_id: str, key: str) -> dict[str, int]:
    var_dir = tempfile.mkdtemp(prefix="csms-timeline-")
    servers = {"A": start(args.port, var_dir, trace_dir), "B": start(args.port + 1, var_dir, trace_dir)}
    processes = {name: server.pid for name, server in servers.items()}
    try:
        websocket = await connect(f"ws://127.0.0.1:{args.port}/ocpp/1.6/{charge_point_id}", subprotocols=["ocpp1.6"])
        charger = asyncio.create_task(TimedCharger(charge_point_id, websocket).start())
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: post(args.port + 1, charge_point_id, key, 40, recorded=False))
        EVENTS.clear()
        for pid in processes.values():
            Path(trace_dir, f"{pid}.log").write_text("")  # the warm-up's events dropped
        await loop.run_in_executor(
            None, lambda: post(args.port + 1, charge_point_id, key, args.commands, recorded=True)
        )
        charger.cancel()
        await websocket.close()
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(timeout=10)
    return processes


def commands(trace_dir: str, processes: dict[str, int]) -> list[dict[str, tuple[int, int, str]]]:
    """Each command's events: name -> (wall ns, CPU ns, process); the first of a name kept, but
    for ends (``<``) the last."""
    events = [(wall, name, cpu, "C") for name, wall, cpu in EVENTS]
    for process, pid in processes.items():
        for line in Path(trace_dir, f"{pid}.log").read_text().splitlines():
            name, wall, cpu = line.split()
            events.append((int(wall), name, int(cpu), process))
    found: list[dict[str, tuple[int, int, str]]] = []
    for wall, name, cpu, process in sorted(events):
        if name == "post>":
            found.append({})
        if found and (name not in found[-1] or name.endswith("<")):
            found[-1][name] = (wall, cpu, process)
    return found


def spans(found: list[dict[str, tuple[int, int, str]]]) -> list[dict[str, object]]:
    rows = []
    complete = [c for c in found if all(start in c and end in c for _, start, end, _ in SPANS)]
    for span, start, end, process in SPANS:
        walls = sorted((c[end][0] - c[start][0]) / 1e6 for c in complete)
        row: dict[str, object] = {"span": span, "from": start, "to": end, "process": process or "-"}
        row["p50_ms"] = round(statistics.median(walls), 3)
        row.update({f"p{p}_ms": round(walls[min(len(walls) - 1, int(p / 100 * len(walls)))], 3) for p in (90, 99)})
        if process:
            row["cpu_p50_ms"] = round(statistics.median((c[end][1] - c[start][1]) / 1e6 for c in complete), 3)
        rows.append(row)
    totals = sorted((c["post<"][0] - c["post>"][0]) / 1e6 for c in complete)
    rows.append({"span": "round trip", "commands": len(complete), "p50_ms": round(statistics.median(totals), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=300)
    parser.add_argument("--port", type=int, default=18081, help="A's port; B listens on the next")
    parser.add_argument("--out", default="command_timeline.json", help="the results file in benchmarks/results/")
    args = parser.parse_args()
    trace_dir = tempfile.mkdtemp(prefix="csms-timeline-events-")
    ids, key = command_roundtrip.prepare(1, ["split"])
    processes = asyncio.run(run(args, trace_dir, ids["split"][0], key))
    rows = spans(commands(trace_dir, processes))
    print(f"{'span':<72}{'in':>3}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'CPU p50':>9}")
    for row in rows[:-1]:
        cells = f"{row['p50_ms']:>9}{row['p90_ms']:>9}{row['p99_ms']:>9}{row.get('cpu_p50_ms', ''):>9}"
        print(f"{row['span']:<72}{row['process']:>3}{cells}")
    print(f"round trip p50 {rows[-1]['p50_ms']} ms over {rows[-1]['commands']} commands; load {os.getloadavg()}")
    out = ROOT / "benchmarks" / "results" / args.out
    out.write_text(json.dumps({"benchmark": "command_timeline", "machine": MACHINE, "spans": rows}, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
