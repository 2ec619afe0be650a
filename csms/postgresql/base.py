"""Django's PostgreSQL backend, its connection pool checking connections with ``kernel.db_pool``,
timestamps read by psycopg's compiled loader, and a cursor whose parameters the server binds
(``bound_cursor``, for ``kernel.plain_sql``'s statements; its statements logged with their values).

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

psycopg finds a value's dumper by its exact type, else walks the type's MRO, building a name per
class and caching nothing: 5 to 7 µs for a Django ``TextChoices`` member (``TransactionStatus.ACTIVE``),
0.3 µs for a ``str``, at every execute (a new cursor's adapters each time; issue 15, round 11). The
connection's adapters name every ``TextChoices`` class (``choices_adapters``) with the dumpers its
MRO gives.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

from django.db.backends.postgresql import base, operations
from django.db.backends.postgresql.psycopg_any import register_tzloader
from django.db.models import Choices
from django.utils.asyncio import async_unsafe
from psycopg import ClientCursor, Cursor, abc, adapt, adapters, errors, pq
from psycopg_pool import ConnectionPool

from kernel.db_pool import connection_checked

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


@lru_cache
def choices_adapters(template: adapt.AdaptersMap) -> adapt.AdaptersMap:
    """``template`` with each text choices class (a ``str`` subclass of Django's ``Choices``,
    defined by now: the apps are loaded) registered with the dumpers ``template`` finds for it
    through its MRO, per format: the same dumpers, found at the first lookup. A class defined
    after the first connection (a test's) is not registered: psycopg still finds its dumpers
    through the MRO at every execute, as before."""
    context = adapt.AdaptersMap(template)
    for cls in _text_choices(Choices):
        binary, text, auto = (template.get_dumper(cls, fmt) for fmt in _FORMATS)
        context.register_dumper(cls, binary)
        context.register_dumper(cls, text)  # its format's and then the AUTO (%s) one
        if auto is not text:
            context.register_dumper(cls, auto)
    return context


_FORMATS = (adapt.PyFormat.BINARY, adapt.PyFormat.TEXT, adapt.PyFormat.AUTO)


def _text_choices(cls: type) -> list[type]:
    """Every subclass of ``cls`` that is a ``str`` subclass, at any depth."""
    found = []
    for sub in cls.__subclasses__():
        if issubclass(sub, str):
            found.append(sub)
        found += _text_choices(sub)
    return found


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str:
        """Django's; for a statement of ``bound_cursor`` (its text holds ``$1``...) the text with its
        parameters quoted in, as the query log shows every other statement (only when it logs); the
        text as written if one cannot be quoted."""
        if isinstance(cursor, ClientCursor) or params is None:
            return super().last_executed_query(cursor, sql, params)
        try:
            return self.compose_sql(sql, params)
        except errors.DataError:
            return sql


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        if pool is not None and pool._check is None:  # built without one: CONN_HEALTH_CHECKS is off
            pool._check = connection_checked
        return pool

    def get_connection_params(self) -> dict[str, Any]:
        """Django's, with ``utc_adapters`` when the connection's time zone is UTC (client-side binding,
        Django's default), and ``choices_adapters``."""
        params: dict[str, Any] = super().get_connection_params()
        if self._reads_utc_by_psycopg() and "context" in params:
            params["context"] = utc_adapters(params["context"])
        if "context" in params:
            params["context"] = choices_adapters(params["context"])
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

    @async_unsafe
    def bound_cursor(self) -> Any:
        """A cursor as ``cursor()`` gives (Django's wrapper: its errors, execute wrappers and query
        log), over a psycopg ``Cursor``: its parameters sent apart from the text and dumped by
        psycopg (server-side binding), where Django's connection quotes them into the text on the
        client (``ClientCursor``). PostgreSQL infers each parameter's type from where it stands; a
        statement for it casts those it cannot (``kernel.plain_sql.bound_cursor``, issue 15)."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        with self.wrap_database_errors:
            cursor = Cursor(self.connection)
            loader = self.connection.adapters.get_loader(_TIMESTAMPTZ_OID, pq.Format.TEXT)
            if loader is not _psycopg_timestamptz_loader() or not self._reads_utc_by_psycopg():
                register_tzloader(self.timezone, cursor)
            return self._prepare_cursor(cursor)  # type: ignore[attr-defined]  # Django's, as cursor() wraps

    def _reads_utc_by_psycopg(self) -> bool:
        return self.timezone is datetime.UTC and self.settings_dict["OPTIONS"].get("server_side_binding") is not True
