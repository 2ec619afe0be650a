"""One error shape for the API: ``{"error", "message", ...}`` (DESIGN.md, Commands)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import OperationalError
from rest_framework import exceptions, status
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


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "message": message, **extra}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApiError):
        return Response(error_body(exc.error_code, str(exc.detail), **exc.extra), status=exc.status_code)
    if isinstance(exc, OperationalError):  # PostgreSQL unreachable (restarting, pool timed out): retryable
        logger.warning("API request failed on the database: %s", exc)
        return Response(
            error_body("DatabaseUnavailable", "The database is unavailable or busy; try again shortly."),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("ValidationError", "The request body is invalid.", details=response.data)
    elif isinstance(exc, exceptions.NotFound | exceptions.MethodNotAllowed | exceptions.ParseError):
        code = {
            status.HTTP_404_NOT_FOUND: "NotFound",
            status.HTTP_405_METHOD_NOT_ALLOWED: "MethodNotAllowed",
            status.HTTP_400_BAD_REQUEST: "ParseError",
        }[response.status_code]
        response.data = error_body(code, str(exc.detail))
    return response
