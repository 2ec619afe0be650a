"""Fleet benchmark: N chargers on daphne + PostgreSQL + Redis, beside the bare echo server.

Registers CHARGERS chargers (``BENCH-F-<n>``, half OCPP 1.6, half 2.0.1), starts SERVERS daphne
processes on loopback and drives them with the generator in loadgen.py (GENERATORS processes):

1. connect: every charger connects, boots and reports its connectors (bounded handshakes in flight),
   then moves to a random point of its session script (a steady state, not a lockstep start);
2. idle: RSS with every socket open, against RSS before and against the servers' RSS once
   ready, from a start of their own (per-connection memory);
3. rate: the session mix at RATE messages/s for DURATION seconds (latency at a given load);
   with --idle only heartbeats every HEARTBEAT seconds instead;
4. closed: CLOSED_CHARGERS chargers send back to back for CLOSED_SECONDS (throughput, CPU/message;
   beside the servers' CPU, that of the PostgreSQL backends of the benchmark database and how many
   of the machine's cores were busy: on 2 cores they share, the database's cost bounds throughput too);
5. verify: every acknowledged start, stop and meter reading must be a row in PostgreSQL.

Connect, rate and closed also report the group commit's batches of ours in the phase (``group_commit``:
how many, their mean units, how many of each size; from the servers' metrics files).

Then the same phases against echo_baseline.py (as many processes as SERVERS) and one table:
metric | ours | echo | ours/echo. Results in benchmarks/results/fleet.json (or --json).

    .venv/bin/python benchmarks/fleet.py                     # 10,000 chargers, about 3 minutes
    .venv/bin/python benchmarks/fleet.py --chargers 300 --duration 10 --closed-seconds 5
    .venv/bin/python benchmarks/fleet.py --workers 2         # `make serve`: 2 daphne workers on one port
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from harness import (  # Django
    MACHINE,
    ROOT,
    SERVERS,
    batch_units_between,
    batch_units_seen,
    cpu_seconds,
    database_cpu_seconds,
    database_wal,
    machine_busy_seconds,
    percentiles,
    process_tree,
    rss_kb,
    server_log_problems,
    thread_cpu_seconds,
    thread_switches,
    versions,
    wal_lsn,
)

from django.core.management import call_command
from django.db import connections
from django.utils import timezone

import echo_baseline
import loadgen
from billing.models import Tariff
from chargepoints.models import ChargePoint
from charging.models import IdTag, MeterSample, Transaction

DAPHNE_PORT = 18100  # --port; the echo servers listen 90 above
ECHO_OFFSET = 90


def prepare(chargers: int) -> list[tuple[str, str]]:
    """Migrate, and make sure the chargers, the accepted id tag and a default tariff exist."""
    call_command("migrate", verbosity=0)
    IdTag.objects.get_or_create(id_tag=loadgen.TAG)
    if not Tariff.objects.filter(is_default=True).exists():
        Tariff.objects.create(name="Bench default", currency="EUR", price_per_kwh=Decimal("0.30"), is_default=True)
    fleet = loadgen.charger_ids(chargers)
    ChargePoint.objects.bulk_create(
        [ChargePoint(charge_point_id=cp, heartbeat_interval=300) for cp, _ in fleet],
        ignore_conflicts=True,
        batch_size=2000,
    )
    connections.close_all()  # the generators fork: no inherited database sockets
    return fleet


def persisted_since(since: datetime) -> dict[str, int]:
    """Rows the fleet's chargers got in PostgreSQL since ``since`` (server clock, same machine)."""
    ours = {"charge_point__charge_point_id__startswith": loadgen.PREFIX}
    started = Transaction.objects.filter(**ours, created_at__gte=since)
    counts = {
        "starts": started.count(),
        "stops": started.filter(status="ended", closed_by_csms=False).count(),
        "meter_samples": MeterSample.objects.filter(**ours, received_at__gte=since).count(),
    }
    connections.close_all()
    return counts


def expected_rows(count: dict[str, int]) -> dict[str, int]:
    """What the acknowledged messages imply: 2.0.1 carries a reading in every TransactionEvent."""

    def n(key: str) -> int:
        return count.get(key, 0)

    readings = n("meter_v16") + n("start_v201") + n("meter_v201") + n("stop_v201")
    return {
        "starts": n("start_v16") + n("start_v201"),
        "stops": n("stop_v16") + n("stop_v201"),
        "meter_samples": loadgen.SAMPLES_PER_READING * readings,
    }


class RssSampler(threading.Thread):
    """Samples the servers' RSS twice a second; keeps the peak of their sum."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids, self.peak_total_kb, self.running = pids, 0, True

    def run(self) -> None:
        while self.running:
            try:
                self.peak_total_kb = max(self.peak_total_kb, sum(rss_kb(pid) for pid in self.pids))
            except OSError:
                return
            time.sleep(0.5)


def acked_by_kind(stats: loadgen.Stats) -> dict[str, int]:
    """Acknowledged (and unanswered: timed out or dropped) starts, meter readings and stops, per version."""
    kinds = [f"{kind}_{v}" for kind in loadgen.PERSISTING for v in ("v16", "v201")]
    return {key: stats.count[key] for kind in kinds for key in (kind, f"unanswered_{kind}")}


def phase_numbers(stats: loadgen.Stats, cpu: float, shared: dict[str, float] | None = None) -> dict[str, Any]:
    """A phase's figures; ``shared`` (``SharedCpu.since``): what the database and the machine used."""
    acked = stats.count["acked"]
    persisting = sum(stats.count[f"{kind}_{v}"] for kind in loadgen.PERSISTING for v in ("v16", "v201"))
    numbers: dict[str, Any] = {
        "seconds": round(stats.seconds, 2),
        "acked": acked,
        "acked_per_s": round(acked / stats.seconds, 1) if stats.seconds else 0,
        "persisting_acked": persisting,
        "server_cpu_s": round(cpu, 2),
        "server_cpu_us_per_msg": round(cpu / acked * 1e6) if acked else None,
        "server_cpu_us_per_persisting_msg": round(cpu / persisting * 1e6) if persisting else None,
        "timeouts": stats.count["timeouts"],
        "dropped": stats.count["dropped"],
        "call_errors": stats.count["call_errors"],
        "late_sends": stats.count["late_sends"],
        "acked_by_kind": acked_by_kind(stats),
        "errors": dict(stats.errors.most_common(5)),
    }
    if shared is not None:
        numbers["database_cpu_s"] = round(shared["database"], 2)
        per_persisting = round(shared["database"] / persisting * 1e6) if persisting else None
        numbers["database_cpu_us_per_persisting_msg"] = per_persisting
        numbers["machine_busy_cores"] = round(shared["machine"] / stats.seconds, 2) if stats.seconds else None
    if stats.latencies:
        numbers.update(percentiles(stats.latencies))
        numbers["latency_by_action"] = {
            action: {"n": len(latencies), **percentiles(latencies)}
            for action, latencies in sorted(stats.latencies_by_kind.items())
        }
        numbers["latency_by_second"] = latency_by_second(stats.latencies_at)
    return numbers


def latency_by_second(answered: list[tuple[float, float]]) -> list[dict[str, float]]:
    """The phase's answers by the second (since its first answer) they were answered in: count, p50, p99 (ms)."""
    first = min(at for at, _ in answered)
    seconds: dict[int, list[float]] = {}
    for at, latency in answered:
        seconds.setdefault(int(at - first), []).append(latency)
    by_second: list[dict[str, float]] = []
    for second, latencies in sorted(seconds.items()):
        measured = percentiles(latencies)
        p50, p99 = measured["p50_ms"], measured["p99_ms"]
        by_second.append({"second": second, "n": len(latencies), "p50_ms": p50, "p99_ms": p99})
    return by_second


class SharedCpu:
    """What the PostgreSQL backends of the benchmark database and the whole machine used since the
    last ``since``: a phase's cost beyond the servers' own (the database shares the 2 cores)."""

    def __init__(self) -> None:
        self._at = self._now()

    @staticmethod
    def _now() -> dict[str, float]:
        return {"database": database_cpu_seconds(), "machine": machine_busy_seconds()}

    def since(self) -> dict[str, float]:
        """Seconds used since the previous call (or creation); starts the next interval."""
        now = self._now()
        used = {key: now[key] - self._at[key] for key in now}
        self._at = now
        return used


def closed_profilers(
    prefix: str, pids: list[int], *, seconds: float, on_cpu: bool = False
) -> list[subprocess.Popen[bytes]]:
    """py-spy (GIL holders, raw stacks, 250 Hz) on each server for a phase's (closed or rate) ``seconds``
    but the last two (at least 6 s).

    Writes ``<prefix>.<i>.raw`` per server process (the prefix's directory created if missing: py-spy
    writes nothing into a missing one); none without ``--profile``. ``on_cpu``: every
    thread's stack while it runs on a core instead of the GIL's holder (py-spy's ``--gil`` also
    reports a thread that waits to take the GIL back as its holder: a batch thread's turn shows
    as the event loop's line where it waits).
    """
    if not prefix:
        return []
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    duration = str(max(6, int(seconds) - 2))
    command = [py_spy, "record", *([] if on_cpu else ["--gil"]), "--format", "raw", "--rate", "250", "-d", duration]
    return [
        subprocess.Popen([*command, "--pid", str(pid), "-o", f"{prefix}.{i}.raw"], stdout=subprocess.DEVNULL)
        for i, pid in enumerate(pids)
    ]


def connect_profilers(prefix: str, pids: list[int]) -> list[subprocess.Popen[bytes]]:
    """py-spy (GIL holders, raw stacks, 100 Hz) on each server for the connect phase, stopped by an
    interrupt at its end: ``<prefix>.<i>.raw`` per server process (its directory created if missing);
    none without ``--profile-connect``."""
    if not prefix:
        return []
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    command = [py_spy, "record", "--gil", "--nonblocking", "--format", "raw", "--rate", "100"]
    return [
        subprocess.Popen([*command, "--pid", str(pid), "-o", f"{prefix}.{i}.raw"], stdout=subprocess.DEVNULL)
        for i, pid in enumerate(pids)
    ]


def generator_cpu(fleet: loadgen.Fleet, since: float = 0.0) -> float:
    """CPU seconds the generator processes used (they share the 2 cores with the servers)."""
    return round(sum(cpu_seconds(process.pid) for process in fleet.processes if process.pid) - since, 2)


def drive(
    args: argparse.Namespace,
    fleet_ids: list[tuple[str, str]],
    ports: list[int],
    pids: list[int],
    since: datetime | None = None,
    var_dir: str = "",
) -> dict[str, Any]:
    """Run the phases against servers already listening on ``ports``.

    With ``since`` (ours, not echo) PostgreSQL is counted at the end of each phase, for the
    persisted messages/s; the verification counts again once the servers have stopped. With
    ``var_dir`` (ours: the servers' ``CSMS_VAR_DIR``) the connect, rate and closed phases' batches too.
    """
    cpu = lambda: sum(cpu_seconds(pid) for pid in pids)  # noqa: E731
    rss_before = sum(rss_kb(pid) for pid in pids)
    sampler = RssSampler(pids)
    sampler.start()
    fleet = loadgen.Fleet(fleet_ids, ports, args.generators)
    result: dict[str, Any] = {"servers": len(pids)}
    try:
        cpu_at, threads_at, connect_shared = cpu(), thread_cpu_seconds(pids), SharedCpu()
        connect_batches_at = batch_units_seen(var_dir) if var_dir else {}
        profilers = connect_profilers(args.profile_connect, pids) if since else []
        try:
            connect = fleet.run("connect", concurrency=args.handshakes, retries=2, seconds=args.connect_seconds)
        finally:
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on an interrupt
            for profiler in profilers:
                profiler.wait(timeout=60)
        threads = {role: seconds - threads_at[role] for role, seconds in thread_cpu_seconds(pids).items()}
        result["connect"] = {
            "seconds": round(connect.seconds, 2),
            "connected": connect.count["booted"],
            "handshake_errors": connect.count["handshake_errors"],
            "errors": dict(connect.errors.most_common(5)),
            "server_cpu_s": round(cpu() - cpu_at, 2),
            "threads_cpu_s": {role: round(seconds, 2) for role, seconds in threads.items()},
            "shared_cpu_s": {key: round(value, 2) for key, value in connect_shared.since().items()},
            "acked_by_kind": acked_by_kind(connect),
            **({"group_commit": batch_units_between(connect_batches_at, batch_units_seen(var_dir))} if var_dir else {}),
            **(
                {"boot_" + k: v for k, v in percentiles(connect.boot_latencies).items()}
                if connect.boot_latencies
                else {}
            ),
        }
        time.sleep(3)
        rss_idle = sum(rss_kb(pid) for pid in pids)
        result["rss_before_kb"], result["rss_idle_kb"] = rss_before, rss_idle
        result["rss_per_connection_kb"] = round((rss_idle - rss_before) / max(1, connect.count["booted"]), 1)
        cpu_at, gen_at, shared = cpu(), generator_cpu(fleet), SharedCpu()
        batches_at = batch_units_seen(var_dir) if var_dir else {}
        if args.idle:
            stats = fleet.run("idle", seconds=args.duration, heartbeat=args.heartbeat)
            result["idle"] = {**phase_numbers(stats, cpu() - cpu_at), "generator_cpu_s": generator_cpu(fleet, gen_at)}
        else:
            rate_wall = time.time()
            profilers = (
                closed_profilers(args.profile_rate, pids, seconds=args.duration, on_cpu=args.profile_on_cpu)
                if since
                else []
            )
            stats = fleet.run("rate", seconds=args.duration, interval=max(1, connect.count["booted"]) / args.rate)
            for profiler in profilers:
                profiler.wait(timeout=60)
            result["rate"] = {"target_per_s": args.rate, **phase_numbers(stats, cpu() - cpu_at, shared.since())}
            result["rate"]["wall"] = [rate_wall, time.time()]  # epoch seconds: lines up a server-side trace
            result["rate"]["generator_cpu_s"] = generator_cpu(fleet, gen_at)
            if var_dir:
                batches_at, batches_from = batch_units_seen(var_dir), batches_at
                result["rate"]["group_commit"] = batch_units_between(batches_from, batches_at)
            if since:
                result["rate"]["persisted"] = persisted_since(since)
            if args.closed_seconds > 0:
                cpu_at, gen_at, threads_at = cpu(), generator_cpu(fleet), thread_cpu_seconds(pids)
                switches_at = thread_switches(pids)
                shared.since()
                profilers = (
                    closed_profilers(args.profile, pids, seconds=args.closed_seconds, on_cpu=args.profile_on_cpu)
                    if since
                    else []
                )
                wal_from = wal_lsn() if since else ""
                stats = fleet.run(
                    "closed", seconds=args.closed_seconds, active=-(-args.closed_chargers // args.generators)
                )
                for profiler in profilers:
                    profiler.wait(timeout=60)
                closed = phase_numbers(stats, cpu() - cpu_at, shared.since())
                wal_to = wal_lsn() if since else ""
                result["closed"] = {"chargers": args.closed_chargers, **closed}
                threads = {role: seconds - threads_at[role] for role, seconds in thread_cpu_seconds(pids).items()}
                result["closed"]["threads_cpu_s"] = {role: round(seconds, 2) for role, seconds in threads.items()}
                for role in ("loop", "other"):  # per acknowledged persisting message, as server_cpu_us_per_...
                    seconds = threads[f"{role}_user"] + threads[f"{role}_sys"]
                    per = round(seconds / closed["persisting_acked"] * 1e6) if closed["persisting_acked"] else None
                    result["closed"][f"{role}_cpu_us_per_persisting_msg"] = per
                switches = {kind: n - switches_at[kind] for kind, n in thread_switches(pids).items()}
                result["closed"]["thread_switches"] = switches
                for kind in ("loop_waits", "loop_preempted"):  # how often the event loop left its core
                    per_msg = switches[kind] / closed["persisting_acked"] if closed["persisting_acked"] else None
                    result["closed"][f"{kind}_per_persisting_msg"] = round(per_msg, 3) if per_msg is not None else None
                result["closed"]["generator_cpu_s"] = generator_cpu(fleet, gen_at)
                if var_dir:
                    batches = batch_units_between(batches_at, batch_units_seen(var_dir))
                    result["closed"]["group_commit"] = batches
                    if closed["persisting_acked"]:
                        per = round(batches["batch_thread_cpu_s"] / closed["persisting_acked"] * 1e6)
                        result["closed"]["batch_thread_cpu_us_per_persisting_msg"] = per
        result["connections_held_at_end"] = stats.count["open_at_end"]
        if since and "rate" in result:
            after_closed = persisted_since(since)
            persisted_before = result["rate"]["persisted"]
            if "closed" in result:
                rows = {k: after_closed[k] - persisted_before[k] for k in persisted_before}
                result["closed"]["persisted"] = rows
                result["closed"]["persisted_msgs_per_s"] = persisted_messages_per_s(rows, result["closed"]["seconds"])
                wal = database_wal(wal_from, wal_to)
                if wal is not None:
                    result["closed"]["wal"] = wal
                    persisted = persisted_messages(rows)
                    result["closed"]["wal_bytes_per_persisted_msg"] = round(wal["bytes"] / max(1.0, persisted))
            result["rate"]["persisted_msgs_per_s"] = persisted_messages_per_s(
                result["rate"]["persisted"], result["rate"]["seconds"]
            )
        result["peak_rss_kb_per_server"] = [rss_kb(pid, "VmHWM") for pid in pids]
    finally:
        sampler.running = False
        fleet.close()
    result["peak_rss_kb_total_sampled"] = sampler.peak_total_kb
    return result


def persisted_messages(rows: dict[str, int]) -> float:
    """Starts + stops + meter readings found in PostgreSQL (a reading is SAMPLES_PER_READING rows)."""
    return rows["starts"] + rows["stops"] + rows["meter_samples"] / loadgen.SAMPLES_PER_READING


def persisted_messages_per_s(rows: dict[str, int], seconds: float) -> float:
    """``persisted_messages`` per second."""
    return round(persisted_messages(rows) / seconds, 1) if seconds else 0.0


def verify(result: dict[str, Any], counted: dict[str, int]) -> list[str]:
    """Every acknowledged start, stop and reading must be in PostgreSQL (v2.0.1 Ended carries one).

    A CALL that timed out or lost its socket may or may not have been stored: those widen the
    upper bound only.
    """
    acked = {key: value for key, value in counted.items() if not key.startswith("unanswered_")}
    at_most = {key: value + counted.get(f"unanswered_{key}", 0) for key, value in acked.items()}
    low, high = expected_rows(acked), expected_rows(at_most)
    result["persisted_expected"] = {"acknowledged": low, "at_most": high}
    return [
        f"{what}: {low[what]} acknowledged (at most {high[what]} sent), {result['persisted'][what]} in PostgreSQL"
        for what in low
        if not low[what] <= result["persisted"][what] <= high[what]
    ]


def ready_rss_kb(args: argparse.Namespace, var_dir: str) -> int:
    """The servers' RSS (their processes' sum, KB) once every one has loaded the application, before
    any connection: the same servers started on their own and stopped again.

    ``make serve`` listens before its workers have imported Django and the application (about
    100 MB each), so the RSS read as it starts listening (``rss_before_kb``) leaves that start-up
    inside the per-connection figure: 19 KB a connection at 10,000 with two workers. Ready means
    the sum unchanged (within 0.5 %) over 2 s, read twice a second, within 60 s.
    """
    servers = [SERVERS[args.server](args.port + n, var_dir, backlog=args.backlog) for n in range(args.servers)]
    try:
        pids = [pid for server in servers for pid in process_tree(server.pid)]
        readings: list[int] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            readings.append(sum(rss_kb(pid) for pid in pids))
            if len(readings) > 4 and max(readings[-5:]) - min(readings[-5:]) <= readings[-1] * 0.005:
                break
            time.sleep(0.5)
        return readings[-1]
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


def run_ours(args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    var_dir = tempfile.mkdtemp(prefix="csms-bench-")
    rss_ready = ready_rss_kb(args, tempfile.mkdtemp(prefix="csms-bench-ready-"))
    ports = [args.port + n for n in range(args.servers)]
    servers = [SERVERS[args.server](port, var_dir, backlog=args.backlog) for port in ports]
    since = timezone.now()
    try:
        pids = [pid for server in servers for pid in process_tree(server.pid)]  # serve: its workers too
        result = drive(args, fleet_ids, ports, pids, since, var_dir)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)
    result["rss_ready_kb"] = rss_ready
    result["rss_per_connection_over_ready_kb"] = round(
        (result["rss_idle_kb"] - rss_ready) / max(1, result["connect"]["connected"]), 1
    )
    result["server_log_dir"] = var_dir
    result["server_log_problems"] = server_log_problems(var_dir)
    result["mismatches"] = []
    if not args.idle:  # counted after a graceful stop: whatever the servers buffered is flushed by now
        result["persisted"] = persisted_since(since)
        result["mismatches"] = verify(result, _acked_persisting(result))
    return result


def _acked_persisting(result: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for phase in ("connect", "rate", "closed"):
        for key, value in result.get(phase, {}).get("acked_by_kind", {}).items():
            total[key] = total.get(key, 0) + value
    return total


def run_echo(args: argparse.Namespace, fleet_ids: list[tuple[str, str]]) -> dict[str, Any]:
    first = args.echo_port if args.echo_port is not None else args.port + ECHO_OFFSET
    ports = [first + n for n in range(args.servers)]
    servers = [echo_baseline.start(port) for port in ports]
    try:
        return drive(args, fleet_ids, ports, [server.pid for server in servers])
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=30)


ROWS: list[tuple[str, Any]] = [
    ("chargers connected and booted", lambda r: r["connect"]["connected"]),
    ("connections held at the end", lambda r: r["connections_held_at_end"]),
    ("handshake errors", lambda r: r["connect"]["handshake_errors"]),
    ("connect phase (boot, status, mix), s", lambda r: r["connect"]["seconds"]),
    ("boot p99 ms (connect burst)", lambda r: r["connect"].get("boot_p99_ms")),
    ("RSS per idle connection KB", lambda r: r["rss_per_connection_kb"]),
    ("  the same over ready servers KB", lambda r: r.get("rss_per_connection_over_ready_kb")),
    ("peak RSS per server MB", lambda r: round(max(r["peak_rss_kb_per_server"]) / 1024, 1)),
    ("rate: msgs/s acked", lambda r: r["rate"]["acked_per_s"]),
    ("rate: p50 ms", lambda r: r["rate"].get("p50_ms")),
    ("rate: p95 ms", lambda r: r["rate"].get("p95_ms")),
    ("rate: p99 ms", lambda r: r["rate"].get("p99_ms")),
    ("rate: server CPU us/msg", lambda r: r["rate"]["server_cpu_us_per_msg"]),
    ("rate: units per group-commit batch, mean", lambda r: r["rate"].get("group_commit", {}).get("mean_units")),
    ("closed: msgs/s acked", lambda r: r["closed"]["acked_per_s"]),
    ("closed: msgs/s persisted", lambda r: r["closed"].get("persisted_msgs_per_s")),
    ("closed: p50 ms", lambda r: r["closed"].get("p50_ms")),
    ("closed: p99 ms", lambda r: r["closed"].get("p99_ms")),
    ("closed: server CPU us/msg", lambda r: r["closed"]["server_cpu_us_per_msg"]),
    ("closed: server CPU us/persisted msg", lambda r: r["closed"]["server_cpu_us_per_persisting_msg"]),
    ("closed: units per group-commit batch, mean", lambda r: r["closed"].get("group_commit", {}).get("mean_units")),
    ("closed: event loop thread CPU us/persisted msg", lambda r: r["closed"].get("loop_cpu_us_per_persisting_msg")),
    ("closed: other threads CPU us/persisted msg", lambda r: r["closed"].get("other_cpu_us_per_persisting_msg")),
    ("  of which the batch thread's", lambda r: r["closed"].get("batch_thread_cpu_us_per_persisting_msg")),
    ("closed: event loop's waits/persisted msg", lambda r: r["closed"].get("loop_waits_per_persisting_msg")),
    ("closed: event loop preempted/persisted msg", lambda r: r["closed"].get("loop_preempted_per_persisting_msg")),
    ("closed: WAL bytes/persisted msg (its database)", lambda r: r["closed"]["wal_bytes_per_persisted_msg"]),
    ("closed: PostgreSQL CPU us/persisted msg", lambda r: r["closed"].get("database_cpu_us_per_persisting_msg")),
    ("closed: machine busy cores (of 2)", lambda r: r["closed"].get("machine_busy_cores")),
    ("idle: heartbeats/s acked", lambda r: r["idle"]["acked_per_s"]),
    ("idle: p99 ms", lambda r: r["idle"].get("p99_ms")),
    ("idle: server CPU us/heartbeat", lambda r: r["idle"]["server_cpu_us_per_msg"]),
    (
        "timeouts + drops (all phases)",
        lambda r: sum(r[p]["timeouts"] + r[p]["dropped"] for p in ("rate", "closed", "idle") if p in r) if r else None,
    ),
]


def table(ours: dict[str, Any], echo: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for metric, pick in ROWS:
        values = []
        for result in (ours, echo):
            try:
                values.append(pick(result))
            except (KeyError, TypeError, ValueError):
                values.append(None)
        if values == [None, None]:
            continue
        ratio = round(values[0] / values[1], 2) if all(isinstance(v, int | float) and v for v in values) else None
        rows.append({"metric": metric, "ours": values[0], "echo": values[1], "ours_over_echo": ratio})
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    def cell(value: Any) -> str:
        return "-" if value is None else str(value)

    print(f"{'metric':<38}{'ours':>12}{'echo':>12}{'ours/echo':>11}")
    for row in rows:
        print(f"{row['metric']:<38}{cell(row['ours']):>12}{cell(row['echo']):>12}{cell(row['ours_over_echo']):>11}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=20, help="seconds of the rate (or idle) phase")
    parser.add_argument("--rate", type=float, default=1000, help="target messages/s of the rate phase")
    parser.add_argument("--idle", action="store_true", help="only hold the sockets and send heartbeats")
    parser.add_argument("--heartbeat", type=float, default=30, help="heartbeat interval in --idle mode, s")
    parser.add_argument("--closed-seconds", type=float, default=10, help="0 skips the throughput phase")
    parser.add_argument("--closed-chargers", type=int, default=200)
    parser.add_argument(
        "--profile", default="", metavar="PREFIX", help="py-spy our servers in the closed phase: PREFIX.<i>.raw"
    )
    parser.add_argument(
        "--profile-connect",
        default="",
        metavar="PREFIX",
        help="py-spy: PREFIX.<i>.raw, connect phase",
    )
    parser.add_argument(
        "--profile-rate", default="", metavar="PREFIX", help="py-spy our servers in the rate phase: PREFIX.<i>.raw"
    )
    parser.add_argument(
        "--profile-on-cpu",
        action="store_true",
        help="with --profile or --profile-rate: the threads on a core, not the GIL's holder",
    )
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument(
        "--port", type=int, default=DAPHNE_PORT, help="our first server's port; the echo servers' are 90 above"
    )
    parser.add_argument("--echo-port", type=int, default=None, help="first echo server port (--port + 90)")
    parser.add_argument("--server", choices=sorted(SERVERS), default="daphne", help="the ASGI server of ours")
    parser.add_argument(
        "--workers", type=int, default=0, help="N: `make serve` with N daphne workers per port (SO_REUSEPORT)"
    )
    parser.add_argument("--generators", type=int, default=2, help="load generator processes")
    parser.add_argument("--handshakes", type=int, default=50, help="handshakes in flight per generator")
    parser.add_argument("--connect-seconds", type=float, default=60, help="give up connecting after this")
    parser.add_argument("--backlog", type=int, default=4096, help="listen backlog (0: daphne's 50, uvicorn's 2048)")
    parser.add_argument("--no-echo", action="store_true", help="skip the echo baseline")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "fleet.json")
    args = parser.parse_args()
    if args.workers:  # scripts/serve.py reads WORKERS; harness.start_serve waits for that many
        args.server = "serve"
        os.environ["WORKERS"] = str(args.workers)
    started = time.monotonic()
    fleet_ids = prepare(args.chargers)
    ours = run_ours(args, fleet_ids)
    echo = {} if args.no_echo else run_echo(args, fleet_ids)
    rows = table(ours, echo)
    print_table(rows)
    for problem, count in ours["server_log_problems"].items():
        print(f"server log: {count} x {problem}")
    for mismatch in ours["mismatches"]:
        print("MISMATCH", mismatch)
    if not ours["mismatches"] and "persisted" in ours and not args.idle:
        print("persisted: every acknowledged start, stop and meter reading is in PostgreSQL", ours["persisted"])
    result = {
        "benchmark": "fleet",
        "machine": {**MACHINE, "versions": versions()},
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "wall_seconds": round(time.monotonic() - started, 1),
        "table": rows,
        "ours": ours,
        "echo": echo,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json} in {result['wall_seconds']} s")


if __name__ == "__main__":
    main()
