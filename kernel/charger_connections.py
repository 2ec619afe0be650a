"""Reaching the consumer that holds a charger's socket, from any process."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


class MessageNotSent(Exception):
    """A channel-layer message that did not reach its channel: ``error`` says why (``ChannelFull``, the
    layer unreachable, a message that cannot be serialised). Raised where the sender saw nothing go
    out: what fails after a send is not this."""

    def __init__(self, error: Exception) -> None:
        super().__init__(repr(error))
        self.error = error


async def connection_close(*, channel_name: str, reason: str) -> None:
    """Ask the consumer behind ``channel_name`` to close its socket.

    Sent past the channel's capacity where the layer can (the Redis layer's ``send_past_capacity``):
    a consumer's channel shares its capacity with every other connection of its process, and in a
    reconnect storm the closes of replaced connections alone filled it (``ChannelFull``), leaving
    the older socket open. The in-memory layer's channels are per connection: a plain send.
    """
    layer = get_channel_layer()
    send = getattr(layer, "send_past_capacity", layer.send)
    await send(channel_name, {"type": "ocpp.close", "reason": reason})


def connection_close_sync(*, channel_name: str, reason: str) -> None:
    async_to_sync(connection_close)(channel_name=channel_name, reason=reason)


async def configuration_read_owed_tell(*, channel_name: str) -> None:
    """Tell the consumer behind ``channel_name`` that its charger's configuration read is owed
    (``configuration.changes.configuration_read_owed_set``): it reads it after the next message.
    Sent past the channel's capacity where the layer can, as a close is."""
    layer = get_channel_layer()
    send = getattr(layer, "send_past_capacity", layer.send)
    await send(channel_name, {"type": "ocpp.configuration_read_owed"})


def configuration_read_owed_tell_sync(*, channel_name: str) -> None:
    async_to_sync(configuration_read_owed_tell)(channel_name=channel_name)
