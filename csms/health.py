"""Readiness: can this process reach what it needs to serve (database, channel layer, broker)?"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection

from csms.celery import app as celery_app

# Each dependency gets this long, seconds; they are checked side by side.
CHECK_TIMEOUT = 3.0


def _database_check() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()


async def _channel_layer_check() -> None:
    """A message to a fresh channel of this process comes back."""
    layer = get_channel_layer()
    # The process's own prefix: channels-redis receives one process-specific prefix at a time, so a
    # channel of another prefix would wait behind the consumers' receive and never be read.
    channel = await layer.new_channel()
    nonce = uuid.uuid4().hex
    await layer.send(channel, {"type": "readyz", "nonce": nonce})
    message = await layer.receive(channel)
    if message.get("nonce") != nonce:
        raise RuntimeError("the channel layer returned another message")


def _broker_check() -> None:
    with celery_app.connection_for_write(connect_timeout=CHECK_TIMEOUT) as broker:
        broker.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)  # type: ignore[arg-type]  # kombu takes float seconds


async def _outcome(check: Awaitable[None]) -> str:
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT)
    except TimeoutError:
        return f"unreachable: no answer within {CHECK_TIMEOUT:g} s"
    except Exception as error:
        return f"unreachable: {type(error).__name__}: {error}"[:300]
    return "ok"


async def readiness() -> dict[str, str]:
    """``{"database": "ok" | "unreachable: ...", "channel_layer": ..., "broker": ...}``."""
    checks = {
        "database": sync_to_async(_database_check, thread_sensitive=False)(),
        "channel_layer": _channel_layer_check(),
        "broker": sync_to_async(_broker_check, thread_sensitive=False)(),
    }
    outcomes = await asyncio.gather(*(_outcome(check) for check in checks.values()))
    return dict(zip(checks, outcomes, strict=True))
