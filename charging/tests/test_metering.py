"""Properties of the meter ledger's arithmetic (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from charging.metering import (
    ENERGY_REGISTER,
    MAX_VALUE,
    REGISTER_RESOLUTION_WH,
    Anomaly,
    Reading,
    Sample,
    derive_energy,
    measurand_of,
    meter_bound_reading,
    normalise,
    parse_decimal,
    register_readings,
    register_resolution,
)

T0 = datetime(2026, 5, 1, 10, tzinfo=UTC)
MAX_POWER_W = Decimal(400_000)
TOLERANCE_WH = Decimal(50_000)

watt_hours = st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False, allow_infinity=False)


def readings_every_minute(values: list[Decimal]) -> list[Reading]:
    return [Reading(T0 + timedelta(minutes=index), value) for index, value in enumerate(values)]


def energy(values: list[Decimal]) -> tuple[Decimal, tuple[str, ...]]:
    result = derive_energy(readings_every_minute(values), max_power_w=MAX_POWER_W, jump_tolerance_wh=TOLERANCE_WH)
    return result.energy_wh, result.anomalies


@given(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False))
def test_kwh_are_a_thousand_wh_and_the_multiplier_is_a_power_of_ten(value):
    assert normalise(value, "kWh") == value * 1000
    assert normalise(value, "KWH") == value * 1000
    assert normalise(value, "Wh", 3) == normalise(value, "kWh")
    assert normalise(value, "Wh") == value


@given(st.decimals(allow_nan=False, allow_infinity=False), st.integers(min_value=-30, max_value=30))
def test_values_beyond_any_meter_are_not_numbers(value, multiplier):
    normalised = normalise(value, "kWh", multiplier)
    assert normalised is None or abs(normalised) < MAX_VALUE


@given(st.lists(watt_hours, min_size=1, max_size=30))
def test_energy_is_never_negative_whatever_the_register_does(values):
    assert energy(values)[0] >= 0


@given(st.lists(st.decimals(min_value=0, max_value=5000, places=3), min_size=1, max_size=30), watt_hours)
def test_a_plausible_monotonic_register_bills_stop_minus_start(steps, start):
    values = [start]
    for step in steps:
        values.append(values[-1] + step)
    assert energy(values) == (values[-1] - values[0], ())


@given(watt_hours, watt_hours, st.decimals(min_value=1, max_value=5000, places=3))
def test_a_meter_reset_counts_the_steps_around_it_and_is_flagged(start, reset_to, after_reset):
    """A register that drops and stays below where it was (a reset, a swapped meter): the steps
    before and after the drop count, the drop does not. A reset restarts at 0,
    never below: the register starts high enough for the drop to reach 0 at least."""
    start += 1000 + 5000 + 2 * REGISTER_RESOLUTION_WH
    before_reset = start + 1000
    reset = min(reset_to, before_reset - after_reset - 2 * REGISTER_RESOLUTION_WH)
    wh, anomalies = energy([start, before_reset, reset, reset + after_reset])
    assert wh == 1000 + after_reset
    assert Anomaly.NON_MONOTONIC_REGISTER in anomalies


@given(
    watt_hours,
    st.lists(st.decimals(min_value=-(10**9), max_value=10**9, places=3), min_size=1, max_size=3),
    st.integers(min_value=0, max_value=3),
)
def test_garbled_low_readings_bill_stop_minus_start(start, garbled, position):
    """Readings far below their neighbours (``0``, a negative, a truncated value; one or a run of
    them, as a meter that lost contact sends) are a glitch when the register is back after them:
    they bill neither the meter's lifetime nor nothing."""
    values = [start + 1000 * step for step in range(5)]
    low = values[position] - REGISTER_RESOLUTION_WH
    run = sorted((min(value, low) for value in garbled), reverse=True)  # never climbing: not a reset
    values[position + 1 : position + 1] = run
    wh, anomalies = energy(values)
    assert wh == 4000
    assert anomalies == (Anomaly.NON_MONOTONIC_REGISTER,)


@given(
    watt_hours,
    st.integers(min_value=0, max_value=3),
    st.decimals(min_value=5 * REGISTER_RESOLUTION_WH, max_value=50_000, places=3),
    st.booleans(),
)
def test_a_plausible_spike_the_register_falls_back_from_is_not_billed(start, position, spike, ends_under_it):
    """A jump a charger could have made in a minute (under the power bound), the next reading back
    above where the register was before it (round 41's probe: 91,000 Wh billed for a meter that went
    from 1,000 to 5,000). Ending right after the fall (the stop under the spike) bills the same way."""
    values = [start + 1000 * step for step in range(5)]
    values.insert(position + 1, values[position] + spike)
    if ends_under_it:
        values = values[: position + 3]
    wh, anomalies = energy(values)
    assert wh == values[-1] - values[0]
    assert Anomaly.NON_MONOTONIC_REGISTER in anomalies


@given(watt_hours, st.integers(min_value=0, max_value=3))
def test_a_spike_the_register_falls_back_from_bills_stop_minus_start(start, position):
    """A garbled reading far above (beyond any charger's power) that the next one falls back under."""
    values = [start + 1000 * step for step in range(5)]
    values.insert(position + 1, values[position] + 10**8)
    wh, anomalies = energy(values)
    assert wh == 4000
    assert Anomaly.IMPLAUSIBLE_JUMP in anomalies  # and zero_baseline from a meter start of 0
    assert set(anomalies) <= {Anomaly.IMPLAUSIBLE_JUMP, Anomaly.ZERO_BASELINE}


@given(st.integers(min_value=1_000_000, max_value=10**9))
def test_a_zero_baseline_never_bills_the_meters_lifetime(lifetime_wh):
    wh, anomalies = energy([Decimal(0), Decimal(lifetime_wh), Decimal(lifetime_wh + 500)])
    assert wh == 500
    assert {Anomaly.IMPLAUSIBLE_JUMP, Anomaly.ZERO_BASELINE} <= set(anomalies)


def test_readings_of_less_resolution_than_the_meter_start_are_rounding_not_a_reset():
    # meterStart 12345 Wh, periodic readings in 0.1 kWh, meterStop 22345 Wh: 10000 Wh, nothing to review.
    assert energy([Decimal(12345), Decimal(12300), Decimal(17300), Decimal(22345)]) == (Decimal(10000), ())


@given(st.lists(st.sampled_from(["L1", "L2", "L3"]), min_size=1, max_size=3, unique=True), watt_hours)
def test_phase_readings_add_up_unless_a_total_is_given(phases, value):
    per_phase = [Sample(T0, ENERGY_REGISTER, value, phase=phase) for phase in phases]
    assert register_readings(per_phase) == [Reading(T0, value * len(phases))]
    total = Sample(T0, ENERGY_REGISTER, Decimal(7), phase="")
    assert register_readings([*per_phase, total]) == [Reading(T0, Decimal(7))]


def test_other_measurands_and_ev_side_readings_are_not_the_register():
    samples = [
        Sample(T0, "Power.Active.Import", Decimal(11000)),
        Sample(T0, "SoC", Decimal(57), location="EV"),
        Sample(T0, ENERGY_REGISTER, None),
    ]
    assert register_readings(samples) == []


@given(st.text(max_size=12))
def test_any_text_parses_to_a_finite_decimal_or_none(raw):
    value = parse_decimal(raw)
    assert value is None or value.is_finite()


def test_a_stop_below_the_start_is_flagged_even_within_the_registers_resolution():
    assert energy([Decimal(5000), Decimal(4001)]) == (Decimal(0), (Anomaly.NON_MONOTONIC_REGISTER,))


@given(
    watt_hours,
    st.sampled_from(["", "Outlet", "Inlet", "EV", "Cable", "Body"]),
    st.sampled_from(["", "L1", "L2-N", "L3", "N", "L1-L2", "L1-N"]),
    st.sampled_from(["", "Sample.Periodic", "Transaction.Begin", "Transaction.End"]),
)
def test_one_register_sample_reads_as_the_grouping_reads_it(value, location, phase, context):
    """A lone register sample (read without grouping) is what the grouping of its duplicate reads."""
    sample = Sample(T0, ENERGY_REGISTER, value, phase=phase, context=context, location=location)
    other = Sample(T0, "Power.Active.Import", Decimal(11000), location=location)
    assert register_readings([sample, other]) == register_readings([sample, sample])
    assert [r.wh.as_tuple() for r in register_readings([sample])] == [
        r.wh.as_tuple() for r in register_readings([sample, sample])
    ]


@given(
    st.decimals(min_value=-(10**6), max_value=10**6, allow_nan=False, allow_infinity=False),
    st.integers(min_value=-9, max_value=9),
    st.sampled_from(["Wh", "kWh", "W", "kW", "A"]),
)
def test_a_multiplier_scales_by_its_power_of_ten_exactly(value, multiplier, unit):
    scale = 1000 if unit.lower().startswith("k") else 1
    expected = value * scale * (Decimal(10) ** multiplier)
    normalised = normalise(value, unit, multiplier)
    assert normalised is None or normalised.as_tuple() == expected.as_tuple()


@pytest.mark.parametrize(
    ("raw", "unit", "multiplier", "resolution"),
    [
        ("900", "Wh", 0, Decimal(1)),
        ("900.5", "Wh", 0, Decimal("0.1")),
        ("0.9", "kWh", 0, Decimal(100)),
        ("12", "kWh", 0, Decimal(1000)),
        ("12", "Wh", 2, Decimal(100)),
        ("1E+5", "Wh", 0, REGISTER_RESOLUTION_WH),  # never coarser than a kWh-rounded register
        ("abc", "Wh", 0, REGISTER_RESOLUTION_WH),
    ],
)
def test_a_readings_resolution_is_the_step_of_its_last_digit_in_wh(raw, unit, multiplier, resolution):
    assert register_resolution(raw, unit, multiplier) == resolution


def test_a_step_back_by_the_resolution_of_wh_readings_is_not_rounding():
    readings = [
        Reading(T0 + timedelta(minutes=i), Decimal(wh), resolution_wh=Decimal(1))
        for i, wh in enumerate([0, 500, 900, 10])
    ]
    result = derive_energy(readings, max_power_w=MAX_POWER_W, jump_tolerance_wh=TOLERANCE_WH)
    assert (result.energy_wh, result.anomalies) == (Decimal(900), (Anomaly.NON_MONOTONIC_REGISTER,))


def test_a_sum_of_phases_has_the_sum_of_its_phases_resolutions():
    """Each phase is rounded apart: their rounding adds up (was the coarsest phase's alone)."""
    phases = [
        Sample(T0, ENERGY_REGISTER, Decimal(1000), phase="L1", raw_value="1000"),
        Sample(T0, ENERGY_REGISTER, Decimal(1100), phase="L2", raw_value="1.1", unit="kWh"),
    ]
    assert register_readings(phases) == [Reading(T0, Decimal(2100), resolution_wh=Decimal(101))]


@pytest.mark.parametrize(
    ("last_reading", "meter_stop", "flagged"),
    [
        (Reading(T0, Decimal(15400), resolution_wh=Decimal(100)), Decimal(15000), False),  # a kWh register's stop
        (Reading(T0, Decimal(12345), resolution_wh=Decimal(1)), Decimal(12340), False),  # another register's
        (Reading(T0, Decimal(900), resolution_wh=Decimal(1)), Decimal(10), True),  # the probe's
    ],
)
def test_a_meter_stop_steps_back_by_less_than_its_own_resolution_without_a_flag(last_reading, meter_stop, flagged):
    """The reviewer: a 1.6 meterStop taken 1 Wh fine flagged a kWh-rounded register's (15000 after
    15.4 kWh) and a few Wh between two registers as going backwards."""
    start = meter_bound_reading(T0 - timedelta(hours=1), Decimal(0), "Transaction.Begin", [])
    stop = meter_bound_reading(T0 + timedelta(minutes=1), meter_stop, "Transaction.End", [last_reading])
    result = derive_energy([start, last_reading, stop], max_power_w=MAX_POWER_W, jump_tolerance_wh=TOLERANCE_WH)
    assert (Anomaly.NON_MONOTONIC_REGISTER in result.anomalies) is flagged


@given(watt_hours, st.decimals(min_value=-(10**9), max_value=Decimal("-0.001"), places=3), st.booleans())
def test_a_negative_reading_is_never_a_reset_the_counting_restarts_from(start, negative, back_to_start):
    """A register below 0 is no register's (a reset restarts at 0): the climb from a negative reading
    to where the register was, or a little under it, is no energy (h5's probe: meterStart 10,000, a
    reading of -500, then 9,000 and a meterStop of 9,000 billed 9,500 Wh for a meter that went down)."""
    start = start + 2 * REGISTER_RESOLUTION_WH
    after = start if back_to_start else start - REGISTER_RESOLUTION_WH
    wh, anomalies = energy([start, negative, after, after])
    assert wh == 0
    assert Anomaly.NON_MONOTONIC_REGISTER in anomalies


def test_a_negative_meter_start_is_no_baseline():
    wh, anomalies = energy([Decimal(-500), Decimal(9000)])
    assert wh == 0
    assert anomalies == (Anomaly.NON_MONOTONIC_REGISTER,)


def test_steps_each_within_the_tolerance_that_add_up_beyond_the_power_are_flagged():
    """Round 49's probe: a 1.6 charger's register rose 1 kWh a second for 10 minutes (600 kWh, 3.6 MW
    on average, a simulated meter's pace) and was billed 181.00 EUR with no anomaly: every step fit
    400 kW over its second plus the 50 kWh tolerance, added again at each step. The session's energy
    over its whole span, against the power plus the tolerance once, flags it for review."""
    readings = [Reading(T0 + timedelta(seconds=second), Decimal(second * 1000)) for second in range(601)]
    result = derive_energy(readings, max_power_w=MAX_POWER_W, jump_tolerance_wh=TOLERANCE_WH)
    assert result.anomalies == (Anomaly.IMPLAUSIBLE_JUMP,)
    assert result.energy_wh == Decimal(600_000)  # as measured: the operator reviews it


def test_a_session_at_the_power_bound_all_along_is_not_flagged():
    readings = readings_every_minute([Decimal(minute * 6_600) for minute in range(121)])  # 396 kW for 2 h
    assert derive_energy(readings, max_power_w=MAX_POWER_W, jump_tolerance_wh=TOLERANCE_WH).anomalies == ()


@pytest.mark.parametrize(
    ("unit", "measurand"),
    [
        ("A", "Current.Import"),
        ("Celsius", "Temperature"),
        ("Celcius", "Temperature"),
        ("Hertz", "Frequency"),
        ("Hz", "Frequency"),
        ("kWh", ENERGY_REGISTER),
    ],
)
def test_a_value_without_a_measurand_is_what_its_unit_measures(unit: str, measurand: str) -> None:
    """OCPP 1.6's schema spells the unit ``Celcius``: a temperature sent so without a measurand was an
    energy register reading (it seemed to fall to 25 Wh) where ``Celsius`` was a temperature. Likewise
    ``Hertz`` (1.6 errata's UnitOfMeasure, in the schema the CSMS validates with; 2.0.1 ``Hz``): a grid
    frequency of 50.0 sent without a measurand was a register reading of 50 Wh."""
    assert measurand_of(None, unit) == measurand
    assert measurand_of("SoC", unit) == "SoC"


@pytest.mark.parametrize(
    ("fallen_to", "billed"),
    [
        (4000, 3500),  # no lower than before the jump: 5,000 was the glitch, the charger's stop minus start
        (3000, 2500),
        (1000, 500),
        (200, 4500),  # below it: a meter replaced (or reset, rolled over) at 200, counting on from there
        (0, 4500),
    ],
)
def test_a_register_falling_back_without_recovering_is_a_reset_only_below_where_the_jump_began(fallen_to, billed):
    """A 1.6 session: meter start 1,000, readings 5,000 then ``fallen_to``, meter stop ``fallen_to`` + 500.
    The register never comes back to 5,000. A reset (a meter replaced, a register zeroed or rolled over)
    restarts it at its own reading, which is below where the session's register had got to before the
    last step: counting goes on from it (4,000 then 500). Falling back no lower than that, the step to
    5,000 was the reading that was wrong (a meter that is not reset climbs only): it is taken back, and
    the bill is the meter stop minus the meter start the charger sent (3,500 Wh from 4,000, never 4,500)."""
    wh, anomalies = energy([Decimal(1000), Decimal(5000), Decimal(fallen_to), Decimal(fallen_to + 500)])
    assert (wh, anomalies) == (Decimal(billed), (Anomaly.NON_MONOTONIC_REGISTER,))
