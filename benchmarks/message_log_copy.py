"""PostgreSQL's CPU for a batch's COPY of logged frames (``chargepoints_ocppmessage``) in two
migrated databases, A/B (issue 15, round 22: the ``unique_id`` index a hash one or a btree).

Each round is one transaction as the group commit writes the log: one COPY of ``--frames`` frames
(CALLs and their CALLRESULTs, a fresh UUID per pair, as the fleet's), into database A then B, or B
then A (the order alternates A B B A). What is measured is each backend's on-CPU time around the
COPY alone (``/proc/<pid>/schedstat``, nanoseconds), divided by its frames. Both tables are first
filled with ``--prefill`` frames (the same in both) so the indexes are not tiny.

    .venv/bin/python benchmarks/message_log_copy.py --a postgres://...dyn_x_before \\
        --b postgres://...dyn_x_after [--rounds 2000] [--frames 84] [--json out.json]

Rows it writes name chargers ``900000+n`` (the log has no foreign key); they are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

_COLUMNS = "charge_point_id, direction, message_type, unique_id, action, frame, created_at"
_BASE = 900000


def backend_ns(pid: int) -> int:
    """A backend's on-CPU nanoseconds so far."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _frames(count: int, clock: datetime) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for n in range(count // 2):
        uid = str(uuid.uuid4())
        cp = _BASE + n % 1000
        call = f'[2,"{uid}","Heartbeat",{{}}]'
        result = f'[3,"{uid}",{{"currentTime":"{clock.isoformat()}"}}]'
        rows.append((cp, "in", 2, uid, "Heartbeat", call, clock))
        rows.append((cp, "out", 3, uid, "Heartbeat", result, clock))
    return rows


def _copy(db: psycopg.Connection, rows: list[tuple[object, ...]]) -> None:
    with (
        db.transaction(),
        db.cursor() as cursor,
        cursor.copy(f"COPY chargepoints_ocppmessage ({_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", required=True, help="database URL A (e.g. the base)")
    parser.add_argument("--b", required=True, help="database URL B (e.g. the branch)")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=84)
    parser.add_argument("--prefill", type=int, default=200_000)
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    dbs = {"a": psycopg.connect(args.a, autocommit=True), "b": psycopg.connect(args.b, autocommit=True)}
    clock = datetime(2026, 1, 1, tzinfo=UTC)
    methods = {}
    for name, db in dbs.items():
        db.execute("DELETE FROM chargepoints_ocppmessage WHERE charge_point_id >= %s", [_BASE])
        methods[name] = db.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam"
            " WHERE c.relname = 'ocpp_message_unique_id'"
        ).fetchone()[0]  # type: ignore[index]
    for start in range(0, args.prefill, 10_000):
        rows = _frames(min(10_000, args.prefill - start), clock - timedelta(days=1))
        for db in dbs.values():
            _copy(db, rows)
    for db in dbs.values():
        db.execute("VACUUM ANALYZE chargepoints_ocppmessage")
    pids = {name: db.execute("SELECT pg_backend_pid()").fetchone()[0] for name, db in dbs.items()}  # type: ignore[index]
    spent: dict[str, list[float]] = {"a": [], "b": []}
    for n in range(args.rounds):
        clock += timedelta(seconds=1)
        rows = _frames(args.frames, clock)
        order = ("a", "b") if n % 4 in (0, 3) else ("b", "a")
        for name in order:
            before = backend_ns(pids[name])
            _copy(dbs[name], rows)
            spent[name].append((backend_ns(pids[name]) - before) / 1000 / len(rows))

    def summary(values: list[float]) -> dict[str, float]:
        cut = len(values) // 10
        return {
            "mean": round(statistics.fmean(values), 2),
            "median": round(statistics.median(values), 2),
            "trimmed_mean": round(statistics.fmean(sorted(values)[cut : len(values) - cut]), 2),
        }

    result = {
        "rounds": args.rounds,
        "frames_per_copy": args.frames,
        "prefill": args.prefill,
        "load_1min_start_end": None,
        "unique_id_index": methods,
        "us_per_frame": {name: summary(values) for name, values in spent.items()},
        "ratio_b_over_a_trimmed": round(
            statistics.fmean(sorted(spent["b"])[len(spent["b"]) // 10 : -(len(spent["b"]) // 10) or None])
            / statistics.fmean(sorted(spent["a"])[len(spent["a"]) // 10 : -(len(spent["a"]) // 10) or None]),
            3,
        ),
    }
    result["load_1min_start_end"] = [LOAD, os.getloadavg()[0]]
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    for db in dbs.values():
        db.execute("DELETE FROM chargepoints_ocppmessage WHERE charge_point_id >= %s", [_BASE])


LOAD = os.getloadavg()[0]

if __name__ == "__main__":
    main()
