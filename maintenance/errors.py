from __future__ import annotations

from typing import Any


class MaintenanceError(Exception):
    """A request the maintenance services refuse: ``code`` and ``http_status`` for the API's error shape."""

    def __init__(self, http_status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code
        self.details = details or {}
