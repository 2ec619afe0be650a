"""Client-side against server-side binding of the plain statements (issue 15): this thread's CPU
µs per execution of the StatusNotification statement and of a session ``UPDATE ... FROM unnest``
(ROWS sessions, five array parameters), each N times in a transaction, through:

- ``django``: ``connection.cursor()``, Django's wrapper over psycopg's ``ClientCursor`` (parameters
  quoted into the text on the client), as every plain statement ran before;
- ``bound``: ``kernel.plain_sql.bound_cursor()``, Django's wrapper over a psycopg ``Cursor``
  (parameters sent apart, dumped by psycopg), as they run now;
- ``raw-client`` / ``raw-bound`` / ``raw-prepared``: psycopg's cursors alone on the same
  connection, without Django's wrapper (``raw-prepared``: ``prepare=True``).

Rounds alternate the variants' order; prints each variant's lowest and lower-quartile round.

    .venv/bin/python benchmarks/binding.py [--executions 300] [--rounds 15]
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

from chargepoints.services import charge_point_register
from chargepoints.services.status_writes import _STATUS_WRITTEN
from chargepoints.services.status_writes import STATUS_COLUMNS
from charging.models import Transaction
from kernel.plain_sql import _gathered_update_of, bound_cursor

ROWS = 8
VARIANTS = ("django", "bound", "raw-client", "raw-bound", "raw-prepared")


def _cursor(variant: str) -> Any:
    raw = connection.connection
    return {
        "django": connection.cursor,
        "bound": bound_cursor,
        "raw-client": lambda: psycopg.ClientCursor(raw),
        "raw-bound": lambda: psycopg.Cursor(raw),
        "raw-prepared": lambda: psycopg.Cursor(raw),
    }[variant]()


def _round(variant: str, sql: str, params: list[Any]) -> float:
    """µs of this thread's CPU per execution of ``sql`` with each of ``params``, in one transaction."""
    with transaction.atomic():
        connection.ensure_connection()
        extra = {"prepare": True} if variant == "raw-prepared" else {}
        start = time.thread_time()
        for values in params:
            with _cursor(variant) as cursor:
                cursor.execute(sql, values, **extra)
                if cursor.description:
                    cursor.fetchall()
        return (time.thread_time() - start) / len(params) * 1e6


def main(executions: int, rounds: int) -> None:
    name = f"BIND-{int(time.time())}"
    charger = charge_point_register(charge_point_id=name, heartbeat_interval=60)
    now = datetime.now(UTC)
    pks = [
        Transaction.objects.create(
            charge_point=charger, ocpp_version="1.6", start_key=f"{name}-{n}", connector_id=1, started_at=now
        ).pk
        for n in range(ROWS)
    ]

    def status(n: int) -> dict[str, Any]:
        at = now + timedelta(seconds=n)
        values = dict(zip(STATUS_COLUMNS, ("Charging", "NoError", "", "", "", at, None, False, at), strict=True))
        return {**values, "now": at, "charge_point_id": name, "connector_id": 1, "evse_id": None}

    def update(n: int) -> list[Any]:
        at = now + timedelta(seconds=n)
        return [pks, [Decimal(1000 + n)] * ROWS, [at] * ROWS, [Decimal(n)] * ROWS, [at] * ROWS]

    update_sql = _gathered_update_of(Transaction, ("last_register_wh", "last_register_at", "energy_wh"), None)
    statements: dict[str, tuple[str, Callable[[int], Any]]] = {
        "StatusNotification": (_STATUS_WRITTEN, status),
        f"session UPDATE via unnest ({ROWS} rows)": (update_sql, update),
    }
    results: dict[tuple[str, str], list[float]] = {}
    for r in range(rounds):
        for variant in VARIANTS if r % 2 == 0 else VARIANTS[::-1]:
            for label, (sql, make) in statements.items():
                params = [make(n) for n in range(executions)]
                results.setdefault((label, variant), []).append(_round(variant, sql, params))
    for (label, variant), values in results.items():
        values.sort()
        print(f"{label:40} {variant:13} min {values[0]:6.1f} µs  lower quartile {values[len(values) // 4]:6.1f} µs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    main(args.executions, args.rounds)
