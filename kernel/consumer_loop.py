"""A consumer's receive loop: Channels' ``await_many_dispatch`` without ``asyncio.wait`` per message.

Channels (pinned: channels==4.3.2) waits for a consumer's next message from the socket or the
channel layer with ``asyncio.wait``: for every frame a set of both pending futures, a done callback
added to each and removed again, and sets of done and pending ones built; a few per cent of the event
loop's CPU per OCPP message. ``dispatched_from`` awaits the first source's (the socket's) receive
itself, so a frame wakes the consumer in one turn of the loop, with no callback or future of its own;
the other sources' receives (the channel layer's, which stay pending across many frames) each have a
done callback that interrupts that wait by cancelling what it awaits. A first source marked
``cancel_safe`` (daphne's input queue, ``kernel.daphne_server.InputQueue.get``) takes no message when
its future is cancelled: it is asked again. Any other receive (another server's, a coroutine or a
future such as granian's, whose cancellation may lose a message it holds) is awaited through
``asyncio.shield``, never cancelled by an interrupt, and awaited again. Same order: when both are
ready, the earlier source is dispatched first, as in Channels.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


def cancel_safe(receive: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``receive`` as one whose future, cancelled, took no message: ``dispatched_from`` may
    cancel it to serve another source, where it shields any other."""
    receive.cancel_safe = True  # type: ignore[attr-defined]
    return receive


async def dispatched_from(
    sources: Sequence[Callable[[], Awaitable[Any]]], dispatch: Callable[[Any], Awaitable[Any]]
) -> None:
    """Await each of ``sources``' next message and ``dispatch`` it, one at a time, until one raises
    (``StopConsumer`` included) or this is cancelled; then the receives still waiting are cancelled."""
    task = asyncio.current_task()
    assert task is not None
    first, others = sources[0], sources[1:]
    shielded = not getattr(first, "cancel_safe", False)  # its cancellation may lose what it holds
    awaited: list[asyncio.Future[Any]] = []  # the first source's receive, while this loop awaits it

    def interrupt(_: asyncio.Future[Any]) -> None:
        if awaited:
            awaited[0].cancel()  # no-op once it is done: its message is dispatched first

    def received(source: Callable[[], Awaitable[Any]]) -> asyncio.Future[Any]:
        future = asyncio.ensure_future(source())
        future.add_done_callback(interrupt)
        return future

    receives = [asyncio.ensure_future(first()), *(received(source) for source in others)]
    try:
        while True:
            if not receives[0].done():
                for future in receives[1:]:
                    if future.done():
                        break
                else:
                    await _interruptible(asyncio.shield(receives[0]) if shielded else receives[0], awaited, task)
            if receives[0].cancelled():  # interrupted by another source's message: it took none
                receives[0] = asyncio.ensure_future(first())
            elif receives[0].done():
                # No name here keeps a dispatched message: an idle connection would hold its last
                # frame (a configuration answer, ~1 KB) while it waits for the next.
                await dispatch(receives[0].result())
                receives[0] = asyncio.ensure_future(first())
            for i, future in enumerate(receives[1:], start=1):
                if future.done():
                    await dispatch(future.result())
                    receives[i] = received(others[i - 1])
    finally:
        for future in receives:
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await future


async def _interruptible(
    future: asyncio.Future[Any], awaited: list[asyncio.Future[Any]], task: asyncio.Task[Any]
) -> None:
    """Await ``future`` until it is done, or cancelled by another source's ``interrupt``; a
    cancellation of ``task`` itself is raised."""
    awaited.append(future)
    try:
        await future
    except asyncio.CancelledError:
        if task.cancelling() or not future.cancelled():
            raise
    finally:
        awaited.clear()
