"""OCPP times: sent as UTC with ``Z`` and milliseconds, received with any offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime


def utc_now() -> datetime:
    """``timezone.now()`` (aware UTC: ``USE_TZ`` is on) without reading the settings at each call,
    which a message's handling did several times."""
    return datetime.now(UTC)


def format_ocpp_time(value: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, the year in four digits whatever it is (``isoformat``
    pads it; ``strftime`` wrote year 216 as ``216``, no RFC 3339 time)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


# A charger time that was sent but cannot be read: earlier than any clock, so ``chargepoints.clock``
# takes its receipt instead and flags it ``clock_implausible``, as it does a clock standing at 1970.
UNREADABLE_TIME = datetime.min.replace(tzinfo=UTC)


def charger_time_read(value: str | None) -> datetime | None:
    """A charger's timestamp (``parse_ocpp_time``): None when absent, ``UNREADABLE_TIME`` when sent
    but unreadable (``"not-a-date"``, month 13), so that it is judged, not silently replaced."""
    if value is None:
        return None
    return parse_ocpp_time(value) or UNREADABLE_TIME


def parse_ocpp_time(value: str | None) -> datetime | None:
    """Parse an OCPP timestamp to an aware UTC datetime; None when absent or unreadable.

    Without an offset it is taken as UTC; RFC 3339's lower-case ``t`` and ``z`` are read. A time
    beyond what UTC can hold (``0001-01-01T00:00:00+01:00``) becomes the earliest or latest
    datetime, never an error (``chargepoints.clock`` then finds it implausible).
    """
    if not value:
        return None
    try:
        parsed = parse_datetime(value) or parse_datetime(value.upper())
    except ValueError:
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 ahead of UTC, or year 9999 behind it: the nearest edge
        ahead_of_utc = (parsed.utcoffset() or timedelta(0)) > timedelta(0)
        return (datetime.min if ahead_of_utc else datetime.max).replace(tzinfo=UTC)
