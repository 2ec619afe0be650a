"""The engine: recompute a site's allocation and bring its chargers' profiles in line with it.

``site_apply`` runs under the site's row lock (one recompute per site at a time, whichever process):

1. Read the site and its active sessions (``selectors.site_sessions``). Sessions the engine cannot
   steer (an offline charger, one not commissioned, one that refuses profiles, one under an
   operator's TxProfile above the site's stack level) count as fixed load (``fixed_load``); a session
   without its TxProfile holds the failsafe, or an operator's TxDefaultProfile above it.
2. Allocate (``allocator.allocate``).
3. Decreases first: every session whose limit goes down gets its TxProfile (the failsafe defaults
   going down follow them), and the engine waits for every answer, so the sum of the limits the
   chargers hold never exceeds the capacity. A refusal flags the charger (counted at its maximum
   from then on) and the site is recomputed before anything rises; a session's TxProfile rejected
   for the first time (its transaction may have just ended on the charger) counts the session at its
   maximum for the rest of the run, and only a second rejection flags.
4. Then increases larger than ``CSMS_SITES_HYSTERESIS_A``, at most one profile per charger every
   ``CSMS_SITES_PROFILE_MIN_INTERVAL`` seconds (decreases are never held back); a held-back
   increase is retried when the interval has passed. A TxProfile past half its validity is sent
   again with the limit it holds.
5. Each member charger holds the failsafe TxDefaultProfile (TxDefaultProfile in 1.6 and 2.0.1,
   connector/EVSE 0, stack level 0): lowered with the decreases, raised with the increases. A member
   not commissioned (pending: its Boot answered Pending) is sent no profile: registration allows the
   CSMS only reads, configuration and triggers (1.6 §4.2, 2.0.1 B02.FR.01); it gets its failsafe at
   the first recompute after its commissioning.
6. A snapshot is recorded and ``site.allocation_changed`` emitted when any limit changed.

Each step's profiles (the sessions' decreases, the failsafe decreases, the increases, the renewals)
go out at once and are awaited together, a charger's own in order (``_send_together``): chargers
silent on profiles hold a recompute about one call timeout a step, not one each. Every profile goes
through ``commands.services.command_send``: recorded and visible in the admin.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from charging.models import InstalledChargingProfile
from charging.selectors import profiles_of_their_version
from commands.models import Command, CommandState
from commands.services import CommandRefused, CommandRequest, command_send, command_send_on_commit
from kernel.together import each_at_once
from sites import events, selectors
from sites.allocator import allocate
from sites.models import AllocationSnapshot, SessionLimit, Site, SiteMember
from webhooks.models import EventType
from webhooks.services import webhook_event_emit

logger = logging.getLogger(__name__)

FAILSAFE_PROFILE_ID = selectors.FAILSAFE_PROFILE_ID
TX_PROFILE_ID_BASE = selectors.TX_PROFILE_ID_BASE
TX_STACK_LEVEL = selectors.TX_STACK_LEVEL
FAILSAFE_STACK_LEVEL = selectors.FAILSAFE_STACK_LEVEL
MAX_PASSES = 3
# Seconds after which a run that used its ``MAX_PASSES``, each needing another, is tried again.
PASSES_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Change:
    """One profile to send: a session's TxProfile (``view`` set) or a member's failsafe default."""

    member: SiteMember
    limit_a: Decimal
    previous_a: Decimal
    view: selectors.SessionView | None = None


def site_apply(*, site_id: int) -> float | None:
    """Recompute the site and send what changed (see the module's steps).

    Returns the seconds after which a held-back increase is due, or after which the site is to be
    recomputed again when each of its ``MAX_PASSES`` passes needed another (``PASSES_RETRY_SECONDS``:
    the last pass's failsafe decreases and rises not sent, its snapshot not recorded), or None. A
    missing site is a no-op.
    """
    unanswered = _Unanswered()  # what chargers left unanswered (a timeout) in this run
    for _ in range(MAX_PASSES):
        with transaction.atomic():
            site = Site.objects.select_for_update().filter(pk=site_id).first()
            if site is None:
                return None
            outcome = _apply_once(site, unanswered)
        if outcome != "recompute":
            return outcome
    logger.warning("site %s: %s passes each needed another; tried again shortly", site_id, MAX_PASSES)
    return PASSES_RETRY_SECONDS


@dataclass
class _Unanswered:
    """The chargers that left a profile unanswered (a timeout) in one ``site_apply``, and for each of
    their sessions the larger of the limit it held and the one it was sent: it may have taken the
    new one and its answer been lost."""

    chargers: set[int] = dataclasses.field(default_factory=set)
    limits_a: dict[int, Decimal] = dataclasses.field(default_factory=dict)  # transaction pk -> A
    # Sessions whose TxProfile was rejected for the first time (``_rejected_before``): counted at their
    # maximum for the rest of the run, not steered, their charger not flagged.
    refused: set[int] = dataclasses.field(default_factory=set)

    def note(self, change: Change) -> None:
        self.chargers.add(change.member.charge_point_id)
        if change.view is not None:
            self.limits_a[change.view.transaction.pk] = max(change.previous_a, change.limit_a)


def _apply_once(site: Site, unanswered: _Unanswered) -> float | Literal["recompute"] | None:
    """One pass. A charger in ``unanswered`` (connected, but silent on a profile this run) is not
    steered again: its sessions count as fixed load at the larger of what they held and were sent
    (and at least its failsafe), however long ago it was last seen, so the next pass lowers the others
    instead of asking it again (a silent charger held the whole site's decreases back)."""
    now = timezone.now()
    views = [
        dataclasses.replace(view, adjustable=False)
        if view.member.charge_point_id in unanswered.chargers or view.transaction.pk in unanswered.refused
        else view
        for view in selectors.site_sessions(site=site, now=now)
    ]
    members = list(site.members.select_related("charge_point"))
    failsafe = selectors.site_failsafe_limit(site=site, outlets=selectors.site_outlets(members=members))
    steered = [v for v in views if v.adjustable]
    extra = [Decimal(0)] * site.phases
    # A charger's maximum bounds its sessions together, less what its unsteered sessions hold.
    charger_caps = {v.demand.charger: v.member.max_current_a for v in steered}
    for view in views:
        if view.adjustable:
            continue
        if view.transaction.pk in unanswered.refused:
            load = view.demand.max_a
        elif view.member.charge_point_id in unanswered.chargers:
            load = max(view.held_a, unanswered.limits_a.get(view.transaction.pk, view.held_a), failsafe)
        else:
            load = selectors.fixed_load(view=view, failsafe_a=failsafe, now=now)
        for phase in view.demand.phases:
            extra[phase] += load
        if view.demand.charger in charger_caps:
            charger_caps[view.demand.charger] = max(Decimal(0), charger_caps[view.demand.charger] - load)
    limits = allocate(
        site=selectors.site_limits(site=site, extra_load_a=tuple(extra)),
        sessions=[v.demand for v in steered],
        margin_a=Decimal(settings.CSMS_SITES_DRAW_MARGIN_A),
        charger_caps_a=charger_caps,
    )
    changes = [Change(v.member, limits[v.demand.session_id], _held_after_failsafe(v, failsafe), v) for v in steered]
    changes += _failsafe_changes(site, [m for m in members if m.charge_point_id not in unanswered.chargers], failsafe)
    # What sessions draw now first, then the failsafe defaults (one a charger never took is a
    # decrease from no limit at all: before, a charger silent on profiles was asked first at every
    # recompute, and every session's decrease waited for its timeout); each step sent at once.
    decreases = sorted((c for c in changes if c.limit_a < c.previous_a), key=lambda c: c.limit_a - c.previous_a)
    for batch in ([c for c in decreases if c.view is not None], [c for c in decreases if c.view is None]):
        if not _send_together(site, batch, now, unanswered):
            return "recompute"
    retry_after, rises, kept = None, [], []
    rising: set[int] = set()  # the chargers sent a TxProfile rise below: one a charger per interval
    for change in (c for c in changes if c.limit_a >= c.previous_a):
        wait = _increase_wait(change, now, rising) if change.limit_a > change.previous_a else None
        if wait is not None:
            retry_after = wait if retry_after is None else min(retry_after, wait)
        rise = change.limit_a - change.previous_a
        if wait is None and (rise > Decimal(settings.CSMS_SITES_HYSTERESIS_A) or (rise and not change.previous_a)):
            rises.append(change)
            if change.view is not None:
                rising.add(change.member.charge_point_id)
        elif change.view is not None and _expiring(change.view, now):
            kept.append(dataclasses.replace(change, limit_a=change.previous_a))
    for batch in (rises, kept):  # kept: the same limit again, before its validity ends
        if not _send_together(site, batch, now, unanswered):
            return "recompute"
    _snapshot(site, views, now, failsafe, unanswered.chargers)
    return retry_after


def _held_after_failsafe(view: selectors.SessionView, failsafe: Decimal) -> Decimal:
    """What a steered session charges under once this pass's failsafe defaults are out: a session
    under its failsafe default (no TxProfile of the site's, no operator's default above it) takes the
    site's failsafe, which its charger (connected, steered) is sent in this pass before any rise if it
    holds another (``view.held_a``: the one it holds, what a session not steered counts at)."""
    if view.limit is None and view.default_a is None:
        return failsafe
    return view.held_a


def _expiring(view: selectors.SessionView, now: datetime) -> bool:
    """The session's TxProfile is past half its ``CSMS_SITES_PROFILE_VALIDITY`` seconds."""
    validity = settings.CSMS_SITES_PROFILE_VALIDITY
    return view.limit is not None and (now - view.limit.sent_at).total_seconds() >= validity / 2


def _failsafe_changes(site: Site, members: list[SiteMember], failsafe: Decimal) -> list[Change]:
    """The members whose failsafe default is not the site's ``failsafe`` (A; one it holds in W read
    back in A, ``selectors.profile_limit_a``; one it cannot be read of as 0 A)."""
    by_pk = {m.charge_point_id: m for m in members}
    installed = {
        p.charge_point_id: selectors.profile_limit_a(
            profile=p.profile, watts_per_amp=selectors.member_watts_per_amp(site=site, member=by_pk[p.charge_point_id])
        )
        or Decimal(0)
        for p in InstalledChargingProfile.objects.filter(
            profiles_of_their_version(),
            charge_point__in=list(by_pk),
            profile_id=FAILSAFE_PROFILE_ID,
            connector_id=0,
        )
    }
    return [
        Change(member, failsafe, installed.get(member.charge_point_id, Decimal("Infinity")))
        for member in members
        if selectors.member_sent_failsafes(member=member) and installed.get(member.charge_point_id) != failsafe
    ]


def _increase_wait(change: Change, now: datetime, rising: set[int]) -> float | None:
    """Seconds until the charger may take another TxProfile, None when it may now (the failsafe
    default does not count: a session's first TxProfile follows it at once). ``rising``: the chargers
    about to be sent a TxProfile rise in this pass."""
    interval = settings.CSMS_SITES_PROFILE_MIN_INTERVAL
    if interval and change.view is not None and change.member.charge_point_id in rising:
        return float(interval)
    tx_profiles = Q(request__cs_charging_profiles__charging_profile_purpose="TxProfile") | Q(
        request__charging_profile__charging_profile_purpose="TxProfile"
    )
    last = (
        Command.objects.filter(
            tx_profiles, charge_point_id=change.member.charge_point_id, command="set_charging_profile"
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if not interval or last is None:
        return None
    elapsed = (now - last).total_seconds()
    return interval - elapsed if elapsed < interval else None


def _send_together(site: Site, changes: list[Change], now: datetime, unanswered: _Unanswered) -> bool:
    """Send ``changes`` at once, each charger's on a thread of its own (``kernel.together``), and
    record every answer; False when a charger did not take one (see ``_record``): the site must then
    be recomputed. The slowest answer is awaited, not each in turn (chargers silent on profiles held
    the recompute, and the worker running it, one call timeout each). A charger's own profiles go in
    order, none after one it did not take."""
    by_charger: dict[int, list[Change]] = {}
    for change in changes:
        by_charger.setdefault(change.member.charge_point_id, []).append(change)
    per_charger = each_at_once(
        lambda own: _deliver_in_turn(site, own, now), list(by_charger.values()), name="site-profiles"
    )
    taken = [_record(site, change, answer, now, unanswered) for answers in per_charger for change, answer in answers]
    return all(taken)


_Answer = Command | CommandRefused


def _deliver_in_turn(site: Site, changes: list[Change], now: datetime) -> list[tuple[Change, _Answer | None]]:
    """One charger's profiles, one after the other until one is not accepted; each with its answer
    (None: its send raised, logged)."""
    answers: list[tuple[Change, _Answer | None]] = []
    for change in changes:
        try:
            answer: _Answer | None = _deliver(site, change, now)
        except Exception:  # a pool timeout, a bug: this charger unanswered, the others' answers recorded
            logger.exception("%s: profile send failed", change.member.charge_point.charge_point_id)
            answer = None
        answers.append((change, answer))
        if not isinstance(answer, Command) or answer.state != CommandState.ACCEPTED:
            break
    return answers


def _deliver(site: Site, change: Change, now: datetime) -> _Answer:
    """Send one profile and wait for its answer (``command_send`` records both); writes nothing else,
    so it may run off the site's transaction. A charger that takes W alone is sent its limit in W."""
    charge_point = change.member.charge_point
    watts_per_amp = (
        selectors.member_watts_per_amp(site=site, member=change.member)
        if selectors.member_takes_watts_only(member=change.member)
        else None
    )
    body = _profile_body(charge_point.ocpp_version, change, now, watts_per_amp)
    try:
        return command_send(
            request=CommandRequest(
                charge_point_id=charge_point.charge_point_id,
                ocpp_version=charge_point.ocpp_version,
                command="set_charging_profile",
                body=body,
            )
        )
    except CommandRefused as refused:
        return refused


def _record(site: Site, change: Change, command: _Answer | None, now: datetime, unanswered: _Unanswered) -> bool:
    """Record one profile's answer, in the site's transaction; False when the charger did not take it
    (it is then flagged, or, offline or its send failed, counted as fixed load) and the site must be
    recomputed."""
    charge_point = change.member.charge_point
    if command is None:
        unanswered.note(change)
        return False
    if isinstance(command, CommandRefused):
        logger.warning("%s: profile not sent: %s", charge_point.charge_point_id, command)
        return _flag(change.member, f"profile not sendable: {command}", now)
    if command.state == CommandState.ACCEPTED:
        if change.view is not None:
            held = change.view.limit
            raised = change.limit_a > change.previous_a
            SessionLimit.objects.update_or_create(
                transaction=change.view.transaction,
                defaults={
                    "site": site,
                    "limit_a": change.limit_a,
                    "draw_a": change.view.demand.draw_a,
                    "sent_at": now,
                    "raised_at": now if raised else (held.raised_at if held else None),
                },
            )
        return True
    if command.state == CommandState.REJECTED and change.view is not None and not _rejected_before(change, command):
        # A charger refuses a TxProfile with no transaction on its connector (1.6 §3.13.1): one of a
        # transaction it has just ended, its stop still on its way. Counted at its maximum; the charger
        # is flagged only when the session's TxProfile is rejected again.
        logger.warning("%s: TxProfile rejected (command %s)", change.member.charge_point.charge_point_id, command.id)
        unanswered.refused.add(change.view.transaction.pk)
        return False
    if command.state == CommandState.REJECTED and _found_to_take_watts_only_since(change.member):
        # Sent in A while its units were not known; read as W alone since (its configuration's
        # answer came while the profile waited behind it): not a refusal, the next pass sends W.
        logger.info("%s: profile in A rejected; it takes W alone", charge_point.charge_point_id)
        unanswered.note(change)
        return False
    if command.state in (CommandState.REJECTED, CommandState.CALL_ERROR, CommandState.INVALID_RESPONSE):
        return _flag(change.member, f"SetChargingProfile {command.state} (command {command.id})", now)
    unanswered.note(change)  # timeout or gone: fixed load from the next pass on
    return False


def _found_to_take_watts_only_since(member: SiteMember) -> bool:
    """Whether the member's charger, sent A (its units as the pass read them), is known to take W
    alone now (``selectors.member_takes_watts_only``, read again: one statement, on a rejection)."""
    if selectors.member_takes_watts_only(member=member):
        return False
    return ChargePoint.objects.filter(pk=member.charge_point_id, charging_rate_units="W").exists()


def _rejected_before(change: Change, command: Command) -> bool:
    """Whether the charger rejected a TxProfile of the change's session before ``command``."""
    assert change.view is not None
    session = change.view.transaction
    for_session = (
        Q(request__charging_profile__transaction_id=session.ocpp_transaction_id)
        if session.ocpp_version == "2.0.1"
        else Q(request__cs_charging_profiles__transaction_id=session.pk)
    )
    return (
        Command.objects.filter(
            for_session,
            charge_point_id=change.member.charge_point_id,
            command="set_charging_profile",
            state=CommandState.REJECTED,
        )
        .exclude(pk=command.pk)
        .exists()
    )


def _flag(member: SiteMember, reason: str, now: datetime) -> bool:
    member.smart_charging_flag = reason[:200]
    member.flagged_at = now
    member.save(update_fields=["smart_charging_flag", "flagged_at"])
    return False


def _profile_body(
    ocpp_version: str, change: Change, now: datetime, watts_per_amp: Decimal | None = None
) -> dict[str, Any]:
    """A SetChargingProfile request body (snake_case, as the command API takes it), limit in A; with
    ``watts_per_amp`` (a charger that takes W alone: ``selectors.member_watts_per_amp``) in W, floored
    to 0.1 W (OCPP's one decimal; ``selectors.profile_limit_a`` reads it back as the A it is).

    A TxProfile is valid for ``CSMS_SITES_PROFILE_VALIDITY`` seconds (renewed at half of it): a
    charger that loses the CSMS falls back to its failsafe TxDefaultProfile when it ends.
    """
    unit, limit = "A", float(change.limit_a)
    if watts_per_amp is not None:
        unit, limit = "W", float((change.limit_a * watts_per_amp).quantize(Decimal("0.1"), rounding="ROUND_FLOOR"))
    view = change.view
    purpose = "TxProfile" if view else "TxDefaultProfile"
    profile_id = TX_PROFILE_ID_BASE + view.transaction.pk if view else FAILSAFE_PROFILE_ID
    stack_level = TX_STACK_LEVEL if view else FAILSAFE_STACK_LEVEL
    valid_to = (now + timedelta(seconds=settings.CSMS_SITES_PROFILE_VALIDITY)).strftime("%Y-%m-%dT%H:%M:%SZ")
    period = {"start_period": 0, "limit": limit}
    schedule = {"charging_rate_unit": unit, "charging_schedule_period": [period]}
    if ocpp_version == "1.6":
        profile: dict[str, Any] = {
            "charging_profile_id": profile_id,
            "stack_level": stack_level,
            "charging_profile_purpose": purpose,
            "charging_profile_kind": "Relative",
            "charging_schedule": schedule,
        }
        if view:
            profile |= {"transaction_id": view.transaction.pk, "valid_to": valid_to}
        connector = view.transaction.connector_id or 0 if view else 0
        return {"connector_id": connector, "cs_charging_profiles": profile}
    profile = {
        "id": profile_id,
        "stack_level": stack_level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative",
        "charging_schedule": [{"id": 1, **schedule}],
    }
    if view:
        profile |= {"transaction_id": view.transaction.ocpp_transaction_id, "valid_to": valid_to}
    evse = view.transaction.evse_id or 0 if view else 0
    return {"evse_id": evse, "charging_profile": profile}


def _snapshot(
    site: Site, views: list[selectors.SessionView], now: datetime, failsafe: Decimal, silent: set[int]
) -> None:
    """Record the allocation when it changed, and tell the webhook subscribers (with the capacity per
    phase the site is shared to, ``selectors.site_capacity_a``: a ``capacity_w`` alone, or the lower
    limit it sets, was missing from the history, the chart and the webhook): every session's
    limit, its TxProfile's (held, or sent in this pass), else the default it charges under
    (``_default_held``; ``silent``: the chargers that left a profile unanswered in this run); under an
    operator's TxProfile above the site's, what that one lets it draw."""
    sent = {sl.transaction_id: sl for sl in SessionLimit.objects.filter(transaction__in=[v.transaction for v in views])}
    held = {}
    for view in views:
        limit = sent.get(view.transaction.pk, view.limit)  # view.limit: one another site sent (unsaved)
        taken = limit is not None and (view.limit is not None or limit.sent_at == now)
        value = limit.limit_a if limit is not None and taken else _default_held(view, failsafe, silent)
        if view.override_a is not None:  # an operator's TxProfile above the site's prevails
            value = view.held_a
        held[str(view.transaction.pk)] = str(value.quantize(Decimal("0.1"), rounding="ROUND_FLOOR"))
    last = AllocationSnapshot.objects.filter(site=site).first()
    if last is not None and last.limits == held:
        return
    draws = {v.transaction.pk: v.demand.draw_a for v in views if v.demand.draw_a is not None}
    base = selectors.site_base_load(site=site)
    snapshot = AllocationSnapshot.objects.create(
        site=site,
        at=now,
        capacity_a=selectors.site_capacity_a(site=site).quantize(Decimal("0.1"), rounding="ROUND_FLOOR"),
        base_load_a=max(base),
        limits_sum_a=_most_loaded_phase(site, views, {int(pk): Decimal(limit) for pk, limit in held.items()}),
        measured_a=_most_loaded_phase(site, views, draws) if draws else None,
        limits=held,
    )
    webhook_event_emit(
        event_type=EventType.SITE_ALLOCATION_CHANGED,
        data=events.site_allocation_changed(site, snapshot),
    )


def _most_loaded_phase(site: Site, views: list[selectors.SessionView], amps: dict[int, Decimal]) -> Decimal:
    """The largest, over the site's phases, of the sum of ``amps`` (by transaction pk) of the sessions
    drawing on that phase: A per phase, as the capacity and the base load (three single-phase
    sessions of 32 A on L1, L2 and L3 are 32 A, not 96 A, on a 32 A site)."""
    per_phase = [Decimal(0)] * site.phases
    for view in views:
        for phase in view.demand.phases:
            per_phase[phase] += amps.get(view.transaction.pk, Decimal(0))
    return max(per_phase)


def _default_held(view: selectors.SessionView, failsafe: Decimal, silent: set[int]) -> Decimal:
    """What a session holding no TxProfile of the site's charges under after a pass: an operator's
    TxDefaultProfile above the failsafe's stack level (``view.default_a``), else the site's
    ``failsafe`` when its charger holds it now (sent it in the pass, ``selectors.member_sent_failsafes``, unless
    ``silent``), else the failsafe its charger last accepted (offline, pending, flagged or silent:
    the site's may have moved since)."""
    if view.default_a is not None:
        return view.default_a
    charger = view.member.charge_point_id
    if view.failsafe_a is None or (charger not in silent and selectors.member_sent_failsafes(member=view.member)):
        return failsafe
    return view.failsafe_a


def failsafe_clear_on_commit(*, charge_point: ChargePoint) -> None:
    """Once the caller's transaction commits, ask a charger that left its site (a member removed, its
    site deleted) to forget the site's failsafe TxDefaultProfile (``FAILSAFE_PROFILE_ID``), in the
    background: off the site, its sessions would stay under the site's share for good (0 A when that
    share was under the minimum). Its sessions' TxProfiles lapse at their validity. A charger away is
    not asked (the command would only be recorded as not connected), nor one not commissioned
    (pending: sent no failsafe, and registration allows the CSMS only reads, configuration and
    triggers, 1.6 §4.2, 2.0.1 B02); its profile, if any, stays listed."""
    if (
        not charge_point.connection_channel
        or not charge_point.ocpp_version
        or charge_point.lifecycle_state != LifecycleState.COMMISSIONED
    ):
        return
    body: dict[str, Any] = (
        {"id": FAILSAFE_PROFILE_ID}
        if charge_point.ocpp_version == "1.6"
        else {"charging_profile_id": FAILSAFE_PROFILE_ID}
    )
    request = CommandRequest(
        charge_point_id=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command="clear_charging_profile",
        body=body,
    )
    command_send_on_commit(request=request, purpose="clear the site's failsafe profile")
