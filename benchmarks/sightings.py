"""The last-seen buffer's batch write (``charge_points_seen_record``): CPU per sighting, in process.

Alternates the function of this checkout with the one of another source file (``--other``, e.g.
a base commit's ``chargepoints/services/liveness.py``) ROUNDS times in one process, each call a
batch of SIGHTINGS chargers' sightings (``BENCH-S-<n>``, registered if missing, connected for the
run) in a transaction rolled back after it, so every call finds the same rows. Prints and
writes the client's CPU (``thread_time``) and the PostgreSQL backend's CPU (``/proc``) per sighting.

    .venv/bin/python benchmarks/sightings.py --other /tmp/liveness_base.py --sightings 40 200 --rounds 8 --json out.json
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness  # noqa: F401  (sets up Django)

from django.db import connection, transaction

from chargepoints.models import ChargePoint
from chargepoints.services import liveness

_TICK = os.sysconf("SC_CLK_TCK")


class _RolledBack(Exception):
    pass


def _backend_cpu(pid: int) -> float:
    user, system = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    return (int(user) + int(system)) / _TICK


def _timed(record: Any, sightings: list[Any], backend: int) -> tuple[float, float]:
    """(client CPU s, backend CPU s) of one call, its writes rolled back."""
    client, database = time.thread_time(), _backend_cpu(backend)
    try:
        with transaction.atomic():
            record(sightings=sightings)
            client, database = time.thread_time() - client, _backend_cpu(backend) - database
            raise _RolledBack
    except _RolledBack:
        pass
    return client, database


def main(other: Path, sizes: list[int], rounds: int, calls: int) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("liveness_other", other)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    ids = [f"BENCH-S-{n}" for n in range(max(sizes))]
    chargers = [ChargePoint(charge_point_id=cp, heartbeat_interval=300) for cp in ids]
    ChargePoint.objects.bulk_create(chargers, ignore_conflicts=True)
    ChargePoint.objects.filter(charge_point_id__in=ids).update(connected=True, connection_channel="bench")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    at = datetime.now(UTC)
    found: dict[str, Any] = {}
    for size in sizes:
        batch = [liveness.Sighting(charge_point_id=cp, channel_name="bench", at=at) for cp in ids[:size]]
        sides: dict[str, list[list[float]]] = {"this": [], "other": []}
        for round_ in range(rounds):
            order = [("this", liveness.charge_points_seen_record), ("other", module.charge_points_seen_record)]
            for name, record in order if round_ % 2 == 0 else order[::-1]:
                spent = [_timed(record, batch, backend) for _ in range(calls)]
                per_sighting = [sum(s[i] for s in spent) / calls / size * 1e6 for i in (0, 1)]
                sides[name].append(per_sighting)
        found[str(size)] = sides
        this, that = (statistics.median(r[0] for r in sides[side]) for side in ("this", "other"))
        this_pg, that_pg = (statistics.median(r[1] for r in sides[side]) for side in ("this", "other"))
        print(f"{size:5d} sightings: client µs/sighting this {this:6.1f} other {that:6.1f} ({this / that:.2f}); ")
        print(f"      PostgreSQL µs/sighting this {this_pg:6.1f} other {that_pg:6.1f}")
    return found


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--other", type=Path, required=True)
    parser.add_argument("--sightings", type=int, nargs="+", default=[40, 200])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--calls", type=int, default=10, help="calls per round and side")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    args.json.write_text(json.dumps(main(args.other, args.sightings, args.rounds, args.calls), indent=1))
