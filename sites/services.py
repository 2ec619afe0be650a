"""Writes on sites: the site itself, its members, connector maximums and the live base load.

Every change that can move the allocation queues a recompute after its commit (``sites.triggers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from chargepoints.models import ChargePoint
from sites import selectors
from sites.engine import failsafe_clear_on_commit
from sites.models import ConnectorMaximum, Site, SiteMember
from sites.triggers import site_recompute_on_commit, sites_recompute


class SiteConflict(Exception):
    """The change contradicts the site model; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def site_save(*, site: Site | None = None, **fields: Any) -> Site:
    """Create a site (``site`` None) or change one; a change recomputes its allocation.

    Raises SiteConflict when neither a capacity in A nor in W is left.
    """
    site = site or Site()
    with transaction.atomic():
        _as_it_stands(site)
        for name, value in fields.items():
            setattr(site, name, value)
        site_checked(site)
        if site.live_base_load_a and len(site.live_base_load_a) != site.phases:
            site.live_base_load_a, site.live_base_load_at = None, None  # measured for another phase count
        site.save()
        site_recompute_on_commit(site_id=site.pk)
    return site


def _as_it_stands(instance: Site | SiteMember) -> None:
    """``instance`` (a saved row) locked and read again, before a change sets the fields it is given
    and saves every column: as its request read it, the save put back what another writer saved
    meanwhile (the live base load its meter posted, the flag the site engine set on a member that
    refused its profile), and checked the change against values no longer there. A new one: nothing."""
    if isinstance(instance, Site) and instance.pk is not None:
        instance.refresh_from_db(from_queryset=Site.objects.select_for_update())
    elif isinstance(instance, SiteMember) and instance.pk is not None:
        instance.refresh_from_db(from_queryset=SiteMember.objects.select_for_update())


def site_checked(site: Site) -> None:
    """Raises SiteConflict when ``site`` (as it would be saved) has a voltage that is not positive,
    no capacity, or gives a member more than it can (``_currents_checked``): the API's and the
    admin's one rule, checked on the whole site (a PATCH that leaves the voltage out included)."""
    if site.voltage_v <= 0:
        raise SiteConflict("voltage_v", "The voltage (phase to neutral) must be positive.")
    if site.capacity_a is None and site.capacity_w is None:
        raise SiteConflict("capacity_a", "A site needs a capacity: capacity_a (A per phase) and/or capacity_w (W).")
    _currents_checked(site)


def _currents_checked(site: Site) -> None:
    """Raises SiteConflict when a member's failsafe limit or the minimum current is above what the
    site can give one charger (its capacity per phase less its fixed base load): a charger on its
    failsafe profile alone would overload the site while the CSMS is away."""
    capacity = selectors.site_capacity_a(site=site)
    headroom = selectors.site_headroom_a(site=site)
    for field in ("failsafe_current_a", "min_current_a"):
        value = getattr(site, field)
        if value is not None and value > headroom:
            raise SiteConflict(
                field,
                f"{value} A is above what the site gives one charger: {headroom} A"
                f" (capacity {capacity} A per phase less base load {site.base_load_a} A).",
            )


def site_delete(*, site: Site) -> None:
    """Remove a site; its connected chargers are asked to forget its failsafe default profile
    (``engine.failsafe_clear_on_commit``), their sessions' TxProfiles lapse at their validity."""
    with transaction.atomic():
        for member in site.members.select_related("charge_point"):
            failsafe_clear_on_commit(charge_point=member.charge_point)
        site.delete()


def site_base_load_record(*, site: Site, load_a: Sequence[Decimal]) -> Site:
    """The building's measured load (A, one value per phase), posted by its meter or energy manager.

    Raises SiteConflict when the number of values is not the site's phase count, as it stands under
    its lock: checked against the site as the request read it, a post racing a change of its phases
    stored three values on a single-phase site.
    """
    with transaction.atomic():
        _as_it_stands(site)
        if len(load_a) != site.phases:
            raise SiteConflict("load_a", f"Give one value per phase: this site has {site.phases}.")
        site.live_base_load_a = [str(value) for value in load_a]
        site.live_base_load_at = timezone.now()
        site.save(update_fields=["live_base_load_a", "live_base_load_at", "updated_at"])
        site_recompute_on_commit(site_id=site.pk)
    return site


def site_member_add(
    *,
    site: Site,
    charge_point_id: str,
    max_current_a: Decimal = Decimal(32),
    phases: str = "",
    priority: int = 0,
    connector_maximums: dict[int, Decimal] | None = None,
) -> SiteMember:
    """Make a charger a member of ``site`` (a charger belongs to at most one site).

    Raises SiteConflict for an unknown charger, one on another site or on this one already (a
    change is ``site_member_update``'s: a second add put the fields it left out back to their
    defaults, its maximum to 32 A), or phases the site lacks.
    """
    member_phases_checked(site, phases)
    with transaction.atomic():
        # The charger's row locked first: two requests adding it to two sites found no member row to
        # lock, and the second moved it silently (both answered 201).
        charge_point = ChargePoint.objects.select_for_update().filter(charge_point_id=charge_point_id).first()
        if charge_point is None:
            raise SiteConflict("charge_point_id", f"Charge point {charge_point_id!r} is not registered.")
        existing = SiteMember.objects.filter(charge_point=charge_point).first()
        if existing is not None and existing.site_id != site.pk:
            raise SiteConflict("charge_point_id", f"{charge_point_id} is a member of site {existing.site}.")
        if existing is not None:
            raise SiteConflict(
                "charge_point_id", f"{charge_point_id} is a member of this site already (change it with a PATCH)."
            )
        member = SiteMember.objects.create(
            charge_point=charge_point, site=site, max_current_a=max_current_a, phases=phases, priority=priority
        )
        if connector_maximums is not None:
            connector_maximums_set(member=member, maximums=connector_maximums)
        site_recompute_on_commit(site_id=site.pk)
    return member


def site_member_update(*, member: SiteMember, **fields: Any) -> SiteMember:
    """Change a member's maximum, phases, priority, connector maximums, or clear its flag
    (``smart_charging_flag=""``: the charger is steered again)."""
    maximums = fields.pop("connector_maximums", None)
    with transaction.atomic():
        _as_it_stands(member)
        for name, value in fields.items():
            setattr(member, name, value)
        member_phases_checked(member.site, member.phases)  # the site it is on after the change (the admin moves it)
        if not member.smart_charging_flag:
            member.flagged_at = None
        member.save()
        if maximums is not None:
            connector_maximums_set(member=member, maximums=maximums)
        site_recompute_on_commit(site_id=member.site_id)
    return member


def site_members_unflagged_for_w(*, charge_point_pks: list[int]) -> int:
    """Members whose chargers were found to take charging profiles in W alone, flagged for refusing
    the site's profiles (``engine``: ``SetChargingProfile ...``), steered again: their flag cleared and
    their sites recomputed once committed. A charger whose units were not yet known was sent them in
    A (its first failsafe, a session started before its configuration was read) and flagged for
    good, counted at its maximum, though it takes what the site sends it in W now. Returns how many."""
    with transaction.atomic():
        flagged = list(
            SiteMember.objects.select_for_update()
            .filter(charge_point_id__in=charge_point_pks, smart_charging_flag__startswith="SetChargingProfile ")
            .order_by("pk")
            .values_list("pk", "site_id")
        )
        SiteMember.objects.filter(pk__in=[pk for pk, _ in flagged]).update(smart_charging_flag="", flagged_at=None)
        for site_id in sorted({site_id for _, site_id in flagged}):
            site_recompute_on_commit(site_id=site_id)
    return len(flagged)


def site_member_remove(*, member: SiteMember) -> None:
    """Take a charger off its site: the site is recomputed, and the charger asked to forget the
    site's failsafe default profile (``engine.failsafe_clear_on_commit``)."""
    with transaction.atomic():
        member.delete()
        failsafe_clear_on_commit(charge_point=member.charge_point)
        site_recompute_on_commit(site_id=member.site_id)


def connector_maximums_set(*, member: SiteMember, maximums: dict[int, Decimal]) -> None:
    """Replace the member's per-connector (1.6) or per-EVSE (2.0.1) maximums, A per phase."""
    member.connector_maximums.exclude(connector_id__in=list(maximums)).delete()
    for connector_id, maximum in maximums.items():
        ConnectorMaximum.objects.update_or_create(
            member=member, connector_id=connector_id, defaults={"max_current_a": maximum}
        )


def connector_maximum_save(*, maximum: ConnectorMaximum, previous_site_id: int | None = None) -> ConnectorMaximum:
    """Save one connector maximum (the admin's page of them) and recompute its member's site, and
    ``previous_site_id`` (the site of the member it was moved from): as ``connector_maximums_set``
    through the API's member update, a lowered maximum bounds the sessions at once, not at the
    next sweep."""
    with transaction.atomic():
        maximum.save()
        site_id = SiteMember.objects.filter(pk=maximum.member_id).values_list("site_id", flat=True).first()
        for each in {site_id, previous_site_id} - {None}:
            site_recompute_on_commit(site_id=each)
    return maximum


def connector_maximum_delete(*, maximum: ConnectorMaximum) -> None:
    """Remove one connector maximum and recompute its member's site."""
    with transaction.atomic():
        site_id = SiteMember.objects.filter(pk=maximum.member_id).values_list("site_id", flat=True).first()
        maximum.delete()
        if site_id is not None:
            site_recompute_on_commit(site_id=site_id)


def member_phases_checked(site: Site, phases: str) -> None:
    """Raises SiteConflict for member phases other than the site's (the API's and the admin's rule)."""
    allowed = {"", "L1", "L2", "L3", "L1L2L3"} if site.phases == 3 else {"", "L1"}
    if phases not in allowed:
        raise SiteConflict("phases", f"Use one of {sorted(allowed - {''})} or leave blank for all site phases.")


def sites_recompute_all() -> int:
    """Recompute every site (the beat's sweep): an offline charger's kept share is handed on once
    ``CSMS_SITES_OFFLINE_RESERVE_SECONDS`` have passed, a reconnected charger gets its failsafe
    default, a held-back rise goes out. Returns the number of sites."""
    site_ids = list(Site.objects.values_list("pk", flat=True))
    sites_recompute(keys={("site", str(pk)) for pk in site_ids})
    return len(site_ids)
