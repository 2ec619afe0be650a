"""The meter ledger's arithmetic: normalising sampled values and deriving a session's energy.

Pure functions, no database. Energy comes from the energy register (Wh after normalisation):
the readings of a session, from its baseline to its last reading, are walked in order and
only plausible, non-negative steps count. A register that goes backwards (a meter reset or a
swapped meter), or jumps further than the charger could have delivered in the time between two
readings (a zero or missing baseline after an offline start, a garbled value), adds nothing and
flags the session for review: the CSMS never bills a negative session or a meter's lifetime.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

ENERGY_REGISTER = "Energy.Active.Import.Register"
# The 1.6 SampledValue format (security whitepaper) whose value is a signed blob, not a number. 2.0.1
# has no format: its value is the reading, a signedMeterValue beside it.
SIGNED_DATA = "SignedData"

# Unit prefixes (lower case): a value in kWh is stored in Wh, kW in W, and so on (OCPP UnitOfMeasure;
# 2.0.1's Energy.Apparent measurands in kVAh too).
_BASE_UNITS = {"kwh": "Wh", "kw": "W", "kvarh": "varh", "kvar": "var", "kva": "VA", "kvah": "VAh"}
_UNIT_SCALE = dict.fromkeys(_BASE_UNITS, 1000)
_MAX_MULTIPLIER = 9
# 10**multiplier for every multiplier allowed, computed once (a Decimal power per sample was the
# largest line of a reading's normalisation, issue 15).
_POWERS_OF_TEN = {m: Decimal(10) ** m for m in range(-_MAX_MULTIPLIER, _MAX_MULTIPLIER + 1)}
# No meter reads a petawatt-hour: anything beyond is a garbled value (and would not fit a column).
MAX_VALUE = Decimal(10) ** 15
# Digits before the point a sampled value may have in any unit and multiplier (kWh times 10**9 of
# the largest stays below Decimal's exponent limit); below 10**-30 it is 0 (the ledger keeps 6
# decimals of the normalised value; PostgreSQL takes no exponent of -999999999).
_MAX_DIGITS = 18
_MIN_DIGITS = 30
_MAX_TEXT = 64
# A register steps back by less than the coarser resolution of two readings (e.g. "12.3" kWh, 100 Wh,
# after a meterStart of 12345 Wh): rounding, not a meter going backwards. This is the coarsest
# resolution taken (a kWh-rounded register's), and that of a reading whose text is not known.
REGISTER_RESOLUTION_WH = Decimal(1000)
# A 1.6 meterStart or meterStop is an integer in Wh (OCPP 1.6 §6.45 StartTransaction.req, §6.49
# StopTransaction.req), often from a coarser register (12000 from a kWh one): its resolution is that of
# its trailing zeros, at least this (a few Wh between it and a reading of another register are no
# meter going backwards), at most ``REGISTER_RESOLUTION_WH``.
METER_START_STOP_RESOLUTION_WH = Decimal(10)
# Phases whose values add up to the total (line-to-neutral readings of a 3-phase meter).
_ADDITIVE_PHASES = {"L1": "L1", "L2": "L2", "L3": "L3", "L1-N": "L1", "L2-N": "L2", "L3-N": "L3"}
_CONTEXT_ORDER = {"Transaction.Begin": 0, "Transaction.End": 2}
# Where an energy register is read, in the order it is billed from (OCPP 1.6 §7.33 Location, 2.0.1
# LocationEnumType; unstated is Outlet): the first of these a session's readings have. The outlet
# is what the customer got, the cable next to it; the inlet (before the charger's own use) and the
# EV (after the cable's losses) only when nothing nearer measured the session. Body: no register.
BILLED_LOCATIONS = ("Outlet", "Cable", "Inlet", "EV")
_LOCATION_RANK = {"": 0} | {location: rank for rank, location in enumerate(BILLED_LOCATIONS)}
_UNBILLED = len(BILLED_LOCATIONS)


class Anomaly:
    """Codes stored on a transaction. Those in ``REVIEW`` need an operator's look."""

    NON_MONOTONIC_REGISTER = "non_monotonic_register"
    IMPLAUSIBLE_JUMP = "implausible_jump"
    ZERO_BASELINE = "zero_baseline"
    MISSING_BASELINE = "missing_baseline"
    FRACTIONAL_WH = "fractional_wh"  # accepted as sent (1.6 says integer); recorded, no review
    UNPARSEABLE_VALUE = "unparseable_value"  # a sampled value that is not a number; kept raw
    # The meter start or stop sent (1.6 meterStart/meterStop, a Transaction.Begin/End register
    # reading) is not a number any meter reads: the session's energy is a guess.
    UNREADABLE_METER_START_OR_STOP = "unreadable_meter_start_or_stop"
    CLOSED_BY_CSMS = "closed_by_csms"  # no stop from the charger (reboot, then Available)
    CLOCK_IMPLAUSIBLE = "clock_implausible"  # a charger time replaced by its receipt (chargepoints.clock)
    ENDED_BEFORE_STARTED = "ended_before_started"  # the stop's time is before the start's
    # ended without a single energy reading, or (1.6) none but its meter start, no meterStop: 0 Wh is a guess
    MISSING_READINGS = "missing_readings"
    UNAUTHORIZED_TOKEN = "unauthorized_token"  # the CSMS answered the session's token other than Accepted
    # Longer than ``LONG_SESSION``: a start stamped years back by a clock reset to a stale date
    # (after 2015, so plausible) would otherwise be billed years without a look.
    LONG_DURATION = "long_duration"
    # A 2.0.1 event of the session named another EVSE (or connector) than the one it was on: a
    # transaction is on one EVSE (E01.FR.16); its readings may be another meter's. 1.6: MeterValues of
    # another connector (not 0) naming its transaction.
    EVSE_CHANGED = "evse_changed"

    REVIEW = frozenset(
        {
            NON_MONOTONIC_REGISTER,
            IMPLAUSIBLE_JUMP,
            ZERO_BASELINE,
            MISSING_BASELINE,
            CLOSED_BY_CSMS,
            CLOCK_IMPLAUSIBLE,
            ENDED_BEFORE_STARTED,
            MISSING_READINGS,
            UNAUTHORIZED_TOKEN,
            UNREADABLE_METER_START_OR_STOP,
            LONG_DURATION,
            EVSE_CHANGED,
        }
    )


# No charging session lasts this long: a longer one is flagged ``long_duration`` for review.
LONG_SESSION = timedelta(days=7)


# What a sampled value without a measurand measures when its unit is of another quantity than active
# energy (OCPP UnitOfMeasure): the energy register is the default measurand of both versions, but a
# current in A sent without one is no register reading (it seemed to fall to 16 Wh). Not W nor kW:
# an energy register labelled kW (for kWh) is read as it always was, as kWh.
_MEASURAND_OF_UNIT = {
    "a": "Current.Import",
    "v": "Voltage",
    "percent": "SoC",
    "celsius": "Temperature",
    "celcius": "Temperature",  # OCPP 1.6's schema spells its UnitOfMeasure so
    "fahrenheit": "Temperature",
    "k": "Temperature",
    "hertz": "Frequency",  # OCPP 1.6 errata's UnitOfMeasure (in the schema validated with)
    "hz": "Frequency",  # 2.0.1's standardized unit
    "var": "Power.Reactive.Import",
    "kvar": "Power.Reactive.Import",
    "varh": "Energy.Reactive.Import.Register",
    "kvarh": "Energy.Reactive.Import.Register",
    "vah": "Energy.Apparent.Import",
    "kvah": "Energy.Apparent.Import",
}


def measurand_of(measurand: str | None, unit: object) -> str:
    """A sampled value's measurand: the one sent, else the default (the energy register) unless its
    unit is of another quantity (``_MEASURAND_OF_UNIT``: ``"A"`` is ``Current.Import``)."""
    if measurand is not None or not isinstance(unit, str):
        return ENERGY_REGISTER if measurand is None else measurand
    return _MEASURAND_OF_UNIT.get(unit.strip().lower(), ENERGY_REGISTER)


def parse_decimal(raw: object) -> Decimal | None:
    """A sampled value as a Decimal, or None if it is no finite number, one no meter reads in any
    unit (``1e999999``: its normalisation would overflow) or longer than any meter writes. One below
    10**-30 (``1e-999999999``, which PostgreSQL cannot take) is 0."""
    if isinstance(raw, bool):
        return None
    text = str(raw).strip()
    if len(text) > _MAX_TEXT:
        return None
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    if not value.is_finite() or value.adjusted() >= _MAX_DIGITS:
        return None
    return value if value.adjusted() >= -_MIN_DIGITS else Decimal(0)


def normalise(value: Decimal, unit: str, multiplier: int = 0) -> Decimal | None:
    """``value`` in the base unit (kWh -> Wh, kW -> W, ...) times 10**multiplier (2.0.1).

    Units match case-insensitively (``KWH`` is kWh). None when the result is beyond any meter
    (``MAX_VALUE``): a garbled value is kept raw, never stored as a number.
    """
    if abs(multiplier) > _MAX_MULTIPLIER:
        return None
    normalised = value * _UNIT_SCALE.get(unit.lower(), 1)
    if multiplier:  # times 10**0 changes nothing: the product is rounded already, its exponent kept
        normalised *= _POWERS_OF_TEN[multiplier]
    return normalised if abs(normalised) < MAX_VALUE else None


def unit_default(measurand: object) -> str:
    """The unit of a sampled value sent without one: Wh for an Energy measurand (OCPP 1.6 §7.45
    SampledValue.unit, 2.0.1 UnitOfMeasureType.unit), none stated ("") for any other (a current,
    a power, a state of charge is no Wh)."""
    return "Wh" if isinstance(measurand, str) and measurand.startswith("Energy") else ""


# The energy unit of a power unit, for an Energy measurand sent in it (a meter labelling its kWh ``kW``).
_ENERGY_OF_POWER = {"w": "Wh", "var": "varh", "va": "VAh"}


def base_unit(unit: str, measurand: str = "") -> str:
    """The unit a value ``normalise`` d from ``unit`` is in: ``"kWh"`` -> ``"Wh"``, ``"kW"`` -> ``"W"``
    (any case), any other unit as sent (``"Wh"``, ``"A"``, ``"Percent"``). A 2.0.1 multiplier is
    applied already, so it changes nothing here. An ``Energy`` measurand sent in a power unit (a
    register labelled ``kW`` or ``W``, read in kWh or Wh: ``measurand_of``) is in its energy unit, Wh."""
    base = _BASE_UNITS.get(unit.lower(), unit)
    return _ENERGY_OF_POWER.get(base.lower(), base) if measurand.startswith("Energy") else base


class Sampled(Protocol):
    """What ``register_readings`` reads of a sample: a ``Sample``, a ledger row, a ``MeterSample``."""

    @property
    def timestamp(self) -> datetime: ...
    @property
    def measurand(self) -> str: ...
    @property
    def value(self) -> Decimal | None: ...
    @property
    def phase(self) -> str: ...
    @property
    def context(self) -> str: ...
    @property
    def location(self) -> str: ...
    @property
    def raw_value(self) -> str: ...
    @property
    def unit(self) -> str: ...
    @property
    def multiplier(self) -> int: ...


@dataclass(frozen=True)
class Sample:
    """A sampled value, normalised (``value`` in the base unit, None if unreadable), with the text,
    unit and multiplier it was sent in (its resolution; none known: ``REGISTER_RESOLUTION_WH``)."""

    timestamp: datetime
    measurand: str
    value: Decimal | None
    phase: str = ""
    context: str = ""
    location: str = ""
    raw_value: str = ""
    unit: str = "Wh"
    multiplier: int = 0

    @classmethod
    def of(cls, row: Any) -> Sample:
        """The sample of a stored row (anything with these attributes, e.g. a MeterSample)."""
        return cls(
            timestamp=row.timestamp,
            measurand=row.measurand,
            value=row.value,
            phase=row.phase,
            context=row.context,
            location=row.location,
            raw_value=row.raw_value,
            unit=row.unit,
            multiplier=row.multiplier,
        )


@dataclass(frozen=True)
class Reading:
    """One energy register reading in Wh; ``resolution_wh``: the step of its last digit, in Wh."""

    at: datetime
    wh: Decimal
    context: str = ""
    resolution_wh: Decimal = REGISTER_RESOLUTION_WH

    @property
    def order(self) -> tuple[datetime, int]:
        return self.at, _CONTEXT_ORDER.get(self.context, 1)


def register_resolution(raw_value: str, unit: str, multiplier: int) -> Decimal:
    """The step of a register reading's last digit as sent, in Wh: ``"900"`` Wh 1, ``"900.5"`` Wh
    0.1, ``"0.9"`` kWh 100, ``"12"`` kWh 1000. At most ``REGISTER_RESOLUTION_WH``, which a text that
    is no number also gets."""
    value = parse_decimal(raw_value)
    if value is None:
        return REGISTER_RESOLUTION_WH
    step = normalise(Decimal(1).scaleb(int(value.as_tuple().exponent)), unit, multiplier)
    return REGISTER_RESOLUTION_WH if step is None else min(step, REGISTER_RESOLUTION_WH)


def meter_bound_reading(at: datetime, wh: Decimal, context: str, readings: Sequence[Reading]) -> Reading:
    """A session's meter start or stop (``wh``) as a reading: with the resolution of the register
    reading among ``readings`` it was taken from (one of the same value: a 2.0.1 Begin, End, first or
    last reading), else that of a 1.6 meterStart or meterStop (``_integer_resolution``)."""
    taken_from = next((reading for reading in readings if reading.wh == wh), None)
    resolution = _integer_resolution(wh) if taken_from is None else taken_from.resolution_wh
    return Reading(at, wh, context, resolution)


def _integer_resolution(wh: Decimal) -> Decimal:
    """A meter start or stop's resolution (``METER_START_STOP_RESOLUTION_WH``): 12000 Wh 1000,
    12300 Wh 100, 12345 Wh 10."""
    step = METER_START_STOP_RESOLUTION_WH
    while step < REGISTER_RESOLUTION_WH and wh % (step * 10) == 0:
        step *= 10
    return step


def register_readings(samples: Iterable[Sampled]) -> list[Reading]:
    """The energy register readings among ``samples``, one per (time, context), in order, each
    with its resolution (``register_resolution``; a sum of phases: the sum of its phases', each
    rounded apart, at most ``REGISTER_RESOLUTION_WH``).

    Phase normalisation: a reading without a phase is the meter's total and wins; otherwise
    the line phases (L1, L2, L3 or L1-N, ...) of the same instant add up to the total, when every
    phase ``samples`` read is among them: an instant missing one (a phase left out of a sample) is
    no reading, so the last complete set stands (its sum is not the meter's: the register seemed
    to drop, or jump back).
    Location (OCPP LocationEnumType; unstated is ``Outlet``, the default in both versions): the
    outlet is what the customer got; without an outlet register, the one nearest it measured the
    session (``BILLED_LOCATIONS``: the cable, then the inlet, then the EV). ``Body`` never counts.
    """
    register = [s for s in samples if s.measurand == ENERGY_REGISTER and s.value is not None]
    if len(register) == 1:  # a periodic reading's one register value (most messages): no grouping
        only = register[0]
        if only.location in _LOCATION_RANK and (not only.phase or only.phase in _ADDITIVE_PHASES):
            assert only.value is not None  # a line phase alone is its total, summed as below
            wh = only.value if not only.phase else sum((only.value,), Decimal(0))
            resolution = register_resolution(only.raw_value, only.unit, only.multiplier)
            return [Reading(at=only.timestamp, wh=wh, context=only.context, resolution_wh=resolution)]
        return []
    rank = min((_LOCATION_RANK.get(s.location, _UNBILLED) for s in register), default=_UNBILLED)
    preferred = [s for s in register if _LOCATION_RANK.get(s.location, _UNBILLED) == rank != _UNBILLED]
    totals: dict[tuple[datetime, str], tuple[Decimal, Decimal]] = {}  # -> (Wh, resolution)
    phases: dict[tuple[datetime, str], dict[str, tuple[Decimal, Decimal]]] = defaultdict(dict)
    for sample in preferred:
        key = (sample.timestamp, sample.context)
        assert sample.value is not None
        read = (sample.value, register_resolution(sample.raw_value, sample.unit, sample.multiplier))
        if not sample.phase:
            totals[key] = read
        elif sample.phase in _ADDITIVE_PHASES:
            phases[key][_ADDITIVE_PHASES[sample.phase]] = read
    every_phase = set().union(*phases.values()) if phases else set()
    for key, by_phase in phases.items():
        if key in totals or len(by_phase) < len(every_phase):  # a total wins; a phase missing: no total
            continue
        summed = sum((wh for wh, _ in by_phase.values()), Decimal(0))
        # Each phase is rounded to its own last digit: the sum is off by up to all of their steps together
        # (three "5.67" kWh phases of 5.665 each read 15 Wh above the meter's total 16995), at most 1 kWh.
        steps = sum((resolution for _, resolution in by_phase.values()), Decimal(0))
        totals[key] = (summed, min(steps, REGISTER_RESOLUTION_WH))
    readings = [Reading(at, wh, context, resolution) for (at, context), (wh, resolution) in totals.items()]
    return sorted(readings, key=lambda reading: reading.order)


# A register reading's scope (``register_scope``): its location's rank in ``BILLED_LOCATIONS``
# times 8, plus its phases (L1 1, L2 2, L3 4; a total, read without a phase, is all three).
_PHASE_BITS = {"L1": 1, "L2": 2, "L3": 4}
_ALL_PHASES = 7


def register_scope(samples: Iterable[Sampled], reading: Reading) -> int:
    """What ``reading`` (one of ``register_readings(samples)``) measured, as a small integer: its
    location's rank in ``BILLED_LOCATIONS`` times 8 plus its phases (L1 1, L2 2, L3 4; a total, read
    without a phase, 7): the samples of its instant at the location it was read from."""
    register = [
        s
        for s in samples
        if s.measurand == ENERGY_REGISTER
        and s.value is not None
        and s.timestamp == reading.at
        and s.context == reading.context
    ]
    return sent_scope(register)


def sent_scope(register: Iterable[Any]) -> int:
    """The scope (``register_scope``) of one instant's energy register values as sent (objects
    with ``location`` and ``phase``), whether or not each is a number."""
    register = list(register)
    rank = min((_LOCATION_RANK.get(s.location, _UNBILLED) for s in register), default=_UNBILLED)
    phases = 0
    for sample in register:
        if _LOCATION_RANK.get(sample.location, _UNBILLED) != rank:
            continue
        if not sample.phase:
            return rank * 8 + _ALL_PHASES
        phases |= _PHASE_BITS.get(_ADDITIVE_PHASES.get(sample.phase, ""), 0)
    return rank * 8 + phases


def scope_comparable(scope: int, held: int | None) -> bool:
    """Whether a reading of ``scope`` may follow one of ``held`` (``register_scope``; None: not
    known) as the session's register: read at a location no further from the outlet, and, at the
    same location, over every phase ``held`` covered. Another reading (a message with L1 and L2
    only after one with L1, L2 and L3; the EV's register after the outlet's) is not the same
    register: as the session's billing (``register_readings`` over its whole ledger) skips it."""
    if held is None:
        return True
    rank, held_rank = scope // 8, held // 8
    return rank < held_rank or (rank == held_rank and scope & held == held)


@dataclass(frozen=True)
class EnergyResult:
    energy_wh: Decimal
    anomalies: tuple[str, ...]


def derive_energy(readings: Sequence[Reading], *, max_power_w: Decimal, jump_tolerance_wh: Decimal) -> EnergyResult:
    """The energy of a session from its register readings (baseline first, meter stop last).

    A step is plausible when it is at most what ``max_power_w`` delivers in the time between the two
    readings plus ``jump_tolerance_wh`` (clock jitter, coarse meters). When every step is plausible and
    none goes back by the register's resolution or more (the coarser of its two readings',
    ``_resolution``), the energy is the last reading minus the first. Otherwise only the forward,
    plausible steps count and the session is flagged. Readings below the register's last good one are a
    glitch when a later one is back where the register was (the steps are counted past them, so garbled
    ``0`` readings do not bill the meter's lifetime), a reset when they climb from there without coming
    back (counting goes on from the reset) and are below where the register was before the step they
    fell from (a reset, a rollover, a meter replaced mid-session restart lower: at 0, at the new meter's
    reading). A jump that the next reading falls back under, to where the register was before it, was a
    glitch too: an implausible one is never counted, a plausible one is taken back when the register,
    back under it, is not below where it was before it, whether or not it comes back (a meter that is
    not reset only climbs: 1,000, 5,000, 4,000, a meter stop of 4,500 bills 3,500 Wh, the stop minus the
    start; 1,000, 5,000, 200, 700: a reset at 200, 4,500 Wh). A reading below 0 is no register's (a
    reset restarts at 0): it is left out, and flags the session, never a point the counting restarts
    from. The result is never negative. An energy beyond
    what ``max_power_w`` delivers from the first reading to the last, plus ``jump_tolerance_wh`` once,
    is flagged an implausible jump too (steps each within the tolerance that add up beyond the power),
    and kept as counted: the operator reviews it.
    """
    anomalies: list[str] = []
    counted = Decimal(0)
    if any(reading.wh < 0 for reading in readings):
        readings = [reading for reading in readings if reading.wh >= 0]
        _add(anomalies, Anomaly.NON_MONOTONIC_REGISTER)
    if not readings:
        return EnergyResult(counted, tuple(anomalies))
    base, dip, spiked_from = readings[0], None, None
    last_step: tuple[Reading, Decimal] | None = None  # the last step counted: from where, how much
    for reading in readings[1:]:
        if dip is not None:
            if _back_after_dip(base, dip, reading):
                dip = None  # a glitch, one reading or several: count on from where the register was
            elif reading.wh <= dip.wh:
                continue  # still at the dip: a glitch that lasts, or a reset not climbing yet
            elif last_step is not None and last_step[0].wh <= dip.wh:
                # climbing from no lower than before the last step: that step was a spike, not a reset
                (base, spike), dip = last_step, None
                counted -= spike
            else:
                base, dip = dip, None  # climbing from the dip, not back: the register was reset there
        elif spiked_from is not None and spiked_from.wh - _resolution(spiked_from, reading) < reading.wh < base.wh:
            base = spiked_from  # back under a jump, where the register was before it: the jump was a glitch
        spiked_from = None
        step = reading.wh - base.wh
        hours = Decimal(max((reading.at - base.at).total_seconds(), 0)) / 3600
        if step <= -_resolution(base, reading):
            _add(anomalies, Anomaly.NON_MONOTONIC_REGISTER)
            dip = reading
            continue
        last_step = None
        if step > max_power_w * hours + jump_tolerance_wh:
            _add(anomalies, Anomaly.IMPLAUSIBLE_JUMP)
            if base is readings[0] and base.wh == 0:
                _add(anomalies, Anomaly.ZERO_BASELINE)
            spiked_from = base
        elif step > 0:
            counted += step
            last_step = (base, step)
        base = reading
    if dip is not None and last_step is not None and last_step[0].wh <= dip.wh:  # ended under a spike
        counted += dip.wh - last_step[0].wh - last_step[1]
    if readings[-1].wh < readings[0].wh:  # rounding never ends below the start
        _add(anomalies, Anomaly.NON_MONOTONIC_REGISTER)
    energy = counted if anomalies else readings[-1].wh - readings[0].wh
    # Each step has the tolerance to itself: many steps within it may add up to far more than the power
    # delivers over the whole session (1 kWh a second for 10 minutes), billed as measured but flagged.
    hours = Decimal(max((max(r.at for r in readings) - min(r.at for r in readings)).total_seconds(), 0)) / 3600
    if energy > max_power_w * hours + jump_tolerance_wh:
        _add(anomalies, Anomaly.IMPLAUSIBLE_JUMP)
    return EnergyResult(energy, tuple(anomalies))


def _resolution(one: Reading, other: Reading) -> Decimal:
    """The resolution of a step between two readings: the coarser of theirs."""
    return max(one.resolution_wh, other.resolution_wh)


def _back_after_dip(before: Reading, dip: Reading, after: Reading) -> bool:
    """Whether the register, at ``before`` then ``dip``, is back where it was at ``after`` (within
    its resolution, and nearer ``before`` than ``dip``): the dip was a glitch, not a reset."""
    return after.wh > before.wh - _resolution(before, after) and before.wh - after.wh < after.wh - dip.wh


def _add(anomalies: list[str], code: str) -> None:
    if code not in anomalies:
        anomalies.append(code)
