"""daphne's per-connection input queue, made small (pinned: daphne==4.2.3).

daphne gives every connection's application an ``asyncio.Queue`` for the events it receives
(``websocket.receive``, ``websocket.disconnect``, ...): four deques of 64 slots each, about
3.2 KB, held as long as the socket is open. Channels then waits on its ``get()`` through a task
of its own (``channels.utils.await_many_dispatch``), about 1 KB more. ``InputQueue`` holds the
same events in two lists and its ``get()`` returns a future, which Channels awaits without a
task: about 0.3 KB for an idle charger's connection.

daphne builds the queue in ``Server.create_application``; ``daphne_input_queue_install`` (called
by ``csms.asgi``, which daphne imports before it builds its server) makes daphne's command line
build a ``Server`` whose ``create_application`` is daphne's with this queue. Nothing else of
daphne changes. kernel/tests/test_daphne_server.py checks that daphne's method is still the one
copied here: after an upgrade that changes it, compare, adapt ``_create_application``, move the pin.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any


class InputQueue:
    """An unbounded FIFO of events with the part of ``asyncio.Queue`` daphne and its callers use:
    ``put_nowait`` (daphne), ``get`` (the application's ``receive``).

    ``get()`` returns a future of the next event; a cancelled one takes none. As with a task
    awaiting ``asyncio.Queue.get``, an event already handed to a future is the awaiting task's,
    even if that task is cancelled before it runs again.
    """

    __slots__ = ("_events", "_getters")

    def __init__(self) -> None:
        self._events: list[Any] = []
        self._getters: list[asyncio.Future[Any]] = []

    def put_nowait(self, event: Any) -> None:
        self._events.append(event)
        self._hand_over()

    def get(self) -> asyncio.Future[Any]:
        getter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        self._hand_over()
        return getter

    def _hand_over(self) -> None:
        while self._events and self._getters:
            getter = self._getters.pop(0)
            if not getter.done():  # else cancelled: its caller gave up
                getter.set_result(self._events.pop(0))


def _create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> InputQueue | None:
    """daphne 4.2.3's ``Server.create_application`` with an ``InputQueue`` for the ``asyncio.Queue``."""
    assert "application_instance" not in self.connections[protocol]
    input_queue = InputQueue()
    scope.setdefault("asgi", {"version": "3.0"})
    application_instance = self.application(
        scope=scope,
        receive=input_queue.get,
        send=partial(self.handle_reply, protocol),
    )
    if protocol not in self.connections:
        return None
    self.connections[protocol]["application_instance"] = asyncio.ensure_future(
        application_instance,
        loop=asyncio.get_event_loop(),
    )
    return input_queue


def daphne_input_queue_install() -> None:
    """Make the servers daphne's command line builds give each connection an ``InputQueue``."""
    from daphne import cli, server

    class Server(server.Server):
        create_application = _create_application

    cli.CommandLineInterface.server_class = Server
