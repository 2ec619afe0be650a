"""What the benchmarks share: the benchmark database, Django, daphne processes, percentiles.

Import it first: it points Django at PostgreSQL + Redis on loopback (override with
DATABASE_URL / REDIS_URL) and creates the benchmark database if it is missing.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loadgen import raise_nofile

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dynamo_csms_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csms.settings")
os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")


def _ensure_database() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


_ensure_database()

import django  # noqa: E402

django.setup()

MACHINE = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


# The benchmarks measure the server, not the API's per-key throttle (CSMS_API_RATE) nor the
# per-connection frame budget (a command benchmark's charger answers hundreds of CALLs a second).
UNTHROTTLED = {"CSMS_API_RATE": "1000000/minute", "CSMS_MAX_FRAMES_PER_SECOND": "100000", "CSMS_FRAME_BURST": "100000"}


def wait_listening(
    process: subprocess.Popen[bytes], port: int, name: str, *, children: int = 0, seconds: float = 90
) -> None:
    """Wait until ``port`` answers HTTP (and the process has ``children`` workers); kill it after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:  # exited: e.g. the port is taken
        if len(process_tree(process.pid)) > children:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/admin/login/")
                return
            except OSError:
                pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{name} on {port} did not start (see its log)")


def free_port() -> int:
    """A loopback port nobody listens on now (other benchmarks may run on this machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(name: str, command: list[str], port: int, var_dir: str, **env: str) -> subprocess.Popen[bytes]:
    """The ASGI application under ``command``, its output in ``<var_dir>/<name>-<port>.log``."""
    env = {**os.environ, "CSMS_VAR_DIR": var_dir, "CSMS_LOG_LEVEL": "WARNING", **UNTHROTTLED, **env}
    with open(Path(var_dir) / f"{name}-{port}.log", "wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=raise_nofile
        )


def start_daphne(port: int, var_dir: str, *, backlog: int | None = None) -> subprocess.Popen[bytes]:
    """A daphne process on loopback; ``backlog`` sets the listen queue (Twisted's default is 50)."""
    listen = ["-b", "127.0.0.1", "-p", str(port)]
    if backlog:
        listen = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog={backlog}"]
    process = launch("daphne", [sys.executable, "-m", "daphne", *listen, "csms.asgi:application"], port, var_dir)
    wait_listening(process, port, "daphne")
    return process


# uvicorn's WebSocket implementation (BENCH_UVICORN_WS): "websockets-sansio" (websockets' Sans-I/O
# core), "websockets" (its legacy asyncio protocol) or "wsproto" when installed.
UVICORN_WS = os.environ.get("BENCH_UVICORN_WS", "websockets-sansio")


def start_uvicorn(port: int, var_dir: str, *, backlog: int | None = None) -> subprocess.Popen[bytes]:
    """The same ASGI application on uvicorn (h11, UVICORN_WS, no per-message deflate, no lifespan)."""
    command = [sys.executable, "-m", "uvicorn", "csms.asgi:application", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--ws", UVICORN_WS, "--ws-per-message-deflate", "false", "--lifespan", "off"]
    command += ["--log-level", "warning", "--timeout-graceful-shutdown", "5", "--backlog", str(backlog or 2048)]
    process = launch("uvicorn", command, port, var_dir)
    wait_listening(process, port, "uvicorn")
    return process


def start_granian(port: int, var_dir: str, *, backlog: int | None = None) -> subprocess.Popen[bytes]:
    """The same ASGI application on granian: one worker process under granian's main process.

    ``asginl`` is ASGI without lifespan (as uvicorn's ``--lifespan off``). ``--backpressure``
    caps the requests a worker serves at once, a WebSocket counting as one for its whole life:
    its default (backlog / workers, 1,024) would hold every later charger's handshake in the queue.
    """
    command = [sys.executable, "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--backlog", str(backlog or 2048), "--backpressure", "100000"]
    command += ["--log-level", "warning", "--no-access-log", "--workers-kill-timeout", "5"]
    process = launch("granian", [*command, "csms.asgi:application"], port, var_dir)
    wait_listening(process, port, "granian", children=1)
    return process


def start_serve(port: int, var_dir: str, *, backlog: int | None = None) -> subprocess.Popen[bytes]:
    """``make serve``: scripts/serve.py with WORKERS daphne workers (default: one per core) on ``port``."""
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--production", "--backlog", str(backlog or 4096)]
    process = launch("serve", command, port, var_dir, HOST="127.0.0.1", PORT=str(port))
    wait_listening(process, port, "scripts/serve.py", children=int(os.environ.get("WORKERS") or os.cpu_count() or 1))
    return process


SERVERS = {"daphne": start_daphne, "uvicorn": start_uvicorn, "granian": start_granian, "serve": start_serve}


def _threads(pid: int) -> list[Path]:
    """A process's threads' /proc directories; none for a process that has exited (even while they
    are being listed)."""
    try:
        return list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # FileNotFoundError, ProcessLookupError: it exited
        return []


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (a server's worker processes), from Linux /proc."""
    pids, index = [pid], 0
    while index < len(pids):
        for task in _threads(pids[index]):
            try:
                pids += [int(child) for child in (task / "children").read_text().split()]
            except OSError:
                continue
        index += 1
    return pids


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def live_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the processes among ``pids`` still running have used so far (Linux /proc):
    one that exited since it was listed counts nothing (its CPU went with it)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):  # FileNotFoundError, ProcessLookupError: it exited
            total += cpu_seconds(pid)
    return total


def thread_cpu_seconds(pids: list[int]) -> dict[str, float]:
    """User and system CPU the processes' threads have used so far (Linux /proc), as ``loop_user``,
    ``loop_sys`` (each process's main thread: daphne's event loop; ``make serve``'s parent, nearly idle,
    counts there too) and ``other_user``, ``other_sys``
    (every other thread: the group commit's batch thread, Django's database threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"loop_user": 0.0, "loop_sys": 0.0, "other_user": 0.0, "other_sys": 0.0}
    for pid in pids:
        for task in _threads(pid):
            try:
                user, system = (task / "stat").read_text().rsplit(")", 1)[1].split()[11:13]
            except (OSError, ValueError):
                continue  # the thread ended
            role = "loop" if task.name == str(pid) else "other"
            used[f"{role}_user"] += int(user) / tick
            used[f"{role}_sys"] += int(system) / tick
    return used


def thread_switches(pids: list[int]) -> dict[str, int]:
    """How often the processes' threads have left their core so far (Linux /proc, each thread's
    ``status``): ``loop_waits`` and ``other_waits`` (voluntary switches: a wait for the GIL, the
    selector, a lock, a socket), ``loop_preempted`` and ``other_preempted`` (involuntary: the
    kernel gave the core to another task), the roles as in ``thread_cpu_seconds``."""
    switches = {"loop_waits": 0, "loop_preempted": 0, "other_waits": 0, "other_preempted": 0}
    fields = {"voluntary_ctxt_switches": "waits", "nonvoluntary_ctxt_switches": "preempted"}
    for pid in pids:
        for task in _threads(pid):
            try:
                lines = (task / "status").read_text().splitlines()
            except OSError:
                continue  # the thread ended
            role = "loop" if task.name == str(pid) else "other"
            for line in lines:
                name, _, value = line.partition(":")
                if name in fields:
                    switches[f"{role}_{fields[name]}"] += int(value)
    return switches


def database_cpu_seconds() -> float:
    """User + system CPU the PostgreSQL backends serving the benchmark database (``DATABASE_URL``'s)
    have used so far: processes whose title is ``postgres: [<cluster>:] <user> <database> ...`` (Linux /proc). A
    backend that exited since an earlier reading takes its CPU with it: the pooled connections live
    through a phase."""
    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1].split("?")[0]
    total = 0.0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().split(b"\0")[0].decode(errors="replace").split()
            words = [word for word in title[1:] if not word.endswith(":")]  # without the cluster's name
            if title[:1] == ["postgres:"] and len(words) > 1 and words[1] == name:
                total += cpu_seconds(int(cmdline.parent.name))
        except (OSError, ValueError):
            continue
    return total


def wal_lsn() -> str:
    """PostgreSQL's current WAL insert position (an LSN, ``'0/1A2B3C4D'``)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        return str(cursor.fetchone()[0])


def database_wal(start: str, end: str, top: int = 12) -> dict[str, Any] | None:
    """WAL written between two LSNs by records that touch the benchmark database's relations
    (its own share of a cluster other databases write too; commit records name no relation and
    are left out): ``{"bytes", "fpi_bytes", "records", "by_relation": {table or index: bytes}}``
    (the ``top`` largest). Reads the WAL with pg_walinspect (PostgreSQL 15+, created in the
    benchmark database if missing); None where it is unavailable."""
    from django.db import DatabaseError, connection

    ours = r"' rel \d+/' || (SELECT oid FROM pg_database WHERE datname = current_database()) || '/(\d+)'"
    try:
        with connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            cursor.execute(
                f"WITH r AS (SELECT record_length, fpi_length, substring(block_ref from {ours})::oid AS node"
                " FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)),"
                " mine AS (SELECT * FROM r WHERE node IS NOT NULL)"
                " SELECT coalesce(c.relname, mine.node::text), sum(record_length), sum(fpi_length), count(*)"
                " FROM mine LEFT JOIN pg_class c ON c.relfilenode = mine.node GROUP BY 1 ORDER BY 2 DESC",
                [start, end],
            )
            rows = cursor.fetchall()
    except DatabaseError:
        return None
    finally:
        connection.close()
    return {
        "bytes": int(sum(row[1] for row in rows)),
        "fpi_bytes": int(sum(row[2] for row in rows)),
        "records": int(sum(row[3] for row in rows)),
        "by_relation": {row[0]: int(row[1]) for row in rows[:top]},
    }


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy so far (not idle, not waiting on I/O)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 2)

    return {
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """A memory figure of a process from /proc/<pid>/status (VmRSS now, VmHWM the peak), in KB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def versions() -> dict[str, str]:
    """Versions of what the WebSocket path is made of, for the results files."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("daphne", "channels", "channels-redis", "django", "websockets", "twisted", "redis", "psycopg")
    found = {name: version(name) for name in names}
    for other_server in ("uvicorn", "granian"):  # requirements-dev.txt
        with contextlib.suppress(PackageNotFoundError):
            found[other_server] = version(other_server)
    return found


def server_log_problems(var_dir: str, top: int = 8) -> dict[str, int]:
    """The most frequent warnings, errors and exception lines in the servers' logs (numbers blurred)."""
    import re
    from collections import Counter

    problems: Counter[str] = Counter()
    for log in Path(var_dir).glob("*.log"):
        for line in log.read_text(errors="replace").splitlines():
            level = re.search(r" (WARNING|ERROR|CRITICAL) (.*)", line)
            if level:
                problems[re.sub(r"\d+", "N", f"{level[1]} {level[2]}")[:150]] += 1
            elif re.match(r"^[\w.]*(Error|Exception|Timeout)\w*: ", line):
                problems[re.sub(r"\d+", "N", line)[:150]] += 1
    return dict(problems.most_common(top))


# A server writes its batches' tallies to its metric files within this long of a batch (kernel.metrics'
# _WRITE_EVERY, 0.5 s, and a margin).
BATCHES_WRITTEN_WITHIN_S = 0.7


def batch_units_seen(var_dir: str) -> dict[str, float]:
    """The group commit's batches so far in the servers writing metrics under ``var_dir``
    (``kernel.metrics``: ``csms_group_commit_batch_units``, ``..._cpu_seconds``): ``{"batches",
    "units", "cpu_s", "le_<n>"}``, the last the batches of at most n units. Subtract two with
    ``batch_units_between``. Read ``BATCHES_WRITTEN_WITHIN_S`` from now: the servers tally their
    batches and write them every half second, so that a phase's last batches are its own, not the
    next phase's."""
    time.sleep(BATCHES_WRITTEN_WITHIN_S)
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(Path(var_dir) / "metrics"))
    seen: dict[str, float] = {"batches": 0.0, "units": 0.0, "cpu_s": 0.0}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "csms_group_commit_batch_units_count":
                seen["batches"] += sample.value
            elif sample.name == "csms_group_commit_batch_units_sum":
                seen["units"] += sample.value
            elif sample.name == "csms_group_commit_batch_cpu_seconds_total":
                seen["cpu_s"] += sample.value
            elif sample.name == "csms_group_commit_batch_units_bucket":
                key = "le_" + sample.labels["le"].removesuffix(".0")
                seen[key] = seen.get(key, 0.0) + sample.value
    return seen


def batch_units_between(start: dict[str, float], end: dict[str, float]) -> dict[str, Any]:
    """The batches between two ``batch_units_seen``: how many, their mean units, the batch thread's
    CPU seconds, and how many had how many units (``"1"``, ``"2"``, ``"3-4"``, ... by the
    histogram's buckets)."""
    batches = end["batches"] - start["batches"]
    sizes: dict[str, int] = {}
    below, lower = 0.0, 1
    for key in sorted((k for k in end if k.startswith("le_") and k != "le_+Inf"), key=lambda k: float(k[3:])):
        upper = int(float(key[3:]))
        cumulative = end[key] - start.get(key, 0.0)
        if cumulative - below:
            sizes[str(upper) if upper == lower else f"{lower}-{upper}"] = round(cumulative - below)
        below, lower = cumulative, upper + 1
    return {
        "batches": round(batches),
        "mean_units": round((end["units"] - start["units"]) / batches, 1) if batches else None,
        "batch_thread_cpu_s": round(end["cpu_s"] - start["cpu_s"], 3),
        "by_units": sizes,
    }
