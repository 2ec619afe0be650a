"""Django's Redis cache with one connection pool per process instead of one per thread.

Django keeps a cache object per thread, and each builds its own redis-py pool. Under ASGI every
request runs on a fresh thread, so every API request opened (and handshook) a new Redis
connection for its throttle count. The pool is thread-safe and knows when the process forked.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

_pools: dict[tuple[str, str], Any] = {}
_pools_lock = threading.Lock()


class SharedPoolRedisCacheClient(RedisCacheClient):
    # Set by RedisCacheClient.__init__; private, so django-stubs leaves them out.
    _servers: list[str]
    _pool_options: dict[str, Any]
    _pool_class: Any

    def _get_connection_pool(self, write: bool) -> Any:
        server = self._servers[self._get_connection_pool_index(write)]  # type: ignore[attr-defined]  # private, unstubbed
        key = (server, repr(sorted(self._pool_options.items())))
        pool = _pools.get(key)
        if pool is None:
            with _pools_lock:
                pool = _pools.get(key)
                if pool is None:
                    pool = _pools[key] = self._pool_class.from_url(server, **self._pool_options)
        return pool


class SharedPoolRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedPoolRedisCacheClient
