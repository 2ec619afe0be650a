"""Reaching the consumer that holds a charger's socket, from any process."""

from __future__ import annotations

import asyncio
import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from kernel.event_loops import served_loop

logger = logging.getLogger(__name__)


class MessageNotSent(Exception):
    """A channel-layer message that did not reach its channel: ``error`` says why (``ChannelFull``, the
    layer unreachable, a message that cannot be serialised). Raised where the sender saw nothing go
    out: what fails after a send is not this."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


async def connection_close(*, channel_name: str, reason: str, replaced_by: str = "") -> None:
    """Ask the consumer behind ``channel_name`` to close its socket; ``replaced_by``: the channel of
    the charger's newer connection, to which the commands queued there unsent are handed.

    Sent past the channel's capacity where the layer can (the Redis layer's ``send_past_capacity``):
    a consumer's channel shares its capacity with every other connection of its process, and in a
    reconnect storm the closes of replaced connections alone filled it (``ChannelFull``), leaving
    the older socket open. The in-memory layer's channels are per connection: a plain send.
    """
    layer = get_channel_layer()
    send = getattr(layer, "send_past_capacity", layer.send)
    message = {"type": "ocpp.close", "reason": reason}
    if replaced_by:
        message["replaced_by"] = replaced_by
    await send(channel_name, message)


def connection_close_sync(*, channel_name: str, reason: str) -> None:
    async_to_sync(connection_close)(channel_name=channel_name, reason=reason)


async def configuration_read_owed_tell(*, channel_name: str) -> None:
    """Tell the consumer behind ``channel_name`` that its charger's configuration read is owed
    (``configuration.changes.configuration_read_owed_set``): it reads it after the next message.
    Sent past the channel's capacity where the layer can, as a close is."""
    layer = get_channel_layer()
    send = getattr(layer, "send_past_capacity", layer.send)
    await send(channel_name, {"type": "ocpp.configuration_read_owed"})


_telling: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps weak ones)


def configuration_read_owed_told(*, channel_name: str) -> None:
    """``configuration_read_owed_tell`` from a sync thread: handed to the event loop the thread
    serves (a commit batch's: ``kernel.event_loops``), not waited for; a failure is logged. Outside
    a gateway process (no loop served), sent and waited for here."""
    loop = served_loop()
    if loop is None:
        async_to_sync(configuration_read_owed_tell)(channel_name=channel_name)
        return
    loop.call_soon_threadsafe(_tell_started, channel_name)


def _tell_started(channel_name: str) -> None:
    task = asyncio.get_running_loop().create_task(configuration_read_owed_tell(channel_name=channel_name))
    _telling.add(task)
    task.add_done_callback(_tell_done)


def _tell_done(task: asyncio.Task[None]) -> None:
    _telling.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.warning("could not tell a connection its configuration read is owed: %r", task.exception())
