"""Pricing a session with a tariff: pure Decimal arithmetic, no database.

Rounding rule: each line item's amount is its exact quantity times its unit price, rounded
half up to the currency's minor unit (2 decimals; 0 for JPY, KRW, ...; 3 for KWD, BHD, ...); the total is the sum
of the rounded line items, so the lines always add up to the total. Quantities are exact:
kWh = Wh / 1000, minutes = seconds / 60 (billed to the second, not per started minute). An amount
is the measured Wh or seconds times the price, divided last (``_line``): a third of a minute as
0.333...3 times a price fell short of a half cent (1,211 s at 0.30 a minute is 6.055, billed 6.05).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

from kernel.money import round_money


@dataclass(frozen=True)
class TariffTerms:
    currency: str
    price_per_kwh: Decimal
    price_per_minute: Decimal = Decimal(0)
    session_fee: Decimal = Decimal(0)
    idle_fee_per_minute: Decimal | None = None
    idle_grace_minutes: int = 0


@dataclass(frozen=True)
class LineItem:
    kind: str  # energy, charging_time, session_fee, idle_time
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal

    def as_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "description": self.description,
            "quantity": format(self.quantity.quantize(Decimal("0.001")).normalize(), "f"),
            "unit": self.unit,
            "unit_price": str(self.unit_price),
            "amount": str(self.amount),
        }


@dataclass(frozen=True)
class Priced:
    line_items: tuple[LineItem, ...]
    total: Decimal


def price_session(terms: TariffTerms, *, energy_wh: Decimal, charging_seconds: int, idle_seconds: int) -> Priced:
    """Line items and total for a session; negative inputs count as zero."""
    wh = max(energy_wh, Decimal(0))
    charging = Decimal(max(charging_seconds, 0))
    billable_idle = max(Decimal(max(idle_seconds, 0)) - 60 * terms.idle_grace_minutes, Decimal(0))  # seconds
    lines = [_line(terms, "energy", "Energy", wh, 1000, "kWh", terms.price_per_kwh)]
    if terms.price_per_minute:
        lines.append(_line(terms, "charging_time", "Charging time", charging, 60, "min", terms.price_per_minute))
    if terms.session_fee:
        lines.append(_line(terms, "session_fee", "Session fee", Decimal(1), 1, "session", terms.session_fee))
    if terms.idle_fee_per_minute and billable_idle:
        description = f"Idle time after {terms.idle_grace_minutes} min grace"
        lines.append(_line(terms, "idle_time", description, billable_idle, 60, "min", terms.idle_fee_per_minute))
    total = sum((line.amount for line in lines), Decimal(0))
    return Priced(line_items=tuple(lines), total=round_money(total, terms.currency))


# Digits enough for a measured amount (Wh with 3 decimals, seconds) times a price, and its quotient
# by 1000 or 60 whenever that ends (a half cent always does): exact, so that rounding it is the rule's.
_EXACT = Context(prec=60)


def _line(
    terms: TariffTerms, kind: str, description: str, measured: Decimal, per: int, unit: str, price: Decimal
) -> LineItem:
    """A line of ``measured / per`` units (Wh / 1000 kWh, seconds / 60 minutes) at ``price``: its
    amount is ``measured * price / per``, the division last, rounded (the quantity rounded to 28
    digits first, a third of a minute as 0.333...3, made an exact half cent a little less)."""
    amount = _EXACT.divide(_EXACT.multiply(measured, price), per)
    return LineItem(
        kind=kind,
        description=description,
        quantity=measured / per,
        unit=unit,
        unit_price=price,
        amount=round_money(amount, terms.currency),
    )
