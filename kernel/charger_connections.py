"""Reaching the consumer that holds a charger's socket, from any process."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


async def connection_close(*, channel_name: str, reason: str) -> None:
    """Ask the consumer behind ``channel_name`` to close its socket."""
    await get_channel_layer().send(channel_name, {"type": "ocpp.close", "reason": reason})


def connection_close_sync(*, channel_name: str, reason: str) -> None:
    async_to_sync(connection_close)(channel_name=channel_name, reason=reason)
