"""OCPP times: sent as UTC with ``Z`` and milliseconds, received with any offset."""

from __future__ import annotations

import re
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

    Without an offset it is taken as UTC; RFC 3339's lower-case ``t`` and ``z`` are read; a date
    without its time of day (``2026-12-07``: a firmware sending its date) is unreadable. A time
    beyond what UTC can hold (``0001-01-01T00:00:00+01:00``) becomes the earliest or latest
    datetime, never an error (``chargepoints.clock`` then finds it implausible). A leap second
    (``23:59:60``, RFC 3339 §5.6) is the instant after second 59.
    """
    if not value or not _TIME_OF_DAY.search(value):  # a date alone is no instant (not midnight)
        return None
    parsed = _parsed(value)
    if parsed is None:
        parsed = _leap_second_parsed(value)
        if parsed is None:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 ahead of UTC, or year 9999 behind it: the nearest edge
        ahead_of_utc = (parsed.utcoffset() or timedelta(0)) > timedelta(0)
        return (datetime.min if ahead_of_utc else datetime.max).replace(tzinfo=UTC)


def parse_sent_time(value: str) -> datetime | None:
    """A time the CSMS sends (an API body's RFC 3339 ``date-time``) as an aware UTC datetime; None
    when no UTC datetime holds it as written: unreadable, without its offset, a second 60 (Python's
    datetime has none: ``parse_ocpp_time`` reads a charger's as the next second, a charger's clock
    library may refuse it), or beyond year 9999 in UTC (``parse_ocpp_time``'s edge, 9999-12-31,
    would stand in for it: another time than asked)."""
    try:
        parsed = parse_datetime(value.upper())
        return parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


# A time of day after the date: ISO 8601's date alone (``2026-12-07``, ``2026-W49-1``) parses as midnight.
_TIME_OF_DAY = re.compile(r"\d[Tt ]\d")


def _parsed(value: str) -> datetime | None:
    try:
        return parse_datetime(value) or parse_datetime(value.upper())
    except ValueError:
        return None


# Seconds 60: Python's datetime has no leap second (it was read as unreadable, and the receipt
# stood in for a charger's good clock: a stop at 23:59:60 billed the hours until it arrived).
_LEAP_SECOND = re.compile(r"(\d+-\d\d-\d\d[Tt ]\d\d:\d\d:)60(\D.*)?", re.DOTALL)


def _leap_second_parsed(value: str) -> datetime | None:
    """A time at a leap second as second 59 plus one (``23:59:60Z``: the next day's ``00:00:00Z``)."""
    leap = _LEAP_SECOND.fullmatch(value)
    parsed = _parsed(f"{leap[1]}59{leap[2] or ''}") if leap else None
    if parsed is None:
        return None
    try:
        return parsed + timedelta(seconds=1)
    except OverflowError:  # 9999-12-31T23:59:60: the latest datetime, found implausible
        return parsed
