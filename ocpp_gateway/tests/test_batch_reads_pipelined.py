"""A group-commit batch's reads ahead on one psycopg pipeline (``kernel.plain_sql.pipelined``,
``read_in_steps``; PostgreSQL): the starts', the stops' ledgers' and the statuses' statements of a
step all sent before any of their rows is taken, and a statement refused on the pipeline sends the
batch to its second pass, where every unit is answered as it is on its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from chargepoints.models import Connector
from chargepoints.services import connector_status_set
from charging.models import IdTag, Transaction, TransactionStatus
from charging.services import start_reads
from charging.services.transaction_start import StartResult, transaction_start
from kernel import plain_sql
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import one_batch, registered, start16

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool]]]:
    """Each read ahead sent (``("sent", on a pipeline)``) and each one's rows taken (``("rows", ...)``), in order."""
    seen: list[tuple[str, bool]] = []
    sent, rows = plain_sql.Sent.__init__, plain_sql.Sent.rows

    def sending(self: plain_sql.Sent, sql: str, params: Any) -> None:
        seen.append(("sent", plain_sql.in_pipeline()))
        sent(self, sql, params)

    def taking(self: plain_sql.Sent) -> list[tuple[Any, ...]]:
        seen.append(("rows", plain_sql.in_pipeline()))
        return rows(self)

    monkeypatch.setattr(plain_sql.Sent, "__init__", sending)
    monkeypatch.setattr(plain_sql.Sent, "rows", taking)
    yield seen


def _batch_of_starts_and_statuses(prefix: str) -> tuple[Any, ...]:
    """Two starts (an id tag each) and two statuses of other chargers: two readings ahead."""
    return (
        (transaction_start, {"request": start16(f"{prefix}-0", 1000, T0, id_tag="Card")}),
        (transaction_start, {"request": start16(f"{prefix}-1", 1000, T0, id_tag="Card")}),
        (connector_status_set, {"charge_point_id": f"{prefix}-2", "connector_id": 1, "status": "Faulted"}),
        (connector_status_set, {"charge_point_id": f"{prefix}-3", "connector_id": 1, "status": "Available"}),
    )


async def _written(prefix: str) -> tuple[int, list[str]]:
    sessions = await Transaction.objects.filter(
        charge_point__charge_point_id__startswith=prefix, status=TransactionStatus.ACTIVE
    ).acount()
    statuses = [
        connector.status
        async for connector in Connector.objects.filter(charge_point__charge_point_id__startswith=prefix).order_by(
            "charge_point__charge_point_id"
        )
    ]
    return sessions, statuses


async def test_a_batchs_reads_ahead_send_each_steps_statements_together_on_one_pipeline(steps):
    await asyncio.to_thread(registered, *(f"CP-RP-{n}" for n in range(4)))
    await IdTag.objects.acreate(id_tag="Card")
    results = await one_batch(CommitGroup(max_units=64), *_batch_of_starts_and_statuses("CP-RP"))
    # Step 1: the starts' chargers locked, the statuses' chargers seen; step 2: the starts' sessions
    # and id tags, the statuses' connectors; step 3: the Available status's open sessions.
    assert steps == [
        ("sent", True),
        ("sent", True),
        ("rows", True),
        ("sent", True),
        ("sent", True),
        ("rows", True),
        ("sent", True),
        ("rows", True),
        ("rows", True),
        ("rows", True),
        ("sent", True),
        ("rows", True),
    ]
    assert [result.id_tag_info.status for result in results[:2] if isinstance(result, StartResult)] == [
        "Accepted",
        "Accepted",
    ]
    assert await _written("CP-RP") == (2, ["Faulted", "Available"])


async def test_a_read_ahead_refused_on_the_pipeline_sends_the_batch_to_its_second_pass(steps, monkeypatch):
    """The starts' sessions read ahead (sent on the pipeline beside the statuses' connectors) fails:
    the first pass is rolled back, and in the second every unit reads and writes its own way."""
    await asyncio.to_thread(registered, *(f"CP-RF-{n}" for n in range(4)))
    await IdTag.objects.acreate(id_tag="Card")
    monkeypatch.setattr(start_reads, "sessions_started_or_open_statement", lambda keys, new_ids: ("SELECT 1 / 0", []))
    results = await one_batch(CommitGroup(max_units=64), *_batch_of_starts_and_statuses("CP-RF"))
    assert ("sent", True) in steps  # the first pass read ahead on the pipeline
    assert [type(result) for result in results] == [StartResult, StartResult, Connector, Connector]
    assert [result.id_tag_info.status for result in results[:2] if isinstance(result, StartResult)] == [
        "Accepted",
        "Accepted",
    ]
    assert await _written("CP-RF") == (2, ["Faulted", "Available"])
