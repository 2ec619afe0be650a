"""What one idle charger connection holds in the daphne process: a tracemalloc diff.

Starts daphne ready for tracemalloc (``--frames`` frames per allocation; SIGUSR1 starts it, then
writes a snapshot), connects a few chargers (warm-up), takes a snapshot, connects CHARGERS chargers
with fleet.py's generator (Boot and a StatusNotification per connector, then idle), takes another
and prints the Python memory held per connection, grouped by the allocating line nearest the top
of the stack that is not in the standard library (so an asyncio.Queue is charged to whoever built
it). The RSS figure beside it includes tracemalloc's own records: compare heaps, not that.

    .venv/bin/python benchmarks/connection_memory.py [--chargers 150] [--frames 5] [--top 25]

tracemalloc slows the server several times over: connect rates measured here mean nothing.
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from harness import ROOT, launch, wait_listening, free_port, rss_kb  # Django

import fleet
import loadgen

# Run inside the server process: the first SIGUSR1 starts tracemalloc (from the start, it slows
# Django's imports tenfold), each later one writes a snapshot to <dir>/<n>.snap; then daphne's CLI.
TRACED_DAPHNE = """
import itertools, signal, sys, tracemalloc
frames, directory = int(sys.argv[1]), sys.argv[2]
numbers = itertools.count()
def on_signal(*_):
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(f"{directory}/{next(numbers)}.snap")
    else:
        tracemalloc.start(frames)
signal.signal(signal.SIGUSR1, on_signal)
sys.argv = ["daphne", *sys.argv[3:]]
from daphne.cli import CommandLineInterface
CommandLineInterface.entrypoint()
"""
WARM_UP = 20
STDLIB = sysconfig.get_paths()["stdlib"]


def snapshot(server: subprocess.Popen[bytes], directory: Path, number: int) -> tracemalloc.Snapshot:
    server.send_signal(signal.SIGUSR1)
    path = directory / f"{number}.snap"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            return tracemalloc.Snapshot.load(str(path))
        except (OSError, EOFError, ValueError):  # not there yet, or still being written
            time.sleep(1)
    raise RuntimeError(f"no snapshot at {path}")


def owner(trace: tracemalloc.Traceback) -> str:
    """The innermost frame outside the standard library (the allocation itself when all of it is)."""
    for frame in reversed(trace):  # innermost last with most_recent_first=False
        if not frame.filename.startswith(STDLIB):
            return f"{frame.filename.replace(str(ROOT) + '/', '').split('site-packages/')[-1]}:{frame.lineno}"
    return f"{trace[-1].filename.split('/')[-1]}:{trace[-1].lineno}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=150)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "connection_memory.json")
    args = parser.parse_args()
    fleet_ids = fleet.prepare(args.chargers + WARM_UP)
    directory, port = Path(tempfile.mkdtemp(prefix="csms-bench-tracemalloc-")), free_port()
    listen = ["-e", f"tcp:port={port}:interface=127.0.0.1:backlog=4096", "csms.asgi:application"]
    command = [sys.executable, "-c", TRACED_DAPHNE, str(args.frames), str(directory), *listen]
    server = launch("daphne", command, port, str(directory))
    # A few chargers first (lazy imports, pools, caches), then the measured ones: Boot, a
    # StatusNotification per connector, and idle (no session joined).
    warm = loadgen.Fleet(fleet_ids[args.chargers :], [port], 1)
    chargers = loadgen.Fleet(fleet_ids[: args.chargers], [port], 2)
    try:
        wait_listening(server, port, "daphne", seconds=60)
        warm.run("connect", concurrency=10, retries=2, seconds=60, join_mix=False)
        server.send_signal(signal.SIGUSR1)  # tracing from here on
        time.sleep(2)
        before, rss_before = snapshot(server, directory, 0), rss_kb(server.pid)
        connect = chargers.run("connect", concurrency=4, retries=3, seconds=240, join_mix=False)
        time.sleep(3)
        after, rss_after = snapshot(server, directory, 1), rss_kb(server.pid)
    finally:
        chargers.close()
        warm.close()
        server.kill()  # under tracemalloc a graceful stop takes minutes
        server.wait()
    connected = connect.count["booted"]
    if connect.errors:
        print(f"{connect.count['handshake_errors']} handshake errors: {dict(connect.errors.most_common(3))}")
    held: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        held[owner(stat.traceback)] += stat.size_diff
    total = sum(held.values())
    print(
        f"{connected} idle connections: RSS {(rss_after - rss_before) / connected:.1f} KB each, "
        f"Python heap (tracemalloc) {total / connected / 1024:.1f} KB each"
    )
    top = [(where, round(size / connected)) for where, size in held.most_common(args.top)]
    for where, size in top:
        print(f"{size:>8} B  {where}")
    result = {
        "benchmark": "connection_memory",
        "connected": connected,
        "rss_per_connection_kb": round((rss_after - rss_before) / connected, 1),
        "tracemalloc_per_connection_kb": round(total / connected / 1024, 1),
        "top_bytes_per_connection": top,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
