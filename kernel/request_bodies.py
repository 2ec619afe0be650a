"""Request bodies bounded while they arrive, not once they are stored.

Twisted's HTTP channel stores a request's whole body (in memory, or a temporary file past 100 kB)
before daphne hands the request to the application, which only then can refuse it as too large:
one request announcing 10 GB, from anyone (no key, no token is checked before the body is in),
filled the disk a byte at a time. A body is now refused with ``413`` as soon as its
``Content-Length``, or what a chunked one has sent so far, is over what its path takes, and the
connection is closed without storing the rest:

- a charger's diagnostics or log upload (``/diagnostics/upload/``): ``CSMS_DIAGNOSTICS_MAX_BYTES``,
  plus ``FORM_ROOM`` for a multipart form's own lines (the view checks the file's exact size);
- a firmware image (a multipart form to the API's or the admin's firmware pages):
  ``CSMS_FIRMWARE_MAX_BYTES``, plus ``FORM_ROOM`` (the service checks the image's exact size);
- any other body: Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (2.5 MB), which the API and the admin
  already refuse above once it is stored (``csms.middleware.ApiBodyLimitMiddleware``).

The ``413`` has the API's JSON error shape (``kernel.api_errors.error_body``) and the code its path
answers once the body is in: ``RequestTooLarge`` for an upload (``maintenance.charger_views``) or a
firmware image (``maintenance.services.firmware``), ``PayloadTooLarge`` elsewhere
(``csms.error_views``). Every path has a bound: none is left to the operator's proxy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings

from kernel.api_errors import error_body

# A multipart form's boundaries, part headers and small fields, beside the file it carries.
FORM_ROOM = 64 * 1024
# Seconds a refused request's connection still reads (and drops) what its client sends.
LINGER_SECONDS = 2.0
_DIAGNOSTICS = b"/diagnostics/upload/"
# The pages a firmware image is posted to: the API's upload, the admin's add and change forms.
_FIRMWARE_FORMS = re.compile(rb"(?:/api/v1/firmware/?|/admin/maintenance/firmwarefile/(?:add|[^/?]+/change)/)(?:\?|\Z)")


def _firmware_form(path: bytes, content_type: bytes) -> bool:
    return content_type.lower().startswith(b"multipart/form-data") and _FIRMWARE_FORMS.match(path) is not None


def body_limit(path: bytes, content_type: bytes) -> int:
    """The bytes a request's body may hold for its path (``path`` as sent, query included) and
    ``Content-Type``: every request has a bound."""
    if path.startswith(_DIAGNOSTICS):
        return settings.CSMS_DIAGNOSTICS_MAX_BYTES + FORM_ROOM
    if _firmware_form(path, content_type):
        return settings.CSMS_FIRMWARE_MAX_BYTES + FORM_ROOM
    limit: int = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return limit


def _refusal(path: bytes, content_type: bytes) -> bytes:
    if path.startswith(_DIAGNOSTICS):
        limit = settings.CSMS_DIAGNOSTICS_MAX_BYTES
        error = error_body("RequestTooLarge", f"Uploads are limited to {limit} bytes.")
    elif _firmware_form(path, content_type):
        limit = settings.CSMS_FIRMWARE_MAX_BYTES
        error = error_body("RequestTooLarge", f"Firmware images are limited to {limit} bytes.")
    else:
        error = error_body("PayloadTooLarge", "The request body is too large.")
    body = json.dumps(error).encode()
    return (
        b"HTTP/1.1 413 Content Too Large\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


class _Bounded:
    """A request's bound and the bytes its body has brought so far (``request.body_bound``)."""

    __slots__ = ("limit", "received", "refused")

    def __init__(self, limit: int) -> None:
        self.limit, self.received, self.refused = limit, 0, False


def _refuse(request: Any, bound: _Bounded) -> None:
    """Answer ``413`` and close: the rest of the body is not stored, and the request never
    reaches the application. An ``Expect: 100-continue`` is not told to go on.

    The close lingers (RFC 9112 §9.6): the answer goes with a half-close, and what the client still
    sends is read and dropped, for at most ``LINGER_SECONDS``, then the connection is aborted. A
    plain close while the client was still sending made the kernel answer its next bytes with a
    reset, which could discard the ``413`` before the client read it (a 3 MB POST saw "connection
    reset" instead)."""
    bound.refused = True
    request.requestHeaders.removeHeader(b"Expect")
    channel = request.channel
    transport = channel.transport
    content_type = (request.requestHeaders.getRawHeaders(b"Content-Type") or [b""])[0]
    transport.write(_refusal(getattr(channel, "_path", b""), content_type))
    half_close = getattr(transport, "loseWriteConnection", None)
    if half_close is None:
        channel.loseConnection()
        return
    half_close()
    from twisted.internet import reactor

    delayed: Any = reactor  # its stubs type callLater as an interface method (self first)
    delayed.callLater(LINGER_SECONDS, transport.abortConnection)


def _length_bounded(got_length: Callable[[Any, int | None], None]) -> Callable[[Any, int | None], None]:
    """``Request.gotLength``: a ``Content-Length`` over the path's bound is refused before its
    body is stored anywhere."""

    def got_length_bounded(request: Any, length: int | None) -> None:
        content_type = (request.requestHeaders.getRawHeaders(b"Content-Type") or [b""])[0]
        bound = request.body_bound = _Bounded(body_limit(getattr(request.channel, "_path", b""), content_type))
        if length is not None and length > bound.limit:
            _refuse(request, bound)
            return
        got_length(request, length)

    got_length_bounded.__wrapped__ = got_length  # type: ignore[attr-defined]
    return got_length_bounded


def _chunks_bounded(handle: Callable[[Any, bytes], None]) -> Callable[[Any, bytes], None]:
    """``Request.handleContentChunk``: a chunked body is refused once it has brought more than its
    bound; nothing of a refused body is stored."""

    def handle_bounded(request: Any, data: bytes) -> None:
        bound: _Bounded | None = getattr(request, "body_bound", None)
        if bound is None:
            handle(request, data)
            return
        if bound.refused:
            return
        bound.received += len(data)
        if bound.received > bound.limit:
            _refuse(request, bound)
            return
        handle(request, data)

    handle_bounded.__wrapped__ = handle  # type: ignore[attr-defined]
    return handle_bounded


def _unless_refused(received: Callable[..., None]) -> Callable[..., None]:
    """``Request.requestReceived``: a refused request (its whole body arrived in the read that
    refused it) is not processed."""

    def received_unless_refused(request: Any, *args: Any) -> None:
        bound: _Bounded | None = getattr(request, "body_bound", None)
        if bound is not None and bound.refused:
            request.channel.loseConnection()  # the refused body is all in: nothing left to linger for
            return
        received(request, *args)

    received_unless_refused.__wrapped__ = received  # type: ignore[attr-defined]
    return received_unless_refused


def request_bodies_bounded(request_class: Any) -> None:
    """Bound the bodies of ``request_class`` (daphne's ``WebRequest``) as they arrive (idempotent)."""
    if hasattr(request_class.gotLength, "__wrapped__"):
        return
    request_class.gotLength = _length_bounded(request_class.gotLength)
    request_class.handleContentChunk = _chunks_bounded(request_class.handleContentChunk)
    request_class.requestReceived = _unless_refused(request_class.requestReceived)
