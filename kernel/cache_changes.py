"""Per-process caches emptied when what they keep changes in any process (issue 15, design 1).

A gateway process keeps a few things every message needs (the id tags Authorize answers about,
whether anyone subscribed to a webhook event). Each cache names a topic and registers how it
forgets (``forgetter_register``). A change saved through the ORM in any process (API, admin,
Celery, a script) calls ``changed(topic)`` from its model signal: that process forgets at once, and
when the change commits (``REDIS_URL`` set) the topic is published on the Redis channel
``csms:caches:changed``. Each gateway process subscribes to it from its event loop
(``listener_started``) and runs the topic's forgetters for each message; on subscribing, and when
the subscription is lost (three unanswered pings, a dropped connection), every forgetter.

A cache may keep what it read only while ``listening()``: the subscription is confirmed, so a
change committed elsewhere reaches it a Redis publish later. A read begun before a forget must not
be kept (each cache counts its forgets). A write that sends no signal (a queryset ``update()``, raw
SQL) reaches no cache.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction

CHANNEL = "csms:caches:changed"
_PING_EVERY = 5.0  # s of quiet on the subscription before a ping; three unanswered: lost
_forgetters: dict[str, list[Callable[[], None]]] = {}  # topic -> how its caches forget
_listener: asyncio.Task[None] | None = None
# The loop whose listener's subscription to CHANNEL is confirmed: caches may keep what they read.
_listening: asyncio.AbstractEventLoop | None = None
_publishers: dict[str, redis.Redis] = {}
logger = logging.getLogger(__name__)
Key = TypeVar("Key")
Value = TypeVar("Value")


def forgetter_register(topic: str, forget: Callable[[], None]) -> None:
    """Call ``forget()`` (any thread, no I/O) when ``topic`` changed here or in another process."""
    if forget not in _forgetters.setdefault(topic, []):
        _forgetters[topic].append(forget)


def listening(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """True while this process's subscription is confirmed (from ``loop``'s listener, if given)."""
    confirmed = _listening
    return confirmed is not None and not confirmed.is_closed() and (loop is None or confirmed is loop)


def changed(topic: str) -> None:
    """A model signal's receiver's part: ``topic``'s caches forget in this process at once, and in
    every gateway process when the change commits (a publish failure is logged)."""
    _forget(topic)
    transaction.on_commit(lambda: _published(topic))


def _published(topic: str) -> None:
    _forget(topic)  # a read begun between the save and its commit found the old rows
    if not settings.REDIS_URL:
        return
    try:
        _publisher().publish(CHANNEL, topic)
    except redis.RedisError as error:
        logger.warning("could not tell the gateway processes %s changed (%r)", topic, error)


class KeptValue(Generic[Value]):
    """What a process keeps of one ``topic`` while ``listening()``: read by any thread, forgotten
    when the topic changes (here or in another process), expired ``seconds`` after it was read (a
    change without a signal, or whose notice is lost, is seen that much later at most). A read begun
    before a forget is not kept."""

    def __init__(self, topic: str, *, seconds: float) -> None:
        self._seconds = seconds
        self._kept: tuple[Value, float] | None = None  # what was read, and time.monotonic() it expires
        self._forgets = 0  # counts forget(): what was read before one is not kept
        self._lock = threading.Lock()
        forgetter_register(topic, self.forget)

    def get(self) -> Value | None:
        """What is kept; None when nothing is (never read, forgotten or expired). No I/O."""
        kept = self._kept
        return kept[0] if kept is not None and kept[1] > time.monotonic() else None

    def read(self, read: Callable[[], Value]) -> Value | None:
        """``read()``, kept unless the topic was forgotten meanwhile; None (not read) in a process
        that does not listen."""
        if not listening():
            return None
        with self._lock:
            forgets = self._forgets
        value = read()
        with self._lock:
            if forgets == self._forgets and listening():
                self._kept = (value, time.monotonic() + self._seconds)
        return value

    def forget(self) -> None:
        with self._lock:
            self._forgets += 1
            self._kept = None


class KeptMapping(Generic[Key, Value]):
    """What a process keeps of one ``topic`` key by key while ``listening()``: read by any thread,
    every key forgotten when the topic changes (here or in another process), and all of them
    ``seconds`` after the first was kept (a change without a signal, or whose notice is lost, is
    seen that much later at most). A read begun before a forget is not kept; a key read and not
    found is not kept (it is read again at the next ask)."""

    def __init__(self, topic: str, *, seconds: float) -> None:
        self._seconds = seconds
        self._kept: dict[Key, Value] = {}  # replaced, never changed in place: readers hold no lock
        self._expires = 0.0  # time.monotonic() the kept keys are forgotten
        self._forgets = 0  # counts forget(): what was read before one is not kept
        self._lock = threading.Lock()
        forgetter_register(topic, self.forget)

    def found(self, keys: set[Key], read: Callable[[set[Key]], dict[Key, Value]]) -> dict[Key, Value]:
        """``{key: value}`` of those of ``keys`` that have one: the kept ones, and what
        ``read(the others)`` found (one call, none when every key is kept); that is kept unless the
        topic was forgotten meanwhile or this process does not listen."""
        with self._lock:
            if self._expires <= time.monotonic():
                self._kept = {}
            kept, forgets = self._kept, self._forgets
        values = {key: kept[key] for key in keys if key in kept}
        if len(values) == len(keys):
            return values
        read_values = read({key for key in keys if key not in kept})
        values.update(read_values)
        with self._lock:
            if forgets == self._forgets and listening() and read_values:
                if not self._kept:
                    self._expires = time.monotonic() + self._seconds
                self._kept = {**self._kept, **read_values}
        return values

    def forget(self) -> None:
        with self._lock:
            self._forgets += 1
            self._kept = {}


def _forget(topic: str | None) -> None:
    """``topic``'s forgetters; every one when ``topic`` is None."""
    for name, forgetters in list(_forgetters.items()):
        if topic is None or name == topic:
            for forget in forgetters:
                forget()


def _publisher() -> redis.Redis:
    if settings.REDIS_URL not in _publishers:
        _publishers[settings.REDIS_URL] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5
        )
    return _publishers[settings.REDIS_URL]


def listener_started() -> None:
    """From the event loop: subscribe this process to the changes (once per loop; cheap after)."""
    global _listener
    loop = asyncio.get_running_loop()
    if settings.REDIS_URL and (_listener is None or _listener.done() or _listener.get_loop() is not loop):
        # A fresh context: the listener is the process's, not the connection's that started it.
        _listener = loop.create_task(_listen(), context=contextvars.Context())


async def _listen() -> None:
    """Run the forgetters of each change another process publishes, for as long as the process runs;
    caches keep what they read only while the subscription is confirmed (reconnects with backoff)."""
    global _listening
    delay = 0.5
    while True:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_keepalive=True)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                heard = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=_PING_EVERY)
                    if message is None:  # quiet: a connection that answers no ping is lost
                        if time.monotonic() - heard > 3 * _PING_EVERY:
                            raise ConnectionError(f"no answer from Redis in {3 * _PING_EVERY:g} s")
                        await pubsub.ping()
                        continue
                    heard = time.monotonic()
                    if message["type"] == "subscribe":  # whatever changed while not listening
                        _forget(None)
                        _listening, delay = asyncio.get_running_loop(), 0.5
                    elif message["type"] == "message":
                        data = message["data"]
                        _forget(data.decode() if isinstance(data, bytes) else str(data))
        except Exception as error:  # Redis away: every cache reads until the subscription is back
            logger.warning("cache changes: subscription lost (%r); caches read until it is back", error)
        finally:
            if _listening is asyncio.get_running_loop():
                _listening = None
            _forget(None)
            await client.aclose()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
