"""Django's PostgreSQL backend, its connection pool checking connections with ``csms.db_pool``,
and timestamps read by psycopg's compiled loader.

Django gives the pool its own check (an empty query on every checkout, ``CONN_HEALTH_CHECKS``) or
none, and refuses a ``check`` among the pool's options. This backend sets the pool's check to
``connection_checked``: a round trip only for a connection with something on its socket.

Django reads every ``timestamptz`` value with a loader of its own written in Python (psycopg's
Python loader, then ``replace(tzinfo=...)``), built again for each column of each result: 7 % of
the gateway's CPU in a fleet's closed loop (issue 15). When the connection's time zone is UTC
(``USE_TZ`` with the default ``TIME_ZONE`` of the database settings) the session's is UTC too
(Django sets it at connect), and psycopg's own loader (compiled with ``psycopg[binary]``) gives
the same value: an aware datetime in ``datetime.timezone.utc``. This backend registers that one
on the connection, and its cursors skip Django's check of the registered loader's zone.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.utils.asyncio import async_unsafe
from psycopg import abc, adapt, adapters, pq
from psycopg_pool import ConnectionPool

from csms.db_pool import connection_checked

_TIMESTAMPTZ_OID = adapters.types["timestamptz"].oid


@lru_cache
def _psycopg_timestamptz_loader() -> type[abc.Loader]:
    """psycopg's own loader: its compiled one with psycopg[binary] (a final class: Django's cannot derive from it)."""
    loader = adapters.get_loader(_TIMESTAMPTZ_OID, pq.Format.TEXT)
    assert loader is not None
    return loader


@lru_cache
def utc_adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """Django's adapters ``template`` with psycopg's own ``timestamptz`` loader (a session in UTC)."""
    context = adapt.AdaptersMap(template)
    context.register_loader("timestamptz", _psycopg_timestamptz_loader())
    return context


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        if pool is not None and pool._check is None:  # built without one: CONN_HEALTH_CHECKS is off
            pool._check = connection_checked
        return pool

    def get_connection_params(self) -> dict[str, Any]:
        """Django's, with ``utc_adapters`` when the connection's time zone is UTC (client-side binding,
        Django's default)."""
        params: dict[str, Any] = super().get_connection_params()
        if self._reads_utc_by_psycopg() and "context" in params:
            params["context"] = utc_adapters(params["context"])
        return params

    @async_unsafe
    def create_cursor(self, name: str | None = None) -> Any:
        """Django's cursor; on a connection that reads timestamps by psycopg's loader, without
        Django's per-cursor check of that loader's zone (which it cannot read), and with Django's
        loader for the cursor when the zone is no longer UTC (settings changed since it was opened)."""
        loader = self.connection.adapters.get_loader(_TIMESTAMPTZ_OID, pq.Format.TEXT)
        if loader is not _psycopg_timestamptz_loader():
            return super().create_cursor(name)
        if name:  # Django's server-side cursor with client-side binding
            cursor = base.ServerSideCursor(  # type: ignore[call-arg]  # the stubs' is psycopg2's
                self.connection, name=name, scrollable=False, withhold=self.connection.autocommit
            )
        else:
            cursor = self.connection.cursor()
        if not self._reads_utc_by_psycopg():
            register_tzloader(self.timezone, cursor)
        return cursor

    def _reads_utc_by_psycopg(self) -> bool:
        return self.timezone is datetime.UTC and self.settings_dict["OPTIONS"].get("server_side_binding") is not True
