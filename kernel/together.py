"""Run one blocking call per item at once, each on a thread of its own, and wait for them all.

For a batch of commands sent to chargers and awaited (up to CSMS_OCPP_CALL_TIMEOUT each): a caller
(a Celery worker, whose beat tasks include the offline sweep; a site's recompute) is held about the
slowest answer, not one answer per charger. Each thread works on its own database connection,
outside the caller's transaction (given back to the pool when its call ends), so at most a quarter
of the pool's connections are taken at once (the gateway's own lanes answer chargers from the same
pool). The calls run one after the other in the caller's thread off PostgreSQL (SQLite writes one
transaction at a time) and without Redis: the in-memory channel layer's queues belong to the
gateway's event loop, which a plain thread's call (asgiref's loop of its own) cannot wake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.db import connection, connections

# At most this many threads (and database connections) for one batch, and a quarter of the pool.
MOST_AT_ONCE = 16

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_at_once(call: Callable[[Item], Result], items: Sequence[Item], *, name: str) -> list[Result]:
    """``[call(item) for item in items]``, the calls made at once (see the module); ``name`` names
    the threads. An exception a call raises is raised here, once every call has ended."""
    if len(items) <= 1 or connection.vendor != "postgresql" or not settings.REDIS_URL:
        return [call(item) for item in items]
    pool_max = connection.settings_dict.get("OPTIONS", {}).get("pool", {}).get("max_size", 4)
    at_once = min(len(items), MOST_AT_ONCE, max(1, pool_max // 4))

    def on_thread(item: Item) -> Result:
        try:
            return call(item)
        finally:
            connections.close_all()  # the thread's own connection, back to the pool

    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix=name) as threads:
        return list(threads.map(on_thread, items))
