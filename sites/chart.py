"""A site's allocation over time as an inline SVG, drawn like the session page's meter chart
(``charging.admin.meter_chart``): capacity, sum of limits and measured draw on one axis (A)."""

from __future__ import annotations

from html import escape

from charging.admin.meter_chart import (
    HEIGHT,
    LEFT,
    RIGHT,
    WIDTH,
    Series,
    _axis_ticks,
    _line,
    _Plot,
    _prepared,
    _x_axis,
    _y_axis,
)

NO_DATA = "No allocation yet"  # a site has no meter values: its snapshots are allocations

SERIES = (
    ("Capacity", "#b03a2e", "site-capacity"),
    ("Sum of limits", "#2a7ab0", "site-limits"),
    ("Measured", "#d9730d", "site-measured"),
)


def allocation_chart_svg(*, capacity_a: Series, limits_sum_a: Series, measured_a: Series, title: str) -> str:
    """The three series (A per phase) over time, as an ``<svg>`` element."""
    prepared = [_prepared(series) for series in (capacity_a, limits_sum_a, measured_a)]
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="site-chart" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
    )
    everything = [point for points in prepared for point in points]
    if not everything:
        return f'{head}<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">{escape(NO_DATA)}</text></svg>'
    times = [at for at, _ in everything]
    plot = _Plot(min(times), max(times), WIDTH, HEIGHT)
    ticks = _axis_ticks(everything, 1.0)
    parts = [head, *_x_axis(plot), *_y_axis(plot, ticks, LEFT, "end", "Current (A)", "#333")]
    for index, ((label, colour, css), points) in enumerate(zip(SERIES, prepared, strict=True)):
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{14 + 12 * index}" text-anchor="end" fill="{colour}">{escape(label)}</text>'
        )
        if points:
            parts.append(_line(plot, points, 1.0, ticks, colour, css))
    parts.append("</svg>")
    return "".join(parts)
