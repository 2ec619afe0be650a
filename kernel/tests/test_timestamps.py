"""OCPP timestamps as the CSMS writes them (kernel/timestamps.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from kernel.timestamps import format_ocpp_time, parse_ocpp_time, parse_sent_time


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (datetime(2026, 12, 1, 3, 4, 5, 678_901, tzinfo=UTC), "2026-12-01T03:04:05.678Z"),
        (datetime(2026, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), "2025-12-31T22:30:00.000Z"),
        (datetime(1970, 1, 1, tzinfo=UTC), "1970-01-01T00:00:00.000Z"),
        (datetime(999, 5, 6, 7, 8, 9, 999, tzinfo=UTC), "0999-05-06T07:08:09.000Z"),  # RFC 3339: four digits
    ],
)
def test_a_time_is_written_in_utc_to_the_millisecond_with_a_four_digit_year(value, written):
    assert format_ocpp_time(value) == written


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),
        ("2016-12-31T23:59:60.250Z", datetime(2017, 1, 1, 0, 0, 0, 250_000, tzinfo=UTC)),
        ("2017-01-01T05:44:60+05:45", datetime(2017, 1, 1, tzinfo=UTC)),
        ("2016-12-31t23:59:60z", datetime(2017, 1, 1, tzinfo=UTC)),
        ("2016-12-31T23:59:60", datetime(2017, 1, 1, tzinfo=UTC)),  # no offset: UTC
        ("9999-12-31T23:59:60Z", datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)),  # the edge, never an error
        ("2016-12-31T23:59:61Z", None),
        ("2016-12-31T23:60:60Z", None),
    ],
)
def test_a_leap_second_is_read_as_the_instant_after_second_59(sent, read):
    """RFC 3339 §5.6 allows second 60: it was unreadable (the receipt stood in, flagged)."""
    assert parse_ocpp_time(sent) == read


@pytest.mark.parametrize("sent", ["2026-12-07", "20261207", "2026-W49-1", "2026-12-07Z", " 2026-12-07 "])
def test_a_date_without_its_time_of_day_is_unreadable_not_midnight(sent):
    """ISO 8601's date alone parsed as midnight UTC: a plausible time hours before the event."""
    assert parse_ocpp_time(sent) is None


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("2031-01-01T10:00:00.5+01:00", datetime(2031, 1, 1, 9, 0, 0, 500_000, tzinfo=UTC)),
        ("2031-01-01t09:00:00z", datetime(2031, 1, 1, 9, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999Z", datetime.max.replace(tzinfo=UTC)),
        ("9999-12-31T23:59:59-01:00", None),  # year 10000 in UTC: not the edge, another time
        ("0001-01-01T00:00:00+01:00", None),
        ("2016-12-31T23:59:60Z", None),  # no datetime holds it as written
        ("2031-01-01T00:00:00", None),  # no offset
        ("2031-13-01T00:00:00Z", None),
    ],
)
def test_a_time_to_send_is_read_only_as_utc_holds_it(sent, read):
    """What the CSMS sends must be the time asked: ``parse_ocpp_time`` stands the edge in for a
    charger's time beyond UTC, and the next second in for its second 60."""
    assert parse_sent_time(sent) == read
