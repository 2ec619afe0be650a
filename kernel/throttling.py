"""API throttling per key: a misbehaving integration slows down alone; and of failed API key
authentications per client address: keys cannot be guessed without limit."""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis import ConnectionPool, Redis
from redis.commands.core import Script
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from kernel.models import ApiKey

logger = logging.getLogger(__name__)

# DRF's sliding log (drop requests older than the window, refuse at the limit, else log this one) as
# one Redis round trip on a sorted set, instead of a GET and a SET of the whole pickled log (up to
# CSMS_API_RATE timestamps each way, per request). KEYS[1] the log; ARGV: now (s), window start (s),
# limit, member, window (ms). Returns the requests in the window and the oldest one's time (a string:
# Lua numbers reach the client as integers); the count is over the limit when this one is refused.
_HIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local logged = redis.call('ZCARD', KEYS[1])
if logged >= tonumber(ARGV[3]) then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {logged + 1, oldest[2]}
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if logged == 0 then return {1, ARGV[1]} end
return {logged + 1, redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2]}
"""
# Run by SHA (EVALSHA), loaded into Redis on first use and again after a Redis restart; the client
# is given at each call (redis-py types the bound client as required).
_HIT_SCRIPT = Script(None, _HIT.encode())  # type: ignore[arg-type]


_clients: dict[int, Redis] = {}
# The default cache's backend and the CACHES entry it was built from (``_default_cache``).
_backend: list[tuple[dict[str, Any], BaseCache]] = []


def _default_cache() -> BaseCache:
    """``caches["default"]``, built once per process and ``CACHES`` setting: Django keeps a backend
    per thread, and asgiref's ``Local`` per request context, so under ASGI each request built its
    own (the backend, its client, the options parsed; about a fifth of the throttle's CPU). The
    throttle only makes keys with it and takes its process-wide pool (``csms.cache``)."""
    params = caches.settings["default"]  # a new dict when a test overrides CACHES
    if not _backend or _backend[0][0] is not params:
        _backend[:] = [(params, caches.create_connection("default"))]
    return _backend[0][1]


def _client(pool: ConnectionPool) -> Redis:
    """One client per connection pool: Django's cache builds a new one per call, whose setup
    (its response callbacks) cost more than the throttle's round trip."""
    client = _clients.get(id(pool))
    if client is None or client.connection_pool is not pool:
        client = _clients[id(pool)] = Redis(connection_pool=pool)
    return client


def _hit(client: Redis, key: str, args: list[Any]) -> list[Any]:
    """``_HIT_SCRIPT`` run for ``key`` with ``args``: its ``EVALSHA`` written and read on a pooled
    connection of ``client`` directly, without redis-py's command path around it (its retry
    wrapper, response callbacks and observability hooks: about a quarter of the throttle's CPU,
    25-40 µs of every API request, issue 15). A Redis error (the script not loaded, after a
    restart; a broken connection) is left to redis-py's own path: ``_HIT_SCRIPT`` loads the script
    and retries as before."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_command("EVALSHA", _HIT_SCRIPT.sha, 1, key, *args)
        reply: list[Any] = connection.read_response()
    except RedisError:
        connection.disconnect()  # whatever was written or left unread goes with it
        return _HIT_SCRIPT(keys=[key], args=args, client=client)
    finally:
        pool.release(connection)
    return reply


class ApiKeyRateThrottle(SimpleRateThrottle):
    """``CSMS_API_RATE`` requests per API key (by client address for requests without one), over a
    sliding window of the rate's period (DRF's ``SimpleRateThrottle``).

    Counts live in Django's cache: Redis when ``REDIS_URL`` is set, so every process shares them
    (one sorted set per key, one round trip per request). Without the cache (Redis restarting)
    requests are let through: throttling must not take the API down with it.
    """

    scope = "api_key"
    # Set by SimpleRateThrottle (untyped); _logged and _oldest by the Redis path.
    num_requests: int | None
    duration: int | None
    now: float
    _logged: int
    _oldest: float

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            if isinstance(_default_cache(), RedisCache) and self.rate is not None:
                return self._allow_in_redis(request, view)
            return super().allow_request(request, view)
        except Exception as error:
            logger.warning("API throttling skipped, the cache is unavailable: %r", error)
            return True

    def _allow_in_redis(self, request: Request, view: Any) -> bool:
        """``allow_request`` on the Redis sorted set; sets what ``wait`` needs."""
        cache = _default_cache()  # the backend (``self.cache`` is Django's proxy to it)
        assert isinstance(cache, RedisCache) and self.num_requests is not None and self.duration is not None
        key = cache.make_and_validate_key("log-" + self.get_cache_key(request, view))
        self.now = self.timer()
        # The pool the cache writes with, without the client ``get_client`` would build around it.
        client = _client(cache._cache._get_connection_pool(write=True))  # type: ignore[attr-defined]  # private, unstubbed
        logged, oldest = _hit(
            client,
            key,
            [
                repr(self.now),
                repr(self.now - self.duration),
                self.num_requests,
                f"{random.getrandbits(64):016x}",  # a unique member: as secrets.token_hex(8), no syscall
                self.duration * 1000,
            ],
        )
        self._logged, self._oldest = int(logged), float(oldest)
        return self._logged <= self.num_requests

    def wait(self) -> float:
        """Seconds until the next request may pass (DRF's formula). A log over the limit (the rate
        lowered since it filled) has no spare request to spread: the oldest's leaving the window
        (DRF answers ``None``, a 429 without ``Retry-After``)."""
        assert self.duration is not None and self.num_requests is not None
        if hasattr(self, "_logged"):
            logged, oldest = self._logged - 1, self._oldest
        else:
            logged, oldest = len(self.history), self.history[-1] if self.history else self.now
        remaining = self.duration - (self.now - oldest)
        available = self.num_requests - logged + 1
        return remaining / float(available) if available > 0 else max(remaining, 0.0)

    def get_cache_key(self, request: Request, view: Any) -> str:
        key = request.auth
        ident = f"key-{key.pk}" if isinstance(key, ApiKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


def _failure_window() -> tuple[int, float]:
    """The current window of ``CSMS_API_AUTH_FAILURE_WINDOW_SECONDS`` (windows are aligned on the
    epoch, so every process counts in the same one) and the seconds until it ends."""
    length = settings.CSMS_API_AUTH_FAILURE_WINDOW_SECONDS
    now = time.time()
    window = int(now // length)
    return window, (window + 1) * length - now


def _failures_key(address: str, window: int) -> str:
    return f"api-auth-failures:{window}:{address}"


def bearer_failure_counted(request: Request) -> float | None:
    """Count a failed API key authentication (an unknown, revoked, expired or empty key) of the
    client's address; seconds until the window ends if this one is past
    ``CSMS_API_AUTH_FAILURES_PER_IP`` (answered ``429`` instead of ``401``), else None. Only refused
    keys are counted and throttled: a valid key is served from any address (a guesser cannot find
    one: keys are random, 256 bits). A loopback address is not counted: the machine's own health
    checks and tests, and a proxy on it that passes no client address (every client would share
    its count)."""
    address = BaseThrottle().get_ident(request)
    if _loopback(address):
        return None
    window, left = _failure_window()
    key = _failures_key(address, window)
    try:
        cache = _default_cache()
        cache.add(key, 0, timeout=int(left) + 1)
        try:
            failures = cache.incr(key)
        except ValueError:  # the window's key expired between the two
            cache.add(key, 1, timeout=int(left) + 1)
            failures = 1
    except Exception as error:
        logger.warning("API authentication throttling skipped, the cache is unavailable: %r", error)
        return None
    return left if failures > settings.CSMS_API_AUTH_FAILURES_PER_IP else None


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
