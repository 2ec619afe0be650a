"""The ``data`` of the webhook events sites emit (README, "Webhooks"); see chargepoints/events.py."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sites.models import AllocationSnapshot, Site
from webhooks.models import EventType
from webhooks.services import iso_utc

_AMPS_STEP = Decimal("0.1")  # the one decimal of every current field (sites.models)


def site_allocation_changed(site: Site, snapshot: AllocationSnapshot) -> dict[str, Any]:
    """site.allocation_changed: the limits now held (transaction id -> A, decimal strings)."""
    return {
        "site_id": site.pk,
        "site": site.name,
        "at": iso_utc(snapshot.at),
        "capacity_a": _amps(snapshot.capacity_a) if snapshot.capacity_a is not None else None,
        "limits_sum_a": _amps(snapshot.limits_sum_a),
        "limits": snapshot.limits,
    }


def _amps(value: Decimal) -> str:
    """A current as the API writes it (its fields have one decimal): ``"0.0"``, ``"32.0"``, never ``"0"``."""
    return str(value.quantize(_AMPS_STEP))


EVENT_BUILDERS = {EventType.SITE_ALLOCATION_CHANGED: site_allocation_changed}
