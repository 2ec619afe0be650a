"""A request's head (request line and headers) read within ``CSMS_REQUEST_HEAD_TIMEOUT`` seconds
(pinned: Twisted 26.10.0's ``HTTPChannel``).

Twisted's HTTP channel times a connection out only when it is idle for the factory's ``timeOut``, 12
hours, and every byte read restarts that: a connection that sent its request line and headers a
byte a minute (slow-loris), or nothing at all (a charger's handshake lost with its cellular link
before the request was out), held its socket and its channel for hours, counted by no handshake
limit (``CSMS_MAX_HANDSHAKES_PER_IP`` and the gate count from a whole request on). Now a head must be
in within the deadline from the connection's start, and on a kept-alive connection from the first
byte of its next request (an idle connection of a proxy's pool waits as before); past it, the
connection is answered ``408 Request Timeout`` (RFC 9110 §15.5.9, the API's JSON error shape) and
closed as Twisted closes a timed-out one. A body is not timed (a charger's diagnostics upload over
a slow link takes minutes), nor is a head read before the deadline, nor an upgraded connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings

from kernel.api_errors import error_body

_ATTRIBUTE = "_csms_head_deadline"  # the channel's pending DelayedCall while a head is read
_BODY = json.dumps(error_body("RequestTimeout", "The request's headers did not arrive in time.")).encode()
_ANSWER = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(_BODY)).encode()
    + b"\r\nConnection: close\r\n\r\n"
    + _BODY
)


def head_deadline_started(channel: Any) -> None:
    """The deadline of the head ``channel`` reads now or next, from now: unless one runs already, the
    channel is handling a request, or it reads a body (raw mode)."""
    if getattr(channel, _ATTRIBUTE, None) is not None or channel._handlingRequest or not channel.line_mode:
        return
    setattr(channel, _ATTRIBUTE, channel.callLater(settings.CSMS_REQUEST_HEAD_TIMEOUT, _expired_for(channel)))


def head_deadline_stopped(channel: Any) -> None:
    """The head is in (or the connection gone, or handed to a WebSocket): its deadline is off."""
    deadline = getattr(channel, _ATTRIBUTE, None)
    if deadline is not None:
        setattr(channel, _ATTRIBUTE, None)
        if deadline.active():
            deadline.cancel()


def _expired_for(channel: Any) -> Callable[[], None]:
    """What the deadline does: the head is not in, the connection answered 408 and closed."""

    def expired() -> None:
        setattr(channel, _ATTRIBUTE, None)
        if channel.transport is None:  # closed meanwhile
            return
        channel.transport.write(_ANSWER)
        channel.timeoutConnection()  # Twisted's close of a timed-out client (aborted if it does not read)

    return expired


def _started_with_connection(connection_made: Callable[[Any], None]) -> Callable[[Any], None]:
    @wraps(connection_made)
    def connection_made_timed(channel: Any) -> None:
        connection_made(channel)
        head_deadline_started(channel)

    return connection_made_timed


def _stopped_after(method: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(method)
    def stopped(channel: Any, *args: Any, **kwargs: Any) -> Any:
        head_deadline_stopped(channel)
        return method(channel, *args, **kwargs)

    return stopped


def request_heads_timed(channel_class: type[Any]) -> None:
    """Install the deadline on Twisted's ``HTTPChannel``: started with the connection, stopped once its
    headers are in or it is lost. ``kernel.daphne_server``'s read of a channel's bytes starts it for a
    kept-alive connection's next request (``head_deadline_started``), and stops it for an upgrade it
    hands to autobahn at once."""
    if hasattr(channel_class.connectionMade, "__wrapped__"):  # already installed
        return
    channel_class.connectionMade = _started_with_connection(channel_class.connectionMade)
    channel_class.allHeadersReceived = _stopped_after(channel_class.allHeadersReceived)
    channel_class.connectionLost = _stopped_after(channel_class.connectionLost)
