"""Django's error pages, in the API's JSON error shape under ``/api/``.

Errors that happen before or outside a DRF view (no URL matched, a body too large for
``DATA_UPLOAD_MAX_MEMORY_SIZE``, an unhandled exception) reach these handlers, not DRF's.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from kernel.api_errors import error_body


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return JsonResponse(error_body("PayloadTooLarge", "The request body is too large."), status=413)
    return JsonResponse(error_body("BadRequest", "The request is malformed."), status=400)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return JsonResponse(error_body("PermissionDenied", "You may not do this."), status=403)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    message = f"No API endpoint at {request.path!r}; see /api/v1/docs/ for the endpoints and commands."
    return JsonResponse(error_body("NotFound", message), status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return JsonResponse(error_body("InternalServerError", "The server failed to answer this request."), status=500)
