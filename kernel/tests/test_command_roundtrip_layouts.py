"""The command round trip benchmark's layouts (benchmarks/command_roundtrip.py): in both, every
command is posted to the process that does not hold its charger, so each crosses processes through
Redis; "split" holds every charger on A, "crossed" half on each process."""

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
]

ROOT = Path(__file__).resolve().parents[2]

# In a process of its own, from the project's root as the benchmarks run: importing the benchmark
# sets Django up for the benchmark database.
_LAYOUTS = """
import json, sys
sys.path.insert(0, "benchmarks")
import command_roundtrip as bench
bench.PORT_A, bench.PORT_B = 18081, 18082
ids = [f"CP{n}" for n in range(4)]
print(json.dumps({
    layout: {
        "held": [bench.charger_port(layout, n) for n in range(4)],
        "clients": bench.clients(layout, ids),
    }
    for layout in ("split", "crossed")
}))
"""


def test_each_layouts_commands_go_to_the_process_without_their_charger() -> None:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "-c", _LAYOUTS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    layouts = json.loads(done.stdout.splitlines()[-1])
    split, crossed = layouts["split"], layouts["crossed"]
    assert split["held"] == [18081] * 4
    assert crossed["held"] == [18081, 18082, 18081, 18082]
    for layout in (split, crossed):
        idle, per_charger = layout["clients"]
        held = dict(zip([f"CP{n}" for n in range(4)], layout["held"], strict=True))
        targets = [target for client in per_charger for target in client] + idle
        assert all(port != held[charger] for port, charger in targets)
        assert [[charger for _, charger in client] for client in per_charger] == [[f"CP{n}"] for n in range(4)]
    assert split["clients"][0] == [[18082, "CP0"]]
    assert crossed["clients"][0] == [[18082, "CP0"], [18081, "CP1"]]
