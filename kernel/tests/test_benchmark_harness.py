"""The benchmarks' readings of Linux /proc (benchmarks/harness.py): a process or thread that exits
while it is read counts nothing, and the benchmark goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from conftest import _test_database_url

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the harness sets up the benchmark database"),
    pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="Linux /proc"),
]

ROOT = Path(__file__).resolve().parents[2]

# Run in a process of its own, from the project's root as the benchmarks are: importing the harness
# sets Django up for the benchmark database.
# ``Path.is_dir`` answering yes stands for the process having exited just after its directory
# was looked at, before its threads were listed (``Path.glob`` then raised FileNotFoundError).
_READINGS = """
import json, os, pathlib, subprocess, sys
sys.path.insert(0, "benchmarks")
import harness
exited = subprocess.Popen([sys.executable, "-c", ""])
exited.wait()
pathlib.Path.is_dir = lambda self: True
print(json.dumps({
    "threads": harness.thread_cpu_seconds([exited.pid]),
    "switches": harness.thread_switches([exited.pid]),
    "tree": harness.process_tree(exited.pid),
    "live": harness.live_cpu_seconds([os.getpid(), exited.pid]) > 0,
}))
"""


def test_a_process_that_exited_while_it_was_read_counts_nothing() -> None:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "-c", _READINGS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    readings = json.loads(done.stdout.splitlines()[-1])
    assert readings["threads"] == {"loop_user": 0.0, "loop_sys": 0.0, "other_user": 0.0, "other_sys": 0.0}
    assert readings["switches"] == {"loop_waits": 0, "loop_preempted": 0, "other_waits": 0, "other_preempted": 0}
    assert len(readings["tree"]) == 1
    assert readings["live"]


# A thread that waits 20 times (an event never set, 1 ms each) beside a main thread that waits once.
_SWITCHES = """
import json, os, sys, threading, time
sys.path.insert(0, "benchmarks")
import harness
started, stop = threading.Event(), threading.Event()
def waiting():
    started.set()
    for _ in range(20):
        stop.wait(0.001)
    stop.wait()
thread = threading.Thread(target=waiting)
before = harness.thread_switches([os.getpid()])
thread.start()
started.wait()
time.sleep(0.2)
after = harness.thread_switches([os.getpid()])
stop.set()
thread.join()
print(json.dumps({kind: after[kind] - before[kind] for kind in after}))
"""


def test_a_thread_s_waits_count_for_its_role() -> None:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "-c", _SWITCHES], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    switches = json.loads(done.stdout.splitlines()[-1])
    assert switches["other_waits"] >= 20  # the thread's own waits, and its start
    assert 1 <= switches["loop_waits"] < 20  # the main thread's few (its sleep, the thread's start)


def test_batch_contention_times_batches_alone_and_beside_a_busy_thread() -> None:
    """``benchmarks/batch_contention.py`` runs real batches on PostgreSQL and reports each case."""
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "benchmarks/batch_contention.py", "--batches", "20", "--round-trips", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    batches = json.loads(done.stdout)["batches"]
    assert list(batches) == [
        "2 round trips (BEGIN with the first statement, 0 more, COMMIT)",
        "3 round trips (BEGIN with the first statement, 1 more, COMMIT)",
    ]
    for case in batches.values():
        assert set(case) == {"alone", "beside a busy thread"}
        for timing in case.values():
            assert 0 < timing["p50_ms"] <= timing["p95_ms"] <= timing["p99_ms"]
            assert timing["cpu_us"] > 0
