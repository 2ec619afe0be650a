"""kernel.plain_sql: a block's gathered UPDATEs and upserts are sent together, one pipeline, one
round trip (issue 15, round 22), with the checks and the errors each had when sent alone."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, DataError, connection, transaction
from psycopg import pq

from billing.models import BillingRecord
from charging.models import MeterSample, Transaction
from charging.tests.billing_rows import billing_record
from charging.tests.meter_samples import meter_sample
from kernel.deferred_begin import begun_with_first_statement
from kernel.plain_sql import (
    PIPELINED_COPY_ROWS,
    copies_gathered,
    instance_inserted,
    instance_updated,
    instance_upserted,
    instances_copied,
)
from ocpp_gateway.group_commit import CommitGroup
from ocpp_gateway.tests.batches import one_batch

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only"),
]

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """The pipelines entered, and the waits for the server's answer (a statement sent alone, a
    pipeline's Sync; not a pipelined statement's send, which does not wait)."""
    counted = {"pipelines": 0, "waits": 0}
    pipeline, wait = psycopg.Connection.pipeline, psycopg.Connection.wait

    def pipelined(self: Any) -> Any:
        counted["pipelines"] += 1
        return pipeline(self)

    def waited(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(gen, "__name__", "")
        if name not in ("_communicate_gen", "_enter_gen", "_set_autocommit_gen", "copy_to") and not (
            self._pipeline is not None and name == "_execute_gen"
        ):
            counted["waits"] += 1
        return wait(self, gen, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "pipeline", pipelined)
    monkeypatch.setattr(psycopg.Connection, "wait", waited)
    return counted


@pytest.fixture
def slow_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pipelined statement sent 50 ms after the one before: the server's answer to a refused
    statement has arrived when the next is sent, so psycopg reads (and raises) it there."""
    execute = psycopg.Cursor.execute

    def slowly(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.connection._pipeline is not None:
            time.sleep(0.05)
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", slowly)


def _sessions(register_charge_point, count: int = 2) -> list[Transaction]:
    charge_point = register_charge_point("CP-PIPE", ocpp_version="1.6")
    return [
        Transaction.objects.create(
            charge_point=charge_point, ocpp_transaction_id=f"tx-{n}", start_key=f"k{n}", connector_id=n, started_at=T0
        )
        for n in range(1, count + 1)
    ]


def _billing(session: Transaction, total: str) -> BillingRecord:
    return billing_record(session, total, "CP-PIPE", T0)


def _upserted(record: BillingRecord) -> None:
    instance_upserted(record, conflict="transaction_id", kept=("created_at",), may_gather=True)


def test_gathered_updates_and_upserts_are_written_in_one_round_trip(register_charge_point, waits):
    first, second = _sessions(register_charge_point)
    with transaction.atomic():
        first.energy_wh, second.stop_reason = Decimal("12.5"), "Local"
        waits["waits"] = 0
        with copies_gathered():
            instance_updated(first, ["energy_wh"], may_gather=True)
            instance_updated(second, ["stop_reason"], may_gather=True)  # another set of columns: a statement
            _upserted(_billing(first, "2.50"))
        assert (waits["pipelines"], waits["waits"]) == (1, 1)  # three statements, one Sync
    assert Transaction.objects.get(pk=first.pk).energy_wh == Decimal("12.5")
    assert Transaction.objects.get(pk=second.pk).stop_reason == "Local"
    assert BillingRecord.objects.get().total == Decimal("2.50")


def test_one_gathered_statement_is_sent_alone(register_charge_point, waits):
    [session] = _sessions(register_charge_point, 1)
    with transaction.atomic(), copies_gathered():
        session.energy_wh = Decimal("1")
        instance_updated(session, ["energy_wh"], may_gather=True)
    assert waits["pipelines"] == 0
    assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("1")


def test_a_pipelined_update_of_a_row_gone_fails_the_block(register_charge_point, waits):
    first, second = _sessions(register_charge_point)
    Transaction.objects.filter(pk=second.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect"), transaction.atomic(), copies_gathered():
        instance_updated(first, ["energy_wh"], may_gather=True)
        instance_updated(second, ["stop_reason"], may_gather=True)
    assert waits["pipelines"] == 1


def test_a_guarded_row_changed_fails_the_pipelined_writes(register_charge_point):
    first, second = _sessions(register_charge_point)
    read_at = second.updated_at
    Transaction.objects.filter(pk=second.pk).update(updated_at=datetime(2030, 1, 1, tzinfo=UTC))
    with pytest.raises(DatabaseError), transaction.atomic(), copies_gathered():
        instance_updated(first, ["energy_wh"], may_gather=True)
        instance_updated(second, ["stop_reason"], may_gather=True, guard=("updated_at", read_at))
    assert Transaction.objects.get(pk=first.pk).energy_wh is None  # rolled back with the block


def test_a_refused_pipelined_statement_raises_djangos_error_and_the_connection_recovers(register_charge_point, waits):
    first, second = _sessions(register_charge_point)
    first.energy_wh, second.id_tag = Decimal("3"), "x" * 500  # longer than the column: refused
    with pytest.raises(DataError), transaction.atomic(), copies_gathered():
        instance_updated(first, ["energy_wh"], may_gather=True)
        instance_updated(second, ["id_tag"], may_gather=True)
        _upserted(_billing(first, "1.00"))
    assert waits["pipelines"] == 1
    assert connection.connection._pipeline is None  # left pipeline mode
    assert Transaction.objects.get(pk=first.pk).energy_wh is None and not BillingRecord.objects.exists()
    with transaction.atomic(), copies_gathered():  # the connection writes again, pipelined
        instance_updated(first, ["energy_wh"], may_gather=True)
        _upserted(_billing(first, "1.00"))
    assert Transaction.objects.get(pk=first.pk).energy_wh == Decimal("3")


def test_a_refusal_read_while_a_later_statement_is_sent_is_raised_alone(register_charge_point, slow_sends, caplog):
    """The first statement refused, its answer read as the second is sent: Django's error of it
    and no warning of psycopg's beside it ("error ignored terminating" the pipeline, whose end
    fails again); nothing written, the connection writes again."""
    first, second = _sessions(register_charge_point)
    first.id_tag, second.energy_wh = "x" * 500, Decimal("3")  # the id_tag's UPDATE first: refused
    caplog.set_level(logging.DEBUG, logger="psycopg")
    with pytest.raises(DataError, match="too long"), transaction.atomic(), copies_gathered():
        instance_updated(first, ["id_tag"], may_gather=True)
        instance_updated(second, ["energy_wh"], may_gather=True)
        _upserted(_billing(first, "1.00"))
    assert [record.getMessage() for record in caplog.records if record.name.startswith("psycopg")] == []
    assert connection.connection._pipeline is None
    assert Transaction.objects.get(pk=second.pk).energy_wh is None and not BillingRecord.objects.exists()
    with transaction.atomic(), copies_gathered():
        instance_updated(second, ["energy_wh"], may_gather=True)
        _upserted(_billing(first, "1.00"))
    assert Transaction.objects.get(pk=second.pk).energy_wh == Decimal("3")


def _tag_too_long(pk: int) -> None:
    """A unit whose session's new id tag the column refuses (gathered in a batch's first pass)."""
    session = Transaction.objects.get(pk=pk)
    session.id_tag = "x" * 500
    instance_updated(session, ["id_tag"], may_gather=True)


def _energy_and_bill(pk: int) -> None:
    """A unit that writes its session's energy and its billing record (both gathered)."""
    session = Transaction.objects.get(pk=pk)
    session.energy_wh = Decimal("7")
    instance_updated(session, ["energy_wh"], may_gather=True)
    _upserted(_billing(session, "7.00"))


async def test_a_batch_whose_pipelined_writes_are_refused_answers_the_refused_unit_alone(
    register_charge_point, slow_sends, caplog
):
    """A batch's gathered writes refused in its pipeline (the refusal read as a later statement
    is sent): the second pass answers the refused unit with its error (a CALLERROR) and writes
    the other; no row of the refused unit written, and no psycopg warning logged."""
    first, second = await asyncio.to_thread(_sessions, register_charge_point)
    caplog.set_level(logging.WARNING)
    refused, written = await one_batch(
        CommitGroup(max_units=64), (_tag_too_long, {"pk": first.pk}), (_energy_and_bill, {"pk": second.pk})
    )
    assert isinstance(refused, DataError) and written is None
    assert [record.getMessage() for record in caplog.records if record.name.startswith("psycopg")] == []
    rows = {row.pk: (row.id_tag, row.energy_wh) async for row in Transaction.objects.all()}
    assert rows == {first.pk: (first.id_tag, None), second.pk: (second.id_tag, Decimal("7"))}
    assert [record.transaction_id async for record in BillingRecord.objects.all()] == [second.pk]


# A group commit batch's BEGIN: foreign keys checked per statement, as in a batch.
_BATCH_BEGIN = ("BEGIN", "SET CONSTRAINTS ALL IMMEDIATE")


def _committed_seen(session: Transaction) -> Decimal | None:
    """The session's energy as another connection reads it: what is committed."""
    with psycopg.connect(connection.connection.info.dsn, autocommit=True) as other:
        row = other.execute("SELECT energy_wh FROM chargepoints_transaction WHERE id = %s", [session.pk]).fetchone()
    return row[0] if row else None


def _sample(session: Transaction, source: str) -> MeterSample:
    return meter_sample(session, source, signed_value='a"b\\c')  # quotes and a backslash: the array text


def test_a_transaction_s_last_writes_carry_its_begin_and_commit_in_one_round_trip(register_charge_point, waits):
    first, second = _sessions(register_charge_point)
    first.energy_wh = Decimal("7")
    with transaction.atomic(), begun_with_first_statement(_BATCH_BEGIN):
        waits["waits"] = 0
        with copies_gathered(commit=True):
            instance_updated(first, ["energy_wh"], may_gather=True)
            instances_copied(MeterSample, [_sample(first, "a"), _sample(second, "b")], may_gather=True)
            instances_copied(MeterSample, [], may_gather=True)  # none: no statement
        assert (waits["pipelines"], waits["waits"]) == (1, 1)  # BEGIN, UPDATE, INSERT, COMMIT: one Sync
        assert _committed_seen(first) == Decimal("7")  # committed before the atomic block ends
        assert connection.connection.autocommit is False  # psycopg's BEGIN on again, as Django left it
    assert MeterSample.objects.count() == 2
    assert connection.get_autocommit() and connection.connection.autocommit
    assert connection.connection.pgconn.transaction_status == pq.TransactionStatus.IDLE


def test_a_wrong_row_count_leaves_the_commit_unsent(register_charge_point):
    first, second = _sessions(register_charge_point)
    Transaction.objects.filter(pk=second.pk).delete()
    first.energy_wh = Decimal("7")
    with (
        pytest.raises(DatabaseError, match="csms: 1 rows written of 2"),
        transaction.atomic(),
        begun_with_first_statement(_BATCH_BEGIN),
        copies_gathered(commit=True),
    ):
        instance_updated(first, ["energy_wh"], may_gather=True)
        instance_updated(second, ["energy_wh"], may_gather=True)  # its row is gone: 1 row of 2 written
        instances_copied(MeterSample, [_sample(first, "a")], may_gather=True)
    assert _committed_seen(first) is None
    assert not MeterSample.objects.exists()


def test_copies_beyond_the_pipelined_rows_go_by_copy_after_the_inserts_they_refer_to(register_charge_point, waits):
    charge_point = register_charge_point("CP-PIPE", ocpp_version="1.6")
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('chargepoints_transaction', 'id'))")
        pk = cursor.fetchone()[0]
    session = Transaction(
        pk=pk, charge_point=charge_point, ocpp_transaction_id="tx-new", start_key="k-new", connector_id=1, started_at=T0
    )
    count = PIPELINED_COPY_ROWS + 1
    with transaction.atomic(), begun_with_first_statement(_BATCH_BEGIN), copies_gathered(commit=True):
        instance_inserted(session, may_gather=True)
        instances_copied(MeterSample, [_sample(session, str(n)) for n in range(count)], may_gather=True)
    assert MeterSample.objects.filter(transaction_id=pk).count() == count


@pytest.mark.parametrize("rows", [1, PIPELINED_COPY_ROWS + 1])
def test_gathered_samples_store_what_bulk_create_stores_by_insert_or_copy(register_charge_point, rows):
    [session] = _sessions(register_charge_point, 1)
    with transaction.atomic(), copies_gathered():
        instances_copied(MeterSample, [_sample(session, "gathered") for _ in range(rows)], may_gather=True)
    MeterSample.objects.bulk_create([_sample(session, "created")])
    gathered = MeterSample.objects.filter(source="gathered").first()
    created = MeterSample.objects.get(source="created")
    ignored = {"id", "source"}
    assert {k: v for k, v in vars(gathered).items() if k not in ignored and not k.startswith("_")} == {
        k: v for k, v in vars(created).items() if k not in ignored and not k.startswith("_")
    }
