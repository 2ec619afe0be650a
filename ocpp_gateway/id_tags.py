"""The id tags Authorize answers about, cached per gateway process (issue 15, design 1).

Every Authorize of a fleet names one of a few tags, and each was a read on a database thread. A tag
row (with its parent) is kept here for ``CSMS_ID_TAG_CACHE_SECONDS`` after it was read, an unknown
tag too; the answer is still worked out at each Authorize by ``charging.selectors.id_tag_info_of``
(expiry is checked against the time of the request).

A tag saved or deleted through the ORM in any process (API, admin, Celery, a script) empties that
process's cache at once, and with ``REDIS_URL`` every gateway process's when it commits:
``id_tag_changed`` (connected to IdTag's signals in the app's ``ready``) publishes on the Redis
channel ``csms:id-tags:changed``, which each gateway process listens to. A process keeps rows only
while its subscription is confirmed; when it drops it empties its cache and reads every tag until
it is back. A write that sends no signal (a queryset ``update()``, raw SQL), and without Redis a
change made in another process, waits for the TTL.

Authorizes of one uncached tag that arrive together wait for one read (a fleet's chargers
authorize with a few tags at once). ``CSMS_ID_TAG_CACHE_SECONDS=0`` keeps nothing: only the
Authorizes that arrive during one read share it.

Only Authorize reads here: a session's start and stop check the tag in their own transaction.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from functools import partial
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from charging import selectors
from charging.models import IdTag
from charging.selectors import IdTagInfo
from ocpp_gateway.group_commit import in_commit_group

# lower(id tag) -> (monotonic time the entry expires, the row as id_tag_find returned it)
_rows: dict[str, tuple[float, IdTag | None]] = {}
# lower(id tag) -> the read under way: the Authorizes of an uncached tag that arrive together share it.
_reads: dict[str, asyncio.Future[IdTag | None]] = {}
_MAX_ENTRIES = 10_000  # tags come from chargers: bounded, oldest entries dropped first
_generation = 0  # counts forget_all: a read that began before a change is not kept
CHANGES_CHANNEL = "csms:id-tags:changed"
_PING_EVERY = 5.0  # s of quiet on the subscription before a ping; three unanswered: lost
_listener: asyncio.Task[None] | None = None
# The loop whose listener's subscription to CHANGES_CHANNEL is confirmed: rows may be kept in it.
_listening: asyncio.AbstractEventLoop | None = None
_publishers: dict[str, redis.Redis] = {}
logger = logging.getLogger(__name__)


async def id_tag_authorize(*, id_tag: str, token_type: str = "") -> IdTagInfo:
    """``charging.selectors.id_tag_authorize`` with the tag's row from this process's cache."""
    _listener_started()
    tag = await _row(id_tag)
    return selectors.id_tag_info_of(tag, token_type=token_type, at=timezone.now())


async def _row(id_tag: str) -> IdTag | None:
    key = id_tag.lower()
    cached = _rows.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    read = _reads.get(key)
    if read is None:  # the first Authorize of an uncached tag reads it; the others wait for that read
        read = _reads[key] = asyncio.ensure_future(_read(key, id_tag))
        read.add_done_callback(partial(_read_done, key))
    return await asyncio.shield(read)  # a waiter that is cancelled leaves the read to the others


async def _read(key: str, id_tag: str) -> IdTag | None:
    generation = _generation
    tag = await in_commit_group(selectors.id_tag_find)(id_tag=id_tag)
    ttl = settings.CSMS_ID_TAG_CACHE_SECONDS
    listening = _listening is asyncio.get_running_loop() or not settings.REDIS_URL  # without Redis: one process
    keeping = ttl > 0 and listening
    if keeping and generation == _generation:  # not kept when a change was saved while it was read
        if len(_rows) >= _MAX_ENTRIES:
            _rows.pop(next(iter(_rows)))
        _rows[key] = (time.monotonic() + ttl, tag)
    return tag


def _read_done(key: str, read: asyncio.Future[IdTag | None]) -> None:
    if _reads.get(key) is read:
        del _reads[key]
    if not read.cancelled():
        read.exception()  # retrieved here too: every waiter may have gone


def forget_all(**_: Any) -> None:
    """Drop every cached tag (a tag, or a parent it answers with, was saved or deleted)."""
    global _generation
    _generation += 1
    _rows.clear()
    _reads.clear()  # an Authorize from now on reads again, not what a read begun before returns


def id_tag_changed(**_: Any) -> None:
    """IdTag's ``post_save`` / ``post_delete`` receiver: this process forgets at once, and every
    gateway process when the change commits (a publish failure is logged: they wait for the TTL)."""
    forget_all()
    transaction.on_commit(_change_published)


def _change_published() -> None:
    forget_all()  # a read begun between the save and its commit returned the old row
    if not settings.REDIS_URL:
        return
    try:
        _publisher().publish(CHANGES_CHANNEL, "1")
    except redis.RedisError as error:
        logger.warning("could not tell the gateway processes an id tag changed (%r); they read it in the TTL", error)


def _publisher() -> redis.Redis:
    if settings.REDIS_URL not in _publishers:
        _publishers[settings.REDIS_URL] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5
        )
    return _publishers[settings.REDIS_URL]


def _listener_started() -> None:
    global _listener
    loop = asyncio.get_running_loop()
    if settings.REDIS_URL and (_listener is None or _listener.done() or _listener.get_loop() is not loop):
        # A fresh context: the listener is the process's, not the connection's that started it.
        _listener = loop.create_task(_listen(), context=contextvars.Context())


async def _listen() -> None:
    """Forget every cached tag at each change another process publishes, for as long as the process
    runs; rows are kept only while the subscription is confirmed (reconnects with backoff)."""
    global _listening
    delay = 0.5
    while True:
        client = redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=5, socket_keepalive=True)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANGES_CHANNEL)
                heard = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=_PING_EVERY)
                    if message is None:  # quiet: a connection that answers no ping is lost
                        if time.monotonic() - heard > 3 * _PING_EVERY:
                            raise ConnectionError(f"no answer from Redis in {3 * _PING_EVERY:g} s")
                        await pubsub.ping()
                        continue
                    heard = time.monotonic()
                    if message["type"] == "subscribe":
                        _listening, delay = asyncio.get_running_loop(), 0.5
                    if message["type"] in ("subscribe", "message"):
                        forget_all()  # a change, or (subscribed) whatever changed while not listening
        except Exception as error:  # Redis away: read every tag until the subscription is back
            logger.warning("id tag changes: subscription lost (%r); reading every tag until it is back", error)
        finally:
            if _listening is asyncio.get_running_loop():
                _listening = None
            forget_all()
            await client.aclose()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
