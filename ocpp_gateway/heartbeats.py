"""Per-process buffer for Heartbeat rows and the liveness they carry.

A Heartbeat is answered with the time at once; its row, the charger's ``last_heartbeat`` /
``last_seen`` and (for a charger the sweep had marked offline) its return online are written
with the other chargers' heartbeats every ``CSMS_HEARTBEAT_FLUSH_MS``, in one transaction.
"""

from __future__ import annotations

from django.conf import settings

from chargepoints.services import ReceivedHeartbeat, charge_point_heartbeats_record
from ocpp_gateway.buffers import WriteBehindBuffer


def _write(heartbeats: list[ReceivedHeartbeat]) -> None:
    charge_point_heartbeats_record(heartbeats=heartbeats)


heartbeats: WriteBehindBuffer[ReceivedHeartbeat] = WriteBehindBuffer(
    name="heartbeat",
    write=_write,
    flush_seconds=lambda: settings.CSMS_HEARTBEAT_FLUSH_SECONDS,
    max_batch=500,
    locks=lambda rows: frozenset(heartbeat.charge_point_id for heartbeat in rows),  # their chargers' rows, updated
)
