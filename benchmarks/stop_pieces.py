"""A stop's pieces (issue 15): this thread's CPU µs per call of ``tariff_for``, of
``billing_record_write`` (its upsert gathered, as in a group-commit batch) and of
``charger_draw_changed.send`` for a charger on no site, in a process subscribed to the caches'
changes as a gateway process is, each N times in one transaction (rolled back).

Prints each piece's lowest and lower-quartile round. To measure an older commit, copy this file
into its worktree's ``benchmarks/`` and run it there (``harness`` imports the worktree's code).

    .venv/bin/python benchmarks/stop_pieces.py [--calls 300] [--rounds 15]
"""

# ruff: noqa: I001  (harness must be imported before Django is used)
from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import harness  # noqa: F401  (sets up Django)

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone

from billing.models import Tariff
from billing.selectors import tariff_for
from billing.services import billing_record_write
from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from charging.signals import charger_draw_changed
from kernel import cache_changes
from kernel.plain_sql import copies_gathered


def per_call(call: Callable[[], Any], calls: int, rounds: int) -> tuple[float, float]:
    """This thread's CPU µs per call: the lowest and the lower-quartile round."""
    results = []
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(calls):
            call()
        results.append((time.thread_time() - started) / calls * 1e6)
    results.sort()
    return results[0], results[len(results) // 4]


def pieces(calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    charge_point, _ = ChargePoint.objects.get_or_create(charge_point_id="PIECES-1", defaults={"heartbeat_interval": 60})
    if not Tariff.objects.filter(is_default=True).exists():
        Tariff.objects.create(name="bench default", currency="EUR", price_per_kwh=Decimal("0.40"), is_default=True)
    now = timezone.now()
    with transaction.atomic():
        session = Transaction.objects.create(
            charge_point=charge_point,
            connector_id=1,
            id_tag="T",
            start_key=str(uuid.uuid4()),  # one of each run's (rolled back) sessions
            started_at=now - timedelta(hours=1),
        )
        session.stopped_at, session.energy_wh, session.status = now, Decimal(1000), TransactionStatus.ENDED
        # As a stop has its charger: its id and identity alone (session_rows.charge_point_named).
        session.charge_point = ChargePoint.from_db(None, ["id", "charge_point_id"], [charge_point.pk, "PIECES-1"])
        results = {
            "tariff_for": per_call(
                lambda: tariff_for(charge_point=session.charge_point, at=session.started_at), calls, rounds
            )
        }
        with copies_gathered():
            results["billing_record_write (gathered)"] = per_call(
                lambda: billing_record_write(transaction=session), calls, rounds
            )
        results["charger_draw_changed.send, a charger on no site"] = per_call(
            lambda: charger_draw_changed.send(sender=Transaction, charge_point_pk=charge_point.pk), calls, rounds
        )
        transaction.set_rollback(True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    cache_changes.listener_started()
    deadline = time.monotonic() + 5
    while not cache_changes.listening() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for name, (lowest, quartile) in (await sync_to_async(pieces)(args.calls, args.rounds)).items():
        print(f"{name:52s} {lowest:8.1f} {quartile:8.1f}")


if __name__ == "__main__":
    asyncio.run(main())
