"""The writes that carry a group-commit batch's COMMIT (``copies_gathered(commit=True)``) are planned
once per connection, through the key's index, and the settings that make it so end with the
transaction (``kernel.plain_sql._GATHERED_WRITES_PLAN_SETTINGS``)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction

from chargepoints.models import ChargePoint
from kernel.deferred_begin import begun_with_first_statement
from kernel.plain_sql import copies_gathered, instance_updated

pytestmark = pytest.mark.django_db(transaction=True)

_SETTINGS = ("plan_cache_mode", "enable_seqscan", "enable_hashjoin", "enable_mergejoin")


@pytest.fixture(autouse=True)
def _postgresql_prepared_at_once() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plans")
    connection.ensure_connection()
    raw: Any = connection.connection
    threshold, raw.prepare_threshold = raw.prepare_threshold, 0  # psycopg prepares each statement at once
    try:
        yield
    finally:
        raw.prepare_threshold = threshold


def _batch_written(charger: ChargePoint, interval: int) -> None:
    """A batch's first pass in miniature: its BEGIN sent with its first statement, an update
    gathered and written with the COMMIT."""
    charger.heartbeat_interval = interval
    with (
        transaction.atomic(),
        begun_with_first_statement(("BEGIN", "SET CONSTRAINTS ALL IMMEDIATE")),
        copies_gathered(commit=True),
    ):
        instance_updated(charger, ["heartbeat_interval"], may_gather=True)


def _gathered_update() -> tuple[str, str, int, int]:
    """The prepared gathered UPDATE of chargers on this connection: its name, text and plan counts
    (none yet: empty names and counts)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ['%UPDATE "chargepoints_chargepoint" SET "heartbeat_interval"%unnest(%'],
        )
        found = cursor.fetchall()
    assert len(found) <= 1
    return found[0] if found else ("", "", 0, 0)


def _settings_now() -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join('current_setting(%s)' for _ in _SETTINGS)}", _SETTINGS)
        return tuple(cursor.fetchone())


def test_the_writes_with_the_commit_are_planned_once_per_connection_not_at_each_batch() -> None:
    charger = ChargePoint.objects.create(charge_point_id="PLAN-1", heartbeat_interval=60)
    _, _, generic_before, custom_before = _gathered_update()
    for interval in range(61, 69):
        _batch_written(charger, interval)
    _, _, generic, custom = _gathered_update()
    assert (generic - generic_before, custom - custom_before) == (8, 0)
    charger.refresh_from_db()
    assert charger.heartbeat_interval == 68


def test_their_plan_goes_through_the_key_s_index_with_no_scan_or_hash_of_the_table() -> None:
    charger = ChargePoint.objects.create(charge_point_id="PLAN-1", heartbeat_interval=60)
    _batch_written(charger, 61)
    name, statement, _, _ = _gathered_update()
    parameters = ", ".join(["NULL"] * len(set(re.findall(r"\$\d+", statement))))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")  # the plan kept, not one for NULLs
        cursor.execute(f"EXPLAIN EXECUTE {name}({parameters})")
        plan = "\n".join(line for (line,) in cursor.fetchall())
    assert "Index Scan using chargepoints_chargepoint_pkey" in plan
    assert "Seq Scan" not in plan and "Hash" not in plan and "Merge" not in plan


def test_the_settings_end_with_the_transaction() -> None:
    charger = ChargePoint.objects.create(charge_point_id="PLAN-1", heartbeat_interval=60)
    before = _settings_now()
    _batch_written(charger, 61)
    with transaction.atomic():  # the pooled connection's next user
        assert _settings_now() == before
