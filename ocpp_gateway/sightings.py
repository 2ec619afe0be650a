"""Per-process buffer for the liveness every inbound message proves (``last_seen``, presence).

Each connection adds a sighting at most every ``CSMS_LAST_SEEN_WRITE_SECONDS`` (or half its
heartbeat interval); they are written with the other connections' every
``CSMS_MESSAGE_LOG_FLUSH_MS``, in one transaction. The consumer flushes before it clears
presence on disconnect, so a late sighting cannot claim a closed connection back.
"""

from __future__ import annotations

from django.conf import settings

from chargepoints.services.liveness import Sighting, charge_points_seen_record
from ocpp_gateway.buffers import WriteBehindBuffer


def _write(batch: list[Sighting]) -> None:
    charge_points_seen_record(sightings=batch)


sightings: WriteBehindBuffer[Sighting] = WriteBehindBuffer(
    name="last_seen",
    write=_write,
    flush_seconds=lambda: settings.CSMS_MESSAGE_LOG_FLUSH_SECONDS,
    max_batch=500,
    locks=lambda rows: frozenset(sighting.charge_point_id for sighting in rows),  # their chargers' rows, updated
)
