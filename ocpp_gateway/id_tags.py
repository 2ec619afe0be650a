"""The id tags Authorize answers about, cached per gateway process (issue 15, design 1).

Every Authorize of a fleet names one of a few tags, and each was a read on a database thread. A tag
row (with its parent) is kept here for ``CSMS_ID_TAG_CACHE_SECONDS`` after it was read, an unknown
tag too; the answer is still worked out at each Authorize by ``charging.selectors.id_tag_info_of``
(expiry is checked against the time of the request).

A tag saved or deleted through the ORM in any process (API, admin, Celery, a script) empties that
process's cache at once, and with ``REDIS_URL`` every gateway process's when it commits:
``id_tag_changed`` (connected to IdTag's signals in the app's ``ready``) announces the topic
``id-tags`` through ``kernel.cache_changes`` (a Redis channel each gateway process listens to). A
process keeps rows only while its subscription is confirmed; when it drops it empties its cache and
reads every tag until it is back. A write that sends no signal (a queryset ``update()``, raw SQL),
and without Redis a change made in another process, waits for the TTL.

Authorizes of one uncached tag that arrive together wait for one read (a fleet's chargers
authorize with a few tags at once). ``CSMS_ID_TAG_CACHE_SECONDS=0`` keeps nothing: only the
Authorizes that arrive during one read share it.

Only Authorize reads here: a session's start and stop check the tag in their own transaction.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from django.conf import settings

from charging import selectors
from charging.models import IdTag
from charging.selectors import IdTagInfo
from kernel import cache_changes
from kernel.timestamps import utc_now
from ocpp_gateway.group_commit import in_commit_group

# id tag as sent -> (monotonic time the entry expires, the row as id_tag_find returned it). Not folded:
# Python's str.lower is not the database's LOWER, which decides which tag a spelling is (``id_tag_find``)
_rows: dict[str, tuple[float, IdTag | None]] = {}
# id tag as sent -> the read under way: the Authorizes of an uncached tag that arrive together share it.
_reads: dict[str, asyncio.Future[IdTag | None]] = {}
_MAX_ENTRIES = 10_000  # tags come from chargers: bounded, oldest entries dropped first
_generation = 0  # counts forget_all: a read that began before a change is not kept
TOPIC = "id-tags"


async def id_tag_authorize(*, id_tag: str, charge_point_id: str = "", token_type: str = "") -> IdTagInfo:
    """``charging.selectors.id_tag_authorize`` with the tag's row from this process's cache, for an
    Authorize of charger ``charge_point_id`` (""; none: all its sessions count): a tag with a limit of
    sessions at once, or in a group with one, is then checked against those it (or its group) has open
    elsewhere (``selectors.id_tag_concurrency_checked``, a read per limit, never cached)."""
    cache_changes.listener_started()
    tag = await _row(id_tag)
    info = selectors.id_tag_info_of(tag, token_type=token_type, at=utc_now())
    if not info.limits:
        return info
    checked = in_commit_group(selectors.id_tag_concurrency_checked)
    return await checked(info=info, id_tag=id_tag, charge_point_id=charge_point_id)


async def _row(id_tag: str) -> IdTag | None:
    cached = _rows.get(id_tag)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    read = _reads.get(id_tag)
    if read is None:  # the first Authorize of an uncached tag reads it; the others wait for that read
        read = _reads[id_tag] = asyncio.ensure_future(_read(id_tag))
        read.add_done_callback(partial(_read_done, id_tag))
    return await asyncio.shield(read)  # a waiter that is cancelled leaves the read to the others


async def _read(id_tag: str) -> IdTag | None:
    generation = _generation
    tag = await in_commit_group(selectors.id_tag_find)(id_tag=id_tag)
    ttl = settings.CSMS_ID_TAG_CACHE_SECONDS
    listening = cache_changes.listening(asyncio.get_running_loop()) or not settings.REDIS_URL  # no Redis: one process
    keeping = ttl > 0 and listening
    if keeping and generation == _generation:  # not kept when a change was saved while it was read
        if len(_rows) >= _MAX_ENTRIES:
            _rows.pop(next(iter(_rows)))
        _rows[id_tag] = (time.monotonic() + ttl, tag)
    return tag


def _read_done(key: str, read: asyncio.Future[IdTag | None]) -> None:
    if _reads.get(key) is read:
        del _reads[key]
    if not read.cancelled():
        read.exception()  # retrieved here too: every waiter may have gone


def forget_all() -> None:
    """Drop every cached tag (a tag, or a parent it answers with, was saved or deleted)."""
    global _generation
    _generation += 1
    _rows.clear()
    _reads.clear()  # an Authorize from now on reads again, not what a read begun before returns


cache_changes.forgetter_register(TOPIC, forget_all)


def id_tag_changed(**_: Any) -> None:
    """IdTag's ``post_save`` / ``post_delete`` receiver: this process forgets at once, and every
    gateway process when the change commits (``kernel.cache_changes``)."""
    cache_changes.changed(TOPIC)
