"""Requests refused before any view runs, and HEAD answered without content."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase

from kernel.api_errors import error_body


class RejectNulBytesMiddleware:
    """A NUL byte in the URL is a 400: PostgreSQL text cannot hold one, so a filter or a search
    term carrying it would otherwise fail in the database as a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", "").lower():
            message = "The URL contains a NUL byte."
            if request.path.startswith("/api/"):
                return JsonResponse(error_body("ValidationError", message), status=400)
            return HttpResponseBadRequest(message)
        return self.get_response(request)


class ApiBodyLimitMiddleware:
    """Reads an API request's body once, refusing one over ``DATA_UPLOAD_MAX_MEMORY_SIZE``.

    DRF's parsers read the raw stream, which has no size limit; reading ``request.body`` first
    applies Django's (``RequestDataTooBig``, answered 413 by ``csms.error_views.bad_request``) and
    leaves DRF to parse the copy in memory. A multipart upload (a firmware file) is streamed to
    disk by Django's parser instead, which limits its form fields the same way.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/") and request.content_type != "multipart/form-data":
            _ = request.body
        return self.get_response(request)


class HeadWithoutBodyMiddleware:
    """A HEAD request is answered with the headers of its GET and no content (RFC 9110 9.3.2, RFC
    9112 6.3): neither Django's ASGI handler nor daphne drops the body, so a firmware download's
    HEAD (a charger's downloader asking the size first) sent part of the image after its headers,
    which the next response on that keep-alive connection then followed. ``Content-Length`` stays
    the GET's; a file being served is closed unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if request.method != "HEAD":
            return response
        if isinstance(response, StreamingHttpResponse):
            response.streaming_content = []  # the file stays among the response's closers
        elif isinstance(response, HttpResponse):
            length = response.get("Content-Length") or str(len(response.content))
            response.content = b""
            response["Content-Length"] = length
        return response
