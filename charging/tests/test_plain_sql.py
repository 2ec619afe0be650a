"""kernel.plain_sql on the session models: what the plain statements read and write is what the ORM does."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, models, transaction
from django.db.models.signals import post_init
from django.test.utils import isolate_apps

from billing.models import BillingRecord
from chargepoints.models import ChargePoint
from charging.models import IdTag, MeterSample, Transaction
from charging.tests.billing_rows import billing_record
from charging.tests.meter_samples import meter_sample
from kernel.plain_sql import (
    columns_of,
    copies_gathered,
    gathered_rows_of,
    gathered_rows_written,
    gathering_paused,
    instance_of_row,
    instance_updated,
    instance_upserted,
    instances_copied,
    model_rows,
    row_upserted,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="plain statements are PostgreSQL only"),
]

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


def _session(register_charge_point) -> Transaction:
    charge_point = register_charge_point("CP-PLAIN", ocpp_version="2.0.1")
    return Transaction.objects.create(
        charge_point=charge_point,
        ocpp_transaction_id="tx-1",
        start_key="k",
        connector_id=1,
        id_tag="TAG",
        started_at=T0,
        meter_start_wh=Decimal("1000.5"),
        seq_nos=[0, 1],
    )


def test_model_rows_reads_what_the_orm_reads_with_the_related_row(register_charge_point):
    session = _session(register_charge_point)
    table, chargers = Transaction._meta.db_table, ChargePoint._meta.db_table
    [read] = model_rows(
        Transaction,
        f"SELECT {columns_of(Transaction, 't')}, {columns_of(ChargePoint, 'c')} FROM {table} t"
        f" JOIN {chargers} c ON c.id = t.charge_point_id WHERE t.id = %s",
        [session.pk],
        related=("charge_point", ChargePoint),
    )
    expected = Transaction.objects.select_related("charge_point").get(pk=session.pk)
    assert _fields(read) == _fields(expected)
    assert read.seq_nos == [0, 1] and read.meter_start_wh == Decimal("1000.5")
    assert _fields(read.charge_point) == _fields(expected.charge_point)


def test_a_left_join_that_finds_no_related_row_gives_none():
    tag = IdTag.objects.create(id_tag="Orphan")
    table = IdTag._meta.db_table
    [read] = model_rows(
        IdTag,
        f"SELECT {columns_of(IdTag, 't')}, {columns_of(IdTag, 'p')} FROM {table} t"
        f" LEFT JOIN {table} p ON p.id = t.parent_id WHERE t.id = %s",
        [tag.pk],
        related=("parent", IdTag),
    )
    assert read.parent is None and read.id_tag == "Orphan"


def test_instance_updated_saves_the_columns_and_updated_at(register_charge_point):
    session = _session(register_charge_point)
    before = session.updated_at
    session.energy_wh, session.seq_nos = Decimal("12.5"), [0, 1, 2]
    instance_updated(session, ["energy_wh", "seq_nos"])
    stored = Transaction.objects.get(pk=session.pk)
    assert stored.energy_wh == Decimal("12.5") and stored.seq_nos == [0, 1, 2]
    assert stored.updated_at == session.updated_at > before


def test_instance_updated_with_other_columns_sets_only_those(register_charge_point):
    session = _session(register_charge_point)
    session.energy_wh, session.id_tag = Decimal(1), "OTHER"
    instance_updated(session, ["energy_wh"])
    session.energy_wh = Decimal(2)
    instance_updated(session, ["id_tag"])  # a statement of its own, not the one of energy_wh
    stored = Transaction.objects.get(pk=session.pk)
    assert (stored.energy_wh, stored.id_tag) == (Decimal(1), "OTHER")


def test_gathered_rows_of_a_table_are_written_when_it_is_read(register_charge_point):
    session = _session(register_charge_point)

    def sample() -> MeterSample:
        return MeterSample(
            charge_point_id=session.charge_point_id,
            transaction=session,
            source="gathered",
            timestamp=T0,
            raw_value="1",
            received_at=T0,
        )

    with copies_gathered():
        instances_copied(MeterSample, [sample(), sample()], may_gather=True)
        assert not MeterSample.objects.exists()
        gathered_rows_written(MeterSample)
        assert MeterSample.objects.count() == 2
        instances_copied(MeterSample, [sample()], may_gather=True)
    assert MeterSample.objects.count() == 3  # the rest at the block's end, nothing twice


def test_updates_gathered_wait_for_the_block_then_a_read_or_its_end(register_charge_point):
    session = _session(register_charge_point)
    table = Transaction._meta.db_table
    read = f"SELECT {columns_of(Transaction, 't')} FROM {table} t WHERE t.id = %s"
    with copies_gathered():
        session.energy_wh, session.seq_nos = Decimal("1.5"), [0, 1, 2]
        instance_updated(session, ["energy_wh", "seq_nos"], may_gather=True)
        assert Transaction.objects.get(pk=session.pk).energy_wh is None  # not written yet
        [again] = model_rows(Transaction, read, [session.pk])  # a plain read writes it first
        assert (again.energy_wh, again.seq_nos) == (Decimal("1.5"), [0, 1, 2])
        session.energy_wh = Decimal("2.5")
        instance_updated(session, ["energy_wh"], may_gather=True)
        session.energy_wh, session.id_tag = Decimal("3.5"), "LATER"
        instance_updated(session, ["energy_wh", "id_tag"], may_gather=True)  # the same row again: in order
    stored = Transaction.objects.get(pk=session.pk)
    assert (stored.energy_wh, stored.id_tag, stored.seq_nos) == (Decimal("3.5"), "LATER", [0, 1, 2])


def test_gathered_updates_of_several_rows_store_what_plain_ones_store(register_charge_point):
    """The gathered UPDATE passes each column as one array: values an array literal must quote
    (braces, commas, quotes, backslashes, NULL) and JSON come back as a plain UPDATE writes them."""
    first = _session(register_charge_point)
    second = Transaction.objects.create(
        charge_point=first.charge_point, ocpp_transaction_id="tx-2", start_key="k2", started_at=T0
    )
    odd = ['{"a,b"}', "back\\slash", "NULL", "", 'quo"te']
    first.stop_reason, first.energy_wh, first.anomalies = 'x,{"}\\', Decimal("12.5"), odd
    second.stop_reason, second.energy_wh, second.anomalies = "NULL", None, [{"k": odd}]
    with copies_gathered():
        for session in (first, second):
            instance_updated(session, ["stop_reason", "energy_wh", "anomalies"], may_gather=True)
    for session in (first, second):
        stored = Transaction.objects.get(pk=session.pk)
        assert (stored.stop_reason, stored.energy_wh, stored.anomalies) == (
            session.stop_reason,
            session.energy_wh,
            session.anomalies,
        )


def test_a_gathered_update_of_a_deleted_row_fails_the_block(register_charge_point):
    session = _session(register_charge_point)
    Transaction.objects.filter(pk=session.pk).delete()
    with pytest.raises(DatabaseError), copies_gathered():
        instance_updated(session, ["energy_wh"], may_gather=True)


def test_instance_updated_of_a_deleted_row_raises(register_charge_point):
    session = _session(register_charge_point)
    Transaction.objects.filter(pk=session.pk).delete()
    with pytest.raises(DatabaseError):
        instance_updated(session, ["energy_wh"])


def test_instance_updated_unless_writes_only_when_the_condition_does_not_hold(register_charge_point):
    session = _session(register_charge_point)
    session.energy_wh = Decimal("7")
    assert instance_updated(session, ["energy_wh"], unless=("%s = 1", [1])) is False
    assert Transaction.objects.get(pk=session.pk).energy_wh != Decimal("7")
    assert instance_updated(session, ["energy_wh"], unless=("%s = 1", [0])) is True
    assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("7")


def test_instances_copied_stores_what_bulk_create_stores(register_charge_point):
    session = _session(register_charge_point)

    instances_copied(MeterSample, [meter_sample(session, "copied")])
    MeterSample.objects.bulk_create([meter_sample(session, "created")])
    copied, created = (MeterSample.objects.get(source=source) for source in ("copied", "created"))
    ignored = {"id", "source"}
    assert {k: v for k, v in _fields(copied).items() if k not in ignored} == {
        k: v for k, v in _fields(created).items() if k not in ignored
    }


def test_a_gathered_update_of_an_over_long_text_fails_as_a_plain_one(register_charge_point):
    session = _session(register_charge_point)
    session.stop_reason = "R" * (Transaction._meta.get_field("stop_reason").max_length + 1)
    with pytest.raises(DatabaseError), transaction.atomic():
        instance_updated(session, ["stop_reason"])  # "value too long"
    with pytest.raises(DatabaseError), transaction.atomic(), copies_gathered():
        instance_updated(session, ["stop_reason"], may_gather=True)  # not cut to fit
    assert Transaction.objects.get(pk=session.pk).stop_reason == ""


def test_a_unit_in_its_own_savepoint_writes_what_was_gathered_before_and_gathers_nothing(register_charge_point):
    session = _session(register_charge_point)
    with copies_gathered():
        session.energy_wh = Decimal("1.5")
        instance_updated(session, ["energy_wh"], may_gather=True)
        with gathering_paused():
            assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("1.5")  # written first
            session.energy_wh = Decimal("2.5")
            instance_updated(session, ["energy_wh"], may_gather=True)  # at once, not at the block's end
            assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("2.5")
        session.energy_wh = Decimal("3.5")
        instance_updated(session, ["energy_wh"], may_gather=True)
        assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("2.5")  # gathering again
    assert Transaction.objects.get(pk=session.pk).energy_wh == Decimal("3.5")


def test_unless_cannot_be_gathered(register_charge_point):
    session = _session(register_charge_point)
    with pytest.raises(ValueError), copies_gathered():
        instance_updated(session, ["energy_wh"], may_gather=True, unless=("true", []))


def test_the_gathered_rows_of_a_session_are_read_from_the_block_and_written_at_its_end(register_charge_point):
    session = _session(register_charge_point)
    other = Transaction.objects.create(charge_point_id=session.charge_point_id, start_key="o", started_at=T0)

    def sample(of: Transaction, raw: str) -> MeterSample:
        return MeterSample(
            charge_point_id=of.charge_point_id, transaction=of, source="s", timestamp=T0, raw_value=raw, received_at=T0
        )

    with copies_gathered():
        instances_copied(MeterSample, [sample(session, "1"), sample(other, "2"), sample(session, "3")], may_gather=True)
        found = gathered_rows_of(MeterSample, ["raw_value", "timestamp"], ("transaction_id", session.pk))
        assert found == [["1", T0], ["3", T0]]
        assert not MeterSample.objects.exists()  # read from the block, not written first
    assert MeterSample.objects.count() == 3
    assert gathered_rows_of(MeterSample, ["raw_value"], ("transaction_id", session.pk)) == []  # outside: none


def _record(session: Transaction, total: str) -> BillingRecord:
    return billing_record(session, total, "CP-PLAIN", T0)


def test_upserts_gathered_wait_for_the_block_and_the_last_of_a_key_wins(register_charge_point):
    session = _session(register_charge_point)
    first = _record(session, "1.00")
    instance_upserted(first, conflict="transaction_id", kept=("created_at",))
    created = BillingRecord.objects.get(pk=first.pk).created_at
    with copies_gathered():
        instance_upserted(_record(session, "2.00"), conflict="transaction_id", kept=("created_at",), may_gather=True)
        instance_upserted(_record(session, "3.00"), conflict="transaction_id", kept=("created_at",), may_gather=True)
        assert BillingRecord.objects.get().total == Decimal("1.00")  # not written yet
    stored = BillingRecord.objects.get()
    assert (stored.pk, stored.total, stored.created_at) == (first.pk, Decimal("3.00"), created)


def _columns(record: BillingRecord) -> dict:
    """A record's values but its id, its session and its times of writing."""
    return {
        name: value
        for name, value in _fields(record).items()
        if name not in ("id", "transaction_id", "created_at", "updated_at")
    }


@pytest.mark.parametrize("gathered", [False, True])
def test_row_upserted_writes_what_instance_upserted_writes(register_charge_point, gathered):
    """``row_upserted`` (a stop's billing record as a row of values) writes the row
    ``instance_upserted`` writes of the same values, gathered or not; a row of the same key
    again keeps its ``created_at`` and takes the rest, as an upsert of an instance does."""
    session = _session(register_charge_point)
    other = Transaction.objects.create(
        charge_point=session.charge_point, start_key="k2", connector_id=2, id_tag="TAG", started_at=T0
    )
    model = _record(session, "1.25")
    model.line_items, model.needs_review, model.currency = [{"kind": "energy", "amount": "1.25"}], True, "EUR"
    instance_upserted(model, conflict="transaction_id", kept=("created_at",))
    values = {**_columns(model), "transaction_id": other.pk}
    with copies_gathered() if gathered else transaction.atomic():
        row_upserted(BillingRecord, values, conflict="transaction_id", kept=("created_at",), may_gather=gathered)
    stored, by_row = BillingRecord.objects.get(transaction=session), BillingRecord.objects.get(transaction=other)
    assert _columns(by_row) == _columns(stored)
    assert by_row.created_at == by_row.updated_at is not None
    row_upserted(BillingRecord, {**values, "total": Decimal("2.00")}, conflict="transaction_id", kept=("created_at",))
    again = BillingRecord.objects.get(transaction=other)
    assert (again.pk, again.total, again.created_at) == (by_row.pk, Decimal("2.00"), by_row.created_at)
    assert again.updated_at > by_row.updated_at


@isolate_apps("charging")
def test_row_upserted_refuses_a_model_whose_fields_need_an_instance() -> None:
    """A field with its own ``pre_save`` (a date stamped, a custom field) cannot be written from values alone."""

    class Stamped(models.Model):
        day = models.DateField(auto_now=True)
        name = models.CharField(max_length=3, unique=True)

        class Meta:
            app_label = "charging"

        def __str__(self) -> str:
            return self.name

    with pytest.raises(ValueError, match="pre_save"):
        row_upserted(Stamped, {"name": "a"}, conflict="name")


def test_upserts_gathered_beyond_one_statements_parameters_are_all_written(register_charge_point):
    """A batch may gather more billing records than one bound statement's 65,535 parameters hold
    (``CSMS_GROUP_COMMIT_MAX_UNITS`` is not capped): all are written (one array per column)."""
    charge_point = _session(register_charge_point).charge_point
    count = 65_535 // 16 + 10  # PostgreSQL's parameters per statement / a billing record's 16 values
    sessions = Transaction.objects.bulk_create(
        Transaction(
            charge_point=charge_point,
            ocpp_transaction_id=f"tx-many-{n}",
            start_key=f"many-{n}",
            connector_id=1,
            id_tag="TAG",
            started_at=T0,
            meter_start_wh=Decimal(0),
        )
        for n in range(count)
    )
    with copies_gathered():
        for session in sessions:
            record = _record(session, "1.00")
            instance_upserted(record, conflict="transaction_id", kept=("created_at",), may_gather=True)
    assert BillingRecord.objects.count() == count


def _loaded(instance: object) -> dict[str, object]:
    return {key: value for key, value in vars(instance).items() if key != "_state"}


@pytest.mark.parametrize("fields", ["all", "some"])
def test_instance_of_row_gives_what_from_db_gives(fields: str) -> None:
    """``instance_of_row`` is ``from_db`` without ``Model.__init__``: the same values, the same
    deferred fields, the same state."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP-ROW", vendor="V", heartbeat_interval=60)
    names = [field.attname for field in ChargePoint._meta.concrete_fields]
    if fields == "some":
        names = [name for name in names if name in {"id", "charge_point_id", "heartbeat_interval"}]
    values = list(ChargePoint.objects.filter(pk=charge_point.pk).values_list(*names).get())
    fast, slow = instance_of_row(ChargePoint, names, values), ChargePoint.from_db("default", names, values)
    assert _loaded(fast) == _loaded(slow)
    assert fast.get_deferred_fields() == slow.get_deferred_fields()
    assert (fast._state.adding, fast._state.db) == (slow._state.adding, slow._state.db) == (False, "default")
    if fields == "some":
        assert fast.vendor == "V"  # a deferred field is read when first used


def test_instance_of_row_goes_through_from_db_when_a_receiver_listens() -> None:
    seen: list[object] = []

    def receiver(sender: type, instance: object, **kwargs: object) -> None:
        seen.append(instance)

    post_init.connect(receiver, sender=IdTag)
    try:
        tag = instance_of_row(IdTag, ["id", "id_tag"], [1, "TAG-1"])
    finally:
        post_init.disconnect(receiver, sender=IdTag)
    assert seen == [tag]
