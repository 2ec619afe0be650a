"""The gateway's database calls run on a bounded pool of worker threads.

Channels' ``database_sync_to_async`` is thread-sensitive: outside a request every call in the
process queues for asgiref's one shared thread, so one charger's query waits behind every other
charger's. Each gateway call is a self-contained unit of work (its own transaction, its own
pooled connection, released when it returns), so they may run side by side on
``CSMS_DB_THREADS`` threads; one charger's messages still run one at a time, in order, because
its consumer awaits each before reading the next.

The group commit's batch thread (``ocpp_gateway.group_commit``) is the exception: while units
wait for it, it keeps its pooled connection from one batch to the next (``batch_connection_checked``,
``batch_connection_released``) instead of giving it back and taking one again: the pool's
checkout and return, Django's connect and the autocommit switch are 35-160 µs of CPU a batch.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections
from django.db.backends.base.base import BaseDatabaseWrapper

_executor = ThreadPoolExecutor(max_workers=settings.CSMS_DB_THREADS, thread_name_prefix="csms-db")


def database_sync_to_async(func: Callable[..., Any]) -> DatabaseSyncToAsync:
    """Like Channels' (stale connections closed around the call), on the gateway's thread pool."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor)


# How long the batch thread keeps one pooled connection across back-to-back batches at most: then
# it is given back, and the pool applies its own lifetime (max_lifetime) as to any other.
KEPT_SECONDS = 60.0


def batch_connection_checked() -> None:
    """Before a batch: the connection kept from the batch before it, if any, given back when it
    is broken or its socket has something to read (PostgreSQL sends nothing unasked to an idle
    connection: a restart or ``pg_terminate_backend`` left its error or end of stream there). The
    batch then takes one from the pool, whose checkout check decides (``csms/db_pool.py``). Django's
    own health check (``CONN_HEALTH_CHECKS``) runs again at the batch's first statement, as after a
    checkout."""
    db = connections[DEFAULT_DB_ALIAS]
    if getattr(db, "pool", None) is None:  # none kept (``_keepable``): Django's own rules, as before
        close_old_connections()
        return
    if db.connection is None:
        return
    db.health_check_done = False  # type: ignore[attr-defined]  # Django 4.1+, not in the stubs
    kept = db.connection
    if kept.closed or kept.broken or _readable(kept.pgconn.socket):
        db.close()


def batch_connection_released(*, units_waiting: bool) -> None:
    """After a batch: its connection kept for the next when ``units_waiting`` (the next batch starts
    at once) and it is sound: pooled, taken less than ``KEPT_SECONDS`` ago, in autocommit, no
    error other than a refused row's since (Django's ``errors_occurred``). Otherwise given back to
    the pool as after any database call (``close_old_connections``): an idle process holds none."""
    db = connections[DEFAULT_DB_ALIAS]
    if units_waiting and db.connection is not None and _keepable(db):
        return
    close_old_connections()


def _keepable(db: BaseDatabaseWrapper) -> bool:
    # With a pool CONN_MAX_AGE is 0 (Django refuses another), so close_at is when it was taken.
    return (
        getattr(db, "pool", None) is not None
        and db.close_at is not None
        and time.monotonic() - db.close_at < KEPT_SECONDS
        and not db.errors_occurred
        and not db.in_atomic_block
        and db.get_autocommit() == db.settings_dict["AUTOCOMMIT"]
    )


def _readable(socket: int) -> bool:
    """Whether the socket has data or an end of stream to read, without waiting (``poll``: no
    ``select`` limit on the descriptor's number)."""
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    return bool(poller.poll(0))
