"""OCPP times: sent as UTC with ``Z`` and milliseconds, received with any offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime


def format_ocpp_time(value: datetime) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_ocpp_time(value: str | None) -> datetime | None:
    """Parse an OCPP timestamp to an aware UTC datetime; None when absent or unreadable.

    Without an offset it is taken as UTC. Times beyond what UTC can hold (``0001-01-01T00:00:00+01:00``)
    become the earliest or latest datetime: never an error (chargepoints.clock judges them).
    """
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: beyond what UTC can hold, so the edge
        before = parsed.utcoffset() or timedelta(0)
        return (datetime.min if before > timedelta(0) else datetime.max).replace(tzinfo=UTC)
