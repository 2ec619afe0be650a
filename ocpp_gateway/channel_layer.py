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
to the queue when a receive is cancelled between the pop and the caller).
"""

from __future__ import annotations

import time
from typing import Any

from channels.exceptions import ChannelFull
from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool
from redis.commands.core import AsyncScript

# KEYS[1] channel key; ARGV: expired-before score, capacity, score, message, expiry seconds.
_SEND = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], 0, ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
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
_POP_SCRIPT = AsyncScript(None, _POP.encode())  # type: ignore[arg-type]


class BlockingPoolRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Process-local channel keys whose last pop may not have reached its receiver.
        self._undelivered: set[str] = set()

    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        """channels-redis's send in one round trip; raises ``ChannelFull`` at the channel's capacity."""
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
        connection = self.connection(index)
        now = time.time()
        added = await _SEND_SCRIPT(
            keys=[self.prefix + channel_non_local_name],
            args=[
                int(now) - int(self.expiry),
                self.get_capacity(channel),
                repr(now),
                self.serialize(message),
                int(self.expiry),
            ],
            client=connection,
        )
        if not added:
            raise ChannelFull()

    async def receive_single(self, channel: str) -> tuple[str, dict[str, Any]]:
        """One message from ``channel``: for this process's own channels (``...!``) in one round trip
        when one is waiting, else a blocking pop; other channels as channels-redis receives them."""
        if "!" not in channel:
            return await super().receive_single(channel)
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        index = self.consistent_hash(channel)
        channel_key = self.prefix + channel
        await self.receive_clean_locks.acquire(channel_key)
        try:
            content = None
            while content is None:
                content = await self._pop(index, channel_key)
        finally:
            self.receive_clean_locks.release(channel_key)
        message = self.deserialize(content)
        if "__asgi_channel__" in message:
            channel = message.pop("__asgi_channel__")
        return channel, message

    async def _pop(self, index: int, channel_key: str) -> bytes | None:
        """The oldest message on ``channel_key``, waiting up to ``brpop_timeout``; None if none came.

        Between the pop and the return there is no await: a message the script popped is either
        returned or, if the caller was cancelled first, still in the backup for the next pop.
        """
        connection = self.connection(index)
        mode = "restore" if channel_key in self._undelivered else "drop"
        self._undelivered.add(channel_key)
        backup_key = self._backup_channel_name(channel_key)
        content = await _POP_SCRIPT(keys=[channel_key, backup_key], args=[mode, int(self.expiry)], client=connection)
        self._undelivered.discard(channel_key)
        if content is not None:
            return content
        result = await connection.bzpopmin(channel_key, timeout=self.brpop_timeout)
        return result[1] if result is not None else None
