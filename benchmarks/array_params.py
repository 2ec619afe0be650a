"""An array parameter as psycopg's list against one text literal (``kernel.plain_sql.array_text``),
and a ``TextChoices`` member's dumper lookup (issue 15, round 11): this thread's CPU µs.

- ``list`` / ``literal``: one execution of ``SELECT ... FROM unnest(...) LIMIT 0`` with the arrays of
  a MeterValues batch's session UPDATE (ROWS rows: bigint, numeric, timestamptz, numeric,
  timestamptz, timestamptz), then ROWS ``Jsonb`` values, on a new cursor each time as
  ``bound_cursor`` makes one; ``literal`` includes building it;
- ``get_dumper``: psycopg's lookup of a ``str``'s and a ``TransactionStatus``'s dumper in a map
  derived from psycopg's defaults, and from ``choices_adapters``.

Prints the lowest of ROUNDS rounds of N executions.

    .venv/bin/python benchmarks/array_params.py [--rows 64] [--executions 300] [--rounds 7]
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import harness  # noqa: F401  (sets up Django)

import psycopg
from django.db import connection, transaction
from psycopg.adapt import AdaptersMap, PyFormat
from psycopg.types.json import Jsonb

from charging.models import TransactionStatus
from csms.postgresql.base import choices_adapters
from kernel.plain_sql import array_text

READINGS = (
    "SELECT 1 FROM unnest(%s::bigint[], %s::numeric[], %s::timestamptz[], %s::numeric[],"
    " %s::timestamptz[], %s::timestamptz[]) LIMIT 0"
)
JSON = "SELECT 1 FROM unnest(%s::jsonb[]) LIMIT 0"


def _lowest(run: Callable[[], Any], executions: int, rounds: int) -> float:
    """The lowest round's µs of this thread's CPU per call of ``run``."""
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(executions):
            run()
        best = min(best, (time.thread_time() - started) / executions)
    return best * 1e6


def main(rows: int, executions: int, rounds: int) -> None:
    now = datetime.now(UTC)
    readings = [
        list(range(1, rows + 1)),
        [Decimal("1234.5") + n for n in range(rows)],
        [now + timedelta(seconds=n) for n in range(rows)],
        [Decimal("7.25")] * rows,
        [now] * rows,
        [now] * rows,
    ]
    documents = [Jsonb({"n": n, "text": 'a\t"b"\\c'}) for n in range(rows)]
    with transaction.atomic():
        connection.ensure_connection()
        raw = connection.connection

        def executed(sql: str, params: Callable[[], list[Any]]) -> Callable[[], None]:
            return lambda: psycopg.Cursor(raw).execute(sql, params()) and None

        cases = {
            f"readings' UPDATE arrays ({rows} rows x 6), list": executed(READINGS, lambda: readings),
            f"readings' UPDATE arrays ({rows} rows x 6), literal": executed(
                READINGS, lambda: [array_text(column) for column in readings]
            ),
            f"jsonb ({rows}), list": executed(JSON, lambda: [documents]),
            f"jsonb ({rows}), literal": executed(JSON, lambda: [array_text(documents)]),
        }
        for label, run in cases.items():
            print(f"{label:50} {_lowest(run, executions, rounds):8.1f} µs")
        transaction.set_rollback(True)
    plain = AdaptersMap(psycopg.adapters)
    named = choices_adapters(AdaptersMap(psycopg.adapters))
    for label, adapters, cls in [
        ("get_dumper str", plain, str),
        ("get_dumper TransactionStatus", plain, TransactionStatus),
        ("get_dumper TransactionStatus, choices_adapters", AdaptersMap(named), TransactionStatus),
    ]:
        lookup = AdaptersMap(adapters)  # a cursor's map, as each cursor derives one
        cost = _lowest(lambda lookup=lookup, cls=cls: lookup.get_dumper(cls, PyFormat.AUTO), executions * 100, rounds)
        print(f"{label:50} {cost:8.2f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    main(args.rows, args.executions, args.rounds)
