"""The benchmarks' py-spy profiles (benchmarks/command_roundtrip.py ``--profile DIR``,
benchmarks/fleet.py ``--profile`` / ``--profile-connect PREFIX``) land in a directory that did not
exist yet: py-spy writes nothing into a missing one, and the benchmarks reported no error."""

from __future__ import annotations

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
    pytest.mark.skipif(
        not Path(sys.executable).with_name("py-spy").exists(), reason="py-spy is not installed beside Python"
    ),
]

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own, from the project's root as the benchmarks run: importing the benchmark
# sets Django up for the benchmark database. A sleeping Python process stands for the servers.
_PROFILED = """
import signal, subprocess, sys, time
sys.path.insert(0, "benchmarks")
import command_roundtrip as bench
import fleet
root = sys.argv[1]
server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
time.sleep(1)
try:
    profilers = bench.profiling_started(f"{root}/roundtrip/new", [server.pid, server.pid], "idle")
    profilers += fleet.connect_profilers(f"{root}/connect/new/p", [server.pid])
    profilers += fleet.closed_profilers(f"{root}/closed/new/p", [server.pid], seconds=0)
    time.sleep(2)
    bench.profiling_stopped(profilers[:2])
    profilers[2].send_signal(signal.SIGINT)
    for profiler in profilers[2:]:
        profiler.wait(timeout=30)
finally:
    server.kill()
"""


def test_the_benchmarks_profiles_are_written_into_a_directory_that_did_not_exist(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "-c", _PROFILED, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    written = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*") if path.is_file())
    assert written == [
        "closed/new/p.0.raw",
        "connect/new/p.0.raw",
        "roundtrip/new/idle_A.txt",
        "roundtrip/new/idle_B.txt",
    ]
