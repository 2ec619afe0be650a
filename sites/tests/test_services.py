"""Site rules that races decide (PostgreSQL, two connections)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sites import services
from sites.models import Site, SiteMember


def _added(site: Site) -> str:
    try:
        services.site_member_add(site=site, charge_point_id="CP-RACE")
    except services.SiteConflict as conflict:
        return conflict.field
    return "added"


def test_a_charger_added_to_two_sites_at_once_joins_one_and_the_other_is_refused(behind_a_lock, register_charge_point):
    """Round 40's probe: both requests found no member row to lock; both were 201 and the charger
    ended up, silently, on the second site."""
    register_charge_point("CP-RACE")
    first, second = (Site.objects.create(name=name, phases=1, capacity_a=Decimal(32)) for name in ("A", "B"))
    results = behind_a_lock(lambda: _added(first), lambda: _added(second))
    assert results == ("added", "charge_point_id")
    assert SiteMember.objects.get().site == first


def test_a_site_changed_while_its_meter_posts_the_base_load_keeps_the_posted_load(behind_a_lock):
    """A PATCH of a site (its capacity) saved every column of the site as its request read it: the
    building's load its meter posted meanwhile was put back to the load before, and the allocation
    counted that one until the meter's next post."""
    site = Site.objects.create(name="S", phases=1, capacity_a=Decimal(63), live_base_load_a=["10"])
    read_by_the_patch = Site.objects.get(pk=site.pk)
    posted = Site.objects.get(pk=site.pk)

    behind_a_lock(
        lambda: services.site_base_load_record(site=posted, load_a=[Decimal(40)]),
        lambda: services.site_save(site=read_by_the_patch, capacity_a=Decimal(80)),
    )

    site.refresh_from_db()
    assert (site.capacity_a, site.live_base_load_a) == (Decimal(80), ["40"])
    assert site.live_base_load_at == posted.live_base_load_at


def test_a_member_changed_while_the_engine_flags_it_keeps_the_flag(behind_a_lock, register_charge_point):
    """A PATCH of a member (its priority) saved every column as its request read it: the flag the
    site engine set meanwhile (the charger refused its profile: counted at its maximum) was cleared,
    and the charger was steered again as if it complied."""
    from django.utils import timezone

    register_charge_point("CP-FLAG")
    site = Site.objects.create(name="S", phases=1, capacity_a=Decimal(63))
    member = services.site_member_add(site=site, charge_point_id="CP-FLAG")
    read_by_the_patch = SiteMember.objects.get(pk=member.pk)

    def flagged() -> None:
        engine_view = SiteMember.objects.get(pk=member.pk)
        engine_view.smart_charging_flag = "refused its TxProfile"
        engine_view.flagged_at = timezone.now()
        engine_view.save(update_fields=["smart_charging_flag", "flagged_at"])  # as ``engine._flag``

    behind_a_lock(flagged, lambda: services.site_member_update(member=read_by_the_patch, priority=5))

    member.refresh_from_db()
    assert (member.priority, member.smart_charging_flag) == (5, "refused its TxProfile")
    assert member.flagged_at is not None


def _base_load_posted(site: Site, load_a: list[Decimal]) -> str:
    try:
        services.site_base_load_record(site=site, load_a=load_a)
    except services.SiteConflict as conflict:
        return conflict.field
    return "posted"


def test_a_base_load_posted_while_the_site_goes_single_phase_is_checked_against_the_phases_it_has(behind_a_lock):
    """A meter's post of three values was checked against the site as its request read it (three
    phases) while a PATCH made it single-phase: the three values were stored on a one-phase site,
    and every recompute of it failed (``site_limits``: one phase, three loads) until the next post."""
    site = Site.objects.create(name="S", phases=3, capacity_a=Decimal(63))
    read_by_the_post = Site.objects.get(pk=site.pk)
    read_by_the_patch = Site.objects.get(pk=site.pk)

    _, posted = behind_a_lock(
        lambda: services.site_save(site=read_by_the_patch, phases=1),
        lambda: _base_load_posted(read_by_the_post, [Decimal(10), Decimal(12), Decimal(8)]),
    )

    site.refresh_from_db()
    assert (posted, site.phases, site.live_base_load_a) == ("load_a", 1, None)


@pytest.mark.django_db
def test_a_stored_load_of_another_phase_count_counts_its_largest_value_on_every_phase():
    """One stored before posts were checked under the site's lock: every recompute failed on it."""
    from sites import selectors

    site = Site.objects.create(name="S", phases=1, capacity_a=Decimal(63), live_base_load_a=["10", "12.5", "8"])
    assert selectors.site_base_load(site=site) == (Decimal("12.5"),)
    site.phases, site.live_base_load_a = 3, ["4"]
    assert selectors.site_base_load(site=site) == (Decimal(4),) * 3
    assert selectors.site_limits(site=site, extra_load_a=(Decimal(0),) * 3).base_load_a == (Decimal(4),) * 3
