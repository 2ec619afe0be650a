"""The gateway's database calls run on a bounded pool of worker threads.

Channels' ``database_sync_to_async`` is thread-sensitive: outside a request every call in the
process queues for asgiref's one shared thread, so one charger's query waits behind every other
charger's. Each gateway call is a self-contained unit of work (its own transaction, its own
pooled connection, released when it returns), so they may run side by side on
``CSMS_DB_THREADS`` threads; one charger's messages still run one at a time, in order, because
its consumer awaits each before reading the next.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.db import DatabaseSyncToAsync
from django.conf import settings

_executor = ThreadPoolExecutor(max_workers=settings.CSMS_DB_THREADS, thread_name_prefix="csms-db")


def database_sync_to_async(func: Callable[..., Any]) -> DatabaseSyncToAsync:
    """Like Channels' (stale connections closed around the call), on the gateway's thread pool."""
    return DatabaseSyncToAsync(func, thread_sensitive=False, executor=_executor)
