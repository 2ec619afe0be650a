"""Properties of pricing (hypothesis): Decimal arithmetic and the documented rounding rule."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.pricing import TariffTerms, price_session
from kernel.money import minor_unit

prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
fees = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
energies = st.decimals(min_value=-(10**6), max_value=10**7, places=3, allow_nan=False, allow_infinity=False)
seconds = st.integers(min_value=-100, max_value=7 * 24 * 3600)
terms = st.builds(
    TariffTerms,
    currency=st.sampled_from(["EUR", "USD", "JPY"]),
    price_per_kwh=prices,
    price_per_minute=prices,
    session_fee=fees,
    idle_fee_per_minute=st.none() | prices,
    idle_grace_minutes=st.integers(min_value=0, max_value=120),
)


def test_the_docs_example_ten_kwh_at_030_with_a_1_euro_fee_is_4_euros():
    priced = price_session(
        TariffTerms(currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00")),
        energy_wh=Decimal(10000),
        charging_seconds=3600,
        idle_seconds=0,
    )
    assert priced.total == Decimal("4.00")
    assert [line.as_json()["amount"] for line in priced.line_items] == ["3.00", "1.00"]


def test_amounts_round_half_up_per_line():
    priced = price_session(
        TariffTerms(currency="EUR", price_per_kwh=Decimal("0.25")),
        energy_wh=Decimal(20),
        charging_seconds=0,
        idle_seconds=0,
    )
    assert priced.total == Decimal("0.01")  # 0.005 EUR rounds half up to 0.01, not to even (0.00)


@given(terms, energies, seconds, seconds)
def test_the_total_is_the_sum_of_rounded_lines_and_never_negative(tariff, energy_wh, charging, idle):
    priced = price_session(tariff, energy_wh=energy_wh, charging_seconds=charging, idle_seconds=idle)
    assert priced.total == sum(line.amount for line in priced.line_items)
    assert priced.total >= 0
    exponent = 0 if tariff.currency == "JPY" else -2
    assert all(line.amount.as_tuple().exponent == exponent for line in priced.line_items)


@given(terms, energies, energies, seconds, seconds)
def test_more_energy_never_costs_less(tariff, a, b, charging, idle):
    low, high = sorted([a, b])
    cheap = price_session(tariff, energy_wh=low, charging_seconds=charging, idle_seconds=idle)
    dear = price_session(tariff, energy_wh=high, charging_seconds=charging, idle_seconds=idle)
    assert cheap.total <= dear.total


@given(terms, seconds)
def test_idle_time_within_the_grace_period_is_free(tariff, charging):
    priced = price_session(
        tariff, energy_wh=Decimal(0), charging_seconds=charging, idle_seconds=tariff.idle_grace_minutes * 60
    )
    assert "idle_time" not in [line.kind for line in priced.line_items]


@pytest.mark.parametrize(
    ("seconds", "amount"),
    [(11, "0.06"), (1211, "6.06"), (6005, "30.03")],  # 0.055, 6.055, 30.025 EUR
)
def test_a_price_per_minute_rounds_an_exact_half_cent_up(seconds, amount):
    """Round 52's probe: seconds / 60 rounded to 28 digits (20.18333...3 minutes) times 0.30 fell
    just short of the half cent, and 1,211 s at 0.30 EUR a minute (6.055) was billed 6.05."""
    priced = price_session(
        TariffTerms(
            currency="EUR",
            price_per_kwh=Decimal(0),
            price_per_minute=Decimal("0.30"),
            idle_fee_per_minute=Decimal("0.30"),
            idle_grace_minutes=10,
        ),
        energy_wh=Decimal(0),
        charging_seconds=seconds,
        idle_seconds=seconds + 600,  # the grace's 10 minutes more
    )
    assert [line.as_json()["amount"] for line in priced.line_items[1:]] == [amount, amount]


@given(terms, energies, seconds, seconds)
def test_each_amount_is_its_exact_quantity_times_its_price_rounded_half_up(tariff, energy_wh, charging, idle):
    priced = price_session(tariff, energy_wh=energy_wh, charging_seconds=charging, idle_seconds=idle)
    minor = Fraction(minor_unit(tariff.currency))
    exact = {
        "energy": Fraction(max(energy_wh, 0)) / 1000 * Fraction(tariff.price_per_kwh),
        "charging_time": Fraction(max(charging, 0), 60) * Fraction(tariff.price_per_minute),
        "session_fee": Fraction(tariff.session_fee),
        "idle_time": max(Fraction(max(idle, 0), 60) - tariff.idle_grace_minutes, 0)
        * Fraction(tariff.idle_fee_per_minute or 0),
    }
    for line in priced.line_items:
        assert Fraction(line.amount) == math.floor(exact[line.kind] / minor + Fraction(1, 2)) * minor, line
