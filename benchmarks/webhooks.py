"""Webhook delivery benchmark: the outbox, the Celery workers as the README runs them, a local receiver.

The receiver (a separate aiohttp process on loopback) verifies every signature and counts what
arrived: received, unique event ids, duplicates, signature failures, and the time from the event's
``created_at`` (written in the emitting transaction, just before its commit) to receipt.

Scenarios (each bounded by --events and --max-seconds; the worker is started fresh for each):

- ``burst``: --events events emitted one transaction each, as fast as one thread commits them;
- ``steady``: --rate events/s for --duration seconds (latency below capacity);
- ``backlog``: --events due deliveries written while no worker runs, then the worker starts
  (the drain rate; with --retries they are retries: attempts=1, as the sweep finds them).

--delay-ms makes the receiver answer late (a slow integrator). --layout picks the worker
processes: ``roles`` (this README: a webhook worker, beat) or ``combined`` (one
``celery worker --beat``, as before issue 20).

    .venv/bin/python benchmarks/webhooks.py backlog --events 20000
    .venv/bin/python benchmarks/webhooks.py burst --events 2000 --delay-ms 200
    .venv/bin/python benchmarks/webhooks.py steady --rate 20 --duration 15

Results are appended to benchmarks/results/webhooks.json (or --json).
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

RECEIVER_PORT = 18290


# --- The receiver (runs in its own process: ``webhooks.py receive SECRETS DELAY_MS``) --------------


def receive(secrets_file: str, delay_ms: int) -> None:
    from aiohttp import web

    secrets = json.loads(Path(secrets_file).read_text())
    counts = {"received": 0, "duplicates": 0, "signature_failures": 0, "warm": 0}
    first_seen: dict[str, float] = {}
    latencies_ms: list[float] = []

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if request.match_info["name"] == "warmup":  # the worker is up: not counted
            counts["warm"] = 1
            return web.Response(status=204)
        counts["received"] += 1
        now = time.time()
        header = request.headers.get("X-Dynamo-Signature", "")
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        secret = secrets.get(request.match_info["name"], "")
        expected = hmac.new(secret.encode(), f"{parts.get('t')}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(parts.get("v1", ""), expected):
            counts["signature_failures"] += 1
        event = json.loads(body)
        if event["id"] in first_seen:
            counts["duplicates"] += 1
        else:
            first_seen[event["id"]] = now
            created = datetime.strptime(event["created_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
            latencies_ms.append((now - created.timestamp()) * 1000)
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return web.Response(status=204)

    async def stats(_: web.Request) -> web.Response:
        seen = sorted(first_seen.values())
        return web.json_response(
            {
                **counts,
                "unique": len(first_seen),
                "first_at": seen[0] if seen else None,
                "last_at": seen[-1] if seen else None,
                "latencies_ms": latencies_ms,
            }
        )

    app = web.Application()
    app.add_routes([web.post("/hooks/{name}", hook), web.get("/stats", stats)])
    web.run_app(app, host="127.0.0.1", port=RECEIVER_PORT, print=None, access_log=None, backlog=1024)


if len(sys.argv) > 1 and sys.argv[1] == "receive":
    receive(sys.argv[2], int(sys.argv[3]))
    sys.exit(0)


# harness sets up Django on the benchmark database
from harness import MACHINE, ROOT, cpu_seconds, live_cpu_seconds, percentiles, process_tree  # noqa: E402

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookSubscription  # noqa: E402
from webhooks.services import webhook_event_emit  # noqa: E402

WORKER_ENV = {"CSMS_WEBHOOK_ALLOW_PRIVATE": "1", "CSMS_LOG_LEVEL": "WARNING"}
CELERY = [sys.executable, "-m", "celery", "-A", "csms"]
# What runs the deliveries, per layout: the processes as the README starts them.
LAYOUTS = {
    "combined": [["worker", "--beat", "--concurrency", "2", "--loglevel", "WARNING"]],
    "roles": [
        ["worker", "-Q", "webhooks", "--pool", "solo", "--loglevel", "WARNING"],
        ["beat", "--loglevel", "WARNING"],
    ],
}


def start_receiver(var_dir: Path, secrets: dict[str, str], delay_ms: int) -> subprocess.Popen[bytes]:
    secrets_file = var_dir / "secrets.json"
    secrets_file.write_text(json.dumps(secrets))
    log = (var_dir / "receiver.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, __file__, "receive", str(secrets_file), str(delay_ms)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            receiver_stats()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the receiver did not start")


def receiver_stats() -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{RECEIVER_PORT}/stats", timeout=10) as response:
        return json.loads(response.read())


def start_workers(layout: str, var_dir: Path, extra_env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **WORKER_ENV, "CSMS_VAR_DIR": str(var_dir), **extra_env}
    processes = []
    for number, args in enumerate(LAYOUTS[layout]):
        if args[0] == "beat" or "--beat" in args:
            args = [*args, "--schedule", str(var_dir / f"beat-{number}")]
        with (var_dir / f"celery-{number}.log").open("wb") as log:
            command = [*CELERY, *args]
            processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live children (prefork pool processes)."""
    return live_cpu_seconds(process_tree(pid))


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reset(receiver_url: str) -> dict[str, str]:
    """An empty outbox and one subscription pointing at the receiver; returns {name: secret}."""
    call_command("migrate", verbosity=0)
    WebhookAttempt.objects.all().delete()
    WebhookDelivery.objects.all().delete()
    WebhookSubscription.objects.all().delete()
    subscription = WebhookSubscription.objects.create(
        url=f"{receiver_url}/hooks/bench", events=["connector.status_changed"], secret="whsec_bench"
    )
    WebhookSubscription.objects.create(url=f"{receiver_url}/hooks/warmup", events=["charge_point.online"], secret="-")
    return {"bench": subscription.secret}


def wait_until_delivering(stop_at: float) -> None:
    """Emit a warm-up event (another type, not counted) every second until the receiver gets one."""
    while time.monotonic() < stop_at:
        with transaction.atomic():
            webhook_event_emit(event_type="charge_point.online", data={"charge_point_id": "BENCH-W-WARMUP"})
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            if receiver_stats()["warm"]:
                return
            time.sleep(0.05)
    raise RuntimeError("the workers delivered nothing before --max-seconds")


def emit(count: int, rate: float | None, stop_at: float) -> int:
    """Emit status-change events, one transaction each, at ``rate`` per second (or at once)."""
    started = time.monotonic()
    for number in range(count):
        if time.monotonic() > stop_at:
            return number
        if rate:
            time.sleep(max(0.0, started + number / rate - time.monotonic()))
        with transaction.atomic():
            webhook_event_emit(
                event_type="connector.status_changed",
                data={"charge_point_id": f"BENCH-W-{number % 500}", "connector_id": 1, "status": "Charging"},
            )
    return count


def write_backlog(count: int, *, retries: bool) -> None:
    with transaction.atomic():
        data = {"charge_point_id": "BENCH-W-0", "status": "Charging"}
        webhook_event_emit(event_type="connector.status_changed", data=data)
        template = WebhookDelivery.objects.get()
        template.delete()
    now = timezone.now()
    rows = []
    for number in range(count):
        body = json.loads(template.body)
        body["id"] = str(uuid.uuid4())
        body["created_at"] = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body["data"]["charge_point_id"] = f"BENCH-W-{number % 500}"
        rows.append(
            WebhookDelivery(
                event_id=body["id"],
                event_type=template.event_type,
                subscription_id=template.subscription_id,
                body=json.dumps(body, separators=(",", ":")),
                next_attempt_at=now,
                attempts=1 if retries else 0,
            )
        )
    WebhookDelivery.objects.bulk_create(rows, batch_size=2000)


def run(args: argparse.Namespace) -> dict:
    var_dir = Path(tempfile.mkdtemp(prefix="csms-bench-webhooks-"))
    receiver_url = f"http://127.0.0.1:{RECEIVER_PORT}"
    secrets = reset(receiver_url)
    receiver = start_receiver(var_dir, secrets, args.delay_ms)
    stop_at = time.monotonic() + args.max_seconds
    expected = args.events if args.scenario != "steady" else int(args.rate * args.duration)
    try:
        if args.scenario == "backlog":
            write_backlog(args.events, retries=args.retries)
        workers = start_workers(args.layout, var_dir, dict(item.split("=", 1) for item in args.env))
        try:
            if args.scenario != "backlog":  # a backlog's drain time includes the workers' start
                wait_until_delivering(stop_at)
            started_wall = time.time()
            cpu_before = sum(process_tree_cpu(w.pid) for w in workers)
            if args.scenario == "burst":
                expected = emit(args.events, None, stop_at)
            elif args.scenario == "steady":
                expected = emit(expected, args.rate, stop_at)
            emitted_wall = time.time()
            while time.monotonic() < stop_at and receiver_stats()["unique"] < expected:
                time.sleep(0.25)
            time.sleep(args.settle)  # late duplicates, if any
            cpu = sum(process_tree_cpu(w.pid) for w in workers) - cpu_before
            receiver_cpu = cpu_seconds(receiver.pid)
        finally:
            stop(workers)
        stats = receiver_stats()
    finally:
        receiver.terminate()
        receiver.wait()
    latencies = stats.pop("latencies_ms")
    first, last = stats.pop("first_at"), stats.pop("last_at")
    elapsed = (last - started_wall) if last else None
    return {
        "scenario": args.scenario,
        "layout": args.layout,
        "events": expected,
        "delay_ms": args.delay_ms,
        "rate": args.rate if args.scenario == "steady" else None,
        "retries": args.retries,
        **{k: stats[k] for k in ("received", "unique", "duplicates", "signature_failures")},
        "lost": expected - stats["unique"],
        "deliveries_per_s": round(stats["unique"] / elapsed, 1) if elapsed else 0,
        "drained_s_after_last_emit": round(last - emitted_wall, 2) if last else None,
        "first_receipt_s": round(first - started_wall, 2) if first else None,
        "deliveries_per_s_after_first": round(stats["unique"] / (last - first), 1) if last and last > first else None,
        "env": args.env,
        "commit_to_receipt": percentiles(latencies) if latencies else {},
        "max_ms": round(max(latencies), 1) if latencies else None,
        "worker_cpu_s": round(cpu, 2),
        "receiver_cpu_s": round(receiver_cpu, 2),
        "worker_cpu_ms_per_delivery": round(cpu * 1000 / max(1, stats["received"]), 2),
        "recorded_delivered": WebhookDelivery.objects.filter(state="delivered").count(),
        "recorded_attempts": sum(WebhookDelivery.objects.values_list("attempts", flat=True)),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": MACHINE,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["burst", "steady", "backlog"])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--delay-ms", type=int, default=0)
    parser.add_argument("--retries", action="store_true", help="backlog rows are retries (attempts=1)")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="roles")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait for late duplicates")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the worker processes")
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "webhooks.json"))
    args = parser.parse_args()
    result = {"label": args.label, **run(args)}
    print(json.dumps(result, indent=2))
    path = Path(args.json)
    runs = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([*runs, result], indent=2) + "\n")


if __name__ == "__main__":
    main()
