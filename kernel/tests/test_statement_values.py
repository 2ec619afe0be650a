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
