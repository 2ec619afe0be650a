"""redis-py clients that keep a connection of their pool between uses (issue 15).

redis-py takes a connection from its pool and gives it back for every command: a lock each way,
a poll of the socket for unread data and its metrics' bookkeeping, about as much CPU as the
command's own sending and parsing (an API process spent more on it per command POST than on the
throttle's script itself). A ``HeldClients`` lends a client that holds one connection of the pool
(``single_connection_client``) for one use, then keeps it for the next: the pool's work is done
once per client, not per command. Clients are made when none is free, so as many are held as uses
ran at once, of which at most ``idle_most`` stay held between uses (the others give their
connection back to the pool). A held connection is checked as the pool checks the one it lends (one
that Redis closed connects again), and a use that ends in an error drops its client.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis import Redis, RedisError

IDLE_MOST = 8


class HeldClients:
    """Clients of ``pool`` (a redis-py synchronous pool) that keep their connection between uses."""

    def __init__(self, pool: Any, idle_most: int = IDLE_MOST) -> None:
        self.pool = pool
        self.idle_most = idle_most
        self._idle: list[Redis] = []  # list.pop and list.append are atomic: no lock

    @contextmanager
    def client(self) -> Iterator[Redis]:
        """A client for this thread alone until the block ends; made on the pool if none is free
        (which may raise redis-py's errors, e.g. ``ConnectionError``, as a command would)."""
        try:
            client = self._idle.pop()
        except IndexError:
            client = Redis(connection_pool=self.pool, single_connection_client=True)
        else:
            _unready_dropped(client)
        try:
            yield client
        except BaseException:
            # A command may have been cut off between its request and its answer: the answer must
            # not be read as the next command's. redis-py drops a connection a command of its
            # failed on; anything else (the caller's own error) drops it here too.
            if client.connection is not None:
                client.connection.disconnect()
            client.close()
            raise
        if len(self._idle) < self.idle_most:
            self._idle.append(client)
        else:
            client.close()  # its connection back to the pool


def _unready_dropped(client: Redis) -> None:
    """Disconnect a held client's connection that has something to read (closed by Redis, which
    restarted, or an answer left unread), as the pool checks the connection it lends: the client's
    next command connects again instead of failing or reading that answer."""
    connection = client.connection
    if connection is None:
        return
    try:
        unready = connection.can_read()
    except (RedisError, OSError):  # a connection error of redis-py or of the socket
        unready = True
    if unready:
        connection.disconnect()
