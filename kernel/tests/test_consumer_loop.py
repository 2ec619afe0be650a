"""The consumer's receive loop (kernel/consumer_loop.py) dispatches as Channels' does.

When the first test fails after an upgrade of channels, compare ``AsyncConsumer.__call__`` and
``await_many_dispatch`` with ``OcppConsumer._consume`` and ``dispatched_from``, adapt, and record
the new fingerprints.
"""

from __future__ import annotations

import ast
import asyncio
import gc
import hashlib
import importlib.util
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest
from channels.exceptions import StopConsumer
from channels.utils import await_many_dispatch

from kernel.consumer_loop import dispatched_from


def _function(module_name: str, path: tuple[str, ...]) -> str:
    spec = importlib.util.find_spec(module_name)
    assert spec is not None and spec.origin is not None
    body = ast.parse(Path(spec.origin).read_text()).body
    for name in path:
        node = next(n for n in body if isinstance(n, ast.ClassDef | ast.AsyncFunctionDef) and n.name == name)
        body = node.body
    return ast.unparse(node)


@pytest.mark.parametrize(
    ("module_name", "path", "fingerprint"),
    [
        ("channels.consumer", ("AsyncConsumer", "__call__"), "99e9c2fe2ef0a26c"),
        ("channels.utils", ("await_many_dispatch",), "8c0069043e4121d2"),
    ],
)
def test_the_channels_code_the_loop_replaces_is_unchanged(module_name, path, fingerprint):
    source = _function(module_name, path)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == fingerprint, f"{module_name}.{'.'.join(path)} changed"


class _Source:
    """Messages put in by the test, received one future at a time (as daphne's input queue): a
    cancelled future took none (``cancel_safe``)."""

    cancel_safe = True

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[object]] = []
        self.ready: list[object] = []

    def put(self, message: object) -> None:
        waiting = [f for f in self.futures if not f.done()]
        if waiting:
            waiting[0].set_result(message)
        else:
            self.ready.append(message)

    def __call__(self) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.ready:
            future.set_result(self.ready.pop(0))
        self.futures.append(future)
        return future


# Each behaviour is checked on Channels' own loop too: the two must agree.
LOOPS = pytest.mark.parametrize("loop_of", [dispatched_from, await_many_dispatch], ids=["ours", "channels"])


@LOOPS
async def test_messages_of_both_sources_are_dispatched_one_at_a_time_the_earlier_source_first(loop_of):
    socket, layer = _Source(), _Source()
    dispatched: list[object] = []

    async def dispatch(message: object) -> None:
        dispatched.append(message)
        await asyncio.sleep(0)
        if message == "stop":
            raise StopConsumer

    loop = asyncio.create_task(loop_of([socket, layer], dispatch))
    await asyncio.sleep(0)
    layer.put("command")
    socket.put("frame 1")
    await asyncio.sleep(0.01)
    socket.put("frame 2")
    socket.put("frame 3")
    layer.put("stop")
    with pytest.raises(StopConsumer):
        await loop
    assert dispatched == ["frame 1", "command", "frame 2", "stop"]  # both ready: the socket first
    assert all(future.done() for future in socket.futures + layer.futures)


@LOOPS
async def test_cancelling_the_loop_cancels_the_receives_still_waiting(loop_of):
    socket, layer = _Source(), _Source()
    dispatched: list[object] = []

    async def dispatch(message: object) -> None:
        dispatched.append(message)

    loop = asyncio.create_task(loop_of([socket, layer], dispatch))
    await asyncio.sleep(0)
    socket.put("frame")
    await asyncio.sleep(0.01)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert dispatched == ["frame"]
    assert socket.futures[-1].cancelled() and layer.futures[-1].cancelled()


async def test_a_socket_message_is_dispatched_in_the_loop_s_next_turn():
    """The socket's receive is awaited itself: no callback and second future between its message
    and the dispatch (the loop before took two turns)."""
    socket, layer = _Source(), _Source()
    dispatched: list[object] = []

    async def dispatch(message: object) -> None:
        dispatched.append(message)

    loop = asyncio.create_task(dispatched_from([socket, layer], dispatch))
    await asyncio.sleep(0)
    for n in range(3):
        socket.put(f"frame {n}")
        await asyncio.sleep(0)
        assert dispatched == [f"frame {i}" for i in range(n + 1)]
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_channel_message_interrupts_the_wait_and_the_socket_loses_nothing():
    """A command wakes the loop from its wait on daphne's input queue; the receive it cancelled
    takes no event, so the frames after it are all dispatched, in order."""
    from kernel.daphne_server import InputQueue

    socket, layer = InputQueue(), _Source()
    dispatched: list[object] = []

    async def dispatch(message: object) -> None:
        dispatched.append(message)

    loop = asyncio.create_task(dispatched_from([socket.get, layer], dispatch))
    await asyncio.sleep(0)
    layer.put("command 1")
    await asyncio.sleep(0.01)
    socket.put_nowait("frame 1")
    layer.put("command 2")
    socket.put_nowait("frame 2")
    await _until(lambda: len(dispatched) == 4)
    assert dispatched == ["command 1", "frame 1", "command 2", "frame 2"]
    assert not socket._events
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_coroutine_receive_is_never_cancelled_by_a_channel_message():
    """Another server's receive (a coroutine, which may lose its message when cancelled) is
    awaited through a shield: a command meanwhile leaves it running, and its frame is dispatched."""
    frames: asyncio.Queue[object] = asyncio.Queue()
    layer = _Source()
    started: list[int] = []
    dispatched: list[object] = []

    async def receive() -> object:  # loses its message when cancelled after taking it
        started.append(1)
        message = await frames.get()
        await asyncio.sleep(0.005)
        return message

    async def dispatch(message: object) -> None:
        dispatched.append(message)

    loop = asyncio.create_task(dispatched_from([receive, layer], dispatch))
    await asyncio.sleep(0)
    frames.put_nowait("frame 1")
    await asyncio.sleep(0)
    layer.put("command")  # while receive holds "frame 1"
    await _until(lambda: len(dispatched) == 2)
    assert dispatched == ["command", "frame 1"]
    assert len(started) == 2  # the first receive was not started again: it ran to its end
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def test_a_future_receive_not_marked_cancel_safe_is_never_cancelled_by_a_channel_message():
    """granian's receive returns a future that has taken its frame once it is done; cancelling it
    loses that frame (review: 15,868 of 20,000 frames dispatched). Only a receive marked
    ``cancel_safe`` (daphne's input queue) is cancelled; this one is shielded and its frame kept."""
    loop_ = asyncio.get_running_loop()
    pending: list[asyncio.Future[object]] = []
    lost: list[object] = []
    dispatched: list[object] = []

    def receive() -> asyncio.Future[object]:
        future: asyncio.Future[object] = loop_.create_future()
        pending.append(future)
        return future

    def frame_arrives(frame: object) -> None:  # the server has read it: cancelling now loses it
        future = pending.pop(0)
        future.add_done_callback(lambda f: lost.append(frame) if f.cancelled() else None)
        loop_.call_later(0.002, _result_unless_done, future, frame)  # still being read

    async def dispatch(message: object) -> None:
        dispatched.append(message)

    layer = _Source()
    loop = asyncio.create_task(dispatched_from([receive, layer], dispatch))
    await asyncio.sleep(0)
    frame_arrives("frame 1")
    layer.put("command")  # interrupts while the frame is on its way
    await _until(lambda: len(dispatched) == 2 or bool(lost))
    assert (dispatched, lost) == (["command", "frame 1"], [])
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop


async def _until(condition: Callable[[], bool]) -> None:
    """Until ``condition()`` holds, for at most about 2 s: a loaded machine runs timers late, so a
    fixed sleep may end before the loop under test has dispatched what it will."""
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.001)


def _result_unless_done(future: asyncio.Future[object], result: object) -> None:
    if not future.done():
        future.set_result(result)


def test_daphne_s_input_queue_is_cancel_safe_and_drops_getters_cancelled_meanwhile():
    from kernel.daphne_server import InputQueue

    async def interrupted_often() -> int:
        queue = InputQueue()
        for _ in range(1000):
            queue.get().cancel()
        queue.get()
        return len(queue._getters)

    assert getattr(InputQueue().get, "cancel_safe", False)
    assert asyncio.run(interrupted_often()) == 1


class _Frame:
    """A message the test can watch the end of (a weak reference)."""


async def test_a_dispatched_message_is_not_kept_while_the_loop_waits_for_the_next():
    """An idle connection's loop holds neither source's last message: a frame (a configuration
    answer is ~1 KB) stays in memory only while it is dispatched."""
    from kernel.daphne_server import InputQueue

    socket, layer = InputQueue(), InputQueue()

    async def dispatch(message: object) -> None:
        pass

    loop = asyncio.create_task(dispatched_from([socket.get, layer.get], dispatch))
    await asyncio.sleep(0)
    frame, command = _Frame(), _Frame()
    frame_gone, command_gone = weakref.ref(frame), weakref.ref(command)
    socket.put_nowait(frame)
    layer.put_nowait(command)
    del frame, command
    await asyncio.sleep(0.01)
    gc.collect()
    assert (frame_gone(), command_gone()) == (None, None)
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
