"""Amounts of money: a currency's minor unit and rounding to it (ISO 4217)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217's currencies whose minor unit is 0 (HUF has 2 there, though cash has no fillér); the rest have two.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"}
    | {"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
)


def minor_unit(currency: str) -> Decimal:
    return Decimal(1) if currency.upper() in _ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)
