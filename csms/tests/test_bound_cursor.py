"""The plain statements' cursor (``kernel.plain_sql.bound_cursor``): parameters bound by the
server, Django's errors, execute wrappers, query log and time zones kept."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import User
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext

from chargepoints.services import charge_point_register, connector_status_set
from kernel.plain_sql import bound_cursor

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's server-side binding"),
]


def test_its_parameters_are_bound_by_the_server_and_the_query_log_counts_it():
    with CaptureQueriesContext(connection) as queries, bound_cursor() as cursor:
        assert type(cursor.cursor) is psycopg.Cursor  # not Django's ClientCursor
        cursor.execute("SELECT %s::int + 1, pg_typeof(%s)::text", [41, 41])
        assert cursor.fetchone() == (42, "smallint")  # psycopg's dumper's type; the literal 41 is an integer
    assert len(queries) == 1 and "41" in queries[0]["sql"]


def test_a_statement_run_five_times_on_a_connection_is_prepared_once():
    """``CSMS_DB_PREPARE_THRESHOLD`` (5): PostgreSQL parses and plans a hot-path statement once per
    connection (measured: 1.34x the fleet's persisted messages/s; the ORM's statements, bound on
    the client, are never prepared)."""
    with bound_cursor() as cursor:
        for n in range(10):
            cursor.execute("SELECT %s::int + 7", [n])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT $1::int + 7'")
        assert cursor.fetchone() == (1,)
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT count(*)%%'")
        assert cursor.fetchone() == (0,)  # run once: not prepared


def test_an_error_is_djangos_and_the_transaction_stays_usable():
    User.objects.create(username="bound")
    with transaction.atomic():
        with pytest.raises(IntegrityError), transaction.atomic(), bound_cursor() as cursor:
            cursor.execute(f"INSERT INTO {User._meta.db_table} (username, password, is_superuser,"
                           " first_name, last_name, email, is_staff, is_active, date_joined)"
                           " VALUES (%s, '', false, '', '', '', false, true, now())", ["bound"])  # fmt: skip
        assert User.objects.filter(username="bound").count() == 1


def test_a_time_zone_other_than_utc_reads_as_djangos(settings):
    connection.ensure_connection()
    settings.USE_TZ = False
    with bound_cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz", [datetime.datetime(2020, 1, 1, 10, 0)])
        (naive,) = cursor.fetchone()
    assert naive == datetime.datetime(2020, 1, 1, 10, 0) and naive.tzinfo is None


@pytest.mark.parametrize("evse_id", [None, 1], ids=["1.6", "2.0.1"])
def test_a_status_notification_is_written_with_server_side_binding(evse_id):
    """The StatusNotification statement (a first status, then a later one) binds its parameters on
    the server: None values, a repeated named parameter, a timestamp compared in a CTE."""
    charge_point_register(charge_point_id="CP-BOUND", heartbeat_interval=60)
    cursors: list[type] = []

    def noted(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if sql.startswith("WITH cp AS (UPDATE"):  # the status statement (others: webhooks, sessions)
            cursors.append(type(context["cursor"].cursor))
        return execute(sql, params, many, context)

    at = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    with connection.execute_wrapper(noted):
        for status, seconds in (("Available", 0), ("Occupied", 5), ("Faulted", -5)):  # the last one is older
            connector_status_set(
                charge_point_id="CP-BOUND",
                evse_id=evse_id,
                connector_id=1,
                status=status,
                timestamp=at + datetime.timedelta(seconds=seconds),
            )
    connector = connector_status_set(charge_point_id="CP-BOUND", evse_id=evse_id, connector_id=1, status="Occupied")
    assert connector.status == "Occupied" and connector.evse_id == evse_id
    assert cursors == [psycopg.Cursor] * 3
