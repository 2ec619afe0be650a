"""The allocator: worked cases from the issue, then properties over generated sites and sessions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sites.allocator import SessionDemand, SiteLimits, allocate

T0 = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
SINGLE_PHASE_32A = SiteLimits(phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32))


def session(sid: str, minute: int = 0, **kwargs: object) -> SessionDemand:
    fields: dict = {"phases": (0,), "max_a": Decimal(32), "arrived_at": T0 + timedelta(minutes=minute), **kwargs}
    return SessionDemand(session_id=sid, **fields)


def test_one_session_gets_the_whole_connection():
    assert allocate(site=SINGLE_PHASE_32A, sessions=[session("a")]) == {"a": Decimal(32)}


def test_four_sessions_get_8_a_each():
    limits = allocate(site=SINGLE_PHASE_32A, sessions=[session(sid) for sid in "abcd"])
    assert limits == dict.fromkeys("abcd", Decimal(8))


def test_a_car_drawing_4_a_releases_the_rest_to_the_others():
    sessions = [session(sid, limit_a=Decimal(8), draw_a=Decimal(8)) for sid in "abc"]
    sessions.append(session("d", limit_a=Decimal(8), draw_a=Decimal(4)))
    limits = allocate(site=SINGLE_PHASE_32A, sessions=sessions)
    assert limits["d"] == Decimal(6)  # its draw plus the 1 A margin is below the 6 A minimum
    assert limits["a"] == limits["b"] == limits["c"] == Decimal("8.6")


def test_a_car_drawing_near_its_limit_keeps_its_share():
    sessions = [session(sid, limit_a=Decimal(8), draw_a=Decimal("7.5")) for sid in "abcd"]
    assert allocate(site=SINGLE_PHASE_32A, sessions=sessions) == dict.fromkeys("abcd", Decimal(8))


def test_connector_maximum_hands_its_rest_on():
    limits = allocate(site=SINGLE_PHASE_32A, sessions=[session("a", max_a=Decimal(10)), session("b")])
    assert limits == {"a": Decimal(10), "b": Decimal(22)}


def test_sessions_that_do_not_fit_at_the_minimum_are_paused_latest_first():
    sessions = [session(sid, minute=i) for i, sid in enumerate("abcdef")]
    limits = allocate(site=SINGLE_PHASE_32A, sessions=sessions)
    assert limits == {
        "a": Decimal("6.4"),
        "b": Decimal("6.4"),
        "c": Decimal("6.4"),
        "d": Decimal("6.4"),
        "e": Decimal("6.4"),
        "f": Decimal(0),
    }


def test_priority_goes_before_arrival():
    sessions = [session(sid, minute=i) for i, sid in enumerate("abcdef")]
    sessions[5] = session("f", minute=5, priority=1)
    assert allocate(site=SINGLE_PHASE_32A, sessions=sessions)["e"] == Decimal(0)


def test_base_load_is_kept_free():
    site = SiteLimits(phases=1, voltage_v=Decimal(230), capacity_a=Decimal(32), base_load_a=(Decimal(20),))
    assert allocate(site=site, sessions=[session("a"), session("b")]) == {"a": Decimal(6), "b": Decimal(6)}


def test_three_phase_site_with_single_phase_cars_shares_per_phase():
    site = SiteLimits(phases=3, voltage_v=Decimal(230), capacity_a=Decimal(32))
    sessions = [
        session("l1a", phases=(0,)),
        session("l1b", phases=(0,)),
        session("l2", phases=(1,)),
        session("3ph", phases=(0, 1, 2), max_a=Decimal(16)),
    ]
    limits = allocate(site=site, sessions=sessions)
    # L1 carries two single-phase cars and the three-phase car: 32 / 3 each; L2 has room for more.
    assert limits == {"l1a": Decimal("10.6"), "l1b": Decimal("10.6"), "3ph": Decimal("10.6"), "l2": Decimal("21.3")}


def test_a_power_capacity_counts_every_phase_a_car_draws_on():
    site = SiteLimits(phases=3, voltage_v=Decimal(230), capacity_w=Decimal(22080))  # 32 A x 3 x 230 V
    limits = allocate(site=site, sessions=[session("3ph", phases=(0, 1, 2)), session("1ph", phases=(0,))])
    assert limits == {"3ph": Decimal(24), "1ph": Decimal(24)}


def test_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="phase"):
        allocate(site=SINGLE_PHASE_32A, sessions=[session("a", phases=(1,))])


# --- Properties -----------------------------------------------------------------------------

amps = st.decimals(min_value=0, max_value=80, places=1)


@st.composite
def sites_and_sessions(draw: st.DrawFn) -> tuple[SiteLimits, list[SessionDemand]]:
    phases = draw(st.sampled_from([1, 3]))
    capacity_a = draw(st.one_of(st.none(), amps))
    capacity_w = (
        draw(st.decimals(min_value=0, max_value=60000, places=0))
        if capacity_a is None
        else draw(st.one_of(st.none(), st.decimals(min_value=0, max_value=60000, places=0)))
    )
    site = SiteLimits(
        phases=phases,
        voltage_v=draw(st.sampled_from([Decimal(230), Decimal(120), Decimal(277)])),
        capacity_a=capacity_a,
        capacity_w=capacity_w,
        base_load_a=tuple(draw(st.decimals(min_value=0, max_value=40, places=1)) for _ in range(phases)),
    )
    count = draw(st.integers(min_value=0, max_value=8))
    sessions = []
    for index in range(count):
        used = draw(st.sampled_from([(0,), (0, 1, 2), (1,), (2,)] if phases == 3 else [(0,)]))
        limit = draw(st.one_of(st.none(), amps))
        sessions.append(
            SessionDemand(
                session_id=f"s{index}",
                phases=used,
                max_a=draw(st.decimals(min_value=0, max_value=63, places=1)),
                min_a=draw(st.sampled_from([Decimal(6), Decimal(0), Decimal("1.5")])),
                priority=draw(st.integers(min_value=0, max_value=2)),
                arrived_at=T0 + timedelta(seconds=draw(st.integers(min_value=0, max_value=5))),
                draw_a=draw(st.one_of(st.none(), amps)) if limit is not None else None,
                limit_a=limit,
            )
        )
    return site, sessions


def _phase_loads(site: SiteLimits, sessions: list[SessionDemand], limits: dict[str, Decimal]) -> list[Decimal]:
    return [
        site.base_load_a[p] + sum((limits[s.session_id] for s in sessions if p in s.phases), Decimal(0))
        for p in range(site.phases)
    ]


@settings(max_examples=300, deadline=None)
@given(sites_and_sessions())
def test_never_over_capacity(case):
    site, sessions = case
    limits = allocate(site=site, sessions=sessions)
    loads = _phase_loads(site, sessions, limits)
    if site.capacity_a is not None:
        for phase, load in enumerate(loads):
            base = site.base_load_a[phase]
            assert load <= max(site.capacity_a, base)  # a base load alone above capacity leaves 0 to cars
    if site.capacity_w is not None:
        cars_w = sum(limits[s.session_id] * len(s.phases) * site.voltage_v for s in sessions)
        assert cars_w == 0 or cars_w + sum(site.base_load_a) * site.voltage_v <= site.capacity_w


@settings(max_examples=300, deadline=None)
@given(sites_and_sessions())
def test_no_session_between_zero_and_its_minimum_or_above_its_maximum(case):
    site, sessions = case
    limits = allocate(site=site, sessions=sessions)
    for s in sessions:
        assert limits[s.session_id] == 0 or s.min_a <= limits[s.session_id] <= s.max_a


@settings(max_examples=300, deadline=None)
@given(sites_and_sessions(), st.randoms(use_true_random=False))
def test_result_is_independent_of_input_order_and_deterministic(case, random):
    site, sessions = case
    first = allocate(site=site, sessions=sessions)
    shuffled = list(sessions)
    random.shuffle(shuffled)
    assert allocate(site=site, sessions=shuffled) == first
    assert allocate(site=site, sessions=sessions) == first


@settings(max_examples=300, deadline=None)
@given(sites_and_sessions())
def test_headroom_is_redistributed(case):
    """A running session below its demand cap sits on a phase (or power limit) with less than one
    resolution step (0.1 A per session on it) left: nothing that could be handed on is kept back."""
    site, sessions = case
    limits = allocate(site=site, sessions=sessions)
    loads = _phase_loads(site, sessions, limits)
    cars_w = sum(limits[s.session_id] * len(s.phases) * site.voltage_v for s in sessions)
    for s in sessions:
        limit = limits[s.session_id]
        wants_more = limit and limit < s.max_a and (s.draw_a is None or s.limit_a is None or s.draw_a >= s.limit_a - 1)
        if not wants_more:
            continue
        slack = []
        if site.capacity_a is not None:
            for p in s.phases:
                sharing = sum(1 for other in sessions if p in other.phases and limits[other.session_id])
                slack.append(site.capacity_a - loads[p] < Decimal("0.1") * sharing + Decimal("0.1"))
        if site.capacity_w is not None:
            volts = site.voltage_v * 3 * len(sessions)
            slack.append(site.capacity_w - cars_w - sum(site.base_load_a) * site.voltage_v < Decimal("0.1") * volts)
        assert any(slack), f"{s.session_id} at {limit} A could have more"


@settings(max_examples=200, deadline=None)
@given(sites_and_sessions())
def test_a_paused_session_could_not_have_run_at_its_minimum_instead_of_a_lower_ranked_one(case):
    """Pausing goes by rank: no running session ranks below a paused one on the same phases
    unless the paused one's own maximum or demand cap keeps it out."""
    site, sessions = case
    limits = allocate(site=site, sessions=sessions)
    rank = {s.session_id: (-s.priority, s.arrived_at, s.session_id) for s in sessions}
    for paused in (s for s in sessions if limits[s.session_id] == 0 and s.max_a >= s.min_a and s.min_a > 0):
        if paused.draw_a is not None and paused.limit_a is not None and paused.draw_a < paused.limit_a - 1:
            continue
        for other in sessions:
            if limits[other.session_id] and set(other.phases) == set(paused.phases):
                assert rank[other.session_id] < rank[paused.session_id] or other.min_a < paused.min_a


def test_a_chargers_cap_bounds_its_sessions_together():
    site = SiteLimits(phases=1, voltage_v=Decimal(230), capacity_a=Decimal(64))
    sessions = [session("a1", charger="A"), session("a2", charger="A"), session("b", charger="B")]
    limits = allocate(site=site, sessions=sessions, charger_caps_a={"A": Decimal(32)})
    assert limits == {"a1": Decimal(16), "a2": Decimal(16), "b": Decimal(32)}


def test_a_chargers_cap_below_two_minimums_pauses_its_later_session():
    site = SiteLimits(phases=1, voltage_v=Decimal(230), capacity_a=Decimal(64))
    sessions = [session("a1", charger="A"), session("a2", minute=1, charger="A")]
    limits = allocate(site=site, sessions=sessions, charger_caps_a={"A": Decimal(10)})
    assert limits == {"a1": Decimal(10), "a2": Decimal(0)}


@settings(max_examples=200, deadline=None)
@given(sites_and_sessions(), st.lists(st.decimals(min_value=0, max_value=40, places=1), min_size=2, max_size=2))
def test_never_over_a_chargers_cap(case, caps):
    site, sessions = case
    sessions = [dataclasses.replace(s, charger=f"cp{index % 2}") for index, s in enumerate(sessions)]
    charger_caps = {"cp0": caps[0], "cp1": caps[1]}
    limits = allocate(site=site, sessions=sessions, charger_caps_a=charger_caps)
    for charger, cap in charger_caps.items():
        for phase in range(site.phases):
            drawn = sum(
                (limits[s.session_id] for s in sessions if s.charger == charger and phase in s.phases), Decimal(0)
            )
            assert drawn <= cap
