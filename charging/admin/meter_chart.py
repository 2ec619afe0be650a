"""A session's energy and power over time as an inline SVG: no JavaScript, no CDN, no database.

Pure functions from ``[(timestamp, value)]`` series to markup. Every text that reaches the SVG
is escaped; long sessions are cut down to about ``MAX_POINTS`` points per series, keeping each
stretch's lowest and highest value so that peaks and dips survive. Time ticks fall on round
clock times and no two read the same; a series without samples gets a note, not an empty axis.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape

Point = tuple[datetime, float]
Series = Sequence[tuple[datetime, Decimal | float | int]]

MAX_POINTS = 500
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 34, 42
ENERGY_COLOUR, POWER_COLOUR = "#2a7ab0", "#d9730d"
NO_DATA = "No meter values yet"
MIN_WINDOW = timedelta(minutes=1)
DAY_SECONDS = 86_400
# Seconds between time ticks: 1 s to 30 s, 1 min to 30 min, 1 h to 12 h, 1 to 7 days.
TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200]
TIME_STEPS += [DAY_SECONDS * days for days in (1, 2, 4, 7)]
MAX_TIME_TICKS = 6
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def downsample(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most ``max_points`` of ``points`` (in time order): each bucket's minimum and maximum."""
    if len(points) <= max_points:
        return list(points)
    buckets = max(max_points // 2, 1)
    size = len(points) / buckets
    kept: list[Point] = []
    for bucket in range(buckets):
        chunk = points[round(bucket * size) : round((bucket + 1) * size)]
        if not chunk:
            continue
        low = min(chunk, key=lambda point: point[1])
        high = max(chunk, key=lambda point: point[1])
        kept += sorted({low, high}, key=lambda point: point[0])
    return kept


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5 or 5 times a power of ten) covering ``low``..``high``."""
    if high <= low:
        high = low + 1
    raw_step = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.999:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _scale(values: list[float], unit: str) -> tuple[float, str]:
    """Divide by 1000 and say kW/kWh once the values reach thousands."""
    peak = max((abs(v) for v in values), default=0)
    return (1000.0, f"k{unit}") if peak >= 1000 else (1.0, unit)


def _prepared(series: Series) -> list[Point]:
    points = [(at, float(value)) for at, value in series if math.isfinite(float(value))]
    return downsample(sorted(points, key=lambda point: point[0]))


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"


class _Plot:
    """Maps times and values of one chart to pixel coordinates."""

    def __init__(self, start: datetime, end: datetime, width: int, height: int) -> None:
        if end - start < MIN_WINDOW:  # one instant or a few seconds: centred in a one-minute window
            middle = start + (end - start) / 2
            start, end = middle - MIN_WINDOW / 2, middle + MIN_WINDOW / 2
        self.start, self.end = start, end
        self.width, self.height = width, height
        self.inner_width = width - LEFT - RIGHT
        self.inner_height = height - TOP - BOTTOM

    def x(self, at: datetime) -> float:
        fraction = (at - self.start).total_seconds() / (self.end - self.start).total_seconds()
        return round(LEFT + fraction * self.inner_width, 1)

    def y(self, value: float, ticks: list[float]) -> float:
        low, high = ticks[0], ticks[-1]
        fraction = (value - low) / (high - low) if high > low else 0.5
        return round(TOP + (1 - fraction) * self.inner_height, 1)


def time_ticks(start: datetime, end: datetime) -> tuple[list[datetime], timedelta]:
    """Round instants from ``start`` to ``end`` and the step between them: multiples of the
    smallest of ``TIME_STEPS`` that gives at most ``MAX_TIME_TICKS``, counted from midnight UTC."""
    span = (end - start).total_seconds()
    seconds = next((step for step in TIME_STEPS if span / step <= MAX_TIME_TICKS - 1), None)
    if seconds is None:  # longer than any session: whole days
        seconds = DAY_SECONDS * math.ceil(span / DAY_SECONDS / (MAX_TIME_TICKS - 1))
    step = timedelta(seconds=seconds)
    at = EPOCH + step * math.ceil((start - EPOCH) / step)
    ticks = []
    while at <= end:
        ticks.append(at)
        at += step
    return ticks, step


def time_labels(ticks: list[datetime], step: timedelta, *, one_date: bool) -> list[str]:
    """The ticks in the admin's format (``2026-11-30 14:05:09``), cut to what tells them apart:
    no seconds for whole-minute steps, no date when the chart stays within one date (its caption
    names it), no time for whole-day steps. No two labels are the same."""
    if step >= timedelta(days=1):
        time_format = "%Y-%m-%d"
    else:
        time_format = "%H:%M:%S" if step < timedelta(minutes=1) else "%H:%M"
        if not one_date:
            time_format = f"%Y-%m-%d {time_format}"
    return [at.astimezone(UTC).strftime(time_format) for at in ticks]


def _axis_ticks(points: list[Point], divisor: float) -> list[float]:
    values = [value / divisor for _, value in points]
    return nice_ticks(min(0.0, *values), max(values))


def _line(plot: _Plot, points: list[Point], divisor: float, ticks: list[float], colour: str, css: str) -> str:
    coordinates = [(plot.x(at), plot.y(value / divisor, ticks)) for at, value in points]
    if len(coordinates) == 1:
        x, y = coordinates[0]
        return f'<circle class="{css}" cx="{x}" cy="{y}" r="3" fill="{colour}"/>'
    joined = " ".join(f"{x},{y}" for x, y in coordinates)
    return f'<polyline class="{css}" points="{joined}" fill="none" stroke="{colour}" stroke-width="2"/>'


def _y_axis(plot: _Plot, ticks: list[float], x: float, anchor: str, label: str, colour: str) -> list[str]:
    offset = -6 if anchor == "end" else 6
    parts = [f'<line x1="{x}" y1="{TOP}" x2="{x}" y2="{plot.height - BOTTOM}" stroke="#999"/>']
    for tick in ticks:
        y = plot.y(tick, ticks)
        parts.append(
            f'<text x="{x + offset}" y="{y + 4}" text-anchor="{anchor}" fill="{colour}">{escape(_number(tick))}</text>'
        )
    label_x = 4 if anchor == "end" else plot.width - 4
    label_anchor = "start" if anchor == "end" else "end"
    parts.append(
        f'<text x="{label_x}" y="{TOP - 14}" text-anchor="{label_anchor}" fill="{colour}">{escape(label)}</text>'
    )
    return parts


def _x_axis(plot: _Plot) -> list[str]:
    bottom = plot.height - BOTTOM
    parts = [f'<line x1="{LEFT}" y1="{bottom}" x2="{plot.width - RIGHT}" y2="{bottom}" stroke="#999"/>']
    first_date, last_date = plot.start.astimezone(UTC).date(), plot.end.astimezone(UTC).date()
    ticks, step = time_ticks(plot.start, plot.end)
    for at, label in zip(ticks, time_labels(ticks, step, one_date=first_date == last_date), strict=True):
        x = plot.x(at)
        parts.append(f'<line x1="{x}" y1="{bottom}" x2="{x}" y2="{bottom + 4}" stroke="#999"/>')
        parts.append(f'<text class="meter-time" x="{x}" y="{bottom + 18}" text-anchor="middle">{escape(label)}</text>')
    caption = "time (UTC)" if first_date != last_date else f"time (UTC), {first_date:%Y-%m-%d}"
    parts.append(
        f'<text x="{LEFT + plot.inner_width / 2}" y="{plot.height - 4}" text-anchor="middle">{escape(caption)}</text>'
    )
    return parts


def _series(
    plot: _Plot, points: list[Point], *, name: str, unit: str, left: bool, colour: str, css: str
) -> tuple[list[str], list[str], list[float]]:
    """One series' axis (left or right), its line and its ticks. A series without samples gets
    no axis (a 0-1 scale would mean nothing) but a "No ... data" note where its label would be,
    and no ticks."""
    if not points:
        x, anchor = (4, "start") if left else (plot.width - 4, "end")
        note = f"No {name.split()[0].lower()} data"
        attributes = f'class="{css}-missing" x="{x}" y="{TOP - 14}" text-anchor="{anchor}" fill="{colour}"'
        return [f"<text {attributes}>{note}</text>"], [], []
    divisor, scaled_unit = _scale([value for _, value in points], unit)
    ticks = _axis_ticks(points, divisor)
    axis_x, anchor = (LEFT, "end") if left else (plot.width - RIGHT, "start")
    axis = _y_axis(plot, ticks, axis_x, anchor, f"{name} ({scaled_unit})", colour)
    return axis, [_line(plot, points, divisor, ticks, colour, css)], ticks


def meter_chart_svg(*, energy_wh: Series, power_w: Series, title: str = "Meter values") -> str:
    """Energy delivered (left axis) and power (right axis) over time, as an ``<svg>`` element."""
    energy, power = _prepared(energy_wh), _prepared(power_w)
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="meter-chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
    )
    if not energy and not power:
        return f'{head}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(NO_DATA)}</text></svg>'
    times = [at for at, _ in energy + power]
    plot = _Plot(min(times), max(times), WIDTH, HEIGHT)
    energy_axis, energy_line, energy_ticks = _series(
        plot, energy, name="Energy delivered", unit="Wh", left=True, colour=ENERGY_COLOUR, css="meter-energy"
    )
    power_axis, power_line, power_ticks = _series(
        plot, power, name="Power", unit="W", left=False, colour=POWER_COLOUR, css="meter-power"
    )
    grid_ticks = energy_ticks or power_ticks
    grid = [
        f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#ddd" stroke-dasharray="2,3"/>'
        for y in (plot.y(tick, grid_ticks) for tick in grid_ticks[1:])
    ]
    return "".join([head, *_x_axis(plot), *energy_axis, *power_axis, *grid, *energy_line, *power_line, "</svg>"])
