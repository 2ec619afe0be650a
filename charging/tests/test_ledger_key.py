"""A ledger row's check in the database (issue 15, round 22, migration charging 0006): one foreign
key of the pair (session, charger) in place of a key to each, so a sample with a session belongs to
it and to its charger; a sample without one keeps its charger by the writer and ``on_delete``."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection
from django.db import transaction as db_transaction
from django.utils import timezone

from chargepoints.models import ChargePoint
from charging.models import MeterSample, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

_POSTGRESQL = pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's constraint")


def _session(name: str) -> Transaction:
    charge_point = ChargePoint.objects.create(charge_point_id=name, heartbeat_interval=300)
    return Transaction.objects.create(
        charge_point=charge_point,
        ocpp_version="1.6",
        start_key=f"{name}-start",
        id_tag="TAG",
        started_at=timezone.now(),
    )


def _sample(charge_point_id: int, transaction_id: int | None) -> MeterSample:
    now = timezone.now()
    return MeterSample(
        charge_point_id=charge_point_id,
        transaction_id=transaction_id,
        source="MeterValues",
        timestamp=now,
        measurand="Energy.Active.Import.Register",
        raw_value="1500",
        value=Decimal(1500),
        received_at=now,
    )


def _foreign_keys() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'chargepoints_metersample'::regclass AND contype = 'f'"
        )
        return dict(cursor.fetchall())


@_POSTGRESQL
def test_a_sample_is_checked_by_one_key_of_its_session_and_charger() -> None:
    keys = _foreign_keys()
    assert keys["meter_sample_session"] == (
        "FOREIGN KEY (transaction_id, charge_point_id) REFERENCES chargepoints_transaction(id, charge_point_id)"
        " DEFERRABLE INITIALLY DEFERRED"
    )
    others = [definition for name, definition in keys.items() if name != "meter_sample_session"]
    assert others == [
        "FOREIGN KEY (reconciliation_item_id) REFERENCES chargepoints_reconciliationitem(id)"
        " DEFERRABLE INITIALLY DEFERRED"
    ]


@_POSTGRESQL
def test_a_sample_of_another_chargers_session_is_refused() -> None:
    session, other = _session("CP-LEDGER-1"), _session("CP-LEDGER-2")
    with pytest.raises(IntegrityError), db_transaction.atomic():
        MeterSample.objects.bulk_create([_sample(other.charge_point_id, session.pk)])
    assert not MeterSample.objects.exists()


@_POSTGRESQL
def test_a_sample_of_no_such_session_is_refused() -> None:
    session = _session("CP-LEDGER-3")
    with pytest.raises(IntegrityError), db_transaction.atomic():
        MeterSample.objects.bulk_create([_sample(session.charge_point_id, session.pk + 1000)])
    assert not MeterSample.objects.exists()


def test_samples_of_their_session_and_without_one_are_kept_and_go_with_their_session_and_charger() -> None:
    session, other = _session("CP-LEDGER-4"), _session("CP-LEDGER-5")
    MeterSample.objects.bulk_create(
        [_sample(session.charge_point_id, session.pk), _sample(other.charge_point_id, None)]
    )
    assert MeterSample.objects.count() == 2
    session.delete()  # on_delete: its samples go first
    assert list(MeterSample.objects.values_list("charge_point_id", "transaction_id")) == [(other.charge_point_id, None)]
    Transaction.objects.filter(pk=other.pk).delete()
    other.charge_point.delete()  # the charger's samples without a session go with it
    assert not MeterSample.objects.exists()
