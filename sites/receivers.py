"""What sites do when a charger's draw may have changed, and what they call a profile of theirs
(``charging.signals``); connected in ``SitesConfig.ready``."""

from __future__ import annotations

from typing import Any

from sites.models import SiteMember
from sites.selectors import FAILSAFE_PROFILE_ID, FAILSAFE_STACK_LEVEL, site_profile_own
from sites.services import site_members_unflagged_for_w
from sites.triggers import site_member_may_be, site_recompute_on_commit


def site_recompute_on_draw(
    sender: Any,
    *,
    charge_point_id: str = "",
    charge_point_pk: int | None = None,
    profile: tuple[str, int, int] | None = None,
    **kwargs: Any,
) -> None:
    """After the commit, recompute the site of the charger (a member of one); nothing for a charger
    this process knows is on no site (``site_member_may_be``), nor for a profile the engine sent
    itself (``profile``: the pass that sent it goes on; a recompute run at once from its send's
    thread would wait for the site that pass holds)."""
    if profile is not None and site_profile_own(purpose=profile[0], profile_id=profile[1], stack_level=profile[2]):
        return
    if not site_member_may_be(charge_point_id=charge_point_id, charge_point_pk=charge_point_pk):
        return
    site_recompute_on_commit(charge_point_id=charge_point_id, charge_point_pk=charge_point_pk)


def site_members_rate_units_learned(sender: Any, *, charge_point_pks: list[int], units: str, **kwargs: Any) -> None:
    """Chargers found to take W alone: ``services.site_members_unflagged_for_w``."""
    if units == "W":
        site_members_unflagged_for_w(charge_point_pks=charge_point_pks)


def site_failsafe_named(sender: Any, *, profile: Any, **kwargs: Any) -> str | None:
    """A member's failsafe TxDefaultProfile (connector/EVSE 0) as "the failsafe default of site
    'Depot'" (one a former site sent: "a site's failsafe default"); None for any other profile."""
    if (profile.purpose, profile.profile_id, profile.stack_level, profile.connector_id) != (
        "TxDefaultProfile",
        FAILSAFE_PROFILE_ID,
        FAILSAFE_STACK_LEVEL,
        0,
    ):
        return None
    member = SiteMember.objects.filter(charge_point_id=profile.charge_point_id).select_related("site").first()
    return f"the failsafe default of site '{member.site.name}'" if member else "a site's failsafe default"
