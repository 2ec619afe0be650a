"""The database pool's check of a connection it hands out: a round trip only when it may be dead.

Django's ``CONN_HEALTH_CHECKS`` with a pool makes psycopg run an empty query on every checkout:
one round trip to PostgreSQL per HTTP request (every request takes a pooled connection and gives
it back at its end), 6 % of an API process's CPU per command (issue 15, py-spy). An idle
connection in autocommit has nothing to read: PostgreSQL sends nothing unasked. A connection the
server closed (a restart, ``pg_terminate_backend``, ``idle_session_timeout``) has its error
message or end of stream waiting on the socket, so a zero-timeout poll of the socket tells them
apart without a round trip; only a connection with something to read gets the empty query (which
reads it, and fails for a dead one: the pool then drops it and hands out another).
"""

from __future__ import annotations

import select

import psycopg
from psycopg_pool import ConnectionPool


def connection_checked(connection: psycopg.Connection) -> None:
    """psycopg_pool's ``check``: raises ``psycopg.OperationalError`` for a connection that is
    closed, broken, or fails the empty query it gets when its socket has something to read."""
    if connection.closed or connection.broken:
        raise psycopg.OperationalError("the pooled connection is closed")
    if _readable(connection.pgconn.socket):
        ConnectionPool.check_connection(connection)


def _readable(socket: int) -> bool:
    """Whether the socket has data or an end of stream to read, without waiting (``poll``: no
    ``select`` limit on the descriptor's number, which a gateway with 10,000 sockets exceeds)."""
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    return bool(poller.poll(0))
