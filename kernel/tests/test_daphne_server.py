"""daphne fitted for a fleet (kernel/daphne_server.py) keeps daphne's behaviour.

When the first test fails after an upgrade of daphne, compare its ``Server.create_application``
with ``kernel.daphne_server._create_application``, adapt the copy, and move the pin in
requirements.txt. When the second fails, read the method it names: the early 503 relies on
``WebRequest.process`` making the WebSocket protocol (whose ``onConnect`` calls
``create_application``) for an upgrade, and on ``handle_reply`` seeing the application's accept or
close; the quiet ``_connectionMade`` on
autobahn copying ``CONFIG_ATTRS`` from the factory and formatting them for its debug line; the
write at once on Twisted's buffer (``dataBuffer``, ``_tempDataBuffer``), ``writeSomeData`` and
its buffered write. Adapt
``kernel.daphne_server``, then record the new fingerprint.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import importlib.util
import inspect
import math
import socket
import sys
import textwrap
import tracemalloc
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from autobahn import util as autobahn_util
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket import protocol as autobahn_protocol
from django.test import override_settings
from twisted.internet import tcp
from twisted.internet.testing import StringTransport

from kernel import daphne_server


def _body_without_docstring(function: ast.FunctionDef) -> str:
    body = function.body[1:] if isinstance(function.body[0], ast.Expr) else function.body
    return "\n".join(ast.unparse(statement) for statement in body)


def _method(module_name: str, class_name: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    spec = importlib.util.find_spec(module_name)  # read, not imported: importing daphne.server installs a reactor
    assert spec is not None and spec.origin is not None
    module = ast.parse(Path(spec.origin).read_text())
    cls = next(node for node in module.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    return next(
        node for node in cls.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    )


def test_our_create_application_is_daphne_s_with_the_small_queue():
    daphne_s = _method("daphne.server", "Server", "create_application")
    ours = ast.parse(textwrap.dedent(inspect.getsource(daphne_server._create_application))).body[0]
    assert isinstance(ours, ast.FunctionDef)
    ours_as_daphne_s = _body_without_docstring(ours).replace("InputQueue(protocol)", "asyncio.Queue()")
    assert ours_as_daphne_s == _body_without_docstring(daphne_s)


async def test_events_come_out_in_the_order_they_went_in_whether_or_not_a_get_waits():
    queue = daphne_server.InputQueue()
    waiting = queue.get()
    queue.put_nowait({"type": "websocket.connect"})
    queue.put_nowait({"type": "websocket.receive", "text": "1"})
    queue.put_nowait({"type": "websocket.receive", "text": "2"})
    assert await waiting == {"type": "websocket.connect"}
    assert [await queue.get(), await queue.get()] == [
        {"type": "websocket.receive", "text": "1"},
        {"type": "websocket.receive", "text": "2"},
    ]


class _Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self.calls.append("pause")

    def resumeProducing(self) -> None:  # noqa: N802 (Twisted's name)
        self.calls.append("resume")


async def test_frames_waiting_past_the_limit_pause_the_socket_s_reads_until_taken_down_to_half():
    transport = _Transport()
    queue = daphne_server.InputQueue(SimpleNamespace(transport=transport, path=b"/ocpp/1.6/CP-1"))
    frames = [{"type": "websocket.receive", "text": str(n) * 100_000} for n in range(10)]
    for frame in frames[:10]:  # 10 x 100,256 bytes counted: within 1 MiB
        queue.put_nowait(frame)
    queue.put_nowait({"type": "websocket.receive", "bytes": b"b" * 100_000})
    assert transport.calls == ["pause"]
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})  # counts nothing, pauses nothing again
    assert transport.calls == ["pause"]
    taken = [await queue.get() for _ in range(5)]  # 6 frames left, 601,536 bytes: over 512 KiB
    assert transport.calls == ["pause"]
    taken.append(await queue.get())  # 5 left, 501,280 bytes
    assert taken == frames[:6] and transport.calls == ["pause", "resume"]
    rest = [await queue.get() for _ in range(6)]
    assert rest[:4] == frames[6:] and rest[5] == {"type": "websocket.disconnect", "code": 1000}
    assert transport.calls == ["pause", "resume"] and not queue.holds_events()


async def test_under_tls_the_reads_of_the_transport_under_the_wrapper_are_paused():
    transport = _Transport()
    queue = daphne_server.InputQueue(SimpleNamespace(transport=SimpleNamespace(transport=transport)))
    queue.put_nowait({"type": "websocket.receive", "text": "x" * 2_000_000})
    assert transport.calls == ["pause"]
    await queue.get()
    assert transport.calls == ["pause", "resume"]


async def test_an_http_request_s_body_never_pauses_reads():
    transport = _Transport()
    queue = daphne_server.InputQueue(SimpleNamespace(transport=transport))
    for _ in range(20):
        queue.put_nowait({"type": "http.request", "body": b"b" * 100_000, "more_body": True})
    assert transport.calls == []


async def test_a_cancelled_get_takes_no_event():
    queue = daphne_server.InputQueue()
    given_up = queue.get()
    given_up.cancel()
    later = queue.get()
    queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    assert await asyncio.wait_for(later, 1) == {"type": "websocket.disconnect", "code": 1000}


async def test_a_get_that_times_out_leaves_the_event_for_the_next_one():
    queue = daphne_server.InputQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait({"type": "http.disconnect"})
    assert await queue.get() == {"type": "http.disconnect"}


async def test_an_idle_queue_holds_its_waiting_getter_and_little_else():
    """Events a getter waits for go to it directly: what an idle connection's queue holds, its
    waiting getter included, stays under 400 bytes (two deques were about 1.5 KB)."""
    tracemalloc.start()
    try:
        at_start = tracemalloc.get_traced_memory()[0]
        queues = [daphne_server.InputQueue() for _ in range(100)]
        for queue in queues:
            for text in ("boot", "status"):
                waiting = queue.get()
                queue.put_nowait({"type": "websocket.receive", "text": text})
                await waiting
            queue.put_nowait({"type": "websocket.receive", "text": "before its get"})
            await queue.get()
        waiting_getters = [queue.get() for queue in queues]
        held = (tracemalloc.get_traced_memory()[0] - at_start) / len(queues)
    finally:
        tracemalloc.stop()
    assert len(waiting_getters) == 100
    assert held < 400, f"{held:.0f} bytes per idle queue"


# The methods of daphne 4.2.3 and autobahn 26.11.1 the handshake gate and the quiet connection rely on.
RELIED_ON = [
    ("daphne.http_protocol", "WebRequest", "process", "009fec0cde27b330"),
    ("daphne.ws_protocol", "WebSocketProtocol", "onConnect", "fa9e4b08e297fa65"),
    ("daphne.server", "Server", "handle_reply", "a549cc6136eb2ab8"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "_connectionMade", "ae04ee23af241172"),
    ("autobahn.websocket.protocol", "WebSocketServerProtocol", "_connectionMade", "247a5e912e426f90"),
    # refuse_late: daphne's connect-timeout check and reject it stands in for, autobahn's handshake failure it copies.
    ("daphne.ws_protocol", "WebSocketProtocol", "check_timeouts", "4a350d007bfca683"),
    ("daphne.ws_protocol", "WebSocketProtocol", "serverReject", "0102f97638f4e3fc"),
    ("daphne.server", "Server", "protocol_disconnected", "6008cbb7c545a02b"),
    # application_checked: daphne's application checker, over the connections that ended.
    ("daphne.server", "Server", "application_checker", "8cebb3b75ceaa25d"),
    # timeouts_checked: daphne's timeout checker, over the connections whose check may act; a
    # connection filed when it connects; its last ping moved only later, by a message.
    ("daphne.server", "Server", "timeout_checker", "2ce85e69c4d512d1"),
    ("daphne.server", "Server", "protocol_connected", "43060e113faf89f7"),
    ("daphne.ws_protocol", "WebSocketProtocol", "onMessage", "f998b320e49576ac"),
    ("autobahn.websocket.protocol", "WebSocketServerProtocol", "failHandshake", "86bd035c3bd26a69"),
    # SendQueue: what autobahn does with its send_queue (append, len, popleft).
    ("autobahn.websocket.protocol", "WebSocketProtocol", "_send", "803710fcb0045f7b"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "sendData", "511b63b5f46d8cd7"),
    # write_at_once (Twisted 26.10.0): the buffer it checks, the send it calls, the path it falls back to.
    ("twisted.internet.abstract", "FileDescriptor", "write", "fda9ca35f92bed60"),
    ("twisted.internet.abstract", "FileDescriptor", "doWrite", "39c852a5e9e063b0"),
    ("twisted.internet.tcp", "Connection", "writeSomeData", "d7ddaf5ac8aa4232"),
    ("twisted.internet._newtls", "ConnectionMixin", "write", "9a97fc973a780c6c"),
    # the access line skipped: Twisted's log goes nowhere at verbosity 1 (run), the line it formats (log).
    ("daphne.server", "Server", "run", "f9eaa8f9328051ff"),
    ("twisted.web.http", "HTTPFactory", "log", "8262e56a9920715e"),
    # reads without a log context: the reactor registers readers and writers with the module's
    # callWithLogger, and daphne sends Twisted's log nowhere below verbosity 2.
    ("twisted.internet.asyncioreactor", "AsyncioSelectorReactor", "addReader", "15f379967b32261d"),
    ("twisted.internet.asyncioreactor", "AsyncioSelectorReactor", "addWriter", "d69ede322253b094"),
    # the answer written whole: daphne's body message writes and finishes; Twisted's channel writes
    # the header block by the transport's writeSequence and the body by its write.
    ("daphne.http_protocol", "WebRequest", "handle_reply", "2e0f1e5297063fe9"),
    ("twisted.web.http", "HTTPChannel", "writeHeaders", "3c071f629de847fa"),
    ("twisted.web.http", "HTTPChannel", "write", "5edc1409dd842b12"),
    ("twisted.web.http", "HTTPChannel", "writeSequence", "b3dba795e5a2c236"),
    # connections_gone_away: daphne's stop it runs before, the port it stops, the input queue it
    # puts the event in; the 1001 close frame written past sendClose's check.
    ("daphne.server", "Server", "kill_all_applications", "2405b20f76e21dab"),
    ("daphne.server", "Server", "listen_success", "241962deb8ba1c9f"),
    ("daphne.ws_protocol", "WebSocketProtocol", "applicationCreateWorked", "c4585dc514863077"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "sendCloseFrame", "681ac2a6f1791121"),
    # kernel.request_heads: the channel's idle timer restarted by every read (why a head is timed on
    # its own), the end of a head, the close of a timed-out client, the end of a connection.
    ("twisted.web.http", "HTTPChannel", "connectionMade", "a2d85a96d0ae5d1e"),
    ("twisted.web.http", "HTTPChannel", "dataReceived", "3be6180306c76eeb"),
    ("twisted.web.http", "HTTPChannel", "allHeadersReceived", "8798e503dedb7c11"),
    ("twisted.web.http", "HTTPChannel", "timeoutConnection", "c0d73d7cf15f0dd5"),
    ("twisted.web.http", "HTTPChannel", "connectionLost", "b15bdb7eb93143d9"),
    # side_frames_budgeted: the frame header autobahn has read when it begins a frame (every frame,
    # data or control, goes through it), the failure it calls (a close, then a drop while closing),
    # and what a failed connection no longer does (deliver a message, answer a ping).
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onFrameBegin", "5b039dc4a7e0b4fe"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "processData", "5b73641140e29d77"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "_fail_connection", "6945b589aeb3788a"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageEnd", "aaa81c09d01ad8f2"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onPing", "1485615a8d3378c8"),
    # _compression_offers_declined: the offers succeedHandshake reads from websocket_extensions, the
    # accept function it asks (autobahn's default, none accepted), copied from the factory.
    ("autobahn.websocket.protocol", "WebSocketServerProtocol", "succeedHandshake", "64a281e2766990a9"),
    ("autobahn.websocket.protocol", "WebSocketServerFactory", "resetProtocolOptions", "20794733dcf930ef"),
]


@pytest.mark.parametrize(("module_name", "class_name", "name", "fingerprint"), RELIED_ON)
def test_the_daphne_and_autobahn_code_the_hooks_rely_on_is_unchanged(module_name, class_name, name, fingerprint):
    source = ast.unparse(_method(module_name, class_name, name))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == fingerprint, (
        f"{module_name}.{class_name}.{name} changed: check kernel/daphne_server.py against it (module docstring)"
    )


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
@pytest.mark.parametrize(("verbosity", "lines"), [(0, 0), (1, 0), (2, 1), (3, 1)])
def test_twisted_s_access_line_is_formatted_only_at_a_verbosity_that_logs_it(verbosity, lines):
    """Fails before the change at verbosity 0 and 1: the line was formatted and written to
    Twisted's log, which daphne sends nowhere there."""
    from daphne import cli
    from daphne.http_protocol import HTTPFactory

    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(
        application=None, endpoints=["tcp:0"], signal_handlers=False, verbosity=verbosity
    )
    factory = HTTPFactory(server)
    written: list[str] = []
    factory._logFormatter = lambda timestamp, request: f"{request} at {timestamp}"
    factory._logFile = type("LogFile", (), {"write": lambda self, line: written.append(line)})()
    factory._logDateTime = "now"
    factory.log("GET /api/v1/")
    assert written == ["GET /api/v1/ at now\n"] * lines


def test_retry_after_is_spread_over_half_to_one_and_a_half_times_the_setting():
    delays = {daphne_server.retry_after_seconds() for _ in range(2000)}
    assert delays == set(range(5, 16))


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=1)
def test_retry_after_is_at_least_a_second():
    assert {daphne_server.retry_after_seconds() for _ in range(100)} == {1}


def _gate_accepting(per_second: int, seconds: range) -> daphne_server.HandshakeGate:
    gate = daphne_server.HandshakeGate()
    for second in seconds:
        for n in range(per_second):
            gate.accepted(second + n / per_second)
    return gate


def test_the_admission_rate_is_measured_over_the_last_whole_seconds():
    assert daphne_server.HandshakeGate().admission_rate(1000.0) == 0.0
    gate = _gate_accepting(100, range(990, 1000))
    assert gate.admission_rate(1000.5) == 100.0  # 995-999: the current second is not over yet
    assert _gate_accepting(100, range(998, 1000)).admission_rate(1000.2) == 100.0  # a worker just started


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
def test_with_nothing_accepted_a_refusal_gets_the_jittered_retry_after():
    gate = daphne_server.HandshakeGate()
    assert {gate.turn_in(1000.0) for _ in range(500)} == set(range(5, 16))


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
def test_a_storm_s_refusals_are_given_turns_at_half_again_the_admission_rate():
    """At 100 accepted a second with 400 handshakes in progress, 2,000 refused at once are told to
    come back 150 a second from 4 s on (when those 400 are taken): each told its own turn (no
    jitter on top: a turn told later than booked left its second short), never later than 30 s."""
    gate = _gate_accepting(100, range(990, 1000))
    gate.protocols.update(object() for _ in range(400))
    waits = [gate.turn_in(1000.0) for _ in range(2000)]
    assert {second: waits.count(second) for second in set(waits)} == {**dict.fromkeys(range(4, 17), 150), 17: 50}
    more = [gate.turn_in(1000.0) for _ in range(5000)]
    assert max(more) == 30  # RETRY_AFTER_CAP times the setting
    booked = dict(gate._turns)
    beyond = [gate.turn_in(1000.0) for _ in range(2000)]  # no turn within the cap is left
    assert set(beyond) == set(range(15, 31))  # spread over the cap's upper half, not all at 30
    assert gate._turns == booked  # and they book no turn: the queue does not grow past the cap


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
@pytest.mark.parametrize(("in_progress", "soonest"), [(0, 1), (150, 2), (400, 4), (2000, 5)])
def test_the_first_turn_is_when_the_handshakes_in_progress_are_taken(in_progress: int, soonest: int):
    """No sooner than 1 s, no later than half the setting: the in-progress handshakes' time at the rate."""
    gate = _gate_accepting(100, range(990, 1000))
    gate.protocols.update(object() for _ in range(in_progress))
    assert gate.turn_in(1000.0) == soonest


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
def test_turns_told_at_a_slow_start_leave_room_a_faster_rate_fills():
    """A worker's first second took 10 handshakes: 450 refused then are told turns 15 a second,
    out to 30 s. Once it takes 200 a second, a charger refused one second later is told to come in
    1 s, beside the 15 already told for that second, not after the last turn told at the slow rate."""
    gate = _gate_accepting(10, range(999, 1000))
    slow = [gate.turn_in(1000.0) for _ in range(450)]
    assert max(slow) == 30
    for n in range(200):
        gate.accepted(1000 + n / 200)
    assert gate.admission_rate(1001.0) == 105.0  # 10 + 200 over the two whole seconds
    assert gate.turn_in(1001.0) == 1
    assert gate._turns[1002] == 16


@override_settings(CSMS_HANDSHAKE_RETRY_AFTER=10)
@pytest.mark.parametrize(("per_second", "told"), [(0.2, 9), (2.4, 108)])
def test_turns_hold_half_again_the_admission_rate_on_average_even_below_one_a_second(per_second: float, told: int):
    """At 0.2 accepted a second (one handshake in five seconds), 49 refusals are told turns at 0.3 a
    second (nine within the 1 to 30 s the turns span, at most two in five seconds), the rest
    spread over the cap's upper half; at 2.4 a second, 3.6 turns a second (108 in the 30 seconds)."""
    gate = daphne_server.HandshakeGate()
    for n in range(round(per_second * 5)):
        gate.accepted(995 + n / per_second)
    assert gate.admission_rate(1000.0) == pytest.approx(per_second)
    waits = [gate.turn_in(1000.0) for _ in range(told + 40)]
    assert sum(gate._turns.values()) == told  # the turns of the 30 seconds 1 to 30 s away
    told_rate = per_second * daphne_server.HandshakeGate.TURN_HEADROOM
    for start in range(1001, 1027):
        assert sum(gate._turns.get(second, 0) for second in range(start, start + 5)) <= math.ceil(told_rate * 5)
    assert all(15 <= wait <= 30 for wait in waits[-40:])  # the rest: over the cap's upper half


class _ConnectingProtocol:
    """The parts of daphne's WebSocket protocol ``refuse_late`` touches, recording what it sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.dropped = False
        self.handshake_deferred = object()
        self.server = self

    def sendData(self, data: bytes) -> None:  # noqa: N802  # autobahn's name
        self.sent.append(data)

    def dropConnection(self, abort: bool) -> None:  # noqa: N802  # autobahn's name
        self.dropped = True

    def protocol_disconnected(self, protocol: object) -> None:
        assert protocol is self


@override_settings(CSMS_MAX_HANDSHAKES_IN_FLIGHT=1)
def test_a_handshake_answered_late_is_no_admission_but_counts_against_the_cap_until_its_application_ends():
    gate, protocol = daphne_server.HandshakeGate(), _ConnectingProtocol()
    gate.protocols.add(protocol)
    gate.refuse_late(protocol)
    assert protocol.sent[0].startswith(b"HTTP/1.1 503") and protocol.dropped
    assert protocol not in gate.protocols  # its application's late websocket.accept is not an admission
    assert not hasattr(protocol, "handshake_deferred")
    # Its consumer still works (and counts in the consumer's own check): before, the gate admitted
    # another handshake at once, which that check then refused with 403.
    assert gate.full()
    gate.ended(protocol)  # its application instance ended
    assert not gate.full() and gate.in_progress() == 0


def test_a_quiet_connection_takes_the_factory_s_options_without_formatting_them(monkeypatch):
    formatted: list[object] = []
    real_pformat = autobahn_protocol.pformat
    monkeypatch.setattr(autobahn_protocol, "pformat", lambda value: formatted.append(value) or real_pformat(value))

    class Quiet(WebSocketServerProtocol):
        _connectionMade = daphne_server._quietly(WebSocketServerProtocol._connectionMade)  # noqa: N815 (autobahn's name)

    factory = WebSocketServerFactory()
    factory.setProtocolOptions(autoPingInterval=7, openHandshakeTimeout=3, allowNullOrigin=True)
    quiet = Quiet()
    quiet.factory = factory
    quiet.autoPingTimeout = 2  # set on the protocol: kept, as autobahn keeps it
    quiet.makeConnection(StringTransport())

    assert formatted == [[]]
    assert "CONFIG_ATTRS" not in vars(quiet)
    for name in Quiet.CONFIG_ATTRS:
        expected = 2 if name == "autoPingTimeout" else getattr(factory, name)
        assert vars(quiet)[name] == expected, name
    assert quiet.state == WebSocketServerProtocol.STATE_CONNECTING
    assert isinstance(quiet.send_queue, daphne_server.SendQueue)


def test_a_connection_s_chopped_writes_go_out_in_order_through_its_small_send_queue():
    """autobahn's chopped writes still pass through the queue (``append``, ``len``, ``popleft``);
    an idle connection's queue is under 100 bytes (autobahn's empty ``deque``: about 760)."""

    class Quiet(WebSocketServerProtocol):
        _connectionMade = daphne_server._quietly(WebSocketServerProtocol._connectionMade)  # noqa: N815 (autobahn's name)

    quiet, transport = Quiet(), StringTransport()
    quiet.factory = WebSocketServerFactory()
    quiet.makeConnection(transport)
    assert sys.getsizeof(quiet.send_queue) < 100
    quiet.sendData(b"abcdef", chopsize=4)
    while quiet.send_queue:
        quiet._send()  # what the reactor's delayed calls do
    assert transport.value() == b"abcdef"


def test_autobahn_uses_its_send_queue_only_as_the_small_queue_allows():
    """Every use of ``send_queue`` anywhere in autobahn's protocol module is one ``SendQueue``
    keeps (``append``, ``popleft``, its length or truth): a new autobahn that calls another deque
    method in any method fails here, not on a connection."""
    source = inspect.getsource(autobahn_protocol)
    uses = {
        node.attr
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "send_queue"
    }
    assert uses <= {"append", "popleft"}, uses
    assert "send_queue = deque()" in source  # the one it makes, replaced by a SendQueue


@pytest.mark.parametrize(("module_name", "names"), daphne_server.AUTOBAHN_DEBUG_TEXT)
def test_autobahn_s_per_frame_debug_text_is_the_same_text_built_only_when_formatted(module_name, names):
    module = importlib.import_module(module_name)
    daphne_server._autobahn_debug_text_lazy()
    daphne_server._autobahn_debug_text_lazy()  # installing twice wraps once
    for name in names:
        helper = getattr(module, name)
        own = getattr(autobahn_util, name)
        assert helper.__wrapped__ is own
        value = WebSocketServerProtocol.sendData if name == "hltype" else 1234
        text = helper(value)
        assert isinstance(text, daphne_server.LazyText)
        assert str(text) == own(value)
        assert f"{text} sent" == f"{own(value)} sent"


class _Reactor:
    """What a Twisted TCP connection asks of its reactor when it writes: the writers it registers."""

    def __init__(self) -> None:
        self.writers: list[object] = []

    def addWriter(self, writer: object) -> None:  # noqa: N802 (Twisted's name)
        self.writers.append(writer)

    def removeWriter(self, writer: object) -> None:  # noqa: N802 (Twisted's name)
        pass


def _connection(sock: socket.socket) -> tuple[tcp.Connection, _Reactor]:
    reactor = _Reactor()
    sock.setblocking(False)
    connection = tcp.Connection(sock, protocol=None, reactor=reactor)  # type: ignore[arg-type]
    connection.connected = True
    connection.write = daphne_server._write_at_once(tcp.Connection.write).__get__(connection)  # type: ignore[method-assign]
    return connection, reactor


def test_a_write_with_nothing_buffered_goes_to_the_socket_at_once():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection, reactor = _connection(ours)
        connection.write(b'[3,"1",{}]')
        connection.write(b'[3,"2",{}]')
        assert theirs.recv(100) == b'[3,"1",{}][3,"2",{}]'
        assert reactor.writers == [] and connection._tempDataBuffer == []


def test_what_the_socket_does_not_take_is_buffered_and_later_writes_queue_behind_it():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        connection, reactor = _connection(ours)
        big = bytes(range(256)) * 4096
        connection.write(big)
        connection.write(b"after")
        assert reactor.writers == [connection, connection]
        buffered = b"".join(connection._tempDataBuffer)
        assert buffered.endswith(b"after") and len(buffered) < len(big) + 5
        received = b""
        theirs.setblocking(False)
        while len(received) < len(big) + 5:
            with contextlib.suppress(BlockingIOError):
                received += theirs.recv(1 << 16)
            if connection._tempDataBuffer or connection.dataBuffer:
                connection.doWrite()
        assert received == big + b"after"


def test_a_write_to_a_closed_peer_is_left_to_twisted_s_own_write_path():
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        connection, reactor = _connection(ours)
        connection.write(b'[3,"1",{}]')
        assert connection._tempDataBuffer == [b'[3,"1",{}]'] and reactor.writers == [connection]
        assert isinstance(connection.doWrite(), Exception)  # Twisted then closes the connection, as before


def test_an_aborted_connection_and_a_pull_producer_take_twisted_s_own_write_path():
    """After abortConnection nothing more reaches the peer; a pull (non-streaming) producer is asked
    for more only from doWrite, so its writes must register the connection as a writer."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection, reactor = _connection(ours)
        connection._aborting = True
        connection.write(b"after-abort")
        assert connection._tempDataBuffer == [b"after-abort"]
    ours, theirs = socket.socketpair()
    with ours, theirs:
        connection, reactor = _connection(ours)
        connection.producer, connection.streamingProducer = object(), False
        connection.write(b"pulled")
        assert connection._tempDataBuffer == [b"pulled"] and reactor.writers == [connection]


def test_a_handshake_whose_application_already_ended_is_answered_late_without_taking_a_place():
    """Its instance ended (a crashed consumer) before daphne's timeout check refused it: nothing
    would ever free the place it took."""
    gate, protocol = daphne_server.HandshakeGate(), _ConnectingProtocol()
    gate.protocols.add(protocol)
    gate.ended(protocol)
    gate.refuse_late(protocol)
    assert protocol.sent[0].startswith(b"HTTP/1.1 503")
    assert gate.in_progress() == 0


_UPGRADE = (
    b"GET /ocpp/1.6/CP-1?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Protocol: ocpp1.6\r\nAuthorization: Basic Q1AtMTpzZWNyZXQ=\r\n\r\n"
)


def test_a_plain_upgrade_request_is_read_with_its_query_string():
    assert daphne_server.upgrade_request(_UPGRADE) == b"x=1"
    assert daphne_server.upgrade_request(_UPGRADE.replace(b"?x=1", b"")) == b""
    assert daphne_server.upgrade_request(_UPGRADE.replace(b"Upgrade: websocket", b"upgrade:WebSocket ")) == b"x=1"


@pytest.mark.parametrize(
    "data",
    [
        _UPGRADE[:-2],  # not whole: the rest comes in a later read
        _UPGRADE + b"\x81\x05hello",  # more than the request
        _UPGRADE.replace(b"GET", b"POST"),
        _UPGRADE.replace(b"HTTP/1.1", b"HTTP/1.0"),
        _UPGRADE.replace(b"Upgrade: websocket", b"Upgrade: h2c"),
        _UPGRADE.replace(b"Upgrade: websocket\r\n", b""),
        _UPGRADE.replace(b"Host:", b"Content-Length: 0\r\nHost:"),
        _UPGRADE.replace(b"Host:", b"Transfer-Encoding: chunked\r\nHost:"),
        _UPGRADE.replace(b"Host:", b"upgrade: websocket\r\nHost:"),  # a header twice
        _UPGRADE.replace(b"Connection: Upgrade\r\n", b"Connection: Upgrade\r\n keep-alive\r\n"),  # obs-fold
        _UPGRADE.replace(b"Host:", b"Host :"),  # space before the colon
        _UPGRADE.replace(b"Host:", b"Ho st:"),
        _UPGRADE.replace(b"127.0.0.1", "caf\u00e9".encode()),  # obs-text
        _UPGRADE.replace(b"/ocpp/1.6/CP-1", "/ocpp/1.6/CP-\u00e9".encode()),
        _UPGRADE.replace(b"\r\nHost", b"\nHost"),  # a bare LF
        _UPGRADE.replace(b"127.0.0.1", b"127.0.0.1\x00"),
    ],
)
def test_anything_but_a_plain_upgrade_request_alone_takes_the_http_parse(data):
    assert daphne_server.upgrade_request(data) is None


def _server_reading(application: Any) -> tuple[Any, Any, Any]:
    """A daphne server (ours installed) running ``application``, and the HTTP channel of a
    connection on a fake transport, made and not yet given anything to read: the server, the
    transport (whose ``protocol`` an upgrade sets) and the channel."""
    from daphne import cli
    from daphne.http_protocol import HTTPFactory
    from daphne.ws_protocol import WebSocketFactory
    from twisted.internet.address import IPv4Address

    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(application=application, endpoints=["tcp:0"], signal_handlers=False)
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    server.ws_factory = WebSocketFactory(server, server=server.server_name)
    server.ws_factory.setProtocolOptions(allowNullOrigin=True, openHandshakeTimeout=0)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    channel = server.http_factory.buildProtocol(transport.getPeer())
    channel.makeConnection(transport)
    return server, transport, channel


async def _upgraded(data: bytes, *, at_once: bool) -> tuple[list[dict[str, object]], bytes, object, int, str]:
    """A daphne server's channel reading ``data`` (our path or Twisted's and daphne's), its
    application accepting: the scopes it was given, what was written, the transport's protocol,
    the HTTP requests the channel made, and whether the transport still reads once its send
    buffer filled (``producing``; a producer still registered on it is asked to pause)."""
    from twisted.web.http import HTTPChannel

    scopes: list[dict[str, object]] = []

    async def application(scope, receive, send):
        scopes.append(scope)
        await send({"type": "websocket.accept", "subprotocol": "ocpp1.6"})

    server, transport, channel = _server_reading(application)
    if at_once:
        channel.dataReceived(data)
    else:
        HTTPChannel.dataReceived.__wrapped__(channel._channel, data)  # type: ignore[attr-defined]
    for _ in range(20):
        await asyncio.sleep(0)
    entries = server.connections.values()
    instances = [entry["application_instance"] for entry in entries if "application_instance" in entry]
    for instance in instances:
        instance.cancel()
    for instance in instances:
        with contextlib.suppress(asyncio.CancelledError):
            await instance
    if transport.producer is not None and not transport.disconnecting:
        transport.producer.pauseProducing()
    protocol = getattr(transport, "protocol", None)
    return scopes, transport.value(), protocol, len(channel._channel.requests), transport.producerState


async def test_an_upgrade_read_at_once_gives_the_application_and_the_charger_what_daphne_s_path_gives():
    ours, written, protocol, requests, reading = await _upgraded(_UPGRADE, at_once=True)
    theirs, written_theirs, protocol_theirs, requests_theirs, reading_theirs = await _upgraded(_UPGRADE, at_once=False)
    assert (requests, requests_theirs) == (0, 1)  # no HTTP request parsed on ours
    assert reading == reading_theirs == "producing"  # a slow reader's full send buffer never stops our reads
    assert type(protocol).__name__ == type(protocol_theirs).__name__ == "WebSocketProtocol"
    assert written == written_theirs and written.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert len(ours) == len(theirs) == 1
    for scope in (ours[0], theirs[0]):  # each server's own sender: compared by name
        scope["extensions"] = sorted(scope["extensions"])
    assert ours[0] == theirs[0]
    assert ours[0]["query_string"] == b"x=1" and ours[0]["path"] == "/ocpp/1.6/CP-1"
    assert (b"authorization", b"Basic Q1AtMTpzZWNyZXQ=") in ours[0]["headers"]


async def test_an_upgrade_read_at_once_beyond_the_cap_is_refused_503_before_any_application(monkeypatch):
    monkeypatch.setattr(daphne_server.HandshakeGate, "full", lambda self: True)
    scopes, written, protocol, requests, _ = await _upgraded(_UPGRADE, at_once=True)
    assert scopes == [] and protocol is None and requests == 0
    assert written.startswith(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: ")


async def _accepting_then(sending: str) -> tuple[bytes, bytes, bool]:
    """A daphne server's WebSocket application that accepts, then sends ``[3]`` through ``send``
    (``sending="send"``) or the scope's ``TEXT_AT_ONCE`` extension, then again once its protocol is
    disconnected: the bytes written after the handshake, after the disconnect, and what the
    extension returned for the disconnected protocol."""
    accepted = asyncio.Event()
    sent_after_disconnect: list[bool] = []

    async def application(scope, receive, send):
        async def sent(text: str) -> bool:
            if sending == "send":
                await send({"type": "websocket.send", "text": text})
                return True
            return scope["extensions"][daphne_server.TEXT_AT_ONCE]["send"](text)

        await send({"type": "websocket.accept", "subprotocol": "ocpp1.6"})
        accepted.set()
        await sent("[3]")
        await asyncio.sleep(0.01)
        sent_after_disconnect.append(await sent("[4]"))

    server, transport, channel = _server_reading(application)
    channel.dataReceived(_UPGRADE)
    await asyncio.wait_for(accepted.wait(), 5)
    await asyncio.sleep(0)
    written = transport.value().partition(b"\r\n\r\n")[2]
    protocol = getattr(transport, "protocol")  # noqa: B009  (the upgrade set it; StringTransport declares none)
    server.protocol_disconnected(protocol)
    instance = server.connections[protocol]["application_instance"]
    await asyncio.wait_for(instance, 5)
    return written, transport.value().partition(b"\r\n\r\n")[2][len(written) :], sent_after_disconnect[0]


async def test_a_websocket_application_may_write_text_at_once_as_daphne_sends_it():
    """The scope's ``TEXT_AT_ONCE`` extension writes the frame ``send`` would, with no reply hop,
    and nothing to a disconnected protocol (then False: the application falls back to ``send``)."""
    at_once, after_disconnect, sent = await _accepting_then("at once")
    through_send, after_disconnect_send, _ = await _accepting_then("send")
    assert at_once == through_send == b"\x81\x03[3]"
    assert after_disconnect == after_disconnect_send == b""
    assert sent is False


async def test_a_send_on_a_socket_that_closed_before_daphne_heard_of_it_raises_socket_closed():
    """autobahn's ``Disconnected`` for a frame sent after the peer left, before daphne's disconnect
    reached the application, is raised as ``SocketClosed``: the ASGI server's ``OSError``."""
    accepted, closed = asyncio.Event(), asyncio.Event()
    raised: list[BaseException] = []

    async def application(scope, receive, send):
        await send({"type": "websocket.accept", "subprotocol": "ocpp1.6"})
        accepted.set()
        await closed.wait()
        try:
            await send({"type": "websocket.send", "text": "[3]"})
        except BaseException as error:
            raised.append(error)

    server, transport, channel = _server_reading(application)
    channel.dataReceived(_UPGRADE)
    await asyncio.wait_for(accepted.wait(), 5)
    protocol = getattr(transport, "protocol")  # noqa: B009  (the upgrade set it; StringTransport declares none)
    protocol.state = protocol.STATE_CLOSED  # the peer left; daphne has not heard yet
    closed.set()
    await asyncio.wait_for(server.connections[protocol]["application_instance"], 5)
    [error] = raised
    assert isinstance(error, daphne_server.SocketClosed) and isinstance(error, OSError)


def test_twisted_s_call_with_logger_is_the_one_read_here():
    spec = importlib.util.find_spec("twisted.python.log")
    assert spec is not None and spec.origin is not None
    module = ast.parse(Path(spec.origin).read_text())
    function = next(n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "callWithLogger")
    assert hashlib.sha256(ast.unparse(function).encode()).hexdigest()[:16] == "fd2730e72c4e7dae"


class _Logged:
    def logPrefix(self) -> str:  # noqa: N802 (Twisted's name)
        return "WebSocketProtocol,7,127.0.0.1"


def _called(call_with_logger: Any, func: Any) -> tuple[Any, list[tuple[Any, type]]]:
    from twisted.logger import globalLogPublisher

    events: list[Any] = []
    observer: Any = events.append
    globalLogPublisher.addObserver(observer)
    try:
        result = call_with_logger(_Logged(), func, 2, factor=3)
    finally:
        globalLogPublisher.removeObserver(observer)
    return result, [(event.get("system"), type(event["failure"].value)) for event in events if event.get("isError")]


def test_a_read_without_a_log_context_returns_and_logs_a_failure_as_twisted_s_wrapper_does():
    from twisted.python import context
    from twisted.python import log as twisted_log

    def product(value: int, *, factor: int) -> tuple[int, str]:
        return value * factor, context.get(twisted_log.ILogContext)["system"]

    def failing(value: int, *, factor: int) -> None:
        raise ValueError(value * factor)

    assert _called(twisted_log.callWithLogger, product) == ((6, "WebSocketProtocol,7,127.0.0.1"), [])
    assert _called(daphne_server._called_with_logger, product) == ((6, "-"), [])  # no context pushed
    theirs = _called(twisted_log.callWithLogger, failing)
    assert (
        _called(daphne_server._called_with_logger, failing)
        == theirs
        == (
            None,
            [("WebSocketProtocol,7,127.0.0.1", ValueError)],
        )
    )


@pytest.mark.parametrize(("verbosity", "without_context"), [(1, True), (0, True), (2, False)])
def test_a_server_whose_twisted_log_goes_nowhere_registers_its_sockets_without_a_log_context(
    monkeypatch, verbosity, without_context
):
    from daphne import cli, server
    from twisted.internet import asyncioreactor
    from twisted.python import log as twisted_log

    daphne_server.daphne_server_install()
    monkeypatch.setattr(asyncioreactor, "callWithLogger", twisted_log.callWithLogger)
    monkeypatch.setattr(server.Server, "run", lambda self: None)  # daphne's own: listening, the reactor
    ours = cli.CommandLineInterface.server_class(application=None, endpoints=["tcp:0"], verbosity=verbosity)
    ours.run()
    expected = daphne_server._called_with_logger if without_context else twisted_log.callWithLogger
    assert asyncioreactor.callWithLogger is expected


class _ReadingReactor(_Reactor):
    """``_Reactor``, and the readers an HTTP channel's transport registers and removes as it pauses."""

    def addReader(self, reader: object) -> None:  # noqa: N802 (Twisted's name)
        pass

    def removeReader(self, reader: object) -> None:  # noqa: N802 (Twisted's name)
        pass


_POST = (
    b"POST /api/v1/ocpp16/CP-1/reset HTTP/1.1\r\nHost: csms\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\n\r\n{}"
)


async def _answered(request: bytes, *, whole: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes, int]:
    """A daphne server's channel on a TCP connection reading ``request``, its application answering
    ``{"status":"Accepted"}`` (our path, ``whole``, or daphne's): what the peer received by the time the
    application finished, what was left in the connection's buffer, and the writers registered."""
    from daphne import cli
    from daphne.http_protocol import HTTPFactory, WebRequest
    from twisted.internet.address import IPv4Address

    daphne_server.daphne_server_install()
    if not whole:
        monkeypatch.setattr(WebRequest, "handle_reply", WebRequest.handle_reply.__wrapped__)
    done = asyncio.Event()

    async def application(scope, receive, send):
        await receive()
        body = b'{"status":"Accepted"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        done.set()

    server = cli.CommandLineInterface.server_class(application=application, endpoints=["tcp:0"], signal_handlers=False)
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    listener = socket.create_server(("127.0.0.1", 0))
    theirs = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    with ours, theirs:
        ours.setblocking(False)
        reactor = _ReadingReactor()
        connection = tcp.Connection(ours, protocol=None, reactor=reactor)  # type: ignore[arg-type]
        connection.connected = True
        connection.getPeer = lambda: IPv4Address("TCP", "127.0.0.1", 40000)  # type: ignore[method-assign]
        connection.getHost = lambda: IPv4Address("TCP", "127.0.0.1", 8000)  # type: ignore[method-assign]
        channel = server.http_factory.buildProtocol(connection.getPeer())
        connection.protocol = channel
        channel.makeConnection(connection)
        channel.dataReceived(request)
        await asyncio.wait_for(done.wait(), 5)
        theirs.setblocking(False)
        received = b""
        with contextlib.suppress(BlockingIOError):
            received = theirs.recv(1 << 16)
        buffered = b"".join(connection._tempDataBuffer) + connection.dataBuffer
        writers = len(reactor.writers)
        for entry in server.connections.values():
            if "application_instance" in entry:
                entry["application_instance"].cancel()
    return received, buffered, writers


@pytest.mark.parametrize("request_bytes", [_POST, _POST.replace(b"HTTP/1.1", b"HTTP/1.0")])
async def test_an_http_answer_s_headers_and_body_go_to_the_socket_at_once_as_daphne_writes_them(
    request_bytes, monkeypatch
):
    """Fails before the change: Twisted's ``writeSequence`` of the header block only buffered it
    and registered the socket as a writer, the body buffered behind it, for the loop's next turn.
    An answer that ends its connection (HTTP/1.0) is buffered for Twisted's close as before."""
    received, buffered, writers = await _answered(request_bytes, whole=True, monkeypatch=monkeypatch)
    monkeypatch.undo()
    received_theirs, buffered_theirs, writers_theirs = await _answered(
        request_bytes, whole=False, monkeypatch=monkeypatch
    )
    assert received_theirs == b"" and writers_theirs >= 1  # daphne's: all of it waits for the loop
    assert buffered_theirs.startswith(b"HTTP/1.") and buffered_theirs.endswith(b'\r\n\r\n{"status":"Accepted"}')
    if b"HTTP/1.0" in request_bytes:  # closing: Twisted's own write path, the same bytes
        assert received == b"" and buffered == buffered_theirs
    else:  # the same bytes, in one write at once
        assert received == buffered_theirs and buffered == b"" and writers == 0


class _ReadDetails(dict):
    """A connection's entry in daphne's ``connections`` that counts its reads."""

    reads = 0

    def get(self, *args: Any) -> Any:
        self.reads += 1
        return super().get(*args)


async def test_the_application_checker_reaps_as_daphne_s_reading_only_the_connections_that_ended():
    from daphne import cli

    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(application=None, endpoints=["tcp:0"], signal_handlers=False)
    server.connections = {}

    async def running(scope, receive, send):
        await receive()

    async def ending(scope, receive, send):
        return None

    live, ended_open, ended_gone, gone_running = (f"protocol-{n}" for n in range(4))
    for protocol, application in ((live, running), (ended_open, ending), (ended_gone, ending), (gone_running, running)):
        server.application = application
        server.protocol_connected(protocol)
        server.create_application(protocol, {"type": "http"})
    for _ in range(3):
        await asyncio.sleep(0)  # the ending applications end
    for protocol in (ended_gone, gone_running):
        server.protocol_disconnected(protocol)
    server.connections[live] = _ReadDetails(server.connections[live])

    daphne_server.application_checked(server)
    assert server.connections[live].reads == 0  # daphne's read every connection every second
    assert set(server.connections) == {live, ended_open, gone_running}
    assert "application_instance" not in server.connections[ended_open]
    assert not server.connections[gone_running]["application_instance"].done()
    assert server.ended == {gone_running}  # disconnected, its application left to end or be cancelled

    server.protocol_disconnected(ended_open)
    server.connections[gone_running]["disconnected"] -= server.application_close_timeout + 1
    daphne_server.application_checked(server)
    assert set(server.connections) == {live, gone_running}  # its application cancelled, not yet ended
    await asyncio.sleep(0)
    daphne_server.application_checked(server)
    assert set(server.connections) == {live} and server.ended == set()
    server.connections[live]["application_instance"].cancel()


class _CountedChecks:
    """A daphne ``WebSocketProtocol``, open, whose ``check_timeouts`` (daphne's, with the late
    answer) is counted and whose pings are noted, not written."""

    def __init__(self, server: Any, *, opened: float, last_ping: float, connecting: bool = False) -> None:
        from daphne.ws_protocol import WebSocketProtocol

        self.protocol = WebSocketProtocol.__new__(WebSocketProtocol)
        self.protocol.server = server
        self.protocol.state = WebSocketProtocol.STATE_CONNECTING if connecting else WebSocketProtocol.STATE_OPEN
        self.protocol.socket_opened, self.protocol.last_ping = opened, last_ping
        self.checks = self.pings = 0
        check_timeouts = self.protocol.check_timeouts

        def counted() -> None:
            self.checks += 1
            check_timeouts()

        def ping() -> None:
            self.pings += 1

        self.protocol.check_timeouts = counted
        self.protocol._sendAutoPing = ping


def _ticking_server(monkeypatch: pytest.MonkeyPatch, now: list[float]) -> Any:
    import daphne.server
    from daphne import cli

    daphne_server.daphne_server_install()
    server = cli.CommandLineInterface.server_class(application=None, endpoints=["tcp:0"], signal_handlers=False)
    server.connections = {}
    monkeypatch.setattr(daphne.server.reactor, "callLater", lambda *_: None)  # the tick is driven here
    monkeypatch.setattr("time.time", lambda: now[0])  # daphne's checks and ours read time.time()
    return server


def test_the_timeout_checker_looks_only_at_the_connections_whose_check_can_act(monkeypatch):
    now = [1000.0]
    server = _ticking_server(monkeypatch, now)
    quiet = _CountedChecks(server, opened=985.0, last_ping=985.0)  # ping due after 1005
    spoke = _CountedChecks(server, opened=960.0, last_ping=999.0)  # ping due after 1019
    for connection in (quiet, spoke):
        server.protocol_connected(connection.protocol)
    server.timeout_checker()  # first tick after they connected: each filed under its own time
    assert (quiet.checks, spoke.checks) == (1, 1)

    for tick in (1002.0, 1004.0):
        now[0] = tick
        server.timeout_checker()
    assert (quiet.checks, spoke.checks) == (1, 1)  # daphne's checked each at every tick, to no effect
    now[0] = 1006.0
    server.timeout_checker()
    assert (quiet.checks, quiet.pings, spoke.checks) == (2, 1, 1)

    spoke.protocol.last_ping = 1015.0  # a message came: its ping moves later
    now[0] = 1020.0
    server.timeout_checker()
    assert (spoke.checks, spoke.pings) == (2, 0)  # looked at when first due, not pinged, filed again
    now[0] = 1036.0
    server.timeout_checker()
    assert (spoke.checks, spoke.pings) == (3, 1)
    assert (quiet.checks, quiet.pings) == (3, 2)  # pinged at 1006, due again after 1026


def test_a_handshake_past_the_connect_timeout_is_answered_late_at_the_first_tick_after_it(monkeypatch):
    now = [1000.0]
    server = _ticking_server(monkeypatch, now)
    server.websocket_connect_timeout = 7  # due before the ping (20 s), whatever CSMS_HANDSHAKE_TIMEOUT says
    handshake = _CountedChecks(server, opened=1000.0, last_ping=1000.0, connecting=True)
    refused = []
    monkeypatch.setattr(server.handshake_gate, "refuse_late", refused.append)
    handshake.protocol.handshake_deferred = object()  # not yet answered
    server.protocol_connected(handshake.protocol)
    server.timeout_checker()
    now[0] = server.websocket_connect_timeout + 999.9  # not yet due: not looked at
    server.timeout_checker()
    assert refused == [] and handshake.checks == 1
    now[0] += 2.0
    server.timeout_checker()
    assert refused == [handshake.protocol] and handshake.checks == 2


def test_a_connection_that_left_is_dropped_and_any_other_protocol_is_checked_every_tick(monkeypatch):
    now = [1000.0]
    server = _ticking_server(monkeypatch, now)
    gone = _CountedChecks(server, opened=1000.0, last_ping=1000.0)

    class HttpRequest:  # daphne's WebRequest: its own check_timeouts, no WebSocket states
        checks = 0

        def check_timeouts(self) -> None:
            self.checks += 1

    request = HttpRequest()
    for protocol in (gone.protocol, request):
        server.protocol_connected(protocol)
    del server.connections[gone.protocol]  # the application checker removed it
    for tick in (1000.0, 1030.0, 1060.0):
        now[0] = tick
        server.timeout_checker()
    assert gone.checks == 0 and len(server.timeout_checks) == 1
    assert request.checks == 3


def test_closed_connections_leave_the_checker_once_they_outnumber_the_open(monkeypatch):
    now = [1000.0]
    server = _ticking_server(monkeypatch, now)
    server.ping_interval = server.websocket_timeout = 86400  # a benchmark's: not due for a day
    closed = [_CountedChecks(server, opened=1000.0, last_ping=1000.0) for _ in range(100)]
    kept = _CountedChecks(server, opened=1000.0, last_ping=1000.0)
    for connection in (*closed, kept):
        server.protocol_connected(connection.protocol)
    server.timeout_checker()  # each filed under its own time, a day away
    for connection in closed:
        del server.connections[connection.protocol]
    now[0] = 1002.0
    server.timeout_checker()
    assert len(server.timeout_checks) == 1 and sum(c.checks for c in closed) == 100


def test_a_check_that_raises_is_logged_and_the_others_and_itself_are_checked_again(monkeypatch, caplog):
    """Fails before the change: the first check's error left the tick, the other connection's
    entry taken from the heap was lost (never checked or pinged again), and so was the raiser's."""
    now = [1000.0]
    server = _ticking_server(monkeypatch, now)
    broken = _CountedChecks(server, opened=970.0, last_ping=970.0)  # its ping due: it raises before sending it
    fine = _CountedChecks(server, opened=1000.0, last_ping=1000.0)
    for connection in (broken, fine):
        server.protocol_connected(connection.protocol)

    def raising() -> None:
        broken.checks += 1
        raise RuntimeError("a protocol's own bug")

    broken.protocol.check_timeouts = raising
    with caplog.at_level("ERROR", logger="kernel.daphne_server"):
        server.timeout_checker()
        assert (broken.checks, fine.checks) == (1, 1)
        assert "Timeout check" in caplog.text and len(server.timeout_checks) == 2
        for tick in (1002.0, 1004.0, 1006.0):  # not checked (nor logged) again at every tick (review)
            now[0] = tick
            server.timeout_checker()
        assert broken.checks == 1 and len(caplog.records) == 1
        now[0] = 1000.0 + server.ping_interval + 1
        server.timeout_checker()
    assert (broken.checks, fine.checks, fine.pings) == (2, 2, 1)


def test_a_websocket_is_never_closed_for_its_age_unless_the_command_line_asks():
    """Fails before the change: daphne's command line and server closed every WebSocket a day
    (``--websocket_timeout`` 86,400 s, its default) after it opened: each healthy charger went
    offline and back once a day. The command line parses its options before it imports the
    application (and so this module): its default reaches the server. Another value still applies."""
    from daphne import cli

    daphne_server.daphne_server_install()
    parsed = cli.CommandLineInterface().parser.parse_args(["csms.asgi:application"]).websocket_timeout
    given = cli.CommandLineInterface().parser.parse_args(["--websocket_timeout", "600", "csms.asgi:application"])
    built = [
        cli.CommandLineInterface.server_class(
            application=None, endpoints=["tcp:0"], signal_handlers=False, **timeout
        ).websocket_timeout
        for timeout in ({}, {"websocket_timeout": parsed}, {"websocket_timeout": given.websocket_timeout})
    ]
    assert built == [-1, -1, 600]
