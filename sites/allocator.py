"""Share a grid connection's capacity among its charging sessions: a pure function, no Django.

Units: currents in A per phase, powers in W, voltages in V (phase to neutral). Arithmetic is exact
(``fractions.Fraction``); limits are floored to ``RESOLUTION_A`` so rounding never overshoots.

``allocate`` works in four steps:

1. Each session's demand cap: its maximum, or, when its measured draw (a reading received since
   its limit was last raised) is more than ``margin_a`` below that limit (the car takes less than it is
   offered), that draw plus the margin, but never below its minimum. The rest of its share is
   handed on to the others.
2. Progressive filling (max-min fairness): every unsettled session rises at the same level until
   it reaches its cap or a constraint binds; the sessions in a binding constraint settle there.
   Constraints: per site phase, the base load plus the limits of the sessions drawing on that
   phase stay within ``capacity_a``; over all phases, the base load plus every session's power
   (limit x phases x voltage) stays within ``capacity_w``; per charger with a cap in
   ``charger_caps_a`` and per phase, the limits of its sessions (its connectors or EVSEs) on that
   phase stay within the cap (a two-connector charger on a 32 A supply does not get 2 x 32 A).
3. A session left below its minimum (IEC 61851: 6 A) cannot charge at that current: the
   lowest-ranked of those (lower ``priority``, then later ``arrived_at``, then ``session_id``)
   is paused (limit 0) and step 2 runs again without it.
4. Limits are floored to ``RESOLUTION_A``.

The result depends only on the set of sessions, not their order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from fractions import Fraction

RESOLUTION_A = Fraction(1, 10)
IEC_61851_MINIMUM_A = Decimal("6")


@dataclass(frozen=True)
class SiteLimits:
    """A grid connection: ``phases`` (1 or 3), at least one of ``capacity_a`` (A per phase) and
    ``capacity_w`` (W over all phases), and the base load (A per phase, one value per phase)."""

    phases: int
    voltage_v: Decimal
    capacity_a: Decimal | None = None
    capacity_w: Decimal | None = None
    base_load_a: tuple[Decimal, ...] = ()


@dataclass(frozen=True)
class SessionDemand:
    """One active session. ``phases``: indices (0-based) of the site phases its car draws on.
    ``draw_a``: the measured current (A per phase), None when unknown. ``limit_a``: the limit it
    holds now, None when none was sent. ``charger``: the charger it runs on, naming its cap in
    ``allocate``'s ``charger_caps_a`` (blank: none)."""

    session_id: str
    phases: tuple[int, ...]
    max_a: Decimal
    arrived_at: datetime
    min_a: Decimal = IEC_61851_MINIMUM_A
    priority: int = 0
    draw_a: Decimal | None = None
    limit_a: Decimal | None = None
    charger: str = ""


def allocate(
    *,
    site: SiteLimits,
    sessions: Sequence[SessionDemand],
    margin_a: Decimal = Decimal("1"),
    charger_caps_a: Mapping[str, Decimal] | None = None,
) -> dict[str, Decimal]:
    """The limit (A per phase, 0 = paused) of every session, keyed by ``session_id``.
    ``charger_caps_a``: A per phase a charger's sessions may draw together, by ``SessionDemand.charger``.

    Raises ValueError on a session naming a phase the site does not have, or on duplicate ids.
    """
    _check(site, sessions)
    caps_by_charger = dict(charger_caps_a or {})
    caps = {s.session_id: _demand_cap(s, Fraction(margin_a)) for s in sessions}
    minimums = {s.session_id: _ceil_to_resolution(Fraction(s.min_a)) for s in sessions}
    running = {s.session_id: s for s in sessions if caps[s.session_id] >= minimums[s.session_id]}
    while True:
        levels = _fill(site, list(running.values()), caps, caps_by_charger)
        below = [s for sid, s in running.items() if levels[sid] < minimums[sid]]
        if not below:
            break
        del running[max(below, key=_rank).session_id]
    return {
        s.session_id: _floor_to_resolution(levels[s.session_id]) if s.session_id in running else Decimal(0)
        for s in sessions
    }


def _check(site: SiteLimits, sessions: Sequence[SessionDemand]) -> None:
    ids = [s.session_id for s in sessions]
    if len(set(ids)) != len(ids):
        raise ValueError("session ids must be unique")
    for session in sessions:
        if not session.phases or any(not 0 <= p < site.phases for p in session.phases):
            raise ValueError(f"session {session.session_id} names a phase the site does not have")


def _demand_cap(session: SessionDemand, margin: Fraction) -> Fraction:
    maximum = Fraction(session.max_a)
    if session.draw_a is None or session.limit_a is None:
        return maximum
    draw, limit = Fraction(session.draw_a), Fraction(session.limit_a)
    if draw >= limit - margin:
        return maximum
    return min(maximum, max(Fraction(session.min_a), draw + margin))


def _rank(session: SessionDemand) -> tuple[int, datetime, str]:
    """Largest last: the session paused first has the lowest priority, then the latest arrival."""
    return (-session.priority, session.arrived_at, session.session_id)


def _constraints(
    site: SiteLimits, sessions: Sequence[SessionDemand], charger_caps_a: dict[str, Decimal]
) -> list[tuple[Fraction, dict[str, Fraction]]]:
    """(headroom, coefficient per session) for each constraint: sum(coefficient x limit) <= headroom."""
    base = [Fraction(site.base_load_a[p]) if p < len(site.base_load_a) else Fraction(0) for p in range(site.phases)]
    found: list[tuple[Fraction, dict[str, Fraction]]] = []
    if site.capacity_a is not None:
        for phase in range(site.phases):
            on_phase = {s.session_id: Fraction(1) for s in sessions if phase in s.phases}
            found.append((Fraction(site.capacity_a) - base[phase], on_phase))
    if site.capacity_w is not None:
        volts = Fraction(site.voltage_v)
        power = {s.session_id: volts * len(set(s.phases)) for s in sessions}
        found.append((Fraction(site.capacity_w) - volts * sum(base), power))
    for charger, cap in charger_caps_a.items():
        for phase in range(site.phases):
            on_charger = {s.session_id: Fraction(1) for s in sessions if s.charger == charger and phase in s.phases}
            if on_charger:
                found.append((Fraction(cap), on_charger))
    return found


def _fill(
    site: SiteLimits,
    sessions: Sequence[SessionDemand],
    caps: dict[str, Fraction],
    charger_caps_a: dict[str, Decimal],
) -> dict[str, Fraction]:
    """Progressive filling: the max-min fair levels under the site's constraints and the caps."""
    constraints = _constraints(site, sessions, charger_caps_a)
    levels: dict[str, Fraction] = {}
    unsettled = {s.session_id for s in sessions}
    while unsettled:
        bounds = [caps[sid] for sid in unsettled]
        binding: list[set[str]] = []
        for headroom, weights in constraints:
            rising = sum((w for sid, w in weights.items() if sid in unsettled), Fraction(0))
            if rising:
                settled = sum((w * levels[sid] for sid, w in weights.items() if sid in levels), Fraction(0))
                bounds.append((headroom - settled) / rising)
        level = max(Fraction(0), min(bounds))
        for headroom, weights in constraints:
            rising = sum((w for sid, w in weights.items() if sid in unsettled), Fraction(0))
            settled = sum((w * levels[sid] for sid, w in weights.items() if sid in levels), Fraction(0))
            if rising and settled + rising * level >= headroom:
                binding.append({sid for sid in weights if sid in unsettled})
        done = {sid for sid in unsettled if caps[sid] <= level}.union(*binding)
        for sid in done:
            levels[sid] = min(level, caps[sid])
        unsettled -= done
    return levels


def _floor_to_resolution(value: Fraction) -> Decimal:
    steps = math.floor(value / RESOLUTION_A)
    return Decimal(steps) * Decimal(RESOLUTION_A.numerator) / Decimal(RESOLUTION_A.denominator)


def _ceil_to_resolution(value: Fraction) -> Fraction:
    return math.ceil(value / RESOLUTION_A) * RESOLUTION_A
