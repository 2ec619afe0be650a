"""OCPP times: sent as UTC with ``Z`` and milliseconds, received with any offset."""

from __future__ import annotations

from datetime import UTC, datetime

from django.utils.dateparse import parse_datetime


def format_ocpp_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_ocpp_time(value: str | None) -> datetime | None:
    """Parse an OCPP timestamp to an aware UTC datetime; None when absent or unreadable."""
    if not value:
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
