"""A group-commit batch's stops read their kept sessions' ledgers together
(``charging.services.ledger_reads``, PostgreSQL): one statement for the whole batch; each stop ends
its own session with its own readings, as a stop reading on its own does, and a stop after another
unit of its charger in the batch, or in a batch written again, reads its own way."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from billing.models import BillingRecord
from charging.models import MeterSample, Transaction, TransactionStatus
from charging.services import ledger_reads
from charging.services.meter_ledger import meter_values_record
from charging.services.transaction_start import transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import (
    T0,
    Refused,
    connection_context,
    event201,
    one_batch,
    reading16,
    refused,
    registered,
    start16,
)
from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

_LEDGER_READ = 'FROM "chargepoints_metersample"'


async def _in(context: contextvars.Context, group: CommitGroup, func: Callable[..., Any], **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().create_task(group.run(func, **kwargs), context=context)


def _stop16(charge_point_id: str, pk: int, meter_stop: int | None, minutes: int) -> dict[str, Any]:
    return {
        "request": StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=str(pk),
            stopped_at=T0 + timedelta(minutes=minutes),
            action="StopTransaction",
            payload={"transactionId": pk},
            meter_stop_wh=None if meter_stop is None else Decimal(meter_stop),
            reason="Local",
        )
    }


def _start16(charge_point_id: str, meter_start: int) -> int:
    return transaction_start(start16(charge_point_id, meter_start, T0)).transaction.pk


async def _kept_sessions16(
    group: CommitGroup, chargers: list[str], readings: list[list[int]]
) -> tuple[list[contextvars.Context], list[int]]:
    """Each charger's connection and its session, started by it (kept): meter start ``readings[i][0]``,
    then a reading a minute of each of the rest. Each charger registered first."""
    await asyncio.to_thread(registered, *chargers)
    contexts, pks = [], []
    for charger, register in zip(chargers, readings, strict=True):
        context = connection_context()
        pk = await _in(context, group, _start16, charge_point_id=charger, meter_start=register[0])
        for minute, wh in enumerate(register[1:], start=1):
            await _in(context, group, meter_values_record, **reading16(charger, pk, wh, T0 + timedelta(minutes=minute)))
        contexts.append(context)
        pks.append(pk)
    return contexts, pks


@sync_to_async
def _ended(pks: list[int]) -> list[tuple[str, Decimal | None, Decimal | None, list[str]]]:
    rows = {row.pk: row for row in Transaction.objects.filter(pk__in=pks)}
    return [(rows[pk].status, rows[pk].meter_stop_wh, rows[pk].energy_wh, sorted(rows[pk].anomalies)) for pk in pks]


@sync_to_async
def _billed(pks: list[int]) -> list[Decimal]:
    return [BillingRecord.objects.get(transaction_id=pk).energy_wh for pk in pks]


async def test_a_batchs_stops_read_their_ledgers_with_one_statement_and_each_ends_with_its_own_readings(statements):
    chargers = [f"CP-BL-{n}" for n in range(4)]
    group = CommitGroup(max_units=64)
    readings = [[1000, 1500, 2500], [5000, 5100], [200, 900, 800, 1200], [7000]]
    contexts, pks = await _kept_sessions16(group, chargers, readings)
    statements.clear()
    stops = [(3000, 10), (None, 10), (1300, 10), (7400, 10)]  # the second's meter stop: its last reading
    outcomes = await one_batch(
        group,
        *(
            (context, transaction_stop, _stop16(charger, pk, meter_stop, minutes))
            for context, charger, pk, (meter_stop, minutes) in zip(contexts, chargers, pks, stops, strict=True)
        ),
    )
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
    assert len([sql for sql in statements if _LEDGER_READ in sql and "SELECT" in sql]) == 1
    ended = await _ended(pks)
    assert [(status, meter_stop, energy) for status, meter_stop, energy, _ in ended] == [
        (TransactionStatus.ENDED, Decimal(3000), Decimal(2000)),
        (TransactionStatus.ENDED, Decimal(5100), Decimal(100)),
        (TransactionStatus.ENDED, Decimal(1300), Decimal(1100)),
        (TransactionStatus.ENDED, Decimal(7400), Decimal(400)),
    ]
    assert await _billed(pks) == [Decimal(2000), Decimal(100), Decimal(1100), Decimal(400)]


async def test_stops_whose_ledgers_are_too_long_to_hold_together_each_read_their_own(statements, monkeypatch):
    """More readings than a batch holds (``ROWS_READ_AT_MOST``): the batch read answers nothing,
    and each stop reads its own session's ledger; every session ends as before."""
    monkeypatch.setattr(ledger_reads, "ROWS_READ_AT_MOST", 3)  # they hold 4
    chargers = [f"CP-BL-LONG-{n}" for n in range(2)]
    group = CommitGroup(max_units=64)
    contexts, pks = await _kept_sessions16(group, chargers, [[1000, 1500, 2500], [5000, 5100, 5300]])
    statements.clear()
    outcomes = await one_batch(
        group,
        *(
            (context, transaction_stop, _stop16(charger, pk, meter_stop, 10))
            for context, charger, pk, meter_stop in zip(contexts, chargers, pks, (3000, 5400), strict=True)
        ),
    )
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
    assert len([sql for sql in statements if _LEDGER_READ in sql and "SELECT" in sql]) == 3  # together, then each
    assert [energy for _, _, energy, _ in await _ended(pks)] == [Decimal(2000), Decimal(400)]


async def test_stops_read_together_end_their_sessions_as_stops_read_one_at_a_time_do():
    """The same sessions, stopped in one batch (their ledgers read together) and each in a batch
    of its own that is written again (each unit in its savepoint: the ledger read the unit's way)."""
    chargers = [f"CP-BL-SAME-{n}" for n in range(6)]
    group = CommitGroup(max_units=64)
    readings = [[1000, 1400, 1300, 2000], [100, 600, 9_000_000], [3000, 3100]] * 2
    contexts, pks = await _kept_sessions16(group, chargers, readings)
    for context, charger, pk in zip(contexts, chargers, pks, strict=True):  # outside every stop's window
        for wh, at in ((50_000_000, T0 - timedelta(days=1)), (60_000_000, T0 + timedelta(days=2))):
            await _in(context, group, meter_values_record, **reading16(charger, pk, wh, at))
    stops = [(2100, 30), (None, 30), (3150, 30)]
    together = await one_batch(
        group,
        *((contexts[n], transaction_stop, _stop16(chargers[n], pks[n], *stops[n])) for n in range(3)),
    )
    alone = []
    for n in range(3, 6):  # each with a failing unit: written again, each in its savepoint
        alone += await one_batch(
            group,
            (contexts[n], transaction_stop, _stop16(chargers[n], pks[n], *stops[n - 3])),
            (contextvars.copy_context(), refused, {}),
        )
    assert not any(isinstance(outcome, Exception) for outcome in together)
    assert [isinstance(outcome, Refused) for outcome in alone] == [False, True] * 3
    ended = await _ended(pks)
    assert ended[:3] == ended[3:]
    assert await _billed(pks[:3]) == await _billed(pks[3:])


def _nothing() -> None:
    pass


async def test_a_stop_after_a_reading_of_its_charger_in_the_batch_reads_that_reading():
    """The reading is the charger's first unit in the batch: the stop after it is not read ahead,
    and ends with the reading (written before the stop by a unit in its own savepoint, as a
    write-behind buffer's is, which writes what the batch gathered so far)."""
    group = CommitGroup(max_units=64)
    (context,), (pk,) = await _kept_sessions16(group, ["CP-BL-AFTER"], [[1000, 1500]])
    reading = reading16("CP-BL-AFTER", pk, 2500, T0 + timedelta(minutes=5))
    outcomes = await one_batch(
        group,
        (context, meter_values_record, reading),
        (contextvars.copy_context(), _nothing, {"in_savepoint": True}),
        (context, transaction_stop, _stop16("CP-BL-AFTER", pk, None, 6)),
    )
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
    assert (await _ended([pk]))[0][1:3] == (Decimal(2500), Decimal(1500))


async def test_201_ended_events_of_two_chargers_in_one_batch_end_each_its_own_session(statements):
    chargers = ["CP-BL-201-A", "CP-BL-201-B"]
    await asyncio.to_thread(registered, *chargers)
    group = CommitGroup(max_units=64)
    contexts = [connection_context() for _ in chargers]
    for n, (context, charger) in enumerate(zip(contexts, chargers, strict=True)):
        base = 10_000 * (n + 1)
        await _in(
            context,
            group,
            _transaction_event,
            charge_point_id=charger,
            payload=event201("Started", "TX-1", 0, base, 0),
        )
        await _in(
            context,
            group,
            _transaction_event,
            charge_point_id=charger,
            payload=event201("Updated", "TX-1", 1, base + 300, 1),
        )
    statements.clear()
    outcomes = await one_batch(
        group,
        *(
            (context, _transaction_event, {"charge_point_id": charger, "payload": event201("Ended", "TX-1", 2, wh, 2)})
            for context, charger, wh in zip(contexts, chargers, (10_700, 20_900), strict=True)
        ),
    )
    assert not any(isinstance(outcome, Exception) for outcome in outcomes)
    assert len([sql for sql in statements if _LEDGER_READ in sql and "SELECT" in sql]) == 1
    sessions = await sync_to_async(
        lambda: [
            Transaction.objects.get(charge_point__charge_point_id=cp, ocpp_transaction_id="TX-1") for cp in chargers
        ]
    )()
    assert [(s.status, s.meter_stop_wh, s.energy_wh) for s in sessions] == [
        (TransactionStatus.ENDED, Decimal(10_700), Decimal(700)),
        (TransactionStatus.ENDED, Decimal(20_900), Decimal(900)),
    ]
    assert await sync_to_async(MeterSample.objects.filter(transaction__in=sessions).count)() == 6
