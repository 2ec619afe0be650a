"""A consumer's receive loop: Channels' ``await_many_dispatch`` without ``asyncio.wait`` per message.

Channels (pinned: channels==4.3.2) waits for a consumer's next message from the socket or the
channel layer with ``asyncio.wait``: for every frame a set of both pending futures, a done callback
added to each and removed again, and sets of done and pending ones built; a few per cent of the event
loop's CPU per OCPP message. ``dispatched_from`` registers one callback per receive (the channel
layer's stays registered across many frames) and waits on one future only when nothing is ready.
Same order: when both are ready, the earlier source is dispatched first, as in Channels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


async def dispatched_from(
    sources: Sequence[Callable[[], Awaitable[Any]]], dispatch: Callable[[Any], Awaitable[Any]]
) -> None:
    """Await each of ``sources``' next message and ``dispatch`` it, one at a time, until one raises
    (``StopConsumer`` included) or this is cancelled; then the receives still waiting are cancelled."""
    loop = asyncio.get_running_loop()
    waking: list[asyncio.Future[None]] = []

    def woken(_: asyncio.Future[Any]) -> None:
        if waking and not waking[0].done():
            waking[0].set_result(None)

    def received(source: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(source())
        future.add_done_callback(woken)
        return future

    receives = [received(source) for source in sources]
    try:
        while True:
            if not any(future.done() for future in receives):
                waking.append(loop.create_future())
                try:
                    await waking[0]
                finally:
                    waking.clear()
            for i, future in enumerate(receives):
                if future.done():
                    message = future.result()
                    await dispatch(message)
                    receives[i] = received(sources[i])
    finally:
        for future in receives:
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await future
