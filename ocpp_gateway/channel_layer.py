"""The Redis channel layer with a connection pool that makes a burst wait instead of failing.

channels-redis builds redis-py's ``ConnectionPool``, which raises "Too many connections" once
``max_connections`` (default 100) are in use: 2,000 chargers connecting at once crawl with
hundreds of errors. ``BlockingConnectionPool`` queues the extra callers for up to ``timeout``
seconds instead. Its settings come from the host dict (``max_connections``, ``timeout``).
"""

from __future__ import annotations

from typing import Any

from channels_redis.core import RedisChannelLayer
from redis.asyncio import BlockingConnectionPool


class BlockingPoolRedisChannelLayer(RedisChannelLayer):
    def create_pool(self, index: int) -> Any:
        host = dict(self.hosts[index])
        return BlockingConnectionPool.from_url(host.pop("address"), **host)
