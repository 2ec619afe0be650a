"""When to recompute a site, without work on the gateway's message path.

The hooks (a session started or ended, meter values recorded, a site or its load changed) call
``site_recompute_on_commit``: after the commit, the charger or site is queued. In a daphne process
the queue is drained by one task on its event loop, which runs ``engine.site_apply`` in a worker
thread (its profiles go out through that loop); triggers that arrive meanwhile are coalesced into
the next round. Elsewhere (a Celery worker, a management command) the recompute runs at once.
Sessions reach it through ``charging.signals.charger_draw_changed`` (``sites/receivers.py``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import Q

from kernel.event_loops import served_loop
from sites.engine import site_apply
from sites.models import SiteMember

logger = logging.getLogger(__name__)

_pending: set[tuple[str, str]] = set()
_drainers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
# Keys queued from other threads (a commit batch's), handed to their loop together.
_handed: dict[asyncio.AbstractEventLoop, set[tuple[str, str]]] = {}
_handed_lock = threading.Lock()


def site_recompute_on_commit(
    *, charge_point_id: str = "", charge_point_pk: int | None = None, site_id: int | None = None
) -> None:
    """After the commit, recompute ``site_id``, or the site of the charger (by OCPP identity or
    primary key) if it is a member of one."""
    if site_id is not None:
        key = ("site", str(site_id))
    elif charge_point_pk is not None:
        key = ("charge_point_pk", str(charge_point_pk))
    else:
        key = ("charge_point", charge_point_id)
    transaction.on_commit(lambda: _queue(key))


def _queue(key: tuple[str, str]) -> None:
    loop = _gateway_loop()
    if loop is None:
        sites_recompute(keys={key})
        return
    with _handed_lock:
        keys = _handed.setdefault(loop, set())
        wake = not keys
        keys.add(key)
    if wake:  # one wake-up of the loop per batch's worth of keys, not one per session message
        loop.call_soon_threadsafe(_handed_scheduled, loop)


def _handed_scheduled(loop: asyncio.AbstractEventLoop) -> None:
    with _handed_lock:
        keys = _handed.pop(loop, set())
    for key in keys:
        _schedule(loop, key)


def _gateway_loop() -> asyncio.AbstractEventLoop | None:
    """The event loop this sync thread serves (a daphne process), else None: a commit batch's
    thread says so itself (``kernel.event_loops``), asgiref's threads in its thread-local."""
    served = served_loop()
    if served is not None:
        return served
    if getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid():
        return None
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    return loop if loop is not None and loop.is_running() else None


def _schedule(loop: asyncio.AbstractEventLoop, key: tuple[str, str]) -> None:
    _pending.add(key)
    drainer = _drainers.get(loop)
    if drainer is None or drainer.done():
        _drainers[loop] = loop.create_task(_drain(loop), context=contextvars.Context())


async def _drain(loop: asyncio.AbstractEventLoop) -> None:
    while _pending:
        keys = set(_pending)
        _pending.clear()
        retries = await database_sync_to_async(sites_recompute, thread_sensitive=False)(keys=keys)
        for site_id, seconds in retries.items():
            loop.call_later(seconds, _schedule, loop, ("site", str(site_id)))


def sites_recompute(*, keys: set[tuple[str, str]]) -> dict[int, float]:
    """Recompute the sites the keys name; returns site id -> seconds until a held-back increase is due."""
    site_ids = {int(value) for kind, value in keys if kind == "site"}
    identities = [value for kind, value in keys if kind == "charge_point"]
    pks = [int(value) for kind, value in keys if kind == "charge_point_pk"]
    if identities or pks:
        by_identity = Q(charge_point__charge_point_id__in=identities)
        members = SiteMember.objects.filter(by_identity | Q(charge_point_id__in=pks))
        site_ids.update(members.values_list("site_id", flat=True))
    retries = {}
    for site_id in sorted(site_ids):
        try:
            retry_after = site_apply(site_id=site_id)
        except Exception:
            logger.exception("site %s: recompute failed", site_id)
            continue
        if retry_after is not None:
            retries[site_id] = retry_after
    return retries
