"""daphne, fitted for a fleet of chargers (pinned: daphne==4.2.3, autobahn==26.11.1).

**A small per-connection input queue.** daphne gives every connection's application an
``asyncio.Queue`` for the events it receives (``websocket.receive``, ``websocket.disconnect``,
...): four deques of 64 slots each, about 3.2 KB, held as long as the socket is open. Channels
then waits on its ``get()`` through a task of its own (``channels.utils.await_many_dispatch``),
about 1 KB more. ``InputQueue`` holds its waiting getter in a list and events only while they
wait, and its ``get()`` returns a future, which the consumer awaits without a task: about 0.3 KB
for an idle charger's connection.

**Handshakes beyond the process's cap answered early** (``CSMS_MAX_HANDSHAKES_IN_FLIGHT``). The
server counts the WebSocket handshakes it has handed to the application and not yet seen end: the
application accepted or closed, or its instance finished. A socket dropped meanwhile (daphne's
connect timeout) still counts while the consumer works on it, so the consumer's own process-wide
check never refuses what daphne admitted. An upgrade request beyond the cap is answered
``503 Service Unavailable`` with a ``Retry-After`` by daphne's HTTP layer before the upgrade: no
WebSocket protocol, application instance or consumer is made for it, and the answer is written
straight to the socket. (The consumer's per-address limit, ``CSMS_MAX_HANDSHAKES_PER_IP``, answers
``503`` with a jittered ``Retry-After`` too, through ``TRY_AGAIN_LATER_CODE``.) The refused are
given turns: each refusal takes the first second, once the handshakes in progress are taken at
the rate the process has been accepting handshakes (measured over the last seconds; at least 1 s
and at most half ``CSMS_HANDSHAKE_RETRY_AFTER`` away), that has fewer turns told than it holds at
half again that rate, and its ``Retry-After`` is the time to that second (at most
``RETRY_AFTER_CAP`` times the setting), so chargers that honour it come back about as fast as
they can be taken (a little faster: one that finds the gate full is told a later turn) instead of
all within 5-15 s to be refused again. While nothing has been
accepted for a few seconds there is no rate to pace by: the setting, jittered over [N/2, 3N/2].

**An upgrade request parsed once.** daphne hands an upgrade to autobahn only after Twisted's HTTP
channel has parsed it into a ``Request`` (line by line, a ``Headers`` object, a deferred), and then
rebuilds its bytes for autobahn to parse again: about a sixth of a connect burst's event loop. A
first read that is, whole and alone, a plain ``GET`` upgrade to ``websocket`` (``upgrade_request``:
CRLF lines, token names, visible ASCII values, each header once, no body, within Twisted's header
size limit) goes straight to the gate and then to autobahn as it came; autobahn parses it (its own
strict parse) and answers it as before. Anything else (split over reads, a body, a repeated header,
obs-text, TLS, a channel that already read something) takes Twisted's and daphne's path unchanged.

**A handshake that outlives ``CSMS_HANDSHAKE_TIMEOUT`` is answered 503 too.** daphne's connect
timeout (``--websocket_connect_timeout``, 5 s) rejected a handshake its application had not accepted
in time with ``403 Access denied``, and autobahn's opening-handshake timeout (the same 5 s) dropped
the socket without any answer: a charger read an overloaded gateway as refused credentials, or as a
network failure to back off from. The server's connect timeout is ``CSMS_HANDSHAKE_TIMEOUT`` (7 s:
in a storm, handshakes admitted under the cap wait behind the process's batches, and one dropped
after 5 s was work thrown away; checked every 2 s, a late one is answered within 7 to 9 s, before
the 10 s many WebSocket clients wait for an answer), and a handshake past it is answered as a refused one
(``HandshakeGate.refuse_late``: ``503`` with its turn in ``Retry-After``). autobahn's timeout is set
past daphne's check (which runs every 2 s), a backstop for a handshake nobody checked. The consumer
meets the close as any abandoned handshake (its attach is skipped unless its batch started).

**No pretty-printed configuration per connection.** autobahn's ``_connectionMade`` copies the
factory's options onto each protocol and builds a ``pprint.pformat`` of them for a debug log line,
whether or not debug is logged (about 8 % of a reconnect storm's CPU). The options are copied here
first, so autobahn's loop has nothing left to list. The queue it makes for chopped or synchronous
writes, which daphne never makes, is a list (``SendQueue``) instead of a 0.75 KB ``deque``.

**A charger's socket is never closed for its age.** daphne closes every WebSocket
``--websocket_timeout`` seconds after it opened, 86,400 (a day) unless told otherwise: each charger,
however healthy, was disconnected once a day (``charge_point.offline`` then ``.online`` to webhook
subscribers, a command in flight lost, a session's messages queued on the charger meanwhile), and
the chargers of a reconnect storm all again together the next day. OCPP-J's connection is meant to
stay open (1.6 and 2.0.1 part 4: the charger keeps it and reconnects when it is lost); a dead one is
found by daphne's pings (``--ping-interval``, ``--ping-timeout``) and the offline sweep. daphne's
default (which its command line passes, having parsed it before the application, and so this module,
is imported) is taken for -1 here, never; any other ``--websocket_timeout`` still applies.

**No coloured debug text per frame.** autobahn's ``dataReceived`` and ``sendData`` pass
``hltype(...)`` and ``hlval(...)`` to ``log.debug`` for every frame, and those build their
coloured text (qualified names, ``click.style``) before the logger decides to drop the line: a
few per cent of the event loop's CPU per OCPP message. The names these modules call are made lazy
(``LazyText``): the same text, built only when a debug line is written.

**A frame written to the socket at once.** Twisted's TCP transport never writes in ``write``:
it appends to its buffer and registers the socket for writability (an ``epoll_ctl``), and the next
turn of the loop writes it and unregisters (another): about 15 % of the event loop's CPU per
answered message. ``write_at_once`` sends at once when nothing is waiting in the buffer, the
socket is plain TCP and open, and buffers only what the kernel did not take (or all of it after an
error, which Twisted's own write path then meets and handles as before). Same bytes, same order.

**An HTTP answer written whole, at once.** Twisted's channel writes an answer's status line and
headers with the transport's ``writeSequence``, which only buffers them and registers the socket
for writability, so the body's ``write`` buffered behind them and the answer waited for the loop's
next turn (and two ``epoll_ctl``s). What daphne's handling of an ``http.response.body`` message
writes (headers, body, a chunked answer's end) is gathered and written by one ``write``, which
``write_at_once`` sends at once: the same bytes in the same order. An answer that closes its
connection (HTTP/1.0, ``Connection: close``) is buffered for Twisted's close as before; TLS is
left alone.

**An OCPP message's frames read and written plainly** (``kernel.websocket_frames``): a read of
whole text frames goes to daphne's ``onMessage`` without autobahn's frame state machine, and a text
message the application sends is written as one frame without daphne's and autobahn's four layers;
anything else is autobahn's as before.

**Fragments and control frames within a budget** (``_side_frames_budgeted``). The message rate
(``CSMS_MAX_FRAMES_PER_SECOND``, the router's) counts whole messages and daphne's size limit their
bytes: a message begun and never ended, then empty continuation frames without end, or a stream of
pings, each answered with a pong, cost the event loop a few µs a frame and no limit held them. The
frames that are not a whole message (a fragment, a ping, a pong) have a budget per connection of
``SIDE_FRAMES_FACTOR`` times the message rate and burst; past it the connection is closed with
``1008`` (policy violation) and a log line.

**Compression offers declined unread** (``_compression_offers_declined``). daphne accepts no
permessage-deflate; autobahn still read every offer, and answered ``400`` one with a parameter it
does not take (``server_max_window_bits=8``, an unknown one) once the application had accepted the
charger. A server that takes no compression declines such an offer and goes on (RFC 7692 §5).

**No access line formatted for a log that goes nowhere.** Twisted's ``HTTPFactory.log`` formats a
combined-log line for every HTTP request (an API call) and writes it to Twisted's log, besides
daphne's own access log. At daphne's default verbosity (1) Twisted's log goes nowhere (daphne
begins it with a discarding observer): the line was built and dropped, about 1 % of an API
process's CPU per command. It is now built only at verbosity 2 and above, where daphne hands
Twisted's log to Python's logging (``daphne.server``) and the line is written as before.

**A text message written at once.** A WebSocket application's scope offers the extension
``TEXT_AT_ONCE``: a function that writes a text message as that frame, synchronously, where
daphne's ``handle_reply`` of a ``websocket.send`` would write it plainly (and returns False,
writing nothing, anywhere else: the application then sends it as usual). The consumer's answer
skips ``send``'s coroutine, the event dict and daphne's ``handle_reply`` coroutine per frame.

**Reads without a log context.** The asyncio reactor calls every socket's read and write through
Twisted's ``log.callWithLogger``, which copies Twisted's log context and pushes ``{"system": ...}``
for the call; only Twisted's own log lines read it, and below verbosity 2 (the default) daphne
sends Twisted's log nowhere. Such a server registers its sockets with ``_called_with_logger``
(the same call and failure logging, no context) before it listens.

**Timeouts checked where they can be due.** daphne's ``Server.timeout_checker`` calls every
connection's ``check_timeouts`` every 2 s (the connect timeout of a handshake, the
``websocket_timeout``, and a ping to a connection silent for ``ping_interval``): at 5,000 connections
a process, 5,000 checks a tick, of which a ping is due for about one in ten, a handshake's timeout for
a few. ``timeouts_checked`` keeps each connection in a heap under the earliest time any of those
could be due (``_earliest_due``: its last ping or message plus the ping interval, its opening plus
the timeouts that apply; a lower bound, since a message only moves the ping later) and, every 2 s
as daphne, calls ``check_timeouts`` only of the connections whose time has come, then files them
again under their new one. A connection whose check would act is always among them; one whose
check would do nothing is not looked at. Any other protocol (daphne's HTTP requests) is checked
every tick, as before.

**A stop lets chargers go with their answers and a close frame.** On SIGTERM daphne cancelled every
application at once and the reactor dropped the sockets: a message whose batch was being written was
committed but never answered (the charger sends it again), and chargers saw their TCP connection
vanish without a WebSocket close frame (1006). Now, before daphne cancels anything, the server stops
listening and puts a ``csms.going_away`` event (``GOING_AWAY``) in every open WebSocket
connection's input queue, behind the frames already read: the application answers those, then
closes the socket with ``1001 Going Away`` (RFC 6455 7.4.1, "a server going down"; written by
``handle_reply``, autobahn's ``sendClose`` takes no code below 3000 but 1000) and records the
disconnect as for any close. What is still running after ``GOING_AWAY_SECONDS`` is cancelled as
daphne did. An application served here that accepts WebSocket connections handles that event.

daphne builds the queue in ``Server.create_application``; ``daphne_server_install`` (called by
``csms.asgi``, which daphne imports before it builds its server) makes daphne's command line build
a ``Server`` with the changes above. kernel/tests/test_daphne_server.py checks that the parts
of daphne and autobahn these rely on are still the ones read here: after an upgrade that changes
them, compare, adapt, move the pins.
"""

from __future__ import annotations

import asyncio
import heapq
import importlib
import itertools
import json
import logging
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Container
from concurrent.futures import CancelledError
from functools import partial, wraps
from typing import Any

from autobahn.exception import Disconnected
from django.conf import settings
from twisted.internet import defer
from twisted.python import log as twisted_log

from kernel.api_errors import error_body
from kernel.consumer_loop import cancel_safe
from kernel.request_bodies import request_bodies_bounded
from kernel.request_heads import head_deadline_started, head_deadline_stopped, request_heads_timed
from kernel.websocket_frames import text_frame_sent, text_frames_delivered

logger = logging.getLogger(__name__)


class SocketClosed(OSError):
    """A ``websocket.send`` on a socket that closed before daphne heard of it (the peer left while
    its answer was on the way): the ASGI server's ``OSError`` for a send on a closed connection,
    in place of autobahn's ``Disconnected``."""


# What a connection's frames waiting for its application may hold before its socket's reads are paused
# (``InputQueue``), and what they must be down to for reads to go on, in bytes (text, and an event's
# own: a tiny frame is not free either).
INPUT_HELD_MAX = 1024 * 1024
INPUT_RESUMED_AT = INPUT_HELD_MAX // 2
_EVENT_BYTES = 256


class InputQueue:
    """An unbounded FIFO of events with the part of ``asyncio.Queue`` daphne and its callers use:
    ``put_nowait`` (daphne), ``get`` (the application's ``receive``).

    ``get()`` returns a future of the next event; a cancelled one takes none. As with a task
    awaiting ``asyncio.Queue.get``, an event already handed to a future is the awaiting task's,
    even if that task is cancelled before it runs again.

    An idle connection's queue holds one waiting getter in a list and no event store: an event put
    while a getter waits goes to it directly, and the deque of events waiting for a get exists only
    while some do (a deque is about 0.75 KB even empty: two of them were 1.5 KB per connection).

    Given its connection's ``protocol``, the frames waiting hold at most about ``INPUT_HELD_MAX``:
    past it the socket's reads are paused (TCP's flow control holds the charger's next frames, on
    its side) until the application has taken them down to ``INPUT_RESUMED_AT``. A charger sending
    without waiting while its frames wait (on the database, a row lock) had the process keep all of
    them: 300 frames of 60 KB, 17 MB, and as much more as it sent. Nothing is refused or lost.
    """

    __slots__ = ("_events", "_getters", "_held", "_paused", "_protocol")

    def __init__(self, protocol: Any = None) -> None:
        self._events: deque[Any] | None = None  # events no getter waited for, oldest first
        self._getters: list[asyncio.Future[Any]] = []  # waiting or cancelled, oldest first
        self._protocol = protocol  # whose transport's reads are paused (None: never)
        self._held = 0  # bytes of the events waiting (``_event_bytes``)
        self._paused = False

    def put_nowait(self, event: Any) -> None:
        if self._events is None:
            if self._handed_over(event):
                return
            self._events = deque()
        self._events.append(event)
        if self._protocol is not None:
            self._held += _event_bytes(event)
            if self._held > INPUT_HELD_MAX and not self._paused:
                self._reading_paused(True)

    @cancel_safe
    def get(self) -> asyncio.Future[Any]:
        getter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._events is None:
            while self._getters and self._getters[0].done():  # cancelled while nothing came (a quiet socket)
                del self._getters[0]
            self._getters.append(getter)
        else:  # no getter waits while events do
            event = self._events.popleft()
            getter.set_result(event)
            if not self._events:
                self._events = None
            if self._protocol is not None:
                self._held = self._held - _event_bytes(event) if self._events is not None else 0
                if self._paused and self._held <= INPUT_RESUMED_AT:
                    self._reading_paused(False)
        return getter

    def holds_events(self) -> bool:
        """Whether events wait for a ``get`` (a charger's frames queued behind the one handled)."""
        return self._events is not None

    def _handed_over(self, event: Any) -> bool:
        """Give ``event`` to the oldest getter still waiting; False when none is."""
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():  # else cancelled: its caller gave up
                getter.set_result(event)
                return True
        return False

    def _reading_paused(self, paused: bool) -> None:
        """Pause (or resume) the reads of the connection's socket: its transport's, or under TLS the
        transport under it (Twisted's TLS wrapper is no producer). Where neither can be paused, or
        pausing fails, the queue goes on unbounded, as daphne's own."""
        transport = getattr(self._protocol, "transport", None)
        while transport is not None and not hasattr(transport, "pauseProducing"):
            transport = getattr(transport, "transport", None)
        if transport is None:
            return
        self._paused = paused
        try:
            if paused:
                logger.info(
                    "%s: reads paused, %d bytes of frames wait to be handled",
                    getattr(self._protocol, "path", b"?").decode("latin-1")[:100],
                    self._held,
                )
                transport.pauseProducing()
            else:
                transport.resumeProducing()
        except Exception:
            logger.exception("could not %s a connection's reads", "pause" if paused else "resume")
            self._protocol, self._paused = None, False


def _event_bytes(event: Any) -> int:
    """What an event waiting in an ``InputQueue`` is counted as holding: a WebSocket frame's; an HTTP
    request's body, read whole before its application starts, never pauses reads."""
    if event.get("type") != "websocket.receive":
        return 0
    data = event.get("text") or event.get("bytes") or ""
    return len(data) + _EVENT_BYTES


def _create_application(self: Any, protocol: Any, scope: dict[str, Any]) -> InputQueue | None:
    """daphne 4.2.3's ``Server.create_application`` with an ``InputQueue`` for the ``asyncio.Queue``."""
    assert "application_instance" not in self.connections[protocol]
    input_queue = InputQueue(protocol)
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


_daphne_logger = logging.getLogger("daphne.server")  # the lines application_checked writes are daphne's


def application_checked(server: Any) -> None:
    """daphne 4.2.3's ``Server.application_checker`` (without its rescheduling), over the connections
    whose application ended or that disconnected (``server.ended``) instead of every connection
    (every second: about 5 % of a 10,000-charger connect's CPU, and of an idle fleet's). A connection
    is looked at again while it is left with work: disconnected, its application still running
    (cancelled past ``application_close_timeout``); or its application ended, the socket still open
    (looked at again once it disconnects)."""
    for protocol in list(server.ended):
        details = server.connections.get(protocol)
        if details is None or not _left_running(server, protocol, details):
            server.ended.discard(protocol)


def _left_running(server: Any, protocol: Any, details: dict[str, Any]) -> bool:
    """One connection's part of daphne's check; True when it is disconnected and its application
    still runs (to be looked at again)."""
    disconnected = details.get("disconnected")
    instance = details.get("application_instance")
    late = disconnected and time.time() - disconnected > server.application_close_timeout
    if late and instance and not instance.done():
        _daphne_logger.warning(
            "Application instance %r for connection %s took too long to shut down and was killed.",
            instance,
            repr(protocol),
        )
        instance.cancel()
    if instance and instance.done():
        _application_ended(server, protocol, instance, disconnected=bool(disconnected))
        del details["application_instance"]
        instance = None
    if not instance and disconnected:
        del server.connections[protocol]
    return bool(disconnected and instance)


def _application_ended(server: Any, protocol: Any, instance: asyncio.Future[Any], *, disconnected: bool) -> None:
    """What daphne does with an application instance that ended: its exception logged (and
    answered on a connection still open), a ``KeyboardInterrupt`` stops the server."""
    try:
        exception = instance.exception()
    except (CancelledError, asyncio.CancelledError):
        return
    if not exception:
        return
    if isinstance(exception, KeyboardInterrupt):
        server.stop()
        return
    _daphne_logger.error("Exception inside application: %s", exception, exc_info=exception)
    if not disconnected:
        protocol.handle_exception(exception)


class TimeoutChecks:
    """The connections a server's timeout checker looks at, each under the earliest
    ``time.time()`` at which its ``check_timeouts`` could act (a heap; one entry per connection)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Any]] = []
        self._order = itertools.count()  # ties are taken in filing order; protocols are never compared

    def file(self, protocol: Any, at: float) -> None:
        heapq.heappush(self._due, (at, next(self._order), protocol))

    def due(self, now: float) -> list[Any]:
        """The protocols filed at or before ``now``, taken out (each is filed again once checked)."""
        taken = []
        while self._due and self._due[0][0] <= now:
            taken.append(heapq.heappop(self._due)[2])
        return taken

    def kept_open(self, connections: Container[Any]) -> None:
        """Only the entries of protocols among ``connections``: a closed one waits in the heap until
        its time comes, which ``--ping-interval`` and ``--websocket_timeout`` may put a day away."""
        self._due = [entry for entry in self._due if entry[2] in connections]
        heapq.heapify(self._due)

    def __len__(self) -> int:
        return len(self._due)


def timeouts_checked(server: Any) -> None:
    """daphne 4.2.3's ``Server.timeout_checker`` (without its rescheduling), over the connections
    whose check may act now (``server.timeout_checks``); each one still open is filed again under
    its next earliest time. A connection that left ``server.connections`` is dropped when its time
    comes, or before, once closed ones outnumber the open. A check that raises is logged and its
    connection filed again a ping interval later, 30 s at most (its check would still be due at the next tick:
    a traceback every 2 s per connection); daphne's checker stopped for every connection then (no
    more pings or timeouts), and the heap's taken entries would be lost."""
    now = time.time()
    if len(server.timeout_checks) > 2 * len(server.connections) + 64:  # mostly closed ones (review)
        server.timeout_checks.kept_open(server.connections)
    for protocol in server.timeout_checks.due(now):
        if protocol not in server.connections:
            continue
        try:
            protocol.check_timeouts()
        except Exception:
            logger.exception(
                "Timeout check of a %s (peer %s) failed",
                type(protocol).__name__,
                getattr(protocol, "client_addr", None),
            )
            due = now + min(max(server.ping_interval, 2), 30)  # a day-long ping interval: not a day (review)
        else:
            due = _earliest_due(server, protocol, now)
        if protocol in server.connections:
            server.timeout_checks.file(protocol, due)


def _earliest_due(server: Any, protocol: Any, now: float) -> float:
    """The earliest ``time.time()`` at which daphne's ``WebSocketProtocol.check_timeouts`` (with
    ``_late_answered_busy``) of ``protocol`` could act: a ping once silent past ``ping_interval``
    since ``last_ping`` (a message moves it later, never earlier), the ``websocket_timeout`` after
    ``socket_opened``, and while connecting the connect timeout. ``now`` for any other protocol,
    or one not yet opened: checked at every tick, as daphne does."""
    opened = getattr(protocol, "socket_opened", None)
    last_ping = getattr(protocol, "last_ping", None)
    if opened is None or last_ping is None or not hasattr(protocol, "STATE_CONNECTING"):
        return now
    due = last_ping + server.ping_interval
    if server.websocket_timeout >= 0:
        due = min(due, opened + server.websocket_timeout)
    if protocol.state == protocol.STATE_CONNECTING:
        due = min(due, opened + server.websocket_connect_timeout)
    return due


_BUSY_BODY = b"Too many WebSocket handshakes in progress; retry after the Retry-After delay.\n"
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _BUSY_BODY
)

_ADDRESS_BUSY_BODY = (
    b"Too many WebSocket handshakes from your address in progress; retry after the Retry-After delay.\n"
)
_ADDRESS_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_ADDRESS_BUSY_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _ADDRESS_BUSY_BODY
)

_UNAVAILABLE_BODY = b"The WebSocket handshake failed on the server's side; retry after the Retry-After delay.\n"
_UNAVAILABLE_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: %d\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_UNAVAILABLE_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _UNAVAILABLE_BODY
)


class HandshakeGate:
    """The WebSocket handshakes a server has handed to its application and not yet seen end
    (``protocols``), and how the ones beyond ``CSMS_MAX_HANDSHAKES_IN_FLIGHT`` are refused.

    A handshake answered late (``refuse_late``) leaves ``protocols`` (its application's late accept
    is no admission) for ``late``, and still counts against the cap until its application instance
    ends: its consumer goes on working (and counting in the consumer's own process-wide check) until
    its attach is written or skipped, and a gate that freed its place at once admitted handshakes
    the consumers then refused with ``403`` (4,414 in one 10,000-charger storm)."""

    LOG_EVERY = 5.0  # seconds: refusals are counted and logged together, not one line each
    RATE_WINDOW = 5  # seconds of accepted handshakes the admission rate is measured over
    RETRY_AFTER_CAP = 3  # a turn is at most this many times CSMS_HANDSHAKE_RETRY_AFTER away (30 s)
    TURN_HEADROOM = 1.5  # turns a second are told at this many times the admission rate (turn_in)

    def __init__(self) -> None:
        self.protocols: set[Any] = set()
        self.late: set[Any] = set()  # answered late, their application instances not yet ended
        self._refused = 0
        self._late = 0  # of the refused: handshakes that outlived CSMS_HANDSHAKE_TIMEOUT
        self._logged_at = 0.0
        self._accepted: dict[int, int] = {}  # whole second of time.monotonic() -> handshakes accepted
        self._turns: dict[int, int] = {}  # whole second of time.monotonic() -> refused chargers told to come then

    def full(self) -> bool:
        return self.in_progress() >= settings.CSMS_MAX_HANDSHAKES_IN_FLIGHT

    def in_progress(self) -> int:
        """Handshakes counted against the cap: in progress, or answered late and still worked on."""
        return len(self.protocols) + len(self.late)

    def ended(self, protocol: Any) -> None:
        """Forget ``protocol``: its application instance has ended."""
        self.protocols.discard(protocol)
        self.late.discard(protocol)

    def accepted(self, now: float) -> None:
        """Count one handshake the application accepted at ``now`` (time.monotonic(), s): the
        admission rate's sample."""
        second = int(now)
        self._accepted[second] = self._accepted.get(second, 0) + 1
        if len(self._accepted) > self.RATE_WINDOW + 1:
            for old in [s for s in self._accepted if s < second - self.RATE_WINDOW]:
                del self._accepted[old]

    def admission_rate(self, now: float) -> float:
        """Handshakes accepted per second over the last RATE_WINDOW whole seconds, or over fewer if
        the first was accepted more recently (a worker just started); 0.0 if none."""
        second = int(now)
        since = max(second - self.RATE_WINDOW, min(self._accepted, default=second))
        recent = sum(n for s, n in self._accepted.items() if since <= s < second)
        return recent / (second - since) if second > since else 0.0

    def turn_in(self, now: float) -> int:
        """Seconds a charger refused at ``now`` is told to wait: its turn, the first whole second
        once the handshakes in progress are taken at the measured admission rate (at least 1 s, at
        most half the setting away) with fewer chargers told to come in it than it holds at
        TURN_HEADROOM times that rate (at most RETRY_AFTER_CAP times the setting away), or the
        jittered Retry-After while nothing has been accepted to pace by. Each call takes a turn.

        Second ``s`` holds ``floor(r * (s + 1)) - floor(r * s)`` turns at ``r`` turns a second: on
        average that many a second (at 0.2 a second, one in five seconds; at 2.4, twelve in five),
        so a rate that has risen since earlier turns were told (a worker's first seconds are its
        slowest) fills the seconds they left short, instead of queueing the chargers refused later
        behind them. Why half again the rate, and why no fixed wait (round 26, a 10,000-charger
        storm): the turns are told while the first wave is refused, at the rate of the worker's
        first seconds, beside the fleet's reconnects; once every refused charger holds a turn
        nothing measures more, and turns told at that rate left the machine 28-57 % idle in most of
        the storm's last ten seconds, and 50-70 % idle for about 3 s after the first wave when no
        turn came sooner than half the setting (docs/performance.md, round 26). A turn told too
        soon finds the gate full and is told a later one; the handshakes in progress absorb the
        excess meanwhile."""
        rate = self.admission_rate(now)
        if rate <= 0:  # nothing accepted lately: nothing to pace by
            return retry_after_seconds()
        base = settings.CSMS_HANDSHAKE_RETRY_AFTER
        cap = base * self.RETRY_AFTER_CAP
        second, turns = int(now), self._turns
        for past in [s for s in turns if s <= second]:
            del turns[past]
        soonest = max(1, min(base // 2, math.ceil(self.in_progress() / rate)))
        told_rate = rate * self.TURN_HEADROOM
        for wait in range(soonest, cap + 1):
            turn = second + wait
            told = turns.get(turn, 0)
            if told < math.floor(told_rate * (turn + 1)) - math.floor(told_rate * turn):  # the rate on average
                turns[turn] = told + 1
                return wait
        return random.randint(max(1, cap // 2), cap)  # no turn within the cap: spread over its upper half

    def refuse(self, transport: Any) -> None:
        """Answer an upgrade request read from ``transport`` (its HTTP channel's) 503 with a
        Retry-After (turn_in) and close the connection: the bytes written straight to the transport,
        without Twisted's response machinery (header objects, access log), which cost a storm more
        than the refusal."""
        transport.write(self._busy_response())
        transport.loseConnection()

    def refuse_late(self, protocol: Any) -> None:
        """Answer the WebSocket ``protocol`` (daphne's, still connecting: its application has
        neither accepted nor closed it) as ``refuse`` does, its handshake having outlived
        ``CSMS_HANDSHAKE_TIMEOUT``: as autobahn fails a handshake (``failHandshake``: the answer,
        then the connection dropped, its state closed) and as daphne rejects one (its application's
        late answer is dropped; the application is sent the close)."""
        if protocol in self.protocols:  # its instance has not ended (``ended`` would have removed it)
            self.protocols.discard(protocol)  # its application's late accept is no admission
            self.late.add(protocol)  # but its consumer still works: counted until its instance ends
        protocol.wasNotCleanReason = "handshake past CSMS_HANDSHAKE_TIMEOUT"
        protocol.sendData(self._busy_response(late=True))
        protocol.dropConnection(abort=False)
        del protocol.handshake_deferred  # never fired: nothing more is written for the handshake
        protocol.server.protocol_disconnected(protocol)

    def refuse_unavailable(self, protocol: Any, *, reason: str = "") -> None:
        """Answer the WebSocket ``protocol``, whose application refused its handshake for a failure
        of its own (``TRY_AGAIN_LATER_CODE``: the database away; with ``ADDRESS_BUSY_REASON``, too
        many handshakes from its address), ``503`` with a ``Retry-After`` (jittered), as
        ``refuse_late`` does, not daphne's ``403``: a charger reads a 403 as refused credentials and
        may back off for long, or stop."""
        self.protocols.discard(protocol)
        protocol.wasNotCleanReason = "handshake failed in the application"
        response = _ADDRESS_BUSY_RESPONSE if reason == ADDRESS_BUSY_REASON else _UNAVAILABLE_RESPONSE
        protocol.sendData(response % retry_after_seconds())
        protocol.dropConnection(abort=False)
        del protocol.handshake_deferred  # never fired: nothing more is written for the handshake
        protocol.server.protocol_disconnected(protocol)

    def _busy_response(self, *, late: bool = False) -> bytes:
        """The 503 with its Retry-After (``turn_in``); counted, and logged every LOG_EVERY seconds."""
        now = time.monotonic()
        response = _BUSY_RESPONSE % self.turn_in(now)
        self._refused += 1
        self._late += late
        if now - self._logged_at >= self.LOG_EVERY:
            logger.warning(
                "refused %d WebSocket handshakes (503) since the last report, %d of them past "
                "CSMS_HANDSHAKE_TIMEOUT: %d in progress (CSMS_MAX_HANDSHAKES_IN_FLIGHT)",
                self._refused,
                self._late,
                self.in_progress(),
            )
            self._refused, self._late, self._logged_at = 0, 0, now
        return response


def retry_after_seconds() -> int:
    """``CSMS_HANDSHAKE_RETRY_AFTER`` seconds jittered uniformly over [N/2, 3N/2] (at least 1)."""
    base = settings.CSMS_HANDSHAKE_RETRY_AFTER
    return random.randint(max(1, base // 2), max(1, base + base // 2))


def _process_unless_busy(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """daphne's ``WebRequest.process``, with an upgrade to WebSocket beyond the cap refused first."""

    @wraps(process)
    def process_unless_busy(request: Any) -> Any:
        gate: HandshakeGate | None = getattr(request.server, "handshake_gate", None)
        upgrade = request.requestHeaders.getRawHeaders(b"Upgrade")
        if gate is not None and upgrade and upgrade[0].lower() == b"websocket" and gate.full():
            gate.refuse(request.channel.transport)
            return None
        return process(request)

    return process_unless_busy


# A plain upgrade request: its request line and header lines as Twisted's channel, daphne's checks
# and autobahn's strict parse all take them (token names, values of SP, HTAB and visible ASCII).
_UPGRADE_REQUEST = re.compile(
    rb"GET (/[\x21-\x7e]*) HTTP/1\.1\r\n((?:[-!#$%&'*+.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n){1,100})\r\n"
)
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


def upgrade_request(data: bytes) -> bytes | None:
    """The query string of ``data`` (b"" if none) when it is, whole and alone, a plain upgrade
    request to ``websocket`` (``_UPGRADE_REQUEST``, each header once, none announcing a body), which
    Twisted's HTTP channel and daphne would hand to autobahn unchanged but for the names' case; None
    for anything else."""
    match = _UPGRADE_REQUEST.fullmatch(data)
    if match is None:
        return None
    names: set[bytes] = set()
    upgrade = b""
    for line in match[2].split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name in names or name in _BODY_HEADERS:
            return None
        names.add(name)
        if name == b"upgrade":
            upgrade = value.strip(b" \t")
    if upgrade.lower() != b"websocket":
        return None
    _, _, query = match[1].partition(b"?")
    return query


def _upgraded_at_once(data_received: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    """Twisted's ``HTTPChannel.dataReceived``, with a daphne channel's first read that is a plain
    upgrade request (``upgrade_request``) handed to the gate and then to autobahn without the HTTP
    parse: what daphne's ``WebRequest.process`` does for an upgrade, on the bytes as they came."""

    @wraps(data_received)
    def data_received_upgrading(channel: Any, data: bytes) -> None:
        from twisted.protocols.policies import ProtocolWrapper

        server = getattr(channel.factory, "server", None)
        gate: HandshakeGate | None = getattr(server, "handshake_gate", None)
        transport = channel.transport
        query = (
            upgrade_request(data)
            if (
                gate is not None
                and len(data) <= channel.totalHeadersSize
                and not channel.requests  # nothing read before: no request, no partial line
                and not channel._buffer
                and not channel._handlingRequest
                and not channel._busyReceiving  # not re-entered from the channel's own read loop
                and channel.line_mode
                and not isinstance(transport, ProtocolWrapper)  # TLS: daphne's own path
            )
            else None
        )
        if query is None:
            head_deadline_started(channel)  # a kept-alive connection's next request: timed from its first byte
            data_received(channel, data)
            return
        assert gate is not None and server is not None
        channel.setTimeout(None)  # as the channel does once a request is read: the socket is not its any more
        head_deadline_stopped(channel)
        if gate.full():
            gate.refuse(transport)
            return
        protocol = server.ws_factory.buildProtocol(transport.getPeer())
        protocol._raw_query_string = query
        # The channel leaves the transport (as Twisted's switch to HTTP/2 does): registered, it
        # would pause the transport's reads whenever a slow charger's send buffer fills.
        channel._networkProducer.unregisterProducer()
        transport.protocol = protocol
        protocol.makeConnection(transport)
        protocol.dataReceived(data)

    return data_received_upgrading


# autobahn's opening-handshake timeout, past daphne's connect timeout by this much: daphne's check
# (every 2 s) answers a late handshake 503 first, autobahn's drop stays a backstop.
HANDSHAKE_TIMEOUT_BACKSTOP = 5


# daphne's ``websocket_timeout`` (s) by default, and what it is here: a WebSocket is never closed
# for its age (module docstring).
DAPHNE_WEBSOCKET_TIMEOUT = 86400
WEBSOCKET_TIMEOUT = -1


def _late_answered_busy(check_timeouts: Callable[[Any], None]) -> Callable[[Any], None]:
    """daphne's ``WebSocketProtocol.check_timeouts``, with a handshake past the connect timeout
    answered 503 by the server's gate (``HandshakeGate.refuse_late``) instead of rejected 403."""

    def check_timeouts_late_busy(protocol: Any) -> None:
        gate: HandshakeGate | None = getattr(protocol.server, "handshake_gate", None)
        if (
            gate is not None
            and protocol.state == protocol.STATE_CONNECTING
            and hasattr(protocol, "handshake_deferred")  # else answered: accepted, rejected or refused
            and 0 <= protocol.server.websocket_connect_timeout < protocol.duration()
        ):
            gate.refuse_late(protocol)
            return
        check_timeouts(protocol)

    return check_timeouts_late_busy


class SendQueue(list[Any]):
    """autobahn's queue of chopped or synchronous writes (``sendData``, ``_send``: ``append``,
    ``len``, ``popleft``) as a list. daphne makes neither kind of write, so it stays empty; the
    ``deque`` autobahn makes is about 0.75 KB even empty, a list 56 bytes."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def _quietly(connection_made: Callable[[Any], None]) -> Callable[[Any], None]:
    """autobahn's ``WebSocketServerProtocol._connectionMade`` without the pretty-printed options:
    they are copied from the factory first, as autobahn would (an option set on the protocol
    stays), so autobahn's loop over ``CONFIG_ATTRS`` runs over none and formats an empty list.
    Its empty ``send_queue`` is then replaced by a ``SendQueue``."""

    def connection_made_quietly(protocol: Any) -> None:
        for name in protocol.CONFIG_ATTRS:
            if not hasattr(protocol, name):
                setattr(protocol, name, getattr(protocol.factory, name))
        protocol.CONFIG_ATTRS = ()
        try:
            connection_made(protocol)
        finally:
            del protocol.CONFIG_ATTRS  # the class's again
        protocol.send_queue = SendQueue(protocol.send_queue)

    return connection_made_quietly


class LazyText:
    """``func(*args, **kwargs)`` as text, computed only when formatted (``str`` or ``format``)."""

    __slots__ = ("_args", "_func", "_kwargs")

    def __init__(self, func: Callable[..., str], *args: Any, **kwargs: Any) -> None:
        self._func, self._args, self._kwargs = func, args, kwargs

    def __str__(self) -> str:
        return self._func(*self._args, **self._kwargs)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _lazily(func: Callable[..., str]) -> Callable[..., LazyText]:
    @wraps(func)
    def lazy(*args: Any, **kwargs: Any) -> LazyText:
        return LazyText(func, *args, **kwargs)

    return lazy


# autobahn's modules that format debug arguments per frame, and the helpers they call by name.
AUTOBAHN_DEBUG_TEXT = (
    ("autobahn.websocket.protocol", ("hltype", "hlval")),
    ("autobahn.twisted.websocket", ("hltype", "hlval")),
)


def _autobahn_debug_text_lazy() -> None:
    for module_name, names in AUTOBAHN_DEBUG_TEXT:
        module = importlib.import_module(module_name)
        for name in names:
            current = getattr(module, name)
            if not hasattr(current, "__wrapped__"):  # not yet installed
                setattr(module, name, _lazily(current))


def _write_at_once(write: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    """Twisted's ``tcp.Connection.write``, trying the socket first while nothing is buffered."""

    @wraps(write)
    def write_at_once(connection: Any, data: bytes) -> None:
        if (
            type(data) is bytes
            and data
            and not connection.TLS
            and (connection.producer is None or connection.streamingProducer)  # a pull producer
            and connection.connected  # is asked for more only from doWrite
            and not connection.disconnecting
            and not getattr(connection, "_aborting", False)  # an aborted socket sends nothing more
            and not connection.disconnected
            and not connection._writeDisconnected
            and not connection.dataBuffer
            and not connection._tempDataBuffer
        ):
            sent = connection.writeSomeData(data)
            if isinstance(sent, int) and sent >= 0:
                if sent == len(data):
                    return
                data = data[sent:]
        write(connection, data)

    return write_at_once


def _answer_written_whole(
    handle_reply: Callable[[Any, dict[str, Any]], None], tcp_connection: type[Any]
) -> Callable[[Any, dict[str, Any]], None]:
    """daphne's ``WebRequest.handle_reply``, with what an ``http.response.body`` message writes (the
    status line and headers on the first, the body, a chunked answer's end) gathered and written to
    a plain TCP transport (``tcp_connection``) as one ``write`` after it: Twisted writes the header block with
    ``writeSequence``, which only buffers and registers the socket for writability, so the body's
    write buffered behind it too and the answer waited for the loop's next turn (``write_at_once``
    takes the one write at once). Same bytes, same order; a failure writes what was gathered first."""

    @wraps(handle_reply)
    def handle_reply_whole(request: Any, message: dict[str, Any]) -> None:
        transport = getattr(request.channel, "transport", None)
        if (
            message.get("type") != "http.response.body"
            or not isinstance(transport, tcp_connection)
            or transport.TLS
            or "write" in vars(transport)  # a write of its own (a test's): left as it is
        ):
            handle_reply(request, message)
            return
        gathered: list[bytes] = []
        transport.write, transport.writeSequence = gathered.append, gathered.extend  # the instance's, for the call
        try:
            handle_reply(request, message)
        finally:
            del transport.write, transport.writeSequence
            if gathered:
                transport.write(b"".join(gathered))

    return handle_reply_whole


def _called_with_logger(logger: Any, func: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Twisted's ``log.callWithLogger`` (the asyncio reactor's wrapper around every read and write
    of a socket), without the log context it copies and pushes for the call: ``{"system":
    logger.logPrefix()}``, which only Twisted's own log lines read, and daphne discards them all
    below verbosity 2. A failure is logged as before, with that system."""
    try:
        return func(*args, **kw)
    except KeyboardInterrupt:
        raise
    except BaseException:
        try:
            system = logger.logPrefix()
        except KeyboardInterrupt:
            raise
        except BaseException:
            system = "(buggy logPrefix method)"
        twisted_log.err(system=system)
        return None


def _reads_without_log_context() -> None:
    """Make the asyncio reactor register its sockets' readers and writers with
    ``_called_with_logger``: only for a server whose Twisted log goes nowhere (verbosity 1 or less),
    and before it listens (a reader keeps the wrapper it was registered with)."""
    from twisted.internet import asyncioreactor

    asyncioreactor.callWithLogger = _called_with_logger


def _frames_read_plainly(data_received: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    """autobahn's ``dataReceived`` for daphne's protocol, whole text frames first delivered plainly."""

    @wraps(data_received)
    def data_received_plainly(protocol: Any, data: bytes) -> None:
        if not text_frames_delivered(protocol, data):
            data_received(protocol, data)

    return data_received_plainly


# Frames other than a whole message's one (the parts of a fragmented message, pings, pongs) a
# connection may send: this many times ``CSMS_MAX_FRAMES_PER_SECOND`` a second on average and
# ``CSMS_FRAME_BURST`` at once (200 and 600 by default); past it the connection is closed with
# POLICY_VIOLATION_CODE (``_side_frames_budgeted``).
SIDE_FRAMES_FACTOR = 10
POLICY_VIOLATION_CODE = 1008  # RFC 6455 7.4.1: "a message that violates its policy"
SIDE_FRAMES_REASON = "too many fragments or control frames"


class SideFrames:
    """A connection's budget of frames other than a whole message's: a token bucket."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self) -> None:
        factor = SIDE_FRAMES_FACTOR
        self.rate, self.burst = settings.CSMS_MAX_FRAMES_PER_SECOND * factor, settings.CSMS_FRAME_BURST * factor
        self._tokens, self._at = float(self.burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def _side_frames_budgeted(on_frame_begin: Callable[[Any], None]) -> Callable[[Any], None]:
    """autobahn's ``onFrameBegin`` for daphne's protocol, with a budget (``SideFrames``) for the
    frames that are not a whole message. The message rate (``CSMS_MAX_FRAMES_PER_SECOND``) counts
    whole messages only, and the message size limit their bytes: a message begun (``[2,``) and never
    ended, followed by empty continuation frames, or a stream of pings (each answered with a pong),
    cost the process's event loop about 3 to 7 µs a frame without end. Past the budget the
    connection is closed with 1008 (policy violation) and a log line; a frame beyond it after that
    drops the TCP connection (autobahn's ``_fail_connection`` while closing). A Close frame is never
    counted."""

    @wraps(on_frame_begin)
    def on_frame_begin_budgeted(protocol: Any) -> None:
        frame = protocol.current_frame
        if not (frame.fin and frame.opcode in (1, 2)) and frame.opcode != 8:
            budget = protocol.__dict__.get("csms_side_frames")
            if budget is None:
                budget = protocol.csms_side_frames = SideFrames()
            if not budget.take():
                if not protocol.failedByMe:
                    logger.warning(
                        "%s: over %d fragments and control frames a second (burst %d); closed with %d",
                        getattr(protocol, "path", b"?").decode("latin-1")[:100],
                        budget.rate,
                        budget.burst,
                        POLICY_VIOLATION_CODE,
                    )
                protocol._fail_connection(POLICY_VIOLATION_CODE, SIDE_FRAMES_REASON)
        on_frame_begin(protocol)

    return on_frame_begin_budgeted


def _text_sent_plainly(connections: dict[Any, dict[str, Any]], protocol: Any, message: dict[str, Any]) -> bool:
    """daphne's ``handle_reply`` of a ``websocket.send`` of text, as one frame written plainly
    (``text_frame_sent``); False, nothing done, where daphne would do anything else."""
    return not message.get("bytes") and _text_written(connections, protocol, message.get("text"))


def _text_written(connections: dict[Any, dict[str, Any]], protocol: Any, text: Any) -> bool:
    """``text`` written to ``protocol``'s connection as one text frame (``text_frame_sent``) where
    daphne's ``handle_reply`` of a ``websocket.send`` of it would write that frame; else False."""
    connection = connections.get(protocol)
    return (
        connection is not None
        and not connection.get("disconnected")
        and isinstance(text, str)
        and bool(text)
        and text_frame_sent(protocol, text)
    )


def _access_line_if_logged(log: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
    """Twisted's ``HTTPFactory.log`` for daphne's factory, skipped unless its server's verbosity is
    above 1 (at 1 and below Twisted's log goes nowhere: daphne's ``Server.run``)."""

    @wraps(log)
    def log_if_logged(factory: Any, request: Any) -> None:
        if factory.server.verbosity > 1:
            log(factory, request)

    return log_if_logged


# The scope's ASGI extension through which a WebSocket application sends a text message at once:
# ``scope["extensions"][TEXT_AT_ONCE]["send"](text)`` writes it as daphne's ``handle_reply`` of a
# ``websocket.send`` would and returns True, or does nothing and returns False (then the
# application sends it through ``send`` as usual). No coroutine, event dict or reply hop per frame.
TEXT_AT_ONCE = "csms.websocket.text_at_once"

# The event a stopping server puts in each open WebSocket connection's input queue, behind the
# frames read already: the application answers those, then closes with GOING_AWAY_CODE.
GOING_AWAY = "csms.going_away"
GOING_AWAY_CODE = 1001  # RFC 6455 7.4.1: "an endpoint is going away, such as a server going down"
# An application's ``websocket.close`` before it accepted, with this code (RFC 6455's 1013 "Try Again
# Later"): its handshake failed on the server's side (the database away), answered 503 with a
# Retry-After (``HandshakeGate.refuse_unavailable``), never 403; other servers reject it as any close.
TRY_AGAIN_LATER_CODE = 1013
# The close's reason of a handshake refused with TRY_AGAIN_LATER_CODE for too many from its address
# (CSMS_MAX_HANDSHAKES_PER_IP): its 503's body says so.
ADDRESS_BUSY_REASON = "too many handshakes from this address"
GOING_AWAY_SECONDS = 5.0  # then what is left is cancelled (under a container's 10 s stop grace)


async def connections_gone_away(server: Any, ports: list[Any], seconds: float = GOING_AWAY_SECONDS) -> None:
    """A stopping server's first step: no new connections (``ports`` stop listening), every open
    WebSocket connection told ``GOING_AWAY`` after the frames it read; returns once their
    applications ended, or after ``seconds``."""
    from autobahn.websocket.protocol import WebSocketProtocol as Protocol
    from daphne.ws_protocol import WebSocketProtocol

    for port in ports:
        port.stopListening()
    running = []
    for protocol, details in list(server.connections.items()):
        instance = details.get("application_instance")
        if not isinstance(protocol, WebSocketProtocol) or protocol.state != Protocol.STATE_OPEN:
            continue
        if instance is None or instance.done() or details.get("disconnected"):
            continue
        protocol.application_queue.put_nowait({"type": GOING_AWAY})
        running.append(instance)
    if not running:
        return
    _daphne_logger.info("Stopping: %d WebSocket connection(s) answer what they read and close", len(running))
    _, left = await asyncio.wait(running, timeout=seconds)
    if left:
        _daphne_logger.warning("Stopping: %d connection(s) still busy after %.0f s, cancelled", len(left), seconds)


def _unavailable_refused(connections: dict[Any, dict[str, Any]], protocol: Any, message: dict[str, Any]) -> bool:
    """Whether ``message`` is a ``websocket.close`` with ``TRY_AGAIN_LATER_CODE`` of a handshake not
    yet answered (``HandshakeGate.refuse_unavailable`` answers it); daphne would reject it ``403``."""
    from autobahn.websocket.protocol import WebSocketProtocol as Protocol

    if message["type"] != "websocket.close" or message.get("code") != TRY_AGAIN_LATER_CODE:
        return False
    if protocol not in connections or connections[protocol].get("disconnected"):
        return False
    return getattr(protocol, "state", None) == Protocol.STATE_CONNECTING and hasattr(protocol, "handshake_deferred")


def _going_away_closed(connections: dict[Any, dict[str, Any]], protocol: Any, message: dict[str, Any]) -> bool:
    """A ``websocket.close`` with ``GOING_AWAY_CODE`` on an open connection, sent as that close
    frame (autobahn's ``sendClose`` refuses codes other than 1000 and 3000-4999); else False."""
    from autobahn.websocket.protocol import WebSocketProtocol as Protocol

    if message.get("code") != GOING_AWAY_CODE or protocol not in connections:
        return False
    if connections[protocol].get("disconnected") or getattr(protocol, "state", None) != Protocol.STATE_OPEN:
        return False
    protocol.sendCloseFrame(code=GOING_AWAY_CODE, reasonUtf8=b"server stopping", isReply=False)
    return True


def _long_line_answered(line_length_exceeded: Callable[[Any, bytes], Any]) -> Callable[[Any, bytes], Any]:
    """``HTTPChannel.lineLengthExceeded``: a request line or header line over Twisted's 16 KiB
    (``MAX_LENGTH``; a charger's URL, a cookie a proxy adds) closed the connection without a word,
    which a charger's log shows as a reset. It is answered ``414 URI Too Long`` (the request line)
    or ``431 Request Header Fields Too Large`` (a header), RFC 9110 §15.5.15 and RFC 6585 §5, in the
    API's JSON error shape, and the connection closed."""

    @wraps(line_length_exceeded)
    def answered(channel: Any, line: bytes) -> Any:
        if getattr(channel, "_HTTPChannel__first_line", 0):
            status, code, message = b"414 URI Too Long", "URITooLong", "The request line is too long."
        else:
            status, code = b"431 Request Header Fields Too Large", "RequestHeaderFieldsTooLarge"
            message = "A request header line is too long."
        body = json.dumps(error_body(code, message)).encode()
        channel.transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        return line_length_exceeded(channel, line)

    return answered


def _reason_phrases_known() -> None:
    """The status line of an answer whose code Twisted does not name said ``Unknown Status``
    (``HTTP/1.1 429 Unknown Status`` for the API's throttling): ASGI gives no reason phrase, and
    Twisted's table stops at RFC 2616. Codes it lacks get their RFC 9110 phrase (Python's
    ``http.HTTPStatus``: ``429 Too Many Requests``, ``422 Unprocessable Entity``, ...)."""
    from http import HTTPStatus

    from twisted.web import http

    for status in HTTPStatus:
        http.RESPONSES.setdefault(status.value, status.phrase.encode("ascii"))


def _failed_with_a_close(factory_class: type[Any]) -> type[Any]:
    """daphne's WebSocket factory whose connections, failed for what a peer sent (a text frame that
    is no UTF-8, a frame breaking RFC 6455, one over daphne's size limit), send the Close frame of its
    code (1007, 1002, 1009) before the TCP close (RFC 6455 §7.1.7), instead of autobahn's default
    (``failByDrop``): a connection dropped at once, which the charger sees as an abnormal closure
    (1006) that tells its firmware's log nothing. It accepts no compression, as autobahn's default,
    through ``no_compression`` (``_compression_offers_declined`` knows it by it)."""

    class WebSocketFactory(factory_class):
        fails_with_a_close = True

        def resetProtocolOptions(self) -> None:  # noqa: N802 (autobahn's name)
            super().resetProtocolOptions()
            self.failByDrop = False
            self.perMessageCompressionAccept = no_compression  # autobahn's default, by a name

    return WebSocketFactory


def no_compression(offers: list[Any]) -> None:
    """daphne's answer to a client's permessage-deflate offers (autobahn's default): none accepted."""
    return None


def _compression_offers_declined(succeed_handshake: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """autobahn's ``succeedHandshake`` for a server that accepts no compression (``no_compression``):
    the client's permessage-compression offers are declined unread. autobahn read each first, and
    answered ``400`` an offer with a parameter it does not take (``server_max_window_bits=8``, which
    RFC 7692 allows; one it does not know), after the application had accepted the charger: one whose
    WebSocket library offers it could never connect, though any offer is declined here. RFC 7692 §5
    has a server decline an offer it cannot take, and the handshake go on."""
    from autobahn.websocket.compress import PERMESSAGE_COMPRESSION_EXTENSION

    @wraps(succeed_handshake)
    def succeed_declining(protocol: Any, res: Any) -> Any:
        if protocol.perMessageCompressionAccept is no_compression and protocol.websocket_extensions:
            protocol.websocket_extensions = [
                (name, params)
                for name, params in protocol.websocket_extensions
                if name not in PERMESSAGE_COMPRESSION_EXTENSION
            ]
        return succeed_handshake(protocol, res)

    return succeed_declining


def daphne_server_install() -> None:
    """Make the servers daphne's command line builds use the small input queue, refuse handshakes
    beyond the cap with an early 503 (and late ones past ``CSMS_HANDSHAKE_TIMEOUT``), skip
    autobahn's per-connection option dump, build its per-frame debug text and Twisted's access
    line only for a line written, and close a connection failed for what the peer sent with a Close
    frame (``_failed_with_a_close``)."""
    from daphne import cli, server
    from daphne.http_protocol import HTTPFactory, WebRequest
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.internet import tcp
    from twisted.web.http import HTTPChannel

    class Server(server.Server):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if kwargs.get("websocket_timeout", DAPHNE_WEBSOCKET_TIMEOUT) == DAPHNE_WEBSOCKET_TIMEOUT:
                kwargs["websocket_timeout"] = WEBSOCKET_TIMEOUT
            super().__init__(*args, **kwargs)
            self.handshake_gate = HandshakeGate()
            self.websocket_connect_timeout = settings.CSMS_HANDSHAKE_TIMEOUT
            self.websocket_handshake_timeout = settings.CSMS_HANDSHAKE_TIMEOUT + HANDSHAKE_TIMEOUT_BACKSTOP
            self.ended: set[Any] = set()  # the connections application_checker looks at
            self.timeout_checks = TimeoutChecks()  # the connections timeout_checker looks at, by when
            self.ports: list[Any] = []  # what listens (stopped first when the server stops)

        def listen_success(self, port: Any) -> None:
            super().listen_success(port)
            self.ports.append(port)

        def kill_all_applications(self) -> Any:
            """The reactor's shutdown: the open WebSocket connections go away first
            (``connections_gone_away``), then daphne cancels what is left."""
            gone = defer.Deferred.fromFuture(asyncio.ensure_future(connections_gone_away(self, self.ports)))
            gone.addErrback(lambda failure: _daphne_logger.error("Stopping: %s", failure.getErrorMessage()))
            gone.addBoth(lambda _: super(Server, self).kill_all_applications())
            return gone

        def create_application(self, protocol: Any, scope: dict[str, Any]) -> InputQueue | None:
            if scope["type"] == "websocket":
                extensions = scope["extensions"] = dict(scope.get("extensions") or {})
                extensions[TEXT_AT_ONCE] = {"send": partial(_text_written, self.connections, protocol)}
            queue = _create_application(self, protocol, scope)
            if queue is None:
                return None
            instance = self.connections[protocol]["application_instance"]
            instance.add_done_callback(lambda _: self.ended.add(protocol))
            if scope["type"] == "websocket":
                gate = self.handshake_gate
                gate.protocols.add(protocol)
                instance.add_done_callback(lambda _: gate.ended(protocol))
            return queue

        def protocol_connected(self, protocol: Any) -> None:
            super().protocol_connected(protocol)
            self.timeout_checks.file(protocol, time.time())  # opened after this: its times are known at the next tick

        def timeout_checker(self) -> None:
            timeouts_checked(self)
            server.reactor.callLater(2, self.timeout_checker)

        def protocol_disconnected(self, protocol: Any) -> None:
            super().protocol_disconnected(protocol)
            self.ended.add(protocol)

        def application_checker(self) -> None:
            application_checked(self)
            server.reactor.callLater(1, self.application_checker)

        def run(self) -> None:
            if self.verbosity <= 1:  # daphne sends Twisted's log nowhere (Server.run)
                _reads_without_log_context()
            super().run()

        async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
            if message["type"] == "websocket.send":
                if _text_sent_plainly(self.connections, protocol, message):
                    return
                try:
                    await super().handle_reply(protocol, message)
                except Disconnected as error:  # closed before daphne heard of it
                    raise SocketClosed(str(error)) from error
                return
            if message["type"] in ("websocket.accept", "websocket.close"):
                if message["type"] == "websocket.accept" and protocol in self.handshake_gate.protocols:
                    self.handshake_gate.accepted(time.monotonic())
                if _unavailable_refused(self.connections, protocol, message):
                    self.handshake_gate.refuse_unavailable(protocol, reason=message.get("reason") or "")
                    return
                self.handshake_gate.protocols.discard(protocol)
            if message["type"] == "websocket.close" and _going_away_closed(self.connections, protocol, message):
                return
            await super().handle_reply(protocol, message)

    cli.CommandLineInterface.server_class = Server
    if not getattr(server.WebSocketFactory, "fails_with_a_close", False):  # not yet installed
        server.WebSocketFactory = _failed_with_a_close(server.WebSocketFactory)
    if not hasattr(WebRequest.process, "__wrapped__"):  # not yet installed
        WebRequest.process = _process_unless_busy(WebRequest.process)
    if not hasattr(HTTPFactory.log, "__wrapped__"):  # not yet installed
        HTTPFactory.log = _access_line_if_logged(HTTPFactory.log)
    if not hasattr(HTTPChannel.dataReceived, "__wrapped__"):  # not yet installed
        HTTPChannel.dataReceived = _upgraded_at_once(HTTPChannel.dataReceived)  # type: ignore[method-assign]
    if not hasattr(WebSocketProtocol.check_timeouts, "__wrapped__"):  # not yet installed
        WebSocketProtocol.check_timeouts = wraps(WebSocketProtocol.check_timeouts)(
            _late_answered_busy(WebSocketProtocol.check_timeouts)
        )
    if not hasattr(WebSocketProtocol._connectionMade, "__wrapped__"):  # not yet installed
        WebSocketProtocol._connectionMade = wraps(WebSocketProtocol._connectionMade)(
            _quietly(WebSocketProtocol._connectionMade)
        )
    if not hasattr(WebSocketProtocol.dataReceived, "__wrapped__"):  # not yet installed
        WebSocketProtocol.dataReceived = _frames_read_plainly(WebSocketProtocol.dataReceived)
    if not hasattr(WebSocketProtocol.succeedHandshake, "__wrapped__"):  # not yet installed
        WebSocketProtocol.succeedHandshake = _compression_offers_declined(WebSocketProtocol.succeedHandshake)
    if not hasattr(WebSocketProtocol.onFrameBegin, "__wrapped__"):  # not yet installed
        WebSocketProtocol.onFrameBegin = _side_frames_budgeted(WebSocketProtocol.onFrameBegin)
    _autobahn_debug_text_lazy()
    if not hasattr(tcp.Connection.write, "__wrapped__"):  # not yet installed
        tcp.Connection.write = _write_at_once(tcp.Connection.write)  # type: ignore[method-assign]
    if not hasattr(WebRequest.handle_reply, "__wrapped__"):  # not yet installed
        WebRequest.handle_reply = _answer_written_whole(WebRequest.handle_reply, tcp.Connection)
    request_bodies_bounded(WebRequest)  # a body over its path's bound refused as it arrives
    request_heads_timed(HTTPChannel)  # a head not in within CSMS_REQUEST_HEAD_TIMEOUT answered 408
    if not hasattr(HTTPChannel.lineLengthExceeded, "__wrapped__"):  # not yet installed
        HTTPChannel.lineLengthExceeded = _long_line_answered(HTTPChannel.lineLengthExceeded)  # type: ignore[method-assign]
    _reason_phrases_known()
