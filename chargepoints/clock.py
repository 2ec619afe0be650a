"""A charger's clock is evidence, not truth: pure checks of charger timestamps, no database.

Chargers boot with clocks at 1970 (no real-time clock, time not yet set), run hours ahead until
they apply the BootNotification answer's ``currentTime``, or send local time without an offset.
Every charger timestamp that orders, times or prices something is judged against the time the
CSMS received it: one before ``FLOOR`` or further in the future than the skew tolerance is
implausible. It is kept as sent, and the time of receipt stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# No OCPP 1.6J or 2.0.1 charger was in service before this: earlier times are unset clocks.
FLOOR = datetime(2015, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class ChargerTime:
    """A charger timestamp as judged: ``at`` is what ordering, duration and pricing use."""

    at: datetime
    sent: datetime | None
    implausible: bool
    received: bool = False  # ``at`` is the receipt standing in for a time absent or implausible

    @property
    def kept(self) -> datetime | None:
        """The time as sent when the CSMS uses another (to keep it), else None."""
        return self.sent if self.sent is not None and self.sent != self.at else None


def charger_time(sent: datetime | None, *, received_at: datetime, tolerance_s: int) -> ChargerTime:
    """Judge ``sent`` (aware; None when absent or unreadable) received at ``received_at``.

    Plausible: from ``FLOOR`` up to ``tolerance_s`` seconds after receipt; ``at`` is ``sent``,
    or the receipt for a clock a little ahead (nothing happened after the CSMS heard of it, and
    a later message must not look older). Otherwise (or when absent) ``at`` is ``received_at``;
    only a present, implausible time is flagged (StatusNotification may leave it out).
    """
    if sent is None:
        return ChargerTime(at=received_at, sent=None, implausible=False, received=True)
    if FLOOR <= sent <= received_at + timedelta(seconds=tolerance_s):
        return ChargerTime(at=min(sent, received_at), sent=sent, implausible=False)
    return ChargerTime(at=received_at, sent=sent, implausible=True, received=True)


def kept_as_sent(sent: datetime, received_at: datetime) -> bool:
    """Whether ``charger_time`` takes ``sent`` as it is, whatever the tolerance: plausible and not
    after its receipt (most times; a caller judging many skips building their ``ChargerTime``)."""
    return FLOOR <= sent <= received_at


def duration_seconds(start: datetime, end: datetime) -> int:
    """Seconds from ``start`` to ``end``; never negative (an end before its start is 0)."""
    return max(int((end - start).total_seconds()), 0)
