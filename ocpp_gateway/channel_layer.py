"""The Redis channel layer: a connection pool that makes a burst wait instead of failing, and one
Redis round trip per message sent or received instead of four.

channels-redis builds redis-py's ``ConnectionPool``, which raises "Too many connections" once
``max_connections`` (default 100) are in use: 2,000 chargers connecting at once crawl with
hundreds of errors. ``BlockingConnectionPool`` queues the extra callers for up to ``timeout``
seconds instead. Its settings come from the host dict (``max_connections``, ``timeout``).

channels-redis sends with four commands in a row (drop expired, count, add, set the expiry) and
receives a process-local message with four more (restore the backup queue, pop, back the message
up, then clean the backup before the next pop may start). A command's round trip crosses the
layer twice, each way behind every other message of the process: here each is one Lua script,
with the same effects (expiry, ``ChannelFull`` at capacity, the backup that gives a message back
to the queue when a receive is cancelled between the pop and the caller). A receive whose backup
is known empty is the blocking pop alone: one round trip per message received.

channels-redis receives a process-local channel (every consumer's, ``<process>!<connection>``)
with, per waiting consumer, an ``asyncio.Queue`` and two tasks racing for a lock (about 8 KB of a
gateway process's memory per idle connection). Here one task per event loop pops the process's
messages and hands each to the future its channel's ``receive()`` returned: a waiting consumer
holds one future.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Awaitable
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis import BlockingConnectionPool as SyncBlockingConnectionPool
from redis import Redis, RedisError
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript, Script
from redis.retry import Retry as SyncRetry

from kernel.charger_connections import MessageNotSent

logger = logging.getLogger(__name__)

# KEYS[1] channel key; ARGV: expired-before score, capacity (0: none), score, message, expiry seconds.
_SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
local capacity = tonumber(ARGV[2])
if capacity > 0 and redis.call('ZCARD', KEYS[1]) >= capacity then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""

# KEYS[1] channel key, KEYS[2] its backup queue; ARGV[1] "restore" when the previous receive may have
# been cancelled with its message still in the backup (else that message was delivered: drop it),
# ARGV[2] the expiry. Pops the oldest message and backs it up; nil when the channel is empty.
_POP = """
if ARGV[1] == 'restore' then
    local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = #backed_up, 1, -2 do
        redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
    end
end
redis.call('DEL', KEYS[2])
local popped = redis.call('ZPOPMIN', KEYS[1])
if #popped == 0 then return false end
redis.call('ZADD', KEYS[2], popped[2], popped[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return popped[1]
"""
# Run by SHA (EVALSHA), loaded into Redis on first use and again after a Redis restart.
# redis-py types the client as required, but a script built with None takes the client at each call.
_SEND_SCRIPT = AsyncScript(None, _SEND.encode())  # type: ignore[arg-type]
_SEND_SCRIPT_SYNC = Script(None, _SEND.encode())  # type: ignore[arg-type]
_POP_SCRIPT = AsyncScript(None, _POP.encode())  # type: ignore[arg-type]
# While Redis is away the process's receiver retries, waiting this long (s), doubling up to the most.
_RETRY_FIRST, _RETRY_MOST = 0.5, 2.0
_PRUNE_EVERY = 5.0  # s between sweeps of the futures of receives that were cancelled
_BLOCKING_WAITERS_MOST = 32  # threads waiting for a reply on connections of their own, per process
_HELD_SENDS_MOST = 8  # connections an event loop holds for its sends at most (``_HeldSend``)
# The send's errors after which send_receive_blocking sends again as send_blocking would (its client's
# retry, the script's loading).
_RESENT_AFTER = (redis_errors.NoScriptError, redis_errors.ConnectionError, redis_errors.TimeoutError)
_BLOCKING_POP_MOST = 5.0  # s of one blocking pop from a thread (below the host's socket timeout)
# The host options a synchronous connection pool takes as they are (its retry is made for it).
_SYNC_POOL_OPTIONS = ("socket_timeout", "socket_connect_timeout", "health_check_interval", "max_connections", "timeout")


class BlockingPoolRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Process-local channel keys whose last pop may not have reached its receiver.
        self._undelivered: set[str] = set()
        # Process-local channel keys whose backup queue this process left empty (its last pop found
        # nothing, or was a blocking pop, which backs nothing up): the next pop may block at once.
        self._backup_empty: set[str] = set()
        # This process's own channels: the futures of the receives waiting on each, oldest first,
        # messages no receive was waiting for (at most ``capacity`` per channel, the oldest dropped
        # first, as channels-redis does), and the task that pops them (one event loop at a time).
        self._waiting: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._buffered: dict[str, list[dict[str, Any]]] = {}
        self._receiver: asyncio.Task[None] | None = None
        self._held_sends: dict[int, _HeldSend] = {}  # per host index: one event loop's (``_sent``)
        self._blocking: Redis | None = None  # the synchronous client (``_blocking_client``)
        self._blocking_lock = threading.Lock()
        # Threads in ``receive_blocking`` each hold a connection of the synchronous pool: at most
        # half of it (sends always find one); a caller that finds none free waits through the
        # event loop's receiver instead (``commands.rpc``), which holds no connection per wait.
        pool_size = int(dict(self.hosts[0]).get("max_connections", 2 * _BLOCKING_WAITERS_MOST)) if self.hosts else 2
        self.blocking_waiters = threading.BoundedSemaphore(max(1, min(_BLOCKING_WAITERS_MOST, pool_size // 2)))
        # An event loop's held send connections (``_HeldSend``): at most a quarter of its pool beyond
        # the receiver's connection and one for every other send and receive to share; none in a pool
        # of under 6 (review: a pool of 2 held its last connection, and other sends waited it out).
        self._held_sends_most = max(0, min(_HELD_SENDS_MOST, (pool_size - 2) // 4))
        self._held_sends_lock = threading.Lock()  # loops in threads of their own replace ``_held_sends``

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """channels-redis's send in one round trip; raises ``ChannelFull`` at the channel's capacity."""
        index, key, args = self._send_arguments(channel, message, self.get_capacity(channel))
        if not await self._sent(index, key, args):
            raise ChannelFull()

    async def send_past_capacity(self, channel: str, message: dict[str, Any]) -> None:
        """``send`` whatever the channel holds: for a message that must arrive (a socket's close)
        where the channel's capacity is shared by a whole process's connections (``<process>!...``)
        and a burst of others filled it. Expires like any other message."""
        index, key, args = self._send_arguments(channel, message, 0)
        await self._sent(index, key, args)

    async def _sent(self, index: int, key: str, args: list[Any]) -> int:
        """The send script's answer (1 sent, 0 at capacity) for ``key`` and ``args`` on host
        ``index``: its ``EVALSHA`` written and read on the loop's held send connection directly
        (``_HeldSend``), or through redis-py's command path while that one is busy or after it failed."""
        client = self.connection(index)
        held = self._held_send(index, client) if self._held_sends_most else None
        sent = await held.sent(key, args) if held is not None and held.client is client else None
        if sent is None:
            sent = await _SEND_SCRIPT(keys=[key], args=args, client=client)
        return int(sent)

    def _held_send(self, index: int, client: AsyncRedis) -> _HeldSend:
        """Host ``index``'s held send connections. One loop holds them at a time (each loop has a pool
        of its own): the first to send, then, once its loop is closed (its pool with it) or its client
        flushed, the next. Another loop running meanwhile (``async_to_sync`` in a thread of its own)
        gets the holder's, not its own client's, and sends through redis-py's path."""
        loop = asyncio.get_running_loop()
        with self._held_sends_lock:  # two threads' loops replacing it at once would lose one's connections
            held = self._held_sends.get(index)
            if held is None or (held.client is not client and (held.loop is loop or held.loop.is_closed())):
                held = self._held_sends[index] = _HeldSend(client, loop, self._held_sends_most)
            return held

    def _send_arguments(self, channel: str, message: dict[str, Any], capacity: int) -> tuple[int, str, list[Any]]:
        """The host index, the channel's key and the send script's ARGV for ``message`` (added
        unless the channel holds ``capacity`` messages; 0: no limit)."""
        assert isinstance(message, dict), "message is not a dict"
        assert self.require_valid_channel_name(channel), "Channel name not valid"
        assert "__asgi_channel__" not in message
        channel_non_local_name = channel
        if "!" in channel:
            message = {**message, "__asgi_channel__": channel}
            channel_non_local_name = self.non_local_name(channel)
            index = self.consistent_hash(channel)
        else:
            index = next(self._send_index_generator)
        now = time.time()
        args = [int(now) - int(self.expiry), capacity, repr(now), self.serialize(message)]
        return index, self.prefix + channel_non_local_name, [*args, int(self.expiry)]

    # A caller in a thread of its own (a synchronous view awaiting a charger's answer, commands.rpc)
    # sends and receives through a synchronous client: no crossing to the event loop and back, whose
    # two thread wake-ups cost an API process about 14 % of its CPU per command (issue 15).

    def blocking_calls(self) -> bool:
        """Whether ``send_receive_blocking`` and ``receive_blocking`` may be used: with one Redis
        host (with several, channels-redis spreads a named channel's messages over them)."""
        return len(self.hosts) == 1

    def blocking_reply_channel(self) -> str:
        """A new channel for one caller's replies, received with ``receive_blocking``: a named
        channel (no ``!``), so its messages wait in a Redis key of their own for that caller."""
        return f"blocking-reply.{uuid.uuid4().hex}"

    def send_blocking(self, channel: str, message: dict[str, Any]) -> None:
        """``send`` from a thread, in one round trip; raises ``ChannelFull`` at capacity."""
        _, key, args = self._send_arguments(channel, message, self.get_capacity(channel))
        if not _SEND_SCRIPT_SYNC(keys=[key], args=args, client=self._blocking_client()):
            raise ChannelFull()

    def send_receive_blocking(
        self, channel: str, message: dict[str, Any], reply_channel: str, timeout: float
    ) -> dict[str, Any] | None:
        """``send_blocking`` to ``channel``, then ``receive_blocking`` on ``reply_channel`` for up to
        ``timeout`` seconds, the send and the first pop written to Redis together: a command answered
        within the pop costs one round trip, not two (the API process's CPU per command and a step of
        its latency, issue 15).

        Raises ``MessageNotSent`` (its ``error``: ``ChannelFull``, the Redis error) when the message
        was not sent: at capacity (the pop then abandoned with its connection), or with no
        connection to be had from the pool (Redis away, the pool exhausted for its ``timeout``), or a
        message that cannot be serialised: the caller hears at once, not after a second wait. A
        connection that fails before the send's answer is read is given up and the send made again
        through ``send_blocking``, as its client's retry would (the first may have reached Redis: at
        most once is not promised there, as with the client's own retry). What fails after the send
        (a reply that cannot be read) raises as it is.
        """
        pop_for = min(round(timeout, 3), _BLOCKING_POP_MOST)
        if pop_for <= 0:  # a pop of 0 s would wait for ever
            self._sent_blocking(channel, message)
            return None
        started = time.monotonic()
        try:  # a message that cannot be serialised, or no connection to be had: nothing went out
            _, key, args = self._send_arguments(channel, message, self.get_capacity(channel))
            pool = self._blocking_client().connection_pool
            connection = pool.get_connection()
        except Exception as error:
            raise MessageNotSent(error) from error
        sent: int | None = None
        popped: list[bytes] | None = None
        answered = resend = False  # answered: both answers read, the connection is clean for the pool
        try:
            send = ("EVALSHA", _SEND_SCRIPT_SYNC.sha, 1, key, *args)
            connection.send_packed_command(
                connection.pack_commands([send, ("BZPOPMIN", self.prefix + reply_channel, pop_for)])
            )
            sent = connection.read_response()
            if sent:
                popped = connection.read_response()
                answered = True
        except RedisError as error:
            if sent is None and not isinstance(error, _RESENT_AFTER):
                raise MessageNotSent(error) from error
            resend = sent is None  # else the send is done and the pop failed: waited on below
        finally:
            if not answered:
                connection.disconnect()  # a pop still pending on it goes with it
            pool.release(connection)
        if resend:
            self._sent_blocking(channel, message)
        elif not sent:
            raise MessageNotSent(ChannelFull())
        elif popped is not None:
            reply: dict[str, Any] = self.deserialize(popped[1])
            return reply
        return self.receive_blocking(reply_channel, timeout - (time.monotonic() - started))

    def _sent_blocking(self, channel: str, message: dict[str, Any]) -> None:
        """``send_blocking``, its failure raised as ``MessageNotSent``."""
        try:
            self.send_blocking(channel, message)
        except (ChannelFull, RedisError) as error:
            raise MessageNotSent(error) from error

    def receive_blocking(self, channel: str, timeout: float) -> dict[str, Any] | None:
        """The next message on a ``blocking_reply_channel``, waiting up to ``timeout`` seconds in
        this thread; None if none came. While Redis is away it waits on (as a process-local
        receive does) until the time is up."""
        assert "!" not in channel, "a process-local channel is received by the event loop's receiver"
        client, key = self._blocking_client(), self.prefix + channel
        deadline = time.monotonic() + timeout
        while (remaining := round(deadline - time.monotonic(), 3)) > 0:
            try:
                popped = client.bzpopmin(key, timeout=min(remaining, _BLOCKING_POP_MOST))
            except RedisError as error:
                logger.warning("channel layer unavailable (%r); waiting on", error)
                time.sleep(min(_RETRY_FIRST, remaining))
                continue
            if popped is not None:
                message: dict[str, Any] = self.deserialize(popped[1])
                return message
        return None

    def _blocking_client(self) -> Redis:
        """The process's synchronous client of the (one) host, with its pool size, timeouts and
        health check; made on first use."""
        with self._blocking_lock:
            if self._blocking is None:
                host = dict(self.hosts[0])
                options = {name: host[name] for name in _SYNC_POOL_OPTIONS if name in host}
                pool = SyncBlockingConnectionPool.from_url(
                    host["address"], retry=SyncRetry(ExponentialBackoff(cap=1.0, base=0.1), retries=3), **options
                )
                self._blocking = Redis(connection_pool=pool)
            return self._blocking

    def receive(self, channel: str) -> Awaitable[dict[str, Any]]:
        """The next message on ``channel``. For this process's own channels (``...!...``), a future
        (no task): a message already here, or the one the process's receiver pops next for it.

        Such a receive never fails for Redis: while Redis is away the receiver retries and the
        future waits. Cancelling the future gives up the wait; a message then stays for the next
        receive of the channel. Raises RuntimeError when another event loop is receiving.
        """
        if "!" not in channel:
            return super().receive(channel)
        assert self.require_valid_channel_name(channel), "Channel name invalid"
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[dict[str, Any]] = loop.create_future()
        if buffered := self._buffered.get(channel):
            waiter.set_result(buffered.pop(0))
            if not buffered:
                del self._buffered[channel]
            return waiter
        self._receiver_running(loop, self.non_local_name(channel))
        if (waiting := self._waiting.get(channel)) is None:
            self._waiting[channel] = [waiter]
        else:
            waiting.append(waiter)
        return waiter

    def _receiver_running(self, loop: asyncio.AbstractEventLoop, process_channel: str) -> None:
        """Start the receiver on ``loop`` unless it runs there. An event loop's receiver ends with
        its last waiting receive or with the loop (``async_to_sync`` cancels its tasks); then
        another loop may receive, and the futures left by the ended one are dropped."""
        receiver = self._receiver
        if receiver is not None and not receiver.done():
            if receiver.get_loop() is loop:
                return
            if receiver.get_loop().is_running():
                raise RuntimeError("Two event loops are trying to receive() on one channel layer at once!")
        if receiver is not None and receiver.get_loop() is not loop:
            self._waiting = {}
        # A context of its own: the receiver serves the process, not the connection that started it.
        self._receiver = loop.create_task(self._receive_for_waiters(process_channel), context=contextvars.Context())

    async def _receive_for_waiters(self, process_channel: str) -> None:
        """Pop the process's messages and deliver them, as long as any receive waits."""
        channel_key = self.prefix + process_channel
        index = self.consistent_hash(process_channel)
        # One connection held while the receiver runs: a pop does not take one from the pool and
        # give it back (the pool's lock and its check of the connection for unread data were 11 %
        # of a gateway process's CPU in a command round trip benchmark, with the replies' sends).
        held = AsyncRedis(connection_pool=self.connection(index).connection_pool, single_connection_client=True)
        try:
            await self._receive_on(held, channel_key)
        finally:
            await held.aclose()  # the connection back to the pool

    async def _receive_on(self, connection: AsyncRedis, channel_key: str) -> None:
        delay, pruned_at = _RETRY_FIRST, time.monotonic()
        while self._waiting:
            content = None
            try:
                content = await self._pop(connection, channel_key)
            except Exception as error:  # Redis away: the waiting receives wait on
                if delay == _RETRY_FIRST:
                    logger.warning("channel layer unavailable (%r); retrying", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MOST)
            else:
                delay = _RETRY_FIRST
                if content is not None:
                    self._delivered(content)
            if content is None or time.monotonic() - pruned_at > _PRUNE_EVERY:
                self._cancelled_receives_dropped()
                pruned_at = time.monotonic()

    def _delivered(self, content: bytes) -> None:
        try:
            message = self.deserialize(content)
            channels = message.pop("__asgi_channel__")
        except Exception:  # not ours to answer: dropped, the others still delivered
            logger.exception("dropped an unreadable channel layer message")
            return
        for channel in channels if isinstance(channels, list) else [channels]:
            self._deliver(channel, message)

    def _deliver(self, channel: str, message: dict[str, Any]) -> None:
        waiting = self._waiting.get(channel)
        while waiting:
            waiter = waiting.pop(0)
            if not waiter.done():  # else cancelled: its receive gave up
                waiter.set_result(message)
                break
        else:
            buffered = self._buffered.setdefault(channel, [])
            if len(buffered) >= self.capacity:
                buffered.pop(0)
            buffered.append(message)
        if waiting == []:
            del self._waiting[channel]

    def _cancelled_receives_dropped(self) -> None:
        for channel in [channel for channel, waiting in self._waiting.items() if any(w.done() for w in waiting)]:
            if waiting := [waiter for waiter in self._waiting[channel] if not waiter.done()]:
                self._waiting[channel] = waiting
            else:
                del self._waiting[channel]

    async def _pop(self, connection: AsyncRedis, channel_key: str) -> bytes | None:
        """The oldest message on ``channel_key``, waiting up to ``brpop_timeout``; None if none came.

        Between the pop and the return there is no await: a message the script popped is either
        returned or, if the caller was cancelled first, still in the backup for the next pop.
        The script runs only while the backup may hold something (a message it popped, to drop once
        delivered or restore if not); else the blocking pop alone: one round trip per message
        instead of two while messages come one at a time (a command's request and its reply).
        """
        if channel_key not in self._backup_empty:
            mode = "restore" if channel_key in self._undelivered else "drop"
            self._undelivered.add(channel_key)
            backup_key = self._backup_channel_name(channel_key)
            content = await _POP_SCRIPT(
                keys=[channel_key, backup_key], args=[mode, int(self.expiry)], client=connection
            )
            self._undelivered.discard(channel_key)
            if content is not None:
                return content
            self._backup_empty.add(channel_key)
        result: Any = await _blocking_pop(connection, channel_key, self.brpop_timeout)  # [key, member, score]
        return result[1] if result is not None else None


async def _blocking_pop(client: AsyncRedis, key: str, timeout: float) -> Any:
    """``client.bzpopmin(key, timeout)`` on a single-connection client, written and read on its
    connection directly once it has one: the process's receiver pops every message of the process
    (every command's request, in the gateway) without redis-py's retry wrapper and response
    callbacks (issue 15). A Redis error drops the connection and leaves the pop to redis-py's path
    (its reconnect and retry, as before); a pop cancelled before its answer drops the connection."""
    connection = client.connection
    if connection is None:
        return await client.bzpopmin(key, timeout=timeout)  # the client takes its connection
    try:
        await connection.send_command("BZPOPMIN", key, timeout)
        return await connection.read_response()
    except RedisError:
        await connection.disconnect(nowait=True)
    except BaseException:
        await connection.disconnect(nowait=True)  # its answer, unread, goes with it
        raise
    return await client.bzpopmin(key, timeout=timeout)


class _HeldSend:
    """Connections of an event loop's pool held for that loop's sends, each written and read
    directly: a reply to a command (every command's, in the gateway) without redis-py's pool
    checkout (its condition, timeout and connection check), retry wrapper and response callbacks,
    about a quarter of a gateway process's CPU per command (issue 15). Up to ``most`` sends at once
    (``_HELD_SENDS_MOST``, at most a quarter of the pool), one per connection, taken from the pool
    as sends overlap and kept; beyond them, or after a Redis error (the script not loaded after a
    restart, a broken connection: the connection is then dropped, whatever was written or left
    unread with it, and reconnects at its next send), ``sent`` answers None and the caller sends
    through redis-py's path, which loads the script and retries as before. A connection that
    cannot be had or connected raises as redis-py's path would: a send waits once, not twice."""

    def __init__(self, client: AsyncRedis, loop: asyncio.AbstractEventLoop, most: int) -> None:
        self.client, self.loop, self.most = client, loop, most
        self.free: list[Any] = []  # held connections no send is using
        self.held = 0  # connections taken from the client's pool, never given back

    async def sent(self, key: str, args: list[Any]) -> int | None:
        """The send script's answer for ``key`` and ``args``, or None: not sent this way.

        A connection is taken from the pool only when it has one at once: else redis-py's path
        waits for one, once (this one waited the pool's timeout first, then that path again). One
        that cannot be connected (Redis away) raises its error: its connect and retries were
        the send's one wait, which redis-py's path would only repeat."""
        if self.free:
            connection = self.free.pop()
        elif self.held < self.most and self.client.connection_pool.can_get_connection():
            self.held += 1
            try:
                connection = await self.client.connection_pool.get_connection()
            except BaseException:
                self.held -= 1
                raise
        else:
            return None
        try:
            if not connection.is_connected:  # dropped after an error: Redis away raises here, as above
                await connection.connect()
        except BaseException:  # redis-py closes only after its own errors: a cancel mid-handshake leaves it open
            await connection.disconnect(nowait=True)
            self.free.append(connection)
            raise
        try:
            await connection.send_command("EVALSHA", _SEND_SCRIPT.sha, 1, key, *args)
            answer: int = await connection.read_response()
        except BaseException as error:  # a Redis error, or cancelled between the write and the answer
            await connection.disconnect(nowait=True)  # reconnected by its next send
            if isinstance(error, RedisError):
                return None
            raise
        finally:
            self.free.append(connection)
        return answer
