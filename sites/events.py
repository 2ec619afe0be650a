"""The ``data`` of the webhook events sites emit (README, "Webhooks"); see chargepoints/events.py."""

from __future__ import annotations

from typing import Any

from sites.models import AllocationSnapshot, Site
from webhooks.models import EventType
from webhooks.services import iso_utc


def site_allocation_changed(site: Site, snapshot: AllocationSnapshot) -> dict[str, Any]:
    """site.allocation_changed: the limits now held (transaction id -> A, decimal strings)."""
    return {
        "site_id": site.pk,
        "site": site.name,
        "at": iso_utc(snapshot.at),
        "capacity_a": str(site.capacity_a) if site.capacity_a is not None else None,
        "limits_sum_a": str(snapshot.limits_sum_a),
        "limits": snapshot.limits,
    }


EVENT_BUILDERS = {EventType.SITE_ALLOCATION_CHANGED: site_allocation_changed}
