"""API throttling per key: a misbehaving integration slows down alone."""

from __future__ import annotations

import logging
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from kernel.models import ApiKey

logger = logging.getLogger(__name__)


class ApiKeyRateThrottle(SimpleRateThrottle):
    """``CSMS_API_RATE`` requests per API key (by client address for requests without one).

    Counts live in Django's cache: Redis when ``REDIS_URL`` is set, so every process shares them.
    Without the cache (Redis restarting) requests are let through: throttling must not take the
    API down with it.
    """

    scope = "api_key"

    def allow_request(self, request: Request, view: Any) -> bool:
        try:
            return super().allow_request(request, view)
        except Exception as error:
            logger.warning("API throttling skipped, the cache is unavailable: %r", error)
            return True

    def get_cache_key(self, request: Request, view: Any) -> str:
        key = request.auth
        ident = f"key-{key.pk}" if isinstance(key, ApiKey) else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
