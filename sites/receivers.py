"""What sites do when a charger's draw may have changed (``charging.signals``); connected in
``SitesConfig.ready``."""

from __future__ import annotations

from typing import Any

from sites.triggers import site_member_may_be, site_recompute_on_commit


def site_recompute_on_draw(
    sender: Any, *, charge_point_id: str = "", charge_point_pk: int | None = None, **kwargs: Any
) -> None:
    """After the commit, recompute the site of the charger (a member of one); nothing for a charger
    this process knows is on no site (``site_member_may_be``)."""
    if not site_member_may_be(charge_point_id=charge_point_id, charge_point_pk=charge_point_pk):
        return
    site_recompute_on_commit(charge_point_id=charge_point_id, charge_point_pk=charge_point_pk)
