"""The command round trip's timeline (benchmarks/command_timeline.py): its spans follow one another,
so each command's spans add up to its round trip, and a step seen twice in a command is cut at its
first start and its last end; the round trip benchmark reports the simulated charger's time."""

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
_TIMELINE = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, "benchmarks")
import command_roundtrip
import command_timeline as timeline
names = [timeline.SPANS[0][1]] + [end for _, _, end, _ in timeline.SPANS]
processes = {"A": 1, "B": 2}
where = {start: process for _, start, _, process in timeline.SPANS if process}
where.update({end: process for _, _, end, process in timeline.SPANS if process})


def traced(commands):
    trace, lines = tempfile.mkdtemp(), {"A": [], "B": []}
    timeline.EVENTS.clear()
    for events in commands:
        for name, wall in events:
            if name in where:
                lines[where[name]].append(f"{name} {wall} {wall // 2}")  # CPU: half the wall time
            else:
                timeline.EVENTS.append((name, wall, 0))
    for process, pid in processes.items():
        Path(trace, f"{pid}.log").write_text("".join(line + "\\n" for line in lines[process]))
    return timeline.commands(trace, processes)


# Two commands: 1 ms a span, then 2 ms.
found = traced([[(name, start + n * step) for n, name in enumerate(names)]
                for start, step in ((10**9, 10**6), (2 * 10**9, 2 * 10**6))])
# A step seen twice in a command: a second frame to the charger, a view entered again.
again = traced([[("post>", 0), ("delivered>", 10), ("ws_send<", 20), ("view>", 30), ("ws_send<", 40), ("view>", 50)]])
print(json.dumps({
    "spans": timeline.spans(found),
    "ws_send": again[0]["ws_send<"][0],
    "view": again[0]["view>"][0],
    "charger": command_roundtrip.summarize([1.0, 2.0], 1.0, [0.0, 0.0, 0.0], [0.2, 0.4, 0.9]),
}))
"""


def test_the_timelines_spans_add_up_to_the_round_trip() -> None:
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "REDIS_URL": settings.REDIS_URL or ""}
    done = subprocess.run(
        [sys.executable, "-c", _TIMELINE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    *spans, total = result["spans"]
    assert total == {"span": "round trip", "commands": 2, "p50_ms": 28.5}  # the median of 19 and 38 ms
    assert [span["p50_ms"] for span in spans] == [1.5] * 19
    assert [span["p99_ms"] for span in spans] == [2.0] * 19
    assert all(span.get("cpu_p50_ms") == 0.75 for span in spans if span["process"] != "-")  # CPU: half the wall
    assert result["ws_send"] == 40  # an end: the last
    assert result["view"] == 30  # a start: the first
    assert result["charger"]["charger_p50_ms"] == 0.4
