"""An OCPP message's frames read and written plainly (kernel/websocket_frames.py) as autobahn would.

The same bytes go to a protocol reading with autobahn alone and to one reading through the plain
path first: the same messages, answers on the wire, state and counters. When a fingerprint fails
after an upgrade of autobahn or daphne, read the method it names against kernel/websocket_frames.py
(what a frame's reading and writing update), adapt it, then record the new fingerprint.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet.testing import StringTransport
from websockets.speedups import apply_mask

from kernel import daphne_server, websocket_frames


class _Transport(StringTransport):
    """A StringTransport autobahn may drop, as it drops a TCP connection when it fails one."""

    def unregisterProducer(self) -> None:  # noqa: N802 (Twisted's name)
        self.producer = None

    def abortConnection(self) -> None:  # noqa: N802 (Twisted's name)
        self.loseConnection()


class _Recording(WebSocketServerProtocol):
    messages: list[tuple[bytes, bool]]

    def onMessage(self, payload: bytes, isBinary: bool) -> None:  # noqa: N802, N803 (autobahn's names)
        self.messages.append((payload, isBinary))


class _Plain(_Recording):
    dataReceived = daphne_server._frames_read_plainly(WebSocketServerProtocol.dataReceived)  # type: ignore[assignment]  # noqa: N815


_HANDSHAKE = (
    b"GET /ocpp/1.6/CP-1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _open(cls: type[_Recording], **options: Any) -> tuple[_Recording, _Transport]:
    factory = WebSocketServerFactory("ws://localhost")
    factory.setProtocolOptions(**{"maxMessagePayloadSize": 1000, "maxFramePayloadSize": 1000, **options})
    protocol = cls()
    protocol.factory = factory
    protocol.messages = []
    transport = _Transport()
    protocol.makeConnection(transport)
    protocol.dataReceived(_HANDSHAKE)
    assert protocol.state == WebSocketServerProtocol.STATE_OPEN
    transport.clear()
    return protocol, transport


def _frame(payload: bytes, *, opcode: int = 1, fin: bool = True, masked: bool = True, rsv: int = 0) -> bytes:
    length = len(payload)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([bit | length])
    elif length < 65536:
        head += bytes([bit | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + length.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + apply_mask(payload, mask)


def _non_minimal(payload: bytes) -> bytes:
    """A text frame whose length (under 126) is written in the two-byte form, which RFC 6455 forbids."""
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big") + mask + apply_mask(payload, mask)


CALL = b'[2,"19223201","Heartbeat",{}]'
STREAMS: dict[str, list[bytes]] = {
    "one call": [_frame(CALL)],
    "calls in one read": [_frame(CALL) + _frame(b"[3," + b'"a",' * 40 + b"{}]") + _frame(b"")],
    "a call of 126 bytes and more": [_frame(b"x" * 126), _frame("é".encode() * 400)],
    "non-ASCII text": [_frame('[2,"1","DataTransfer",{"data":"Grüße ☃ 𝄞"}]'.encode())],
    "a frame split over reads": [_frame(CALL)[:5], _frame(CALL)[5:]],
    "a frame and the start of the next": [_frame(CALL) + _frame(CALL)[:3]],
    "a ping between calls": [_frame(CALL), _frame(b"ping", opcode=9), _frame(CALL)],
    "a pong": [_frame(b"", opcode=10) + _frame(CALL)],
    "a binary frame": [_frame(b"\x00\x01", opcode=2), _frame(CALL)],
    "a fragmented message": [_frame(b'[2,"1",', fin=False) + _frame(b'"Heartbeat",{}]', opcode=0), _frame(CALL)],
    "invalid UTF-8": [_frame(CALL), _frame(b'[2,"\xff"]')],
    "a lone surrogate in UTF-8": [_frame(b'"\xed\xa0\x80"')],
    "an unmasked frame": [_frame(CALL, masked=False)],
    "an RSV bit": [_frame(CALL, rsv=4)],
    "over the frame limit": [_frame(b"x" * 1001)],
    "a length not minimally encoded": [_non_minimal(CALL)],
    "a close": [_frame(b"\x03\xe8bye", opcode=8), _frame(CALL)],
    "bytes after a close": [_frame(b"\x03\xe8", opcode=8) + _frame(CALL)],
}


def _outcome(cls: type[_Recording], reads: list[bytes]) -> tuple[Any, ...]:
    protocol, transport = _open(cls)
    for data in reads:
        protocol.dataReceived(data)
    return protocol.messages, transport.value(), protocol.state, vars(protocol.trafficStats)


@pytest.mark.parametrize("reads", STREAMS.values(), ids=STREAMS.keys())
def test_a_read_is_answered_as_autobahn_answers_it(reads):
    """The messages delivered, what is written back (pongs, closes), the state and the counters."""
    assert _outcome(_Plain, reads) == _outcome(_Recording, reads)


def test_reads_cut_anywhere_deliver_the_same_messages():
    rng = random.Random(15)
    stream = b"".join(_frame(rng.randbytes(rng.randint(0, 300)).hex().encode()) for _ in range(40))
    cuts = sorted(rng.sample(range(1, len(stream)), 30))
    reads = [stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert _outcome(_Plain, reads) == _outcome(_Recording, reads)


def test_whole_text_frames_skip_autobahn_s_frame_reader(monkeypatch):
    read_by_autobahn: list[bytes] = []
    monkeypatch.setattr(_Recording, "processData", lambda protocol: read_by_autobahn.append(protocol.data) or False)
    protocol, _ = _open(_Plain)
    protocol.dataReceived(_frame(CALL) + _frame(CALL))
    assert protocol.messages == [(CALL, False), (CALL, False)]
    assert read_by_autobahn == []


def test_a_data_frame_cancels_a_pending_auto_ping_timeout_as_autobahn_does():
    protocol, _ = _open(_Plain)
    cancelled: list[bool] = []
    protocol.autoPingTimeoutCall = object()
    protocol._cancelAutoPingTimeoutCall = lambda: cancelled.append(True)
    protocol.dataReceived(_frame(CALL))
    assert cancelled == [True]


@pytest.mark.parametrize("text", ['[3,"1",{}]', "x" * 125, "x" * 126, "é" * 40_000, "☃" * 22_000])
def test_a_text_message_is_sent_as_the_frame_autobahn_writes(text):
    """Lengths in one byte, two and eight."""
    ours, our_wire = _open(_Recording, maxMessagePayloadSize=1 << 20)
    theirs, their_wire = _open(_Recording, maxMessagePayloadSize=1 << 20)
    assert websocket_frames.text_frame_sent(ours, text)
    theirs.sendMessage(text.encode())
    assert our_wire.value() == their_wire.value()
    assert vars(ours.trafficStats) == vars(theirs.trafficStats)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"autoFragmentSize": 10}, "x" * 11),  # autobahn fragments it
        ({}, "x" * 1001),  # over maxMessagePayloadSize: autobahn raises
    ],
)
def test_a_message_autobahn_would_fragment_or_refuse_is_left_to_it(options, text):
    protocol, wire = _open(_Recording, **options)
    assert not websocket_frames.text_frame_sent(protocol, text)
    assert wire.value() == b""


def test_nothing_is_sent_plainly_on_a_connection_that_is_not_open():
    protocol, wire = _open(_Recording)
    protocol.state = WebSocketServerProtocol.STATE_CLOSING
    assert not websocket_frames.text_frame_sent(protocol, CALL.decode())
    assert wire.value() == b""


@pytest.fixture
def daphne_debug() -> Iterator[None]:
    daphne_log = logging.getLogger("daphne.ws_protocol")
    level = daphne_log.level
    daphne_log.setLevel(logging.DEBUG)
    yield
    daphne_log.setLevel(level)


def test_with_autobahn_s_debug_lines_on_frames_are_left_to_it(monkeypatch):
    protocol, _ = _open(_Plain)
    monkeypatch.setattr(protocol.log, "_log_level", "debug")
    assert not websocket_frames.text_frame_sent(protocol, CALL.decode())
    assert not websocket_frames.text_frames_delivered(protocol, _frame(CALL))


@pytest.mark.usefixtures("daphne_debug")
def test_with_daphne_s_debug_lines_on_frames_are_left_to_daphne_and_autobahn():
    protocol, _ = _open(_Plain)
    assert not websocket_frames.text_frame_sent(protocol, CALL.decode())
    assert not websocket_frames.text_frames_delivered(protocol, _frame(CALL))


def test_autobahn_s_logger_keeps_its_level_where_the_plain_paths_read_it():
    protocol, _ = _open(_Recording)
    assert protocol.log._log_level in websocket_frames._QUIET


class _Connection:
    def __init__(self) -> None:
        self.state = WebSocketServerProtocol.STATE_OPEN


@pytest.mark.parametrize(
    ("connections", "message"),
    [
        ({}, {"type": "websocket.send", "text": "x"}),  # not (or no longer) a connection of the server
        ({"p": {"disconnected": True}}, {"type": "websocket.send", "text": "x"}),
        ({"p": {}}, {"type": "websocket.send", "text": ""}),  # daphne sends nothing for empty text
        ({"p": {}}, {"type": "websocket.send", "bytes": b"x", "text": "x"}),  # daphne raises
        ({"p": {}}, {"type": "websocket.send", "bytes": b"x"}),
    ],
)
def test_the_server_leaves_to_daphne_what_it_does_not_send_as_one_text_frame(connections, message):
    protocol, wire = _open(_Recording)
    connections = {protocol if key == "p" else key: value for key, value in connections.items()}
    assert not daphne_server._text_sent_plainly(connections, protocol, message)
    assert wire.value() == b""


def test_the_server_sends_text_to_a_connected_protocol_plainly():
    protocol, wire = _open(_Recording)
    assert daphne_server._text_sent_plainly({protocol: {}}, protocol, {"type": "websocket.send", "text": "[3]"})
    assert wire.value() == b"\x81\x03[3]"


def _source(module_name: str, class_name: str, name: str) -> str:
    spec = importlib.util.find_spec(module_name)  # read, not imported: importing daphne.server installs a reactor
    assert spec is not None and spec.origin is not None
    module = ast.parse(Path(spec.origin).read_text())
    cls = next(node for node in module.body if isinstance(node, ast.ClassDef) and node.name == class_name)
    method = next(node for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == name)
    return ast.unparse(method)


# What the plain paths stand in for (autobahn 26.11.1, daphne 4.2.3): a frame's reading from the bytes
# to onMessage, and a text message's writing from daphne's handle_reply to the transport.
STOOD_IN_FOR = [
    ("autobahn.twisted.websocket", "WebSocketAdapterProtocol", "dataReceived", "f8959583008aa720"),
    ("autobahn.twisted.websocket", "WebSocketAdapterProtocol", "_onMessage", "a8f141dcfc30d350"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "_dataReceived", "6d9d64799aec24e2"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "consumeData", "ecbccedd2d9bd79d"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "processData", "5b73641140e29d77"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onFrameBegin", "5b039dc4a7e0b4fe"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onFrameData", "31f466f38b0eb4fc"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onFrameEnd", "73397e7666484379"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageBegin", "60832c6b22e90e0f"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageFrameBegin", "43c57cd3fed0e470"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageFrameData", "859127d887033fef"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageFrameEnd", "e30058bf50bf83d0"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageFrame", "2ba2cfbd2ac29e85"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "onMessageEnd", "aaa81c09d01ad8f2"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "sendMessage", "9eb45f2c86b77e36"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "sendFrame", "9df5ffd3f4c82f08"),
    ("autobahn.websocket.protocol", "WebSocketProtocol", "sendData", "511b63b5f46d8cd7"),
    ("daphne.ws_protocol", "WebSocketProtocol", "handle_reply", "837ab2f1c6fc2b2a"),
    ("daphne.ws_protocol", "WebSocketProtocol", "serverSend", "6d9eef8e9ccefdce"),
    ("daphne.ws_protocol", "WebSocketProtocol", "onMessage", "f998b320e49576ac"),
]


@pytest.mark.parametrize(("module_name", "class_name", "name", "fingerprint"), STOOD_IN_FOR)
def test_the_autobahn_and_daphne_code_the_plain_paths_stand_in_for_is_unchanged(
    module_name, class_name, name, fingerprint
):
    source = _source(module_name, class_name, name)
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == fingerprint, (
        f"{module_name}.{class_name}.{name} changed: check kernel/websocket_frames.py against it (module docstring)"
    )
