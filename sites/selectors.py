"""Reads for the engine: a site's limits and its active sessions as the allocator sees them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from chargepoints.models import Connector, LifecycleState
from chargepoints.selectors import connectors_of_their_version
from charging.metering import SIGNED_DATA
from charging.models import InstalledChargingProfile, MeterSample, Transaction, TransactionStatus
from charging.selectors import profiles_of_their_version
from kernel.timestamps import parse_ocpp_time
from sites.allocator import SessionDemand, SiteLimits
from sites.models import SessionLimit, Site, SiteMember

CURRENT_MEASURAND = "Current.Import"
MAX_PLAUSIBLE_DRAW_A = Decimal(1000)  # a larger reading is a charger bug: it still means "wants more"
# The id of a session's TxProfile: this plus the transaction's primary key (``engine._profile_body``).
TX_PROFILE_ID_BASE = 1_800_000
# The stack level of a session's TxProfile: an operator's TxProfile above it prevails (``_overriding``).
TX_STACK_LEVEL = 1
# The id and stack level of a member's failsafe TxDefaultProfile (connector/EVSE 0).
FAILSAFE_PROFILE_ID = 1_700_000
FAILSAFE_STACK_LEVEL = 0


def site_profile_own(*, purpose: str, profile_id: int, stack_level: int) -> bool:
    """Whether a charging profile is one the engine sends: a session's TxProfile or a failsafe default."""
    if purpose == "TxProfile":
        return profile_id > TX_PROFILE_ID_BASE and stack_level == TX_STACK_LEVEL
    return purpose == "TxDefaultProfile" and (profile_id, stack_level) == (FAILSAFE_PROFILE_ID, FAILSAFE_STACK_LEVEL)


@dataclass(frozen=True)
class SessionView:
    """An active session of a member charger: what the allocator needs and what the engine sends."""

    transaction: Transaction
    member: SiteMember
    demand: SessionDemand
    # The limit it charges under now: what an operator's TxProfile above the site's lets it draw
    # (``override_a``, at most its maximum), else its TxProfile, else default_a or the failsafe it holds.
    held_a: Decimal
    limit: SessionLimit | None  # the TxProfile limit it holds (None: the failsafe default)
    adjustable: bool  # False: counted as a fixed load (offline, not commissioned, or the charger refuses profiles)
    # What an operator's TxProfile above the site's stack level lets it draw (A per phase): it prevails
    # over the site's, so the session is counted at it (``fixed_load``); None without one.
    override_a: Decimal | None = None
    # What an operator's TxDefaultProfile above the failsafe's stack level lets it draw without its
    # TxProfile (A per phase): it prevails over the failsafe; None without one.
    default_a: Decimal | None = None
    # The site's failsafe default its charger holds (A per phase), as it last accepted it: the site's
    # may have moved since (the charger offline, or silent on the new one); None: the site's. A charger
    # that holds none and is sent none (``member_sent_failsafes``): the session's maximum.
    failsafe_a: Decimal | None = None


def site_phase_indices(*, site: Site, member: SiteMember) -> tuple[int, ...]:
    """The site phases (0-based) a member's cars draw on: ``L1``..``L3`` in ``member.phases``, else all."""
    if site.phases == 1:
        return (0,)
    named = tuple(sorted({int(c) - 1 for c in member.phases if c in "123"}))
    return named or tuple(range(site.phases))


def member_watts_per_amp(*, site: Site, member: SiteMember) -> Decimal:
    """The W a limit of 1 A per phase is on a member: the site's voltage x the phases its cars draw on
    (as a W capacity counts a session, ``allocator``)."""
    return site.voltage_v * len(site_phase_indices(site=site, member=member))


def member_sent_failsafes(*, member: SiteMember) -> bool:
    """Whether the member's charger is sent the site's failsafe default when it holds another:
    connected, commissioned (registration allows no profile, 1.6 §4.2, 2.0.1 B02), not flagged."""
    return (
        bool(member.charge_point.connection_channel)
        and member.charge_point.lifecycle_state == LifecycleState.COMMISSIONED
        and not member.smart_charging_flag
    )


def member_takes_watts_only(*, member: SiteMember) -> bool:
    """Whether the member's charger takes a charging profile's limit in W alone (its configuration's
    ``ChargingScheduleAllowedChargingRateUnit`` Power, ``SmartChargingCtrlr.RateUnit`` W): the engine
    sends it its limits in W. Its units not known: A, as before they were read."""
    return member.charge_point.charging_rate_units == "W"


def profile_limit_a(*, profile: dict[str, Any], watts_per_amp: Decimal) -> Decimal | None:
    """The first period's limit of a profile the engine sent (its one schedule), A per phase: one in W
    over ``watts_per_amp`` (``member_watts_per_amp``), rounded up to 0.1 A (the engine floors the W it
    sends, ``engine._profile_body``: what it sent reads back as the A it meant, never less); None when
    it cannot be read."""
    schedule: Any = profile.get("charging_schedule")
    schedule = (schedule[0] if schedule else None) if isinstance(schedule, list) else schedule
    try:
        limit = Decimal(str(schedule["charging_schedule_period"][0]["limit"]))
        unit = schedule.get("charging_rate_unit", "A")
        if unit == "W":
            limit = (limit / watts_per_amp).quantize(Decimal("0.1"), rounding="ROUND_CEILING")
        elif unit != "A":
            return None
    except (AttributeError, KeyError, IndexError, TypeError, InvalidOperation, ArithmeticError):
        return None
    return limit if limit.is_finite() else None


def site_capacity_a(*, site: Site) -> Decimal:
    """The site's capacity in A per phase: ``capacity_a``, or ``capacity_w`` over its phases and
    voltage, whichever is lower (a site has at least one). A power capacity with a voltage that is
    not positive (a row stored before voltages were checked) gives nothing."""
    capacity = site.capacity_a
    if site.capacity_w is not None:
        from_power = site.capacity_w / (site.voltage_v * site.phases) if site.voltage_v > 0 else Decimal(0)
        capacity = from_power if capacity is None else min(capacity, from_power)
    assert capacity is not None
    return capacity


def site_headroom_a(*, site: Site) -> Decimal:
    """What the site can give its chargers, A per phase: its capacity less its fixed base load."""
    return site_capacity_a(site=site) - site.base_load_a


def site_failsafe_limit(*, site: Site, outlets: int) -> Decimal:
    """A member charger's failsafe TxDefaultProfile limit (A): the site's ``failsafe_current_a``, else
    what the site gives its chargers (the capacity less its fixed base load, as an explicit failsafe
    is bounded) shared equally among the members' ``outlets`` (``site_outlets``; floored to 0.1 A),
    0 when that is below the minimum."""
    if site.failsafe_current_a is not None:
        return site.failsafe_current_a
    headroom = max(site_headroom_a(site=site), Decimal(0))
    if outlets == 0:
        return Decimal(0)
    share = (headroom / outlets).quantize(Decimal("0.1"), rounding="ROUND_FLOOR")
    return share if share >= site.min_current_a else Decimal(0)


def site_outlets(*, members: Iterable[SiteMember]) -> int:
    """How many sessions the members can run at once under their failsafe default: a TxDefaultProfile
    on connector (EVSE) 0 is the default of each session on any connector (EVSE) (OCPP 1.6 §5.16.1,
    2.0.1 K01), so a two-connector charger draws it twice. Their connectors (1.6; 0 is the charger)
    or EVSEs (2.0.1) as their statuses reported them, at least one each."""
    seen: dict[int, set[int]] = {member.charge_point_id: set() for member in members}
    rows = Connector.objects.filter(connectors_of_their_version(), charge_point_id__in=list(seen)).values_list(
        "charge_point_id", "evse_id", "connector_id"
    )
    for charge_point_id, evse_id, connector_id in rows:
        outlet = evse_id if evse_id is not None else connector_id
        if outlet:
            seen[charge_point_id].add(outlet)
    return sum(max(1, len(outlets)) for outlets in seen.values())


def site_base_load(*, site: Site) -> tuple[Decimal, ...]:
    """A per phase: the live measured load when one was posted, else the fixed base load. A live
    load of another phase count (one stored before posts were checked under the site's lock, racing
    a change of its phases) counts its largest value on every phase: never less than was measured."""
    if site.live_base_load_a:
        live = tuple(Decimal(str(value)) for value in site.live_base_load_a)
        return live if len(live) == site.phases else (max(live),) * site.phases
    return (site.base_load_a,) * site.phases


def site_sessions(*, site: Site, now: datetime | None = None) -> list[SessionView]:
    """The active sessions on the site's member chargers, with their demand and held limit."""
    now = now or timezone.now()
    members = {
        m.charge_point_id: m for m in site.members.select_related("charge_point").prefetch_related("connector_maximums")
    }
    failsafe = site_failsafe_limit(site=site, outlets=site_outlets(members=members.values()))
    sessions = list(
        Transaction.objects.filter(charge_point_id__in=members, status=TransactionStatus.ACTIVE).order_by("pk")
    )
    # Whichever site sent it: a charger moved from another site still holds that site's TxProfile.
    held = {sl.transaction_id: sl for sl in SessionLimit.objects.filter(transaction__in=[s.pk for s in sessions])}
    installed, above = _tx_profiles_installed(sessions)
    failsafes = _failsafes_held(site, members, installed)
    views = []
    for session in sessions:
        member = members[session.charge_point_id]
        row = installed.get((session.charge_point_id, TX_PROFILE_ID_BASE + session.pk))
        limit = (held.get(session.pk) or _limit_of_installed(site, member, session, row)) if row is not None else None
        phases = site_phase_indices(site=site, member=member)
        profiles = above.get(session.charge_point_id, [])
        override = _overriding(session, profiles, site.voltage_v, len(phases), now)
        default = _overriding(session, profiles, site.voltage_v, len(phases), now, purpose="TxDefaultProfile")
        maximum = _connector_maximum(member, session)
        held_failsafe = failsafes.get(session.charge_point_id)
        if held_failsafe is None and not member_sent_failsafes(member=member):
            # It holds none, and is sent none (away, pending or flagged: one added to the site while
            # away): nothing limits its car but the charger, not the failsafe the site's others hold.
            held_failsafe = maximum
        held_a = limit.limit_a if limit else (default if default is not None else _or(held_failsafe, failsafe))
        if override is not None:  # it prevails on the charger over whatever the site sent
            held_a = min(override, maximum)
        views.append(
            SessionView(
                transaction=session,
                member=member,
                demand=SessionDemand(
                    session_id=str(session.pk),
                    phases=phases,
                    max_a=maximum,
                    min_a=site.min_current_a,
                    priority=member.priority,
                    arrived_at=session.started_at,
                    draw_a=session_draw(transaction=session, since=limit.raised_at if limit else None),
                    limit_a=held_a,
                    charger=str(member.charge_point_id),
                ),
                held_a=held_a,
                limit=limit,
                adjustable=(
                    not member.smart_charging_flag
                    and bool(member.charge_point.connection_channel)
                    and member.charge_point.lifecycle_state == LifecycleState.COMMISSIONED
                    and _connector_known(session)
                    and override is None
                ),
                override_a=override,
                default_a=default,
                failsafe_a=held_failsafe,
            )
        )
    return views


def _or(value: Decimal | None, default: Decimal) -> Decimal:
    return default if value is None else value


def _failsafes_held(
    site: Site, members: dict[int, SiteMember], installed: dict[tuple[int, int], InstalledChargingProfile]
) -> dict[int, Decimal]:
    """By charger pk, the limit (A) of the site's failsafe TxDefaultProfile it holds (``installed``'s,
    ``FAILSAFE_PROFILE_ID`` on connector/EVSE 0), as it accepted it (in A, or in W: ``profile_limit_a``);
    none when that cannot be read."""
    held = {}
    for (charge_point_id, profile_id), row in installed.items():
        if profile_id != FAILSAFE_PROFILE_ID:
            continue
        per_amp = member_watts_per_amp(site=site, member=members[charge_point_id])
        limit_a = profile_limit_a(profile=row.profile, watts_per_amp=per_amp)
        if limit_a is not None:
            held[charge_point_id] = limit_a
    return held


def _limit_of_installed(
    site: Site, member: SiteMember, session: Transaction, row: InstalledChargingProfile
) -> SessionLimit | None:
    """The limit of a session's TxProfile (one the engine sent, ``TX_PROFILE_ID_BASE``) the charger
    holds with no ``SessionLimit`` left (its site was deleted, the charger then put on this one): as
    its first period reads (``profile_limit_a``), sent when it was installed (unsaved); None when that
    cannot be read."""
    limit_a = profile_limit_a(profile=row.profile, watts_per_amp=member_watts_per_amp(site=site, member=member))
    if limit_a is None:
        return None
    return SessionLimit(
        site=site, transaction=session, limit_a=limit_a, sent_at=row.installed_at, raised_at=row.installed_at
    )


def _tx_profiles_installed(
    sessions: list[Transaction],
) -> tuple[dict[tuple[int, int], InstalledChargingProfile], dict[int, list[InstalledChargingProfile]]]:
    """(charger pk, profile id) of the sessions' TxProfiles the charger still holds as far as the CSMS
    knows, with their rows. A limit whose TxProfile an accepted ClearChargingProfile removed (or a profile of the same
    purpose and stack level replaced) is held no more: the session charges under its failsafe default
    (or nothing) and is sent its TxProfile again, as a session that never had one. And, by charger pk,
    the TxProfiles recorded above the site's stack level and the TxDefaultProfiles above the failsafe's,
    or at its level on a connector (EVSE) of its own (an operator's: ``_overriding``); one statement.
    Only those of the OCPP version the charger speaks (``profiles_of_their_version``): it holds none it
    accepted in the other. ``installed`` holds the
    chargers' failsafe TxDefaultProfiles too (``FAILSAFE_PROFILE_ID``, connector/EVSE 0)."""
    if not sessions:
        return {}, {}
    ids = {TX_PROFILE_ID_BASE + s.pk for s in sessions}
    rows = InstalledChargingProfile.objects.filter(
        profiles_of_their_version(), charge_point_id__in={s.charge_point_id for s in sessions}
    ).filter(
        Q(profile_id__in=sorted(ids))
        | Q(profile_id=FAILSAFE_PROFILE_ID, connector_id=0)
        | Q(purpose="TxProfile", stack_level__gte=TX_STACK_LEVEL)
        | Q(purpose="TxDefaultProfile", stack_level__gt=FAILSAFE_STACK_LEVEL)
        | Q(purpose="TxDefaultProfile", stack_level=FAILSAFE_STACK_LEVEL, connector_id__gt=0)
    )
    installed: dict[tuple[int, int], InstalledChargingProfile] = {}
    above: dict[int, list[InstalledChargingProfile]] = {}
    for row in rows:
        if row.profile_id in ids or (row.profile_id, row.connector_id) == (FAILSAFE_PROFILE_ID, 0):
            installed[(row.charge_point_id, row.profile_id)] = row
        if (row.purpose == "TxProfile" and row.stack_level >= TX_STACK_LEVEL and row.profile_id not in ids) or (
            row.purpose == "TxDefaultProfile" and (row.stack_level > FAILSAFE_STACK_LEVEL or row.connector_id > 0)
        ):
            above.setdefault(row.charge_point_id, []).append(row)
    return installed, above


def _overriding(
    session: Transaction,
    profiles: list[InstalledChargingProfile],
    voltage_v: Decimal,
    phases: int,
    now: datetime,
    purpose: str = "TxProfile",
) -> Decimal | None:
    """What the session may draw (A per phase) under the TxProfiles above the site's stack level on its
    connector (EVSE), an operator's: the highest stack level valid now (its schedule running,
    ``_schedule_running``) prevails over the site's
    (OCPP 1.6 §3.13.2, 2.0.1 K01), whatever limit the site sent; on 2.0.1 one at the site's stack level
    too (``_beside_the_site_s``: the station rejects the site's). Its largest period counts (W over
    the period's ``number_phases``, else the phases the car draws on, at the site's voltage); None
    without one. A TxProfile naming another transaction is not this session's, nor one without a
    transaction set before the session began (gone with the one before) unless a remote start's whose
    wait for the EV this session ended. ``purpose`` TxDefaultProfile: the operator's defaults above the
    failsafe's stack level on connector (EVSE) 0 or the session's, which prevail over the failsafe while
    the session holds no TxProfile; on 1.6 one at the failsafe's stack level on the session's connector
    too (``_in_the_failsafe_s_place``)."""
    target = session.evse_id if session.ocpp_version == "2.0.1" else session.connector_id
    connectors = {target, 0} if purpose == "TxDefaultProfile" else {target}
    prevailing: tuple[int, Decimal] | None = None
    for row in profiles:
        if (
            row.purpose != purpose
            or row.connector_id not in connectors
            or (row.valid_from and row.valid_from > now)
            or (row.valid_to and row.valid_to <= now)
            or not _schedule_running(row.profile, session, now)
            or (purpose == "TxProfile" and not _tx_profile_of(row, session))
            or (purpose == "TxProfile" and row.stack_level == TX_STACK_LEVEL and not _beside_the_site_s(row, session))
            or (
                purpose == "TxDefaultProfile"
                and row.stack_level == FAILSAFE_STACK_LEVEL
                and not _in_the_failsafe_s_place(row, session)
            )
        ):
            continue
        limit = _profile_max_a(row.profile, voltage_v, phases)
        if prevailing is None or row.stack_level > prevailing[0]:
            prevailing = (row.stack_level, limit)
    return prevailing[1] if prevailing else None


# How often a Recurring profile's schedule starts again (1.6 RecurrencyKindType, 2.0.1 RecurrencyKindEnumType).
_RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(weeks=1)}


def _schedule_running(profile: dict[str, Any], session: Transaction, now: datetime) -> bool:
    """Whether one of a profile's schedules limits the session ``now``: one with a ``duration`` runs
    from its start (``start_schedule``; without it, a Relative or Absolute one counts from the
    session's start, 1.6 §7.13) for that many seconds, a Recurring one again from each recurrence
    (Daily, Weekly); outside it the next lower stack level prevails (1.6 §3.13.2's stacking, 2.0.1
    K01's). Without a duration, or when it cannot be read, it runs (from its start on)."""
    schedules = profile.get("charging_schedule")
    schedules = schedules if isinstance(schedules, list) else [schedules]
    kind = profile.get("charging_profile_kind")
    recurrence = _RECURRENCE.get(str(profile.get("recurrency_kind"))) if kind == "Recurring" else None
    for schedule in schedules:
        if not isinstance(schedule, dict):
            return True
        start = parse_ocpp_time(schedule.get("start_schedule")) if kind != "Relative" else None
        start = start or session.started_at
        duration = schedule.get("duration")
        if not isinstance(duration, int) or isinstance(duration, bool) or start is None:
            if start is None or start <= now or recurrence is not None:
                return True
            continue
        if recurrence is not None:
            if (now - start) % recurrence < timedelta(seconds=duration):
                return True
        elif start <= now < start + timedelta(seconds=duration):
            return True
    return False


def _beside_the_site_s(row: InstalledChargingProfile, session: Transaction) -> bool:
    """Whether a TxProfile of another id at the site's stack level holds the session's EVSE against the
    site's: a 2.0.1 station rejects the site's TxProfile beside it (same purpose and stack level, their
    validities overlapping: K01.FR.06), where a 1.6 charger replaces it with the site's (§5.16.2)."""
    return (
        row.purpose == "TxProfile"
        and session.ocpp_version == "2.0.1"
        and not site_profile_own(purpose=row.purpose, profile_id=row.profile_id, stack_level=row.stack_level)
    )


def _in_the_failsafe_s_place(row: InstalledChargingProfile, session: Transaction) -> bool:
    """Whether a TxDefaultProfile at the failsafe's stack level (an operator's) replaces the site's
    failsafe for the session's connector: on 1.6, one on that connector does (§3.13.1: a TxDefaultProfile
    sent for a connector > 0 while one for connector 0 is installed "SHALL be replaced only for that
    specific connector"). A 2.0.1 station holds both, EVSE 0's and the EVSE's (K01.FR.06 is per EVSE),
    and no requirement says which prevails: the failsafe's is counted."""
    return session.ocpp_version != "2.0.1" and row.connector_id == session.connector_id and row.connector_id > 0


def _tx_profile_of(row: InstalledChargingProfile, session: Transaction) -> bool:
    """Whether a TxProfile on the session's connector (EVSE) limits this session (see ``_overriding``)."""
    transaction_id = row.profile.get("transaction_id")
    if transaction_id is not None:
        return str(transaction_id) in {str(session.pk), session.ocpp_transaction_id}
    return row.installed_at >= session.started_at or (
        row.awaited_until is not None and row.awaited_until >= session.started_at
    )


def _profile_max_a(profile: dict[str, Any], voltage_v: Decimal, phases: int) -> Decimal:
    """The largest limit of a profile's schedules, A per phase; infinite when it cannot be read (the
    session is then counted at its maximum)."""
    schedules = profile.get("charging_schedule")
    schedules = schedules if isinstance(schedules, list) else [schedules]
    largest = Decimal(0)
    try:
        for schedule in schedules:
            watts = schedule.get("charging_rate_unit") == "W"
            for period in schedule.get("charging_schedule_period") or []:
                limit = Decimal(str(period["limit"]))
                if watts:
                    limit /= voltage_v * (period.get("number_phases") or phases)
                largest = max(largest, limit)
    except (AttributeError, KeyError, TypeError, InvalidOperation, ArithmeticError):
        return Decimal("Infinity")
    return largest


def _connector_known(session: Transaction) -> bool:
    """Whether a session's TxProfile has somewhere to go: its connector (1.6) or EVSE (2.0.1), > 0.
    A 2.0.1 session authorized before the cable has none yet (E02), and a TxProfile on 0 is refused
    (1.6 §5.16.2, 2.0.1 K01.FR.16): until it is known the session counts as fixed load."""
    target = session.evse_id if session.ocpp_version == "2.0.1" else session.connector_id
    return bool(target and target > 0)


def fixed_load(*, view: SessionView, failsafe_a: Decimal, now: datetime) -> Decimal:
    """What a session the engine cannot steer counts for (A per phase).

    A charger that refuses profiles: its maximum. A session under an operator's TxProfile above the
    site's stack level (``SessionView.override_a``): what that profile lets it draw, at most its
    maximum. An offline one (and a session whose connector is
    not known yet, ``_connector_known``, under the charger's failsafe) keeps the limit it held until
    ``CSMS_SITES_OFFLINE_RESERVE_SECONDS`` after it went offline (its share is not handed on), and at
    least until its TxProfile ends (``validTo``: ``CSMS_SITES_PROFILE_VALIDITY`` after it was sent; the
    charger charges under it until then, however short the reserve), then counts at its failsafe default
    (the one it holds, ``SessionView.failsafe_a``: the site's may have moved since).
    """
    if view.member.smart_charging_flag:
        return view.demand.max_a
    if view.override_a is not None:
        return min(view.override_a, view.demand.max_a)
    if view.default_a is not None:  # an operator's TxDefaultProfile prevails over the failsafe
        failsafe_a = view.default_a
    elif view.failsafe_a is not None:  # the failsafe the charger holds, not the site's now
        failsafe_a = view.failsafe_a
    offline_since = view.member.charge_point.offline_since or view.member.charge_point.last_seen or now
    kept_until = offline_since + timedelta(seconds=settings.CSMS_SITES_OFFLINE_RESERVE_SECONDS)
    if view.limit is not None:
        kept_until = max(kept_until, view.limit.sent_at + timedelta(seconds=settings.CSMS_SITES_PROFILE_VALIDITY))
    if now < kept_until:
        return max(view.held_a, failsafe_a)
    return min(failsafe_a, view.demand.max_a)


def session_draw(*, transaction: Transaction, since: datetime | None = None) -> Decimal | None:
    """The latest measured Current.Import of the session (A, the largest phase), None without one.

    ``since``: when the limit the session holds was last raised; a reading received before it
    shows the car under the old, lower limit, not that it takes less than it is offered now, so
    it does not count (a lowered limit keeps the readings: a car taking 4 A of 8 takes 4 of 6)."""
    # A 1.6 SignedData value is a signed blob, however much it may look like a number.
    readings = MeterSample.objects.filter(transaction=transaction, measurand=CURRENT_MEASURAND).exclude(
        format=SIGNED_DATA
    )
    if since is not None:
        readings = readings.filter(received_at__gte=since)
    samples = list(readings.order_by("-timestamp", "-pk").values("timestamp", "raw_value", "multiplier")[:6])
    if not samples:
        return None
    latest = [s for s in samples if s["timestamp"] == samples[0]["timestamp"]]
    values = []
    for sample in latest:
        try:
            value = Decimal(sample["raw_value"]).scaleb(sample["multiplier"] or 0)
        except InvalidOperation:
            continue
        if value.is_finite():
            values.append(min(max(value, Decimal(0)), MAX_PLAUSIBLE_DRAW_A).quantize(Decimal("0.1")))
    return max(values) if values else None


def site_limits(*, site: Site, extra_load_a: tuple[Decimal, ...]) -> SiteLimits:
    """The allocator's view of the site. A power capacity with a voltage that is not positive
    cannot be turned into currents: the site then gives what ``site_capacity_a`` says (nothing)."""
    base = site_base_load(site=site)
    unusable_power = site.capacity_w is not None and site.voltage_v <= 0
    return SiteLimits(
        phases=site.phases,
        voltage_v=site.voltage_v,
        capacity_a=site_capacity_a(site=site) if unusable_power else site.capacity_a,
        capacity_w=None if unusable_power else site.capacity_w,
        base_load_a=tuple(b + e for b, e in zip(base, extra_load_a, strict=True)),
    )


def _connector_maximum(member: SiteMember, session: Transaction) -> Decimal:
    connector = session.evse_id if session.evse_id is not None else session.connector_id
    for maximum in member.connector_maximums.all():
        if maximum.connector_id == connector:
            return min(maximum.max_current_a, member.max_current_a)
    return member.max_current_a
