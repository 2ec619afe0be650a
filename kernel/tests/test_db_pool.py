"""The pool's connection check: no round trip for a live idle connection; a dead one is never handed out."""

from __future__ import annotations

import select
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import connection
from psycopg_pool import ConnectionPool

from kernel.db_pool import connection_checked

pytestmark = pytest.mark.django_db


def _connect_kwargs() -> dict[str, Any]:
    return {**connection.get_connection_params(), "autocommit": True}


def _wire_traffic(conn: psycopg.Connection, action: Any) -> str:
    """What libpq sent and received while ``action`` ran (its protocol trace)."""
    with tempfile.TemporaryDirectory() as directory:
        trace = Path(directory) / "trace"
        with trace.open("w") as file:
            conn.pgconn.trace(file.fileno())
            try:
                action()
            finally:
                conn.pgconn.untrace()
        return trace.read_text()


def _terminated(pid: int) -> None:
    """End backend ``pid`` as a PostgreSQL restart would."""
    with psycopg.connect(**_connect_kwargs()) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


def _until_readable(conn: psycopg.Connection) -> None:
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    deadline = time.monotonic() + 10
    while not poller.poll(100) and time.monotonic() < deadline:
        pass


def test_a_live_idle_connection_is_checked_without_a_round_trip():
    with psycopg.connect(**_connect_kwargs()) as conn:
        conn.execute("SELECT 1")
        assert _wire_traffic(conn, lambda: connection_checked(conn)) == ""
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_a_connection_with_something_to_read_gets_the_empty_query():
    with psycopg.connect(**_connect_kwargs()) as conn:
        conn.execute("LISTEN csms_pool_check")
        with psycopg.connect(**_connect_kwargs()) as other:
            other.execute("NOTIFY csms_pool_check")
        _until_readable(conn)
        traffic = _wire_traffic(conn, lambda: connection_checked(conn))
        assert "Query" in traffic  # the empty query went out and was answered
        connection_checked(conn)  # read: nothing left on the socket


def test_a_terminated_backend_fails_the_check():
    with psycopg.connect(**_connect_kwargs()) as conn:
        pid = conn.info.backend_pid
        _terminated(pid)
        _until_readable(conn)
        with pytest.raises(psycopg.OperationalError):
            connection_checked(conn)


def test_the_pool_hands_out_a_live_connection_after_its_idle_one_was_terminated():
    with ConnectionPool(kwargs=_connect_kwargs(), min_size=1, max_size=1, check=connection_checked) as pool:
        with pool.connection() as conn:
            first = conn.info.backend_pid
            _terminated(first)
            _until_readable(conn)
        with pool.connection() as conn:
            assert conn.info.backend_pid != first
            assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.django_db(transaction=True)
def test_django_hands_out_a_live_connection_after_its_pooled_one_was_terminated():
    """The settings' backend (csms.postgresql) checks the pool's connections with ``connection_checked``."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (first,) = cursor.fetchone()
    held = connection.connection
    connection.close()  # back to the pool
    _terminated(first)
    _until_readable(held)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (second,) = cursor.fetchone()
    assert second != first
