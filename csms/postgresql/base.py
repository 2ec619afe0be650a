"""Django's PostgreSQL backend, its connection pool checking connections with ``csms.db_pool``.

Django gives the pool its own check (an empty query on every checkout, ``CONN_HEALTH_CHECKS``) or
none, and refuses a ``check`` among the pool's options. This backend sets the pool's check to
``connection_checked``: a round trip only for a connection with something on its socket.
"""

from __future__ import annotations

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from csms.db_pool import connection_checked


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        if pool is not None and pool._check is None:  # built without one: CONN_HEALTH_CHECKS is off
            pool._check = connection_checked
        return pool
