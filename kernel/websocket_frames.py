"""An OCPP message's WebSocket frames, read and written without autobahn's general machinery
(pinned: daphne==4.2.3, autobahn==26.11.1).

Every OCPP-J message is one unfragmented text frame each way. autobahn reads a frame through a
state machine built for every case (fragments, control frames, compression, per-frame hooks, a
masker object and an incremental UTF-8 validator per message, a resolved Deferred for the
``message`` event nobody listens to), and writes one through four layers of checks: about a fifth
of the event loop's CPU per OCPP message, both ways.

- ``text_frames_delivered``: when a read holds only whole, masked, unfragmented text frames of
  valid UTF-8 within the frame and message limits, and autobahn is between messages on an open
  connection, each payload goes to the protocol's ``_onMessage`` (daphne's ``onMessage``) with the
  counters and auto-ping bookkeeping autobahn would do. Anything else (a partial frame, a ping, a
  close, a fragment, invalid UTF-8, a limit crossed) is left whole to autobahn, which has read
  none of it yet, and answers it as before.
- ``text_frame_sent``: a text message on an open connection without compression, fragmentation or
  a queued chopped write is one frame written to the transport, as ``sendMessage`` builds it.

Neither runs while autobahn's or daphne's debug lines are on (they would miss their per-frame
lines); both then leave the frame to autobahn. kernel/tests/test_websocket_frames.py feeds the same
bytes to both paths and fingerprints the autobahn and daphne methods they stand in for.
"""

from __future__ import annotations

import logging
from typing import Any

from autobahn.websocket.protocol import WebSocketProtocol

try:  # the C function websockets itself uses, when it was built with its speedups
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

_OPEN = WebSocketProtocol.STATE_OPEN
_TEXT_FIN = 0x81  # FIN, no RSV bits, opcode 1 (text)
_DAPHNE_LOG = logging.getLogger("daphne.ws_protocol")
_QUIET = frozenset({"none", "critical", "error", "warn", "info"})  # txaio's levels that drop debug lines


def _debug_on(protocol: Any) -> bool:
    """Whether autobahn's logger (txaio's, on the protocol) or daphne's writes debug lines."""
    return getattr(protocol.log, "_log_level", "debug") not in _QUIET or _DAPHNE_LOG.isEnabledFor(logging.DEBUG)


def _between_messages(protocol: Any) -> bool:
    """Whether autobahn would read the next bytes as the start of a new message, plainly."""
    return (
        protocol.state == _OPEN
        and not protocol.data
        and protocol.current_frame is None
        and not protocol.inside_message
        and protocol._perMessageCompress is None
        and protocol.utf8validateIncoming
        and protocol.applyMask
        and protocol.websocket_version != 0
        and not protocol.failedByMe
        and not protocol.logFrames
        and not protocol.logOctets
        and not protocol.trackedTimings
        and protocol._listeners is None  # nobody listens to autobahn's "message" event
    )


def text_payloads(data: bytes, *, max_frame: int, max_message: int) -> list[bytes] | None:
    """The unmasked payloads of ``data`` when it is whole masked text frames and nothing else, each
    valid UTF-8, in the minimal length encoding, and within ``max_frame`` / ``max_message`` bytes
    (0: no limit); None when any part of ``data`` is not such a frame."""
    payloads = []
    at, end = 0, len(data)
    while at < end:
        if end - at < 6 or data[at] != _TEXT_FIN or not data[at + 1] & 0x80:
            return None
        length = data[at + 1] & 0x7F
        start = at + 6
        if length == 126:
            length = int.from_bytes(data[at + 2 : at + 4], "big")
            start = at + 8
            if length < 126:
                return None
        elif length == 127:
            return None  # 64 KiB or more: autobahn's
        if start + length > end or 0 < max_frame < length or 0 < max_message < length:
            return None
        payload = apply_mask(data[start : start + length], data[start - 4 : start])
        try:
            payload.decode()
        except UnicodeDecodeError:
            return None
        payloads.append(payload)
        at = start + length
    return payloads


def text_frames_delivered(protocol: Any, data: bytes) -> bool:
    """Deliver ``data`` (bytes just read by the protocol's transport) as autobahn would, when it is
    whole text frames read between messages; False, nothing done, for autobahn to read it."""
    if not data or not _between_messages(protocol) or _debug_on(protocol):
        return False
    payloads = text_payloads(data, max_frame=protocol.maxFramePayloadSize, max_message=protocol.maxMessagePayloadSize)
    if payloads is None:
        return False
    stats = protocol.trafficStats
    stats.incomingOctetsWireLevel += len(data)
    for payload in payloads:
        stats.incomingOctetsWebSocketLevel += len(payload)
        stats.incomingOctetsAppLevel += len(payload)
        stats.incomingWebSocketFrames += 1
        if protocol.autoPingTimeoutCall and protocol.autoPingRestartOnAnyTraffic:
            protocol._cancelAutoPingTimeoutCall()
        stats.incomingWebSocketMessages += 1
        protocol._onMessage(payload, False)
    return True


def _header(length: int) -> bytes:
    if length <= 125:
        return bytes((_TEXT_FIN, length))
    if length <= 0xFFFF:
        return bytes((_TEXT_FIN, 126)) + length.to_bytes(2, "big")
    return bytes((_TEXT_FIN, 127)) + length.to_bytes(8, "big")


def text_frame_sent(protocol: Any, text: str) -> bool:
    """Send the non-empty ``text`` as one text frame, as daphne's ``serverSend`` and autobahn's
    ``sendMessage`` would on an open connection; False, nothing sent, when they would do more."""
    if (
        protocol.state != _OPEN
        or protocol._perMessageCompress is not None
        or protocol.send_queue
        or protocol.maskServerFrames
        or protocol.logFrames
        or protocol.logOctets
        or protocol.trackedTimings
        or _debug_on(protocol)
    ):
        return False
    payload = text.encode()
    length = len(payload)
    if 0 < protocol.maxMessagePayloadSize < length or 0 < protocol.autoFragmentSize < length:
        return False
    frame = _header(length) + payload
    stats = protocol.trafficStats
    stats.outgoingWebSocketMessages += 1
    stats.outgoingOctetsAppLevel += length
    stats.outgoingOctetsWebSocketLevel += length
    stats.outgoingWebSocketFrames += 1
    protocol.transport.write(frame)
    stats.outgoingOctetsWireLevel += len(frame)
    return True
