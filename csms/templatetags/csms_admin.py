"""Template filters of the operator dashboard."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def kwh(watt_hours: Decimal | None) -> str:
    """Energy as operators read it: ``12345.6`` Wh is ``12.35 kWh``; unknown is a dash."""
    if watt_hours is None:
        return "-"
    return f"{watt_hours / 1000:,.2f} kWh"
