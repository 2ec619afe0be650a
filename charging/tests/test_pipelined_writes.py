"""kernel.plain_sql: a block's gathered UPDATEs and upserts are sent together, one pipeline, one
round trip (issue 15, round 22), with the checks and the errors each had when sent alone."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, DataError, connection, transaction

from billing.models import BillingRecord
from charging.models import Transaction
from charging.tests.billing_rows import billing_record
from kernel.plain_sql import copies_gathered, instance_updated, instance_upserted

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
