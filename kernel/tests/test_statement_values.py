"""A plain statement's values are prepared as the ORM prepares them (``kernel.plain_sql._db_value``):
skipped only where PostgreSQL takes the value as it is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper
from django.db.models import Model

from billing.models import BillingRecord
from chargepoints.models import ChargePoint
from kernel.plain_sql import _db_value, _kinds

AT = datetime(2026, 12, 1, 19, 0, tzinfo=timezone(timedelta(hours=2)))  # 17:00 UTC

VALUES: list[tuple[type[Model], str, Any]] = [
    (ChargePoint, "last_seen", AT),
    (ChargePoint, "charge_point_id", "CP-1"),
    (ChargePoint, "connected", True),
    (ChargePoint, "id", 7),
]
VALUES += [(BillingRecord, "duration_seconds", 1500), (BillingRecord, "total", Decimal("1.2345678"))]


@pytest.mark.parametrize(("model", "attname", "value"), VALUES)
def test_on_sqlite_every_value_is_prepared_by_the_field(model, attname, value):
    sqlite = SQLiteDatabaseWrapper(
        {**connection.settings_dict, "ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
    )
    field = model._meta.get_field(attname)
    kind = _kinds(model)[field.attname]
    assert _db_value(sqlite, field, kind, value) == field.get_db_prep_save(value, sqlite)


@pytest.mark.parametrize(("model", "attname", "value"), VALUES)
def test_on_postgresql_a_value_taken_as_it_is_equals_the_fields_preparation(model, attname, value):
    field = model._meta.get_field(attname)
    kind = _kinds(model)[field.attname]
    assert _db_value(connection, field, kind, value) == field.get_db_prep_save(value, connection)


def _comparable(value: Any) -> Any:
    return getattr(value, "obj", value)  # a JSON value's adapter: the value it wraps


@pytest.mark.django_db
def test_an_inserts_values_are_the_fields_preparation_with_one_time_for_its_stamps():
    """``instance_inserted``'s values (``_inserted_values``) equal ``pre_save`` then the field's
    preparation per field; ``created_at`` and ``updated_at`` hold one time, set on the instance."""
    from charging.models import Transaction
    from kernel.plain_sql import _insert_of, _inserted_values

    session = Transaction(
        charge_point_id=7,
        ocpp_version="2.0.1",
        start_key="k",
        started_at=AT,
        meter_start_wh=Decimal("1000.5"),
        seq_nos=[0],
        anomalies=["fractional_wh"],
        idle_seconds=3,
    )
    session.pk = 42
    _, fields, _ = _insert_of(Transaction, False)
    values = _inserted_values(connection, session, False)
    assert session.created_at is not None and session.created_at == session.updated_at
    stamped = {"created_at", "updated_at"}  # as set on the instance above (pre_save would read the clock again)
    expected = [
        _db_value(
            connection,
            field,
            _kinds(Transaction)[field.attname],
            getattr(session, field.attname) if field.attname in stamped else field.pre_save(session, True),
        )
        for field in fields
    ]
    assert [_comparable(value) for value in values] == [_comparable(value) for value in expected]
