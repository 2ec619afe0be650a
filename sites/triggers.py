"""When to recompute a site, without work on the gateway's message path.

The hooks (a session started or ended, meter values recorded, a site or its load changed) call
``site_recompute_on_commit``: after the commit, the charger or site is queued. In a daphne process
the queue is drained by one task on its event loop, which runs ``engine.site_apply`` in a worker
thread (its profiles go out through that loop); triggers that arrive meanwhile are coalesced into
the next round. Elsewhere (a Celery worker, a management command) the recompute runs at once.
Sessions reach it through ``charging.signals.charger_draw_changed`` (``sites/receivers.py``),
which asks ``site_member_may_be`` first: a gateway process keeps the set of site members, so a
charger on no site queues nothing (issue 15).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import threading
from typing import Any

from asgiref.sync import SyncToAsync
from channels.db import database_sync_to_async
from django.db import transaction
from django.db.models import Q

from kernel import cache_changes
from kernel.event_loops import served_loop
from sites.engine import site_apply
from sites.models import SiteMember

logger = logging.getLogger(__name__)

_pending: set[tuple[str, str]] = set()
_drainers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
# Keys queued from other threads (a commit batch's), handed to their loop together.
_handed: dict[asyncio.AbstractEventLoop, set[tuple[str, str]]] = {}
_handed_lock = threading.Lock()


MEMBERS_TOPIC = "site-members"
# A set is kept at most this long (s): a membership changed without a model signal (a queryset
# ``update()``, raw SQL) or whose notice is lost is seen no later than this.
MEMBERS_KEPT_SECONDS = 5.0
# The site members: (their chargers' primary keys, their OCPP identities); read by the batch
# threads, forgotten on the event loop.
_members: cache_changes.KeptValue[tuple[frozenset[int], frozenset[str]]] = cache_changes.KeptValue(
    MEMBERS_TOPIC, seconds=MEMBERS_KEPT_SECONDS
)


def site_member_may_be(*, charge_point_id: str = "", charge_point_pk: int | None = None) -> bool:
    """False when the charger (by OCPP identity, or primary key when given) is on no site: its draw
    changes need no recompute. Answered from the members this process keeps while it listens to
    ``kernel.cache_changes`` (a gateway process; one statement when the set is read again, at most
    every ``MEMBERS_KEPT_SECONDS``); a member saved or deleted through the ORM in any process
    empties every process's set (``site_members_changed``). True in a process that does not listen
    (tests, Celery, a management command): ``sites_recompute`` finds the site as before."""
    kept = _members.get()
    if kept is None:
        kept = _members.read(_members_read)
        if kept is None:
            return True
    pks, identities = kept
    return charge_point_pk in pks if charge_point_pk is not None else charge_point_id in identities


def _members_read() -> tuple[frozenset[int], frozenset[str]]:
    rows = list(SiteMember.objects.values_list("charge_point_id", "charge_point__charge_point_id"))
    return frozenset(pk for pk, _ in rows), frozenset(identity for _, identity in rows)


def site_members_changed(*, update_fields: Any = None, **_: Any) -> None:
    """SiteMember's ``post_save`` / ``post_delete`` receiver: every process's kept members are
    forgotten (this one's at once, the others' when the change commits). A save of other columns
    alone (the engine's flag) changes no membership."""
    if update_fields is None or {"site", "charge_point"} & set(update_fields):
        cache_changes.changed(MEMBERS_TOPIC)


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
