from __future__ import annotations

from typing import Any, NoReturn

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from kernel.api_keys import api_key_find_active, api_key_find_remembered, api_key_mark_used
from kernel.models import ApiKey
from kernel.throttling import bearer_failure_counted


class ApiKeyUser:
    """The identity behind a request authenticated by an API key."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey, *, checked: bool = True) -> None:
        self.api_key = api_key
        # False: remembered by this process, not read now; whoever acts on it verifies it first
        # (``RememberedBearerApiKeyAuthentication``).
        self.checked = checked

    def __str__(self) -> str:
        return f"api-key:{self.api_key.name}"


class BearerApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>``. A key refused is a ``401``; past
    ``CSMS_API_AUTH_FAILURES_PER_IP`` refused keys from one client address in a window, that
    address's refused keys are ``429 Throttled`` with ``Retry-After`` (the window's end) until it
    ends; a valid key is served (``kernel.throttling.bearer_failure_counted``)."""

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        key = key.strip()
        if not key:
            _refused(request, "Empty Bearer token.")
        api_key, checked = self.active_key(key)
        if api_key is None:
            _refused(request, "Invalid, revoked or expired API key.")
        api_key_mark_used(api_key=api_key)
        return ApiKeyUser(api_key, checked=checked), api_key

    def active_key(self, key: str) -> tuple[ApiKey | None, bool]:
        """The active key's record (None if refused) and whether it was checked in the database now."""
        return api_key_find_active(key=key), True

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


_TOO_MANY_FAILURES = "Too many refused API keys from this address (CSMS_API_AUTH_FAILURES_PER_IP)."


def _refused(request: Request, message: str) -> NoReturn:
    """A ``401`` naming why, counted against the client's address; the one past its limit a ``429``."""
    wait = bearer_failure_counted(request)
    if wait is not None:
        raise exceptions.Throttled(wait, _TOO_MANY_FAILURES)
    raise exceptions.AuthenticationFailed(message)


class RememberedBearerApiKeyAuthentication(BearerApiKeyAuthentication):
    """``Authorization: Bearer <key>`` for a view whose every action verifies the key in the
    statement that acts (``kernel.api_keys.api_key_active_check``) when ``request.user.checked``
    is False: a key this process found active within the last minute is not read again first (the
    OCPP command views: one statement less per command, issue 15)."""

    def active_key(self, key: str) -> tuple[ApiKey | None, bool]:
        return api_key_find_remembered(key=key)


class BearerApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "kernel.authentication.BearerApiKeyAuthentication"
    match_subclasses = True  # RememberedBearerApiKeyAuthentication: the same scheme
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key from `create_api_key`."}
