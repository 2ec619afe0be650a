"""Timestamps read by psycopg's own loader (``csms.postgresql``): the values Django's loader gave."""

from __future__ import annotations

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg import adapters, pq

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's timestamptz"),
]

_STORED = datetime.datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


def test_the_connection_reads_timestamptz_with_psycopgs_loader_not_djangos():
    connection.ensure_connection()
    oid = adapters.types["timestamptz"].oid
    loader = connection.connection.adapters.get_loader(oid, pq.Format.TEXT)
    assert not issubclass(loader, BaseTzLoader)
    with connection.cursor() as cursor:
        assert cursor.cursor.adapters.get_loader(oid, pq.Format.TEXT) is loader


def test_a_timestamp_reads_as_the_same_instant_in_utc():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::timestamptz, '2020-01-01 10:00+05:30'::timestamptz, NULL::timestamptz", [_STORED])
        stored, literal, null = cursor.fetchone()
    assert stored == _STORED and stored.tzinfo is datetime.UTC
    assert stored.isoformat() == "2026-03-28T23:30:00.123456+00:00"
    assert literal == datetime.datetime(2020, 1, 1, 4, 30, tzinfo=datetime.UTC) and literal.tzinfo is datetime.UTC
    assert null is None


def test_orm_reads_and_server_side_cursors_give_utc_datetimes():
    User.objects.create(username="stamped", date_joined=_STORED)
    assert User.objects.get(username="stamped").date_joined == _STORED
    with transaction.atomic():  # .iterator() reads through a named (server-side) cursor
        (joined,) = [user.date_joined for user in User.objects.filter(username="stamped").iterator(chunk_size=1)]
    assert joined == _STORED and joined.tzinfo is datetime.UTC


def test_a_connection_opened_in_utc_reads_as_djangos_once_the_settings_change(settings):
    """Opened while the zone was UTC (psycopg's loader on it), then USE_TZ turned off: each cursor
    gets Django's loader for the new setting, as Django gives it."""
    connection.ensure_connection()
    settings.USE_TZ = False
    with connection.cursor() as cursor:
        cursor.execute("SELECT '2020-01-01 10:00+00'::timestamptz")
        (naive,) = cursor.fetchone()
    assert naive == datetime.datetime(2020, 1, 1, 10, 0) and naive.tzinfo is None
