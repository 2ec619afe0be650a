"""A charger's clock is evidence, not truth: pure checks of charger timestamps, no database.

Chargers boot with clocks at 1970 (no real-time clock, time not yet set), run hours ahead until
they apply the BootNotification answer's ``currentTime``, or send local time without an offset.
Every charger timestamp that orders, times or prices something is judged against the time the
CSMS received it: one before ``FLOOR`` or further in the future than the skew tolerance is
implausible. It is kept as sent, and the time of receipt stands in for it.

A time behind its receipt is a queued message's (a charger offline when it happened sends its
queue once connected again), unless the charger was connected then: a time more than the
tolerance after the connection it came on opened, and more than the tolerance before its
receipt, is a clock running behind (no charger holds a message that long on an open connection),
implausible too. The connection's opening is ``connection_opened_at`` (the gateway sets it at the
handshake, a context variable every unit of its messages inherits).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# No OCPP 1.6J or 2.0.1 charger was in service before this: earlier times are unset clocks.
FLOOR = datetime(2015, 1, 1, tzinfo=UTC)

# When the connection whose message is judged opened (its handshake); None outside a connection.
connection_opened_at: ContextVar[datetime | None] = ContextVar("csms_connection_opened_at", default=None)


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


def charger_time(
    sent: datetime | None, *, received_at: datetime, tolerance_s: int, connected_since: datetime | None = None
) -> ChargerTime:
    """Judge ``sent`` (aware; None when absent or unreadable) received at ``received_at``, on a
    connection opened at ``connected_since`` (None: unknown).

    Plausible: from ``FLOOR`` up to ``tolerance_s`` seconds after receipt, and not ``behind``;
    ``at`` is ``sent``, or the receipt for a clock a little ahead (nothing happened after the CSMS
    heard of it, and a later message must not look older). Otherwise (or when absent) ``at`` is
    ``received_at``; only a present, implausible time is flagged (StatusNotification may leave it out).
    """
    if sent is None:
        return ChargerTime(at=received_at, sent=None, implausible=False, received=True)
    tolerance = timedelta(seconds=tolerance_s)
    if FLOOR <= sent <= received_at + tolerance and not behind(sent, received_at, tolerance, connected_since):
        return ChargerTime(at=min(sent, received_at), sent=sent, implausible=False)
    return ChargerTime(at=received_at, sent=sent, implausible=True, received=True)


def behind(sent: datetime, received_at: datetime, tolerance: timedelta, connected_since: datetime | None) -> bool:
    """Whether ``sent`` is a clock running behind: stamped more than ``tolerance`` after the
    connection opened (the charger was connected, it queued nothing) yet received more than
    ``tolerance`` later. A time before the connection opened may be a queued message's."""
    return connected_since is not None and connected_since + tolerance < sent < received_at - tolerance


def kept_as_sent(sent: datetime, received_at: datetime, *, tolerance_s: int, connected_since: datetime | None) -> bool:
    """Whether ``charger_time`` takes ``sent`` as it is: plausible and not after its receipt (most
    times; a caller judging many skips building their ``ChargerTime``)."""
    return FLOOR <= sent <= received_at and not behind(
        sent, received_at, timedelta(seconds=tolerance_s), connected_since
    )


def duration_seconds(start: datetime, end: datetime) -> int:
    """Seconds from ``start`` to ``end``; never negative (an end before its start is 0)."""
    return max(int((end - start).total_seconds()), 0)
