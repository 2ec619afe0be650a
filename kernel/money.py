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
# ISO 4217's current codes (its list one, 2026: XCG for ANG, ZWG for ZWL, BGN gone with Bulgaria's euro)
# that something can be billed in: not those whose minor unit it gives as N.A. (the metals XAU, XAG,
# XPT, XPD; the units of account XDR, XAD, XSU, XUA and the bond market's XBA to XBD; XTS for tests,
# XXX for no currency), nor CLF and UYW, whose four decimals an amount does not keep.
_CURRENCIES = frozenset(
    """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN BZD
    CAD CDF CHE CHF CHW CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF
    KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV
    MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR
    SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
    USN UYI UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905  (the codes in their alphabetical order, as ISO lists them)
)


def is_currency(code: str) -> bool:
    """Whether ``code`` (upper case) is an ISO 4217 currency a tariff can price in (``_CURRENCIES``)."""
    return code in _CURRENCIES


def minor_unit(currency: str) -> Decimal:
    code = currency.upper()
    if code in _ZERO_DECIMAL_CURRENCIES:
        return Decimal(1)
    return Decimal("0.001") if code in _THREE_DECIMAL_CURRENCIES else Decimal("0.01")


def round_money(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(minor_unit(currency), rounding=ROUND_HALF_UP)
