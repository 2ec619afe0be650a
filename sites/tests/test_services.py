"""Site rules that races decide (PostgreSQL, two connections)."""

from __future__ import annotations

from decimal import Decimal

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
