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
from kernel.plain_sql import array_text, bound_cursor


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

    Inside a caller's transaction it sets no savepoint of its own (``atomic(savepoint=False)``): a
    failure marks the caller's whole transaction for rollback, so a caller that must outlive it
    runs it in a savepoint (the write-behind buffers' units do, ``in_savepoint``).
    """
    latest: dict[str, Sighting] = {}
    for sighting in sightings:
        if sighting.charge_point_id not in latest or latest[sighting.charge_point_id].at <= sighting.at:
            latest[sighting.charge_point_id] = sighting
    if not latest:
        return 0
    with transaction.atomic(savepoint=False):
        seen = _sightings_marked if connection.vendor == "postgresql" else _sightings_marked_row_by_row
        updated, offline = seen(latest)
        for charge_point_id in offline:
            sighting = latest[charge_point_id]
            charge_point_seen(charge_point_id=charge_point_id, channel_name=sighting.channel_name, at=sighting.at)
    return updated


# Every charger's latest sighting in one statement of fixed text, whatever the batch's size: the
# UPDATE in a CTE, the chargers that were offline read beside it. An UPDATE per charger (one
# pipelined executemany) and an IN list cost 26-83 µs of the batch thread and 95-125 µs of
# PostgreSQL's per sighting at 500 to 40 sightings a batch; this, 4-30 and 24-50 (issue 15, round 15).
_SIGHTINGS_MARKED = (
    f"WITH seen(charge_point_id, at, channel) AS (SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::text[])),"
    f" marked AS (UPDATE {ChargePoint._meta.db_table} AS cp SET last_seen = seen.at, connection_channel = seen.channel"
    " FROM seen WHERE cp.charge_point_id = seen.charge_point_id AND cp.connection_channel IN (seen.channel, '')"
    " RETURNING 1)"
    " SELECT (SELECT count(*) FROM marked), cp.charge_point_id"
    f" FROM seen LEFT JOIN {ChargePoint._meta.db_table} AS cp"
    " ON cp.charge_point_id = seen.charge_point_id AND NOT cp.connected"
)


def _sightings_marked(latest: dict[str, Sighting]) -> tuple[int, list[str]]:
    """(chargers updated, those of ``latest`` not connected) in one statement (PostgreSQL)."""
    values = list(latest.values())
    parameters = [
        array_text(list(latest)),
        array_text([s.at for s in values]),
        array_text([s.channel_name for s in values]),
    ]
    with bound_cursor() as cursor:
        cursor.execute(_SIGHTINGS_MARKED, parameters)
        found = cursor.fetchall()
    return found[0][0], [charge_point_id for _, charge_point_id in found if charge_point_id is not None]


def _sightings_marked_row_by_row(latest: dict[str, Sighting]) -> tuple[int, list[str]]:
    """``_sightings_marked`` on another database: an UPDATE per charger (one ``executemany``)."""
    table, quote = ChargePoint._meta.db_table, connection.ops.quote_name
    seen = (
        f"UPDATE {quote(table)} SET last_seen = %s, connection_channel = %s"
        " WHERE charge_point_id = %s AND connection_channel IN (%s, '')"
    )
    rows = [(s.at, s.channel_name, s.charge_point_id, s.channel_name) for s in latest.values()]
    with connection.cursor() as cursor:
        cursor.executemany(seen, rows)
        updated = cursor.rowcount
    offline = ChargePoint.objects.filter(charge_point_id__in=latest, connected=False).values_list(
        "charge_point_id", flat=True
    )
    return updated, list(offline)
