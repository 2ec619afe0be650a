"""A 2.0.1 TransactionEvent's cost as its session grows (issue 15): the batch thread's CPU per
Updated event and the bytes of its session's row, at session lengths of 10, 1,000 and 5,000 events.

For each length L, CHARGERS chargers (``SEQLEN-<run>-<n>``, each in its own connection context,
``open_sessions_bind``) open a session with a Started event through one real ``CommitGroup`` on
PostgreSQL (``statements.py``'s phases: one message per charger, queued together). Each session
is then given the seqNos 0..L-1 as the commit being measured stores them (its ``seq_nos``: the
list of every seqNo before the compact form, ``[[0, L-1]]`` with it), the connections bound again
(the next event reads the row, as after a reconnect), WARM Updated events sent, then ROUNDS
Updated events, each with an energy reading, timed: the batch thread's CPU (``thread_time`` in
``batch_committed``, the median round) and PostgreSQL's CPU (the mean: ticks of 10 ms) per event.
Then each session row's stored bytes (``pg_column_size``: of ``seq_nos``, of the whole row).
``--steps``: instead, the Python of the event's seqNo step alone, no database: ``seq_no_seen`` on a
session of each length and the JSON its column's UPDATE sends (``json.dumps``), this thread's CPU
µs per call, the lowest of 15 rounds of 300 calls (resolves what the batch's noise cannot).
No sockets: the cost is the result. Bounded: lengths x (WARM + ROUNDS) phases of CHARGERS events.

    .venv/bin/python benchmarks/session_length.py [--chargers 20] [--rounds 5] [--json out.json]

Runs against any commit (copy it and ``statements.py`` into a before checkout's ``benchmarks/``).
Needs a migrated database of its own (DATABASE_URL).
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import harness  # noqa: F401  (sets up Django)

from asgiref.sync import sync_to_async
from django.db import connection

import statements
from chargepoints.services import charge_point_register
from charging.models import Transaction
from charging.services import session_rows
from charging.services.open_sessions import open_sessions_bind
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.v201.transactions import _transaction_event

COMPACT = hasattr(session_rows, "seq_nos_with")  # the commit measured stores runs


def _contexts(count: int) -> list[contextvars.Context]:
    """One connection context per charger, nothing kept yet (as right after a handshake)."""
    contexts = []
    for _ in range(count):
        context = contextvars.copy_context()
        context.run(open_sessions_bind)
        contexts.append(context)
    return contexts


def _seq_nos_seeded(pks: list[int], length: int) -> None:
    """The sessions' seqNos 0..length-1, as the measured commit stores them."""
    seq_nos = [[0, length - 1]] if COMPACT else list(range(length))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Transaction._meta.db_table} SET seq_nos = %s::jsonb, updated_at = now() WHERE id = ANY(%s)",
            [json.dumps(seq_nos), pks],
        )


def _row_bytes(pks: list[int]) -> tuple[float, float]:
    """The mean stored bytes of the sessions' ``seq_nos`` and of their whole rows."""
    table = Transaction._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT avg(pg_column_size(t.seq_nos)), avg(pg_column_size(t.*)) FROM {table} t WHERE id = ANY(%s)", [pks]
        )
        seq_nos, row = cursor.fetchone()
    return float(seq_nos), float(row)


async def _length(group: CommitGroup, names: list[str], length: int, warm: int, rounds: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:6]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    contexts = _contexts(len(names))

    def event(kind: str, seq_no: int) -> Any:
        return lambda n: (
            _transaction_event,
            {
                "charge_point_id": names[n],
                "payload": statements._event201(
                    kind, f"TX-{run}-{n}", seq_no, 1000 + seq_no, at + timedelta(seconds=10 * seq_no)
                ),
            },
        )

    await statements._phase(group, contexts, event("Started", 0))
    pks = await sync_to_async(
        lambda: list(
            Transaction.objects.filter(
                ocpp_transaction_id__in=[f"TX-{run}-{n}" for n in range(len(names))]
            ).values_list("pk", flat=True)
        )
    )()
    await sync_to_async(_seq_nos_seeded)(pks, length)
    contexts = _contexts(len(names))  # the next event reads the seeded row
    for seq_no in range(length, length + warm):
        await statements._phase(group, contexts, event("Updated", seq_no))
    batch_us, database_us = [], []
    for seq_no in range(length + warm, length + warm + rounds):
        await statements._phase(group, contexts, event("Updated", seq_no))
        batch_us.append(statements._phase_cpu[1] / len(names) * 1e6)
        database_us.append(statements._phase_cpu[2] / len(names) * 1e6)
    seq_nos_bytes, row_bytes = await sync_to_async(_row_bytes)(pks)
    return {
        "batch_thread_us_per_event": round(statistics.median(batch_us), 1),
        "batch_thread_us_per_event_rounds": [round(value, 1) for value in batch_us],
        "postgresql_us_per_event": round(statistics.fmean(database_us), 1),  # the mean: /proc's 10 ms ticks
        "seq_nos_bytes": seq_nos_bytes,
        "row_bytes": row_bytes,
    }


def _step_us(length: int, calls: int = 300, rounds: int = 15) -> float:
    """This thread's CPU µs per call of the seqNo step of an event on a session of ``length``
    events: ``seq_no_seen`` and the JSON of the column it changed (the lowest round)."""
    seeded = [[0, length - 1]] if COMPACT else list(range(length))
    session = Transaction(seq_nos=seeded)
    results = []
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(calls):
            session.seq_nos = seeded
            session_rows.seq_no_seen(session, length)
            json.dumps(session.seq_nos)
        results.append((time.thread_time() - started) / calls * 1e6)
    return round(min(results), 2)


async def main(chargers: int, lengths: list[int], warm: int, rounds: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    names = [f"SEQLEN-{run}-{n}" for n in range(chargers)]
    await sync_to_async(
        lambda: [charge_point_register(charge_point_id=name, heartbeat_interval=60) for name in names]
    )()
    await statements._listening()
    group = CommitGroup(max_units=64)
    await _length(group, names, 10, warm, 1)  # a warm-up: the first batches of a kind pay one-time costs
    return {str(length): await _length(group, names, length, warm, rounds) for length in lengths}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--lengths", default="10,1000,5000")
    parser.add_argument("--warm", type=int, default=2, help="Updated events per session before the timed ones")
    parser.add_argument("--rounds", type=int, default=5, help="timed Updated events per session")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--steps", action="store_true", help="the seqNo step's Python alone (no database)")
    args = parser.parse_args()
    if args.steps:
        steps = {length: _step_us(int(length)) for length in args.lengths.split(",")}
        print(json.dumps({"compact": COMPACT, "step_us": steps}))
        if args.json:
            args.json.write_text(json.dumps({"compact": COMPACT, "step_us": steps}) + "\n")
        raise SystemExit
    statements._batch_thread_timed()
    started = time.monotonic()
    results = asyncio.run(main(args.chargers, [int(n) for n in args.lengths.split(",")], args.warm, args.rounds))
    out = {"compact": COMPACT, "seconds": round(time.monotonic() - started, 1), "lengths": results}
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
