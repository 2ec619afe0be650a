"""Liveness in batches: the ``last_seen`` and presence every inbound message refreshes.

The gateway collects one ``Sighting`` per connection every few seconds and writes a process's
sightings together (ocpp_gateway/sightings.py): a constant number of statements per batch
instead of a transaction per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from chargepoints.models import ChargePoint
from chargepoints.services.fleet import charge_point_seen


@dataclass(frozen=True)
class Sighting:
    """A message from ``charge_point_id`` at ``at`` on the socket behind ``channel_name``."""

    charge_point_id: str
    channel_name: str
    at: datetime


def charge_points_seen_record(*, sightings: Sequence[Sighting]) -> int:
    """``charge_point_seen`` for a batch, in one transaction: each charger's latest sighting.

    Sets ``last_seen``, and claims back a presence found empty (the RPC clears it when a command
    goes unacknowledged while the channel layer is away); a presence held by another connection
    is left alone. Chargers that were offline come back online one by one (an event each).
    Returns how many chargers were updated.
    """
    latest: dict[str, Sighting] = {}
    for sighting in sightings:
        if sighting.charge_point_id not in latest or latest[sighting.charge_point_id].at <= sighting.at:
            latest[sighting.charge_point_id] = sighting
    if not latest:
        return 0
    table, quote = ChargePoint._meta.db_table, connection.ops.quote_name
    # One plain statement, executed for every row (psycopg pipelines them): building an ORM
    # expression per charger cost more CPU than the statements it saved.
    seen = (
        f"UPDATE {quote(table)} SET last_seen = %s, connection_channel = %s"
        " WHERE charge_point_id = %s AND connection_channel IN (%s, '')"
    )
    rows = [(s.at, s.channel_name, s.charge_point_id, s.channel_name) for s in latest.values()]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany(seen, rows)
            updated = cursor.rowcount
        offline = ChargePoint.objects.filter(charge_point_id__in=latest, connected=False).values_list(
            "charge_point_id", flat=True
        )
        for charge_point_id in list(offline):
            sighting = latest[charge_point_id]
            charge_point_seen(charge_point_id=charge_point_id, channel_name=sighting.channel_name, at=sighting.at)
    return updated
