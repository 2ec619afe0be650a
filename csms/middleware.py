"""Requests refused before any view runs."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

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
