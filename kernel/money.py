"""Amounts of money: a currency's minor unit and rounding to it (ISO 4217)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# ISO 4217's currencies whose minor unit is 0 (HUF has 2 there, though cash has no fillér) or 3 (the
# dinars, rials and the Omani rial: 1 KWD is 1,000 fils); the rest have two.
_ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG"}
    | {"RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
# The most decimals a currency's amount has (``_THREE_DECIMAL_CURRENCIES``'): what a stored amount keeps.
MAX_MINOR_DECIMALS = 3


def minor_unit(currency: str) -> Decimal:
    code = currency.upper()
    if code in _ZERO_DECIMAL_CURRENCIES:
        return Decimal(1)
    return Decimal("0.001") if code in _THREE_DECIMAL_CURRENCIES else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)
