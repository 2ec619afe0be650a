"""Writes about who may charge: the local authorization lists chargers hold."""

from __future__ import annotations

from django.db import transaction

from chargepoints.models import ChargePoint, LocalAuthList


def local_auth_list_record(
    *, charge_point: ChargePoint, version: int, full: bool = False, entries: dict[str, str | None] | None = None
) -> LocalAuthList:
    """Record a local list update the charger accepted (or the version it reported).

    ``entries`` maps id tags to their status; None removes the tag (a differential update
    without idTagInfo). A full update replaces the list; no entries records only the version.
    """
    with transaction.atomic():
        local_list, _ = LocalAuthList.objects.select_for_update().get_or_create(
            charge_point=charge_point, defaults={"version": version}
        )
        current = {} if full else dict(local_list.entries)
        for id_tag, status in (entries or {}).items():
            if status is None:
                current.pop(id_tag, None)
            else:
                current[id_tag] = status
        local_list.version = version
        local_list.entries = current
        local_list.save()
    return local_list
