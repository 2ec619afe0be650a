"""A ledger row goes to its COPY as it is only when ``instances_copied`` would send it unchanged
(issue 15, round 19): the same values, the same columns, the same gathered COPY; any other row
the general way, and a message's rows in the order sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections
from hypothesis import given
from hypothesis import strategies as st

from charging.models import MeterSample
from charging.services.meter_ledger import SampledValue, SampleRow, _copy_row, sample_rows, sample_rows_stored
from kernel import plain_sql

AT = datetime(2026, 5, 1, 10, tzinfo=UTC)


def _prepared(row: SampleRow) -> list[object]:
    """What ``instances_copied`` sends to the COPY for ``row``: each value through its preparation."""
    db = connections["default"]
    fields = plain_sql._copied_fields(MeterSample)
    values = plain_sql._values_of(MeterSample)(row)
    return [plain_sql._db_value(db, field, kind, value) for (field, kind), value in zip(fields, values, strict=True)]


_times = st.sampled_from([AT, AT.replace(tzinfo=None), AT.astimezone(UTC) + timedelta(hours=1), None])
_texts = st.one_of(st.sampled_from(["", "Energy.Active.Import.Register", 'a"b\\c']), st.integers(0, 3))


@given(
    transaction_id=st.one_of(st.none(), st.integers(1, 2**40), st.booleans()),
    timestamp=_times,
    charger_timestamp=_times,
    measurand=_texts,
    multiplier=st.one_of(st.integers(-40, 40), st.booleans()),
    signed=st.one_of(st.none(), st.just({"format": "SignedData", "value": "abc"})),
    value=st.sampled_from([None, Decimal("1.5"), Decimal(7), Decimal("NaN"), Decimal("Infinity"), 3, "4"]),
)
def test_a_row_sent_as_it_is_is_what_its_preparation_sends(
    transaction_id, timestamp, charger_timestamp, measurand, multiplier, signed, value
):
    row = SampleRow(
        3, transaction_id, None, 1, "MeterValues", timestamp or AT, charger_timestamp, measurand, "", "Wh",
        multiplier, "", "Outlet", "", "1", signed, value, AT,
    )  # fmt: skip
    plain = _copy_row(row)
    if plain is not None:
        assert list(plain) == _prepared(row)
        assert [type(value) for value in plain] == [type(value) for value in _prepared(row)]


def test_a_readings_rows_go_as_they_are():
    samples = [
        SampledValue(timestamp=AT, raw_value="1200", context="Sample.Periodic", location="Outlet", format="Raw"),
        SampledValue(timestamp=AT, raw_value="36000", measurand="Power.Active.Import", unit="W"),
    ]
    rows = sample_rows(3, None, samples, source="MeterValues", connector_id=1)
    assert all(_copy_row(row) is not None for row in rows)
    signed = SampledValue(timestamp=AT, raw_value="x", format="SignedData", signed_data={"value": "x"})
    assert _copy_row(sample_rows(3, None, [signed], source="MeterValues")[0]) is None


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL only")
def test_a_messages_rows_plain_and_signed_keep_their_order_in_the_ledger(register_charge_point):
    charge_point = register_charge_point("CP-LR-1")
    samples = [
        SampledValue(timestamp=AT, raw_value="1", measurand="Voltage", unit="V"),
        SampledValue(timestamp=AT, raw_value="x", format="SignedData", signed_data={"value": "x"}),
        SampledValue(timestamp=AT, raw_value="3", measurand="Current.Import", unit="A"),
    ]
    with plain_sql.copies_gathered():  # as in a batch: plain rows and a signed one gathered in one COPY
        sample_rows_stored(sample_rows(charge_point.pk, None, samples[:1], source="MeterValues"), may_gather=True)
        sample_rows_stored(sample_rows(charge_point.pk, None, samples[1:], source="MeterValues"), may_gather=True)
    stored = list(MeterSample.objects.filter(charge_point=charge_point).order_by("id"))
    assert [row.raw_value for row in stored] == ["1", "x", "3"]
    assert [row.value for row in stored] == [Decimal(1), None, Decimal(3)]
    assert stored[1].signed_data == {"value": "x"}
