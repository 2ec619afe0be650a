"""What an API key may do: a read-only key reads, and sends no command and changes nothing."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from kernel.models import ApiKey, ApiKeyScope


class ApiKeyScopePermission(BasePermission):
    """Refuses every unsafe method (POST, PUT, PATCH, DELETE) to a read-only key: 403 ReadOnlyApiKey."""

    def has_permission(self, request: Request, view: Any) -> bool:
        api_key = request.auth
        if request.method in SAFE_METHODS or not isinstance(api_key, ApiKey) or api_key.scope != ApiKeyScope.READ_ONLY:
            return True
        from kernel.api_errors import (
            ApiError,  # not at import: DRF imports this class while rest_framework.views loads
        )

        message = "This API key is read-only: it cannot send commands or change anything."
        raise ApiError(403, "ReadOnlyApiKey", message)
