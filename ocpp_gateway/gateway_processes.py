"""Each gateway process announces itself; presence held by a dead one is released within seconds.

A consumer's channel name is ``<process prefix>!<connection>`` (channels-redis gives every
process a unique prefix). A process holding sockets sets ``csms:gateway:<prefix>`` in Redis with a
TTL of ``CSMS_GATEWAY_PRESENCE_TTL`` s, renewed every ``CSMS_GATEWAY_PRESENCE_RENEW`` s, and it
announces before it records its first connection. Every renewal interval each gateway process,
and the Celery beat (for when no gateway process is left), looks for presence held by a process
whose announcement expired (SIGKILL, out of memory, host lost) and releases it: those chargers
go offline with one ``charge_point.offline`` event each, without waiting for the heartbeat sweep.
A live process whose announcement lapsed all the same (paused, starved, out of Redis's reach longer
than the TTL) finds it gone when it renews it, and its open connections claim their presence back.
Without Redis (the in-memory channel layer) there is one gateway process per ``VAR_DIR`` and
database: presence still held when it starts while no other lives is a previous one's (killed, or
the host restarted), released as a lost process's (``stale_presence_release``, run by each ``make
serve`` worker before it serves).
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable

import redis
from django.conf import settings

from chargepoints import services
from kernel.sweeps import each_passed_over
from ocpp_gateway.db import database_sync_to_async

logger = logging.getLogger(__name__)

_clients: dict[str, redis.Redis] = {}
_loops: list[asyncio.Task[None]] = []
_announced = asyncio.Event()
SINCE_KEY = "csms:gateways:since"  # when this Redis's data began: announcements older cannot be there
# Every process that announced itself in this Redis: only those can be judged dead here (a process on
# another Redis, or one announced before this Redis lost its data, is never released from here).
KNOWN_KEY = "csms:gateways:known"
# When (Redis's clock) a sweep last asked Redis, any process's: a longer silence (``_unwatched_gap``)
# was an outage every process saw (Redis stopped, paused, failed over, restarted with its data, or
# out of everyone's reach), in which the live processes' announcements may have expired unrenewed.
SWEPT_KEY = "csms:gateways:swept"
# Without Redis: the file in VAR_DIR each gateway process holds locked shared while it lives, and the
# descriptor this one holds it by (never closed: the lock goes with the process).
LIVENESS_FILE = "gateway.lock"
_liveness: list[int] = []
# This process's accepted connections while they last (channel name -> the claim of its charger's
# presence back, ``OcppConsumer._presence_reclaimed``): made after its announcement lapsed.
_connections: dict[str, Callable[[], Awaitable[None]]] = {}
_reclaims: set[asyncio.Task[None]] = set()  # the claims' tasks (strong references)


def _redis() -> redis.Redis:
    if settings.REDIS_URL not in _clients:
        _clients[settings.REDIS_URL] = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=5
        )
    return _clients[settings.REDIS_URL]


def _key(process: str) -> str:
    return f"csms:gateway:{process}"


def process_of(channel_name: str) -> str:
    """The process prefix of a channel name (up to and including ``!``), "" if it has none."""
    head, bang, _ = channel_name.partition("!")
    return head + bang if bang else ""


def gateway_process_announce(*, process: str) -> bool:
    """Announce ``process`` alive for ``CSMS_GATEWAY_PRESENCE_TTL`` s; whether its announcement was
    gone (expired, Redis's data lost, or its first). Raises redis.RedisError."""
    with _redis().pipeline(transaction=False) as pipeline:
        pipeline.exists(_key(process))
        pipeline.set(_key(process), "1", ex=settings.CSMS_GATEWAY_PRESENCE_TTL)
        pipeline.sadd(KNOWN_KEY, process)
        existed, *_ = pipeline.execute()
    return not existed


def dead_gateway_presence_release() -> list[str]:
    """Release the presence held by gateway processes whose announcement expired.

    Returns the ids of the chargers that went offline. Raises redis.RedisError when Redis is
    away: then nothing is released (an unanswered check never declares a process dead).
    """
    if not settings.REDIS_URL or _redis_recently_emptied():
        return []
    processes = services.gateway_processes_holding_presence()
    if not processes:
        return []
    with _redis().pipeline(transaction=False) as pipeline:
        for process in processes:
            pipeline.exists(_key(process))
            pipeline.sismember(KNOWN_KEY, process)
        answers = pipeline.execute()
    judged = zip(processes, answers[::2], answers[1::2], strict=True)
    dead = [process for process, exists, known in judged if known and not exists]
    # One whose release raises is logged and passed over (still known: tried again next round); it
    # ended the sweep, and every dead process after it kept its chargers online, at every round.
    # Redis away: raised, as above.
    released = each_passed_over(
        dead,
        _dead_process_release,
        logger=logger,
        failed="could not release the chargers of gateway process %s",
        raised=(redis.RedisError,),
    )
    went_offline = [charge_point_id for chargers in released for charge_point_id in chargers]
    if went_offline:  # a long release is no silence of Redis's: the next sweep measures from its end
        client = _redis()
        client.set(SWEPT_KEY, client.time()[0])
    return went_offline


def _dead_process_release(process: str) -> list[str]:
    released = services.charge_points_release_process(process=process)
    # After the release, and only once nothing is left (rows another transaction held
    # were skipped): a failed or partial release is tried again next round.
    if not services.gateway_process_holds_presence(process=process):
        _redis().srem(KNOWN_KEY, process)
    logger.warning("gateway process %s is gone: %d chargers offline", process, len(released))
    return released


def stale_presence_release() -> list[str]:
    """Without Redis, called by a gateway process before it holds any presence: when no other live
    gateway process shares its ``VAR_DIR`` (``LIVENESS_FILE``, locked shared by each for its life),
    every charger still marked as held is a gone process's, and goes offline as a lost process's do
    (reason ``gateway_lost``). Returns their ids. Then this process holds the file shared until it
    ends (a SIGKILL too). With Redis other live processes may hold presence: nothing is released here
    (their announcements decide, ``dead_gateway_presence_release``)."""
    if settings.REDIS_URL:
        return []
    descriptor = os.open(settings.VAR_DIR / LIVENESS_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    _liveness.append(descriptor)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another live gateway process (a second `make run` on this VAR_DIR)
        fcntl.flock(descriptor, fcntl.LOCK_SH)
        return []
    try:
        released: list[str] = []
        for process in services.gateway_processes_holding_presence():
            released.extend(services.charge_points_release_process(process=process))
        return released
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_SH)  # from exclusive to shared: others may start beside it


def _redis_recently_emptied() -> bool:
    """Whether Redis lost its data (restarted, flushed), or was out of every process's reach for
    longer than ``_unwatched_gap`` (its data kept: a restart with persistence, a pause, a failover),
    less than TTL + RENEW s ago: then the live processes' announcements may not be back yet, and no
    process is judged dead. Without the second, an outage longer than TTL - RENEW left every live
    process's announcement expired with its data, and the first sweep after it released their
    chargers (offline, ``gateway_lost``, commands ``503 NotConnected``) before they announced again."""
    client = _redis()
    now = client.time()[0]  # on Redis's clock: one clock for every host
    previous = client.getset(SWEPT_KEY, now)
    if previous is not None and now - int(previous) > _unwatched_gap():
        client.set(SINCE_KEY, now)  # as if its data began now: the live processes announce meanwhile
    client.set(SINCE_KEY, now, nx=True)
    since = int(client.get(SINCE_KEY))  # type: ignore[arg-type]  # set just above, never None
    return now - since < settings.CSMS_GATEWAY_PRESENCE_TTL + settings.CSMS_GATEWAY_PRESENCE_RENEW


def _unwatched_gap() -> int:
    """Seconds between two sweeps (of any process) beyond which Redis was away for everyone: a live
    process's announcement, renewed every RENEW s, outlives any shorter outage (TTL - RENEW), and
    sweeps (every RENEW s by each gateway process holding chargers, and by Celery beat) come at
    least every 2 x RENEW s while Redis answers."""
    ttl, renew = settings.CSMS_GATEWAY_PRESENCE_TTL, settings.CSMS_GATEWAY_PRESENCE_RENEW
    return max(ttl - renew, 2 * renew)


async def gateway_process_announced(*, channel_name: str) -> None:
    """Called before a connection is recorded: the first one starts this process's announcing
    and sweeping loops and waits for the first announcement. Cheap afterwards."""
    if not settings.REDIS_URL:
        return
    if not _loops:
        loop, process = asyncio.get_running_loop(), process_of(channel_name)
        # Fresh contexts: these loops are the process's, not the connection's that started them.
        _loops.append(loop.create_task(_keep_announced(process), context=contextvars.Context()))
        _loops.append(loop.create_task(_keep_sweeping(), context=contextvars.Context()))
    await _announced.wait()


def connection_held(*, channel_name: str, reclaim: Callable[[], Awaitable[None]]) -> None:
    """An accepted connection of this process, whose presence ``reclaim`` claims back (only if free)."""
    _connections[channel_name] = reclaim


def connection_ended(*, channel_name: str) -> None:
    _connections.pop(channel_name, None)


async def _keep_announced(process: str) -> None:
    """Renew the announcement every RENEW s. Found gone after the first, it lapsed: another process's
    sweep may have released this one's chargers (``gateway_lost``) while it was silent, their
    sockets still open: its connections claim their presence back (``gateway_back``), then and at the
    next renewal (a sweep that judged it dead just before may release after the first claim), not
    only at each charger's next message (a heartbeat interval away, a day for one kept by pings)."""
    claims_owed = 0
    while True:
        try:
            lapsed = await asyncio.to_thread(gateway_process_announce, process=process)
        except redis.RedisError as error:
            logger.warning("could not announce gateway process %s: %r", process, error)
        else:
            if lapsed and _announced.is_set():
                claims_owed = 2
        _announced.set()
        if claims_owed:
            claims_owed -= 1
            task = asyncio.get_running_loop().create_task(_connections_reclaimed(), context=contextvars.Context())
            _reclaims.add(task)
            task.add_done_callback(_reclaims.discard)
        await asyncio.sleep(settings.CSMS_GATEWAY_PRESENCE_RENEW)


async def _connections_reclaimed() -> None:
    """Every open connection of this process claims its charger's presence back (each logs its failure)."""
    await asyncio.gather(*(reclaim() for reclaim in list(_connections.values())))


async def _keep_sweeping() -> None:
    while True:
        await asyncio.sleep(settings.CSMS_GATEWAY_PRESENCE_RENEW)
        try:
            await database_sync_to_async(dead_gateway_presence_release)()
        except Exception:  # Redis or the database away: the next round tries again
            logger.exception("could not release dead gateway processes' presence")
