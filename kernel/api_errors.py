"""One error shape for the API: ``{"error", "message", ...}`` (docs/architecture.md, API)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler

logger = logging.getLogger(__name__)


class ApiError(exceptions.APIException):
    """An error with an explicit code, e.g. ``ApiError(409, "Conflict", "...")``."""

    def __init__(self, http_status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = http_status
        self.error_code = code
        self.extra = extra


class NotAcceptableNaming(ApiError, exceptions.NotAcceptable):
    """A ``406 NotAcceptable`` naming the query parameter that asked for what the endpoint does not
    give (``?format=xml``); still a ``NotAcceptable``, refused before anything read the API key."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(406, "NotAcceptable", f"{name}: {problem}", details={name: [problem]})


def query_choice(params: Any, name: str, choices: Iterable[str]) -> str | None:
    """The query parameter ``name`` if given (None if not), one of ``choices``; else a 400 naming it
    (a filter value no row can have is a client's mistake, not an empty list)."""
    if name not in params:
        return None
    value = str(params[name])
    allowed = list(choices)
    if value not in allowed:
        message = f"{value!r} is not one of: {', '.join(allowed)}."
        raise ApiError(400, "ValidationError", message, details={name: [message]})
    return value


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def query_flag(params: Any, name: str) -> bool | None:
    """The query parameter ``name`` as a boolean if given (None if not): ``true``/``1`` or
    ``false``/``0``, in any case; else a 400 naming it (``?wait=no`` is no silent default)."""
    if name not in params:
        return None
    value = str(params[name])
    if value.lower() not in _FLAGS:
        message = f"{value!r} is not one of: true, false, 1, 0."
        raise ApiError(400, "ValidationError", message, details={name: [message]})
    return _FLAGS[value.lower()]


class JsonErrors:
    """A view mixin: the view's errors are JSON whatever it renders otherwise (the schema's YAML,
    the docs' HTML). DRF renders an error with the renderer the request negotiated, or the view's
    first one when negotiation itself failed: a 406 in YAML, a 405 as an HTML page."""

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]  # a view's
        if isinstance(response, Response) and response.status_code >= 400:
            response.accepted_renderer = JSONRenderer()
            response.accepted_media_type = JSONRenderer.media_type
        return response


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The error's answer in the one shape, naming the charger the request names (its path's
    ``charge_point_id``, or ``context["charge_point_id"]``) unless the error names one itself."""
    response = _error_response(exc, context)
    charge_point_id = context.get("kwargs", {}).get("charge_point_id") or context.get("charge_point_id")
    if response is not None and charge_point_id and "charge_point_id" not in response.data:
        code, message, *rest = response.data.items()
        response.data = dict([code, message, ("charge_point_id", charge_point_id), *rest])
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, str(exc.detail), **exc.extra), status=exc.status_code)
    if isinstance(exc, OperationalError):  # PostgreSQL unreachable (restarting, pool timed out): retryable
        logger.warning("API request failed on the database: %s", exc)
        return Response(
            error_body("DatabaseUnavailable", "The database is unavailable or busy; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if not isinstance(exc, exceptions.APIException):
        return None  # a 500, answered by csms.error_views.server_error
    response = exception_handler(exc, context)
    assert response is not None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("ValidationError", "The request body is invalid.", details=response.data)
    else:
        response.data = error_body(_error_code(exc), str(exc.detail), **_kept_detail(exc))
    return response


def _error_code(exc: exceptions.APIException) -> str:
    """The exception's DRF class name (``UnsupportedMediaType``, ``Throttled``, ...)."""
    return "InternalServerError" if type(exc) is exceptions.APIException else type(exc).__name__


def _kept_detail(exc: exceptions.APIException) -> dict[str, Any]:
    """401 answers keep DRF's ``detail`` too: clients written against it before read it still."""
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        return {"detail": str(exc.detail)}
    return {}
