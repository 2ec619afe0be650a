"""A group-commit batch's session starts read together (``charging.services.start_reads``, PostgreSQL):
one statement locks their chargers and one reads their id tags for the whole batch; each start
answers and supersedes as a start read on its own does, and a start that is not its charger's
first unit in the batch reads what the units before it wrote."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from charging.models import AuthorizationStatus, IdTag, ReconciliationItem, Transaction, TransactionStatus
from charging.services import start_reads
from charging.services.transaction_start import StartResult, transaction_start
from charging.services.transaction_stop import StopRequest, transaction_stop
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import charger_held, one_batch, registered, start16
from ocpp_gateway.v201.transactions import _transaction_event

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements: PostgreSQL"),
]

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCK = "UPDATE chargepoints_chargepoint cp SET last_seen = %s FROM (SELECT id"  # the starts' chargers locked


async def test_a_batchs_starts_lock_their_chargers_and_read_their_id_tags_with_one_statement_each(statements):
    chargers = [f"CP-BS-{n}" for n in range(6)]
    await asyncio.to_thread(registered, *chargers)
    await IdTag.objects.acreate(id_tag="Fleet-Card")
    await IdTag.objects.acreate(id_tag="BLOCKED-CARD", status=AuthorizationStatus.BLOCKED)
    tags = ["fleet-card", "FLEET-CARD", "blocked-card", "UNKNOWN", "Fleet-Card", "fleet-card"]
    statements.clear()
    results: list[StartResult] = await one_batch(
        CommitGroup(max_units=64),
        *(
            (transaction_start, {"request": start16(cp, 1000, T0, id_tag=tag)})
            for cp, tag in zip(chargers, tags, strict=True)
        ),
    )
    locks = [sql for sql in statements if "FOR NO KEY UPDATE" in sql and "chargepoints_chargepoint" in sql]
    tag_reads = [sql for sql in statements if '"chargepoints_idtag" t' in sql]
    assert len(locks) == 1 and len(tag_reads) == 1  # a start's own reads: one of each per start
    assert [result.id_tag_info.status for result in results if result.id_tag_info] == [
        "Accepted",
        "Accepted",
        "Blocked",
        "Invalid",
        "Accepted",
        "Accepted",
    ]
    assert await Transaction.objects.filter(status=TransactionStatus.ACTIVE).acount() == 6


async def test_a_batchs_starts_lock_their_chargers_rows_as_id_and_identity_and_read_no_other_column(statements):
    """The batch's lock reads each charger's id and identity alone (its other columns deferred):
    a start that closes the session its stop was lost for, prices it and announces itself reads
    no other column of its charger (none loaded later by the ORM: a deferred column is read by
    ``SELECT ... FROM "chargepoints_chargepoint" WHERE "chargepoints_chargepoint"."id" = ...``)."""
    chargers = ["CP-BS-ID-1", "CP-BS-ID-2"]
    await asyncio.to_thread(registered, *chargers)
    olds = await one_batch(
        CommitGroup(max_units=64), *((transaction_start, {"request": start16(cp, 1000, T0)}) for cp in chargers)
    )
    statements.clear()
    news = await one_batch(
        CommitGroup(max_units=64),
        *((transaction_start, {"request": start16(cp, 2000, T0 + timedelta(minutes=10))}) for cp in chargers),
    )
    (lock,) = [sql for sql in statements if "FOR NO KEY UPDATE" in sql and "chargepoints_chargepoint" in sql]
    assert lock.startswith(
        "UPDATE chargepoints_chargepoint cp SET last_seen = %s FROM (SELECT id FROM"
    )  # no column read
    assert not [
        sql for sql in statements if 'FROM "chargepoints_chargepoint" WHERE "chargepoints_chargepoint"."id"' in sql
    ]
    rows = {row.pk: row async for row in Transaction.objects.all()}
    assert [rows[old.transaction.pk].stop_reason for old in olds] == ["Superseded", "Superseded"]
    assert [rows[new.transaction.pk].status for new in news] == [TransactionStatus.ACTIVE] * 2
    assert [new.transaction.charge_point.charge_point_id for new in news] == chargers


async def test_a_start_after_another_unit_of_its_charger_in_the_batch_reads_what_that_unit_wrote():
    """A stop then a start on the same connector, and two starts on one connector (a charger's
    old and new connection), in one batch: the stop's session ends as stopped, not superseded;
    the later start supersedes the earlier one."""
    await asyncio.to_thread(registered, "CP-BS-STOP", "CP-BS-TWO")
    (stopped,) = await one_batch(
        CommitGroup(max_units=64), (transaction_start, {"request": start16("CP-BS-STOP", 1000, T0, id_tag="T")})
    )
    stop = StopRequest(
        charge_point_id="CP-BS-STOP",
        ocpp_transaction_id=str(stopped.transaction.pk),
        stopped_at=T0 + timedelta(minutes=30),
        action="StopTransaction",
        payload={},
        meter_stop_wh=Decimal(3000),
        reason="Local",
    )
    _, started, earlier, later = await one_batch(
        CommitGroup(max_units=64),
        (transaction_stop, {"request": stop}),
        (transaction_start, {"request": start16("CP-BS-STOP", 3000, T0 + timedelta(minutes=40), id_tag="T")}),
        (transaction_start, {"request": start16("CP-BS-TWO", 1000, T0, id_tag="T")}),
        (transaction_start, {"request": start16("CP-BS-TWO", 2000, T0 + timedelta(minutes=10), id_tag="T")}),
    )
    rows = {row.pk: row async for row in Transaction.objects.all()}
    assert rows[stopped.transaction.pk].stop_reason == "Local"
    assert rows[started.transaction.pk].status == TransactionStatus.ACTIVE
    assert rows[earlier.transaction.pk].status == TransactionStatus.ENDED
    assert rows[earlier.transaction.pk].stop_reason == "Superseded"
    assert rows[later.transaction.pk].status == TransactionStatus.ACTIVE


def _ended201(charge_point_id: str, transaction_id: str) -> None:
    transaction_stop(
        StopRequest(
            charge_point_id=charge_point_id,
            ocpp_transaction_id=transaction_id,
            stopped_at=T0 + timedelta(hours=1),
            action="TransactionEvent",
            payload={"seqNo": 1},
            seq_no=1,
        )
    )


def _started201(transaction_id: str) -> dict[str, Any]:
    return {
        "eventType": "Started",
        "timestamp": T0.isoformat(),
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": transaction_id, "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "fleet-card", "type": "ISO14443"},
    }


async def test_a_started_read_with_its_batch_is_ended_by_its_parked_stop_and_answered_for_its_token():
    await asyncio.to_thread(registered, "CP-BS-201", "CP-BS-201B")
    await IdTag.objects.acreate(id_tag="FLEET-CARD")
    await asyncio.to_thread(_ended201, "CP-BS-201", "TX-P")  # an Ended that overtook its Started: parked
    answers = await one_batch(
        CommitGroup(max_units=64),
        (_transaction_event, {"charge_point_id": "CP-BS-201", "payload": _started201("TX-P")}),
        (_transaction_event, {"charge_point_id": "CP-BS-201B", "payload": _started201("TX-Q")}),
    )
    assert [answer["idTokenInfo"]["status"] for answer in answers] == ["Accepted", "Accepted"]
    statuses = {tx: status async for tx, status in Transaction.objects.values_list("ocpp_transaction_id", "status")}
    assert statuses == {"TX-P": TransactionStatus.ENDED, "TX-Q": TransactionStatus.ACTIVE}
    assert not await ReconciliationItem.objects.filter(transaction__isnull=True).aexists()


async def test_a_batchs_starts_read_their_chargers_sessions_and_id_tags_in_one_round_trip(round_trips):
    """Round 33: the chargers' lock, the sessions' read and the id tags' read go in one pipeline
    (they were a round trip each), with the batch's BEGIN."""
    chargers = [f"CP-BS-RT-{n}" for n in range(3)]
    await asyncio.to_thread(registered, *chargers)
    round_trips.clear()
    results = await one_batch(
        CommitGroup(max_units=64), *((transaction_start, {"request": start16(cp, 1000, T0)}) for cp in chargers)
    )
    assert [result.transaction.status for result in results] == [TransactionStatus.ACTIVE] * 3
    (reads,) = [trip for trip in round_trips if any(LOCK in sql for sql in trip.statements)]
    assert [sql.split()[0] for sql in reads.statements] == ["BEGIN", "SET", "SET", "UPDATE", "SELECT", "SELECT"]
    assert (
        'FROM "chargepoints_transaction" t' in reads.statements[4] and '"chargepoints_idtag" t' in reads.statements[5]
    )
    batch = [trip for trip in round_trips if trip.connection == reads.connection]
    assert not [
        trip for trip in batch if any('"chargepoints_idtag"' in sql for sql in trip.statements) and trip != reads
    ]


async def test_a_start_whose_charger_another_transaction_holds_reads_its_sessions_after_that_one_commits(
    monkeypatch,
):
    """The batch's reads skip a charger held elsewhere (the other connection's batch, say): its
    start waits for it at its turn and reads what that transaction committed, here a session it
    opened on the same connector, which the start then supersedes. Read with the others, as of
    before the holder's commit (which comes right after the batch's reads), it would have been
    missed: two sessions open on one connector."""
    await asyncio.to_thread(registered, "CP-BS-HELD-0")
    (earlier,) = await one_batch(
        CommitGroup(max_units=64), (transaction_start, {"request": start16("CP-BS-HELD-0", 1000, T0)})
    )
    await Transaction.objects.filter(pk=earlier.transaction.pk).aupdate(status=TransactionStatus.ENDED)
    async with charger_held("CP-BS-HELD-1", "CP-BS-HELD-2", held="CP-BS-HELD-0") as holder:
        holder.execute(
            "UPDATE chargepoints_transaction SET status = %s WHERE id = %s",
            [TransactionStatus.ACTIVE, earlier.transaction.pk],
        )
        read = start_reads.rows_pipelined

        def read_then_released(statements: Any) -> Any:
            rows = read(statements)
            holder.commit()  # the holder's session committed after the batch's reads
            return rows

        monkeypatch.setattr(start_reads, "rows_pipelined", read_then_released)
        results = await one_batch(
            CommitGroup(max_units=64),
            *(
                (transaction_start, {"request": start16(cp, 2000, T0 + timedelta(minutes=5))})
                for cp in ("CP-BS-HELD-1", "CP-BS-HELD-0", "CP-BS-HELD-2")
            ),
        )
    assert [result.transaction.status for result in results] == [TransactionStatus.ACTIVE] * 3
    sessions = Transaction.objects.filter(charge_point__charge_point_id="CP-BS-HELD-0").order_by("pk")
    assert [(s.status, s.stop_reason) async for s in sessions] == [
        (TransactionStatus.ENDED, "Superseded"),
        (TransactionStatus.ACTIVE, ""),
    ]
