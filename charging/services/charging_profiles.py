"""Smart charging guard: the profiles the CSMS believes are installed, and conflicts among them.

OCPP 1.6 (§5.16.2): on one connector, a profile with the same purpose and stack level as an
installed one replaces it, whatever their validity periods. That is rarely what the integrator meant,
so the API says so in ``warnings`` before the charger silently drops the older profile. OCPP 2.0.1
(K01.FR.06) keeps both: the station rejects a profile whose validity overlaps one of the same purpose
and stack level on its EVSE, and holds side by side those whose validities do not overlap; the
warning then says it will be rejected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from chargepoints.models import ChargePoint, Connector
from charging.models import InstalledChargingProfile, Transaction, TransactionStatus
from charging.selectors import profiles_of_their_version
from charging.signals import charger_draw_changed, charging_profile_named
from kernel.timestamps import parse_ocpp_time


@dataclass(frozen=True)
class ProfileTarget:
    """A SetChargingProfile request, version-neutral (read by each version's request check and
    answer handler): ``connector_id`` is 1.6's connector or 2.0.1's EVSE (0: the whole charger),
    ``profile`` the OCPP charging profile as sent (snake_case). ``ocpp_version``: the version it is
    sent in, which decides what becomes of a profile of the same purpose and stack level
    (``charging_profile_installed``)."""

    connector_id: int
    profile_id: int
    purpose: str
    stack_level: int
    valid_from: datetime | None
    valid_to: datetime | None
    profile: dict[str, Any]
    ocpp_version: str = "1.6"


def _overlaps(a_from: datetime | None, a_to: datetime | None, b_from: datetime | None, b_to: datetime | None) -> bool:
    return (a_to is None or b_from is None or b_from < a_to) and (b_to is None or a_from is None or a_from < b_to)


def charging_profile_conflicts(*, charge_point: ChargePoint, target: ProfileTarget) -> list[str]:
    """Warnings about ``target`` before it is sent: each installed profile of its purpose and stack
    level on its connector (EVSE), another id (a TxProfile gone with its transaction aside). A 1.6
    charger replaces it whatever their validity periods (§5.16.2 names none: May's profile is gone
    once June's is accepted); a 2.0.1 station rejects ``target`` when their validities overlap
    (K01.FR.06) and holds them side by side when they do not."""
    installed = InstalledChargingProfile.objects.filter(
        profiles_of_their_version(),
        charge_point=charge_point,
        connector_id=target.connector_id,
        purpose=target.purpose,
        stack_level=target.stack_level,
    ).exclude(profile_id=target.profile_id)
    if target.ocpp_version == "2.0.1":
        return [
            f"Profile {other.profile_id}{_named(other)} on connector {other.connector_id} has the same purpose "
            f"({other.purpose}) and stack level ({other.stack_level}) with an overlapping validity; "
            f"the station rejects profile {target.profile_id} (OCPP 2.0.1 K01.FR.06)."
            for other in installed
            if _overlaps(other.valid_from, other.valid_to, target.valid_from, target.valid_to)
            and not _ended_with_its_transaction(charge_point, other)
        ]
    return _whole_charger_s_default_replaced(charge_point, target) + [
        f"Profile {other.profile_id}{_named(other)} on connector {other.connector_id} has the same purpose "
        f"({other.purpose}) and stack level ({other.stack_level}); the charger replaces it with profile "
        f"{target.profile_id}"
        + (
            "."
            if _overlaps(other.valid_from, other.valid_to, target.valid_from, target.valid_to)
            else ", though their validity periods do not overlap (OCPP 1.6 §5.16.2): give it another stack"
            " level to keep both."
        )
        for other in installed
        if not _ended_with_its_transaction(charge_point, other)
    ]


def _whole_charger_s_default_replaced(charge_point: ChargePoint, target: ProfileTarget) -> list[str]:
    """1.6 §3.13.1 TxDefaultProfile: one sent for a connector > 0 while one for connector 0 is installed
    replaces it "only for that specific connector": a warning for each installed on connector 0 at
    ``target``'s stack level (one above or below it stacks with it), another id. A 2.0.1 station holds
    both (K01.FR.06 is per EVSE)."""
    if target.purpose != "TxDefaultProfile" or target.connector_id == 0:
        return []
    installed = InstalledChargingProfile.objects.filter(
        profiles_of_their_version(),
        charge_point=charge_point,
        connector_id=0,
        purpose=target.purpose,
        stack_level=target.stack_level,
    ).exclude(profile_id=target.profile_id)
    return [
        f"Profile {other.profile_id}{_named(other)} on connector 0 has the same purpose ({other.purpose}) and "
        f"stack level ({other.stack_level}); the charger replaces it for connector {target.connector_id} with "
        f"profile {target.profile_id} (OCPP 1.6 §3.13.1): the other connectors keep it."
        for other in installed
    ]


def _named(profile: InstalledChargingProfile) -> str:
    """What an app above calls ``profile`` (``charging_profile_named``: a site's failsafe default), as
    " (the failsafe default of site 'Depot')", or nothing."""
    names = [name for _, name in charging_profile_named.send(sender=InstalledChargingProfile, profile=profile) if name]
    return f" ({', '.join(names)})" if names else ""


# How long a charger that reported no connection timeout (1.6 ConnectionTimeOut, 2.0.1
# TxCtrlr.EVConnectionTimeOut) is taken to wait for the EV after a remote start: longer than chargers
# are usually set to, so that a profile still waited on is not forgotten.
EV_CONNECTION_WAIT_UNREPORTED = timedelta(minutes=5)

# Past a reported connection timeout, how long a remote start's profile is still held: the charger's
# clock started when it accepted, before the CSMS took the answer, and its StartTransaction (or
# TransactionEvent Started) of the last moment is still on its way.
EV_CONNECTION_WAIT_MARGIN = timedelta(seconds=30)


def remote_start_awaited_until(*, accepted_at: datetime, timeout_s: int | None) -> datetime:
    """Until when a charger that accepted a remote start at ``accepted_at`` waits for the EV: its
    connection timeout ``timeout_s`` (s, as it reported it) and ``EV_CONNECTION_WAIT_MARGIN`` later,
    or ``EV_CONNECTION_WAIT_UNREPORTED``."""
    if timeout_s is None:
        return accepted_at + EV_CONNECTION_WAIT_UNREPORTED
    return accepted_at + timedelta(seconds=timeout_s) + EV_CONNECTION_WAIT_MARGIN


def _ended_with_its_transaction(charge_point: ChargePoint, profile: InstalledChargingProfile) -> bool:
    """A TxProfile limits one transaction and is deleted when it stops (OCPP 1.6 §3.13.1 TxProfile,
    2.0.1 K01 TxProfile): one installed before a transaction on its connector (EVSE) ended is gone,
    whatever the record says. (A remote start's is installed before its transaction begins.)
    So is one whose transaction never came: a remote start's (1.6 §5.11, 2.0.1 F01.FR.08) once the
    charger's wait for the EV is over (``awaited_until``) with no transaction open on its connector,
    whatever the connector reported meanwhile (a charger that stays ``Available`` until the cable is
    in reports it again while it waits, and nothing when it gives up). One recorded without that wait
    (before the CSMS kept it) is gone once its connector was reported ``Available``."""
    if profile.purpose != "TxProfile":
        return False
    where = "evse_id" if charge_point.ocpp_version == "2.0.1" else "connector_id"
    on_it = {where: profile.connector_id}
    transactions = Transaction.objects.filter(charge_point=charge_point, **on_it)
    if transactions.filter(status=TransactionStatus.ENDED, stopped_at__gte=profile.installed_at).exists():
        return True
    if transactions.filter(status=TransactionStatus.ACTIVE).exists():
        return False
    if profile.awaited_until is not None:
        return timezone.now() >= profile.awaited_until
    return Connector.objects.filter(
        charge_point=charge_point, status="Available", updated_at__gte=profile.installed_at, **on_it
    ).exists()


def charging_profiles_held(*, charge_point: ChargePoint) -> list[InstalledChargingProfile]:
    """The profiles the charger holds as far as the CSMS knows: those recorded installed in the OCPP
    version it speaks (``profiles_of_their_version``), less the TxProfiles gone with their transaction
    or that never had one (``_ended_with_its_transaction``)."""
    return [
        profile
        for profile in InstalledChargingProfile.objects.filter(profiles_of_their_version(), charge_point=charge_point)
        if not _ended_with_its_transaction(charge_point, profile)
    ]


def charging_profiles_gone_forget(*, charge_point: ChargePoint) -> int:
    """Forget the recorded TxProfiles the charger no longer holds (``charging_profiles_held``) and the
    profiles it accepted in the OCPP version it no longer speaks (``profiles_of_their_version``); how
    many. Run when a profile command of the charger is answered, off the charger's messages' path."""
    held = {profile.pk for profile in charging_profiles_held(charge_point=charge_point)}
    return (
        InstalledChargingProfile.objects.filter(charge_point=charge_point)
        .filter((Q(purpose="TxProfile") & ~Q(pk__in=held)) | ~profiles_of_their_version())
        .delete()[0]
    )


def charging_profile_set_follow(
    *, charge_point: ChargePoint, accepted: bool, target: ProfileTarget, awaited_until: datetime | None = None
) -> None:
    """SetChargingProfile (or a remote start's profile: ``awaited_until``, ``remote_start_awaited_until``)
    answered: an accepted profile is installed; a refused one changes nothing. The TxProfiles the
    charger no longer holds are forgotten first."""
    charging_profiles_gone_forget(charge_point=charge_point)
    if accepted:
        charging_profile_installed(charge_point=charge_point, target=target, awaited_until=awaited_until)


def charging_profile_installed(
    *, charge_point: ChargePoint, target: ProfileTarget, awaited_until: datetime | None = None
) -> None:
    """The charger accepted the profile: it replaces the one of the same id on any connector (1.6
    §5.16.2 "on the Charge Point", 2.0.1 K01.FR.05) and those of the same purpose and stack level
    on its connector (EVSE): in 1.6 all of them (§5.16.2); in 2.0.1 those whose validity overlaps its
    own only, which a station that accepted it does not hold (it would have rejected it, K01.FR.06):
    the others it keeps beside it. ``awaited_until``: a remote start's, until when the charger waits
    for the EV. A profile replaced, new, or with a new schedule or stack level changed what the charger
    may draw (``charger_draw_changed``): a site it is on sends it its limits again (an operator's
    TxProfile of the site's stack level took the place of the site's) or counts what an operator's
    above it lets a session draw."""
    same_stack_level = InstalledChargingProfile.objects.filter(
        charge_point=charge_point,
        connector_id=target.connector_id,
        purpose=target.purpose,
        stack_level=target.stack_level,
        ocpp_version__in=(target.ocpp_version, ""),
    ).exclude(profile_id=target.profile_id)
    if target.ocpp_version == "2.0.1":
        kept = [
            other.pk
            for other in same_stack_level
            if not _overlaps(other.valid_from, other.valid_to, target.valid_from, target.valid_to)
        ]
        same_stack_level = same_stack_level.exclude(pk__in=kept)
    replaced = same_stack_level.delete()[0]
    replaced += (
        InstalledChargingProfile.objects.filter(charge_point=charge_point, profile_id=target.profile_id)
        .exclude(connector_id=target.connector_id)
        .delete()[0]
    )
    before = InstalledChargingProfile.objects.filter(
        charge_point=charge_point, connector_id=target.connector_id, profile_id=target.profile_id
    ).first()
    # A new schedule or stack level changes what the charger may draw (an operator's TxProfile above a
    # site's stack level prevails over the site's); a renewal of the same one does not.
    changed = before is None or (before.ocpp_version, before.stack_level, _schedule(before.profile)) != (
        target.ocpp_version,
        target.stack_level,
        _schedule(target.profile),
    )
    InstalledChargingProfile.objects.update_or_create(
        charge_point=charge_point,
        connector_id=target.connector_id,
        profile_id=target.profile_id,
        defaults={
            "purpose": target.purpose,
            "stack_level": target.stack_level,
            "valid_from": target.valid_from,
            "valid_to": target.valid_to,
            "profile": target.profile,
            "ocpp_version": target.ocpp_version,
            "awaited_until": awaited_until,
        },
    )
    if replaced or changed:  # once the new profile is recorded: a recompute reads it beside the others
        charger_draw_changed.send(
            sender=Transaction,
            charge_point_pk=charge_point.pk,
            profile=(target.purpose, target.profile_id, target.stack_level),
        )


def _schedule(profile: dict[str, Any]) -> Any:
    return profile.get("charging_schedule")


@dataclass(frozen=True)
class ProfileCriteria:
    """A ClearChargingProfile request, version-neutral: each criterion given narrows what is cleared
    (``connector_id``: 1.6's connector or 2.0.1's EVSE); none clears every profile."""

    profile_id: int | None = None
    connector_id: int | None = None
    purpose: str | None = None
    stack_level: int | None = None


def charging_profiles_clear_follow(*, charge_point: ChargePoint, accepted: bool, criteria: ProfileCriteria) -> None:
    """ClearChargingProfile answered: an accepted answer forgets the profiles ``criteria`` match. The
    TxProfiles the charger no longer holds are forgotten first."""
    charging_profiles_gone_forget(charge_point=charge_point)
    if accepted:
        charging_profiles_cleared(charge_point=charge_point, criteria=criteria)


def charging_profiles_cleared(*, charge_point: ChargePoint, criteria: ProfileCriteria) -> int:
    """The charger accepted ClearChargingProfile: forget the profiles ``criteria`` match; how many.
    An id names one profile, whatever the other criteria say (OCPP 1.6 §5.5: "either a specific
    charging profile (denoted by id) or a selection ... that match" the others). What the charger
    may draw changed (``charger_draw_changed``): a site it is on sends it its limits again."""
    if criteria.profile_id is not None:
        filters: dict[str, int | str] = {"profile_id": criteria.profile_id}
    else:
        filters = {name: value for name, value in vars(criteria).items() if value is not None}
    cleared = InstalledChargingProfile.objects.filter(charge_point=charge_point, **filters).delete()[0]
    if cleared:
        charger_draw_changed.send(sender=Transaction, charge_point_pk=charge_point.pk)
    return cleared


# 2.0.1 ChargingLimitSourceEnumType: the profiles a CSMS sets (as opposed to an energy manager's,
# a system operator's or another source's, which the CSMS neither sets nor clears).
CSMS_SOURCE = "CSO"


def charging_profiles_reported(
    *, charge_point_id: str, evse_id: int, source: str, profiles: list[dict[str, Any]]
) -> int:
    """A 2.0.1 ReportChargingProfiles (K09, the station's answer to GetChargingProfiles): the
    ``profiles`` (ChargingProfileType, snake_case) it holds on EVSE ``evse_id`` (0: the station), set by
    ``source``. Those a CSMS set (``CSO``) are recorded installed, as an accepted SetChargingProfile
    records them (``charging_profile_installed``): a profile the CSMS had not recorded (set before it
    kept them, or by another CSMS) or whose record had gone. Profiles of other sources are not the
    CSMS's and stay unrecorded. Returns how many were recorded."""
    if source != CSMS_SOURCE or not profiles:
        return 0
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
    if charge_point is None:
        return 0
    waits = dict(  # a remote start's TxProfile reported while the station waits for the EV keeps its wait
        InstalledChargingProfile.objects.filter(
            charge_point=charge_point, connector_id=evse_id, awaited_until__gt=timezone.now()
        ).values_list("profile_id", "awaited_until")
    )
    for profile in profiles:
        target = ProfileTarget(
            connector_id=evse_id,
            profile_id=profile["id"],
            purpose=profile["charging_profile_purpose"],
            stack_level=profile["stack_level"],
            valid_from=parse_ocpp_time(profile.get("valid_from")),
            valid_to=parse_ocpp_time(profile.get("valid_to")),
            profile=profile,
            ocpp_version="2.0.1",
        )
        charging_profile_installed(charge_point=charge_point, target=target, awaited_until=waits.get(target.profile_id))
    return len(profiles)


def charging_profiles_none_held(*, charge_point: ChargePoint, evse_id: int | None, criterion: dict[str, Any]) -> int:
    """A 2.0.1 GetChargingProfiles answered NoProfiles (K09): the station holds no profile its
    ``evse_id`` (None: any EVSE; 0: the station's own) and ``criterion`` (ChargingProfileCriterionType,
    snake_case: purpose, stack level, ids, sources) match, so the CSMS forgets those it recorded
    installed; none when the sources asked leave out the CSMS's (``CSO``). What the charger may draw
    changed (``charger_draw_changed``), as after a clear. Returns how many were forgotten."""
    return _recorded_forget(charge_point, _recorded_asked_about(charge_point, evse_id, criterion))


def charging_profiles_unreported_forget(
    *, charge_point_id: str, evse_id: int | None, criterion: dict[str, Any], asked_at: datetime
) -> int:
    """A 2.0.1 GetChargingProfiles (K09) sent at ``asked_at`` about ``evse_id`` and ``criterion`` (as
    ``charging_profiles_none_held``'s) has had its last ReportChargingProfiles (``tbc`` false): the
    station holds none of the profiles asked about that it did not report, so the CSMS forgets those
    it recorded before it asked and has not recorded since (a reported one was recorded again; one an
    accepted SetChargingProfile installed after the question may be missing from the answer and
    stays). Returns how many were forgotten."""
    charge_point = ChargePoint.objects.filter(charge_point_id=charge_point_id).first()
    if charge_point is None:
        return 0
    recorded = _recorded_asked_about(charge_point, evse_id, criterion).filter(installed_at__lt=asked_at)
    return _recorded_forget(charge_point, recorded)


def _recorded_asked_about(
    charge_point: ChargePoint, evse_id: int | None, criterion: dict[str, Any]
) -> QuerySet[InstalledChargingProfile]:
    """The profiles recorded installed on ``charge_point`` that a GetChargingProfiles about ``evse_id``
    and ``criterion`` asks about; none when the sources asked leave out the CSMS's (``CSO``)."""
    recorded = InstalledChargingProfile.objects.filter(profiles_of_their_version(), charge_point=charge_point)
    sources = criterion.get("charging_limit_source")
    if sources is not None and CSMS_SOURCE not in sources:
        return recorded.none()
    if evse_id is not None:
        recorded = recorded.filter(connector_id=evse_id)
    if criterion.get("charging_profile_purpose") is not None:
        recorded = recorded.filter(purpose=criterion["charging_profile_purpose"])
    if criterion.get("stack_level") is not None:
        recorded = recorded.filter(stack_level=criterion["stack_level"])
    if criterion.get("charging_profile_id") is not None:
        recorded = recorded.filter(profile_id__in=criterion["charging_profile_id"])
    return recorded


def _recorded_forget(charge_point: ChargePoint, recorded: QuerySet[InstalledChargingProfile]) -> int:
    """Delete ``recorded``; what the charger may draw changed (``charger_draw_changed``) when any was."""
    forgotten = recorded.delete()[0]
    if forgotten:
        charger_draw_changed.send(sender=Transaction, charge_point_pk=charge_point.pk)
    return forgotten
