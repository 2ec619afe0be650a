"""Writes of the ``chargepoints`` domain, one module per area.

The fleet's services (registration, presence, liveness, connector status, the message log)
are re-exported here, where the gateway and the API have always found them.
"""

from chargepoints.services.fleet import (
    BootResult,
    ChargePointAlreadyExists,
    ChargePointHasHistory,
    Connection,
    LoggedFrame,
    ReceivedHeartbeat,
    charge_point_admit,
    charge_point_boot,
    charge_point_connect,
    charge_point_delete,
    charge_point_disconnect,
    charge_point_heartbeat,
    charge_point_heartbeats_record,
    charge_point_password_taken,
    charge_point_register,
    charge_point_seen,
    charge_point_update,
    charge_points_release_process,
    connector_status_set,
    gateway_process_holds_presence,
    gateway_processes_holding_presence,
    heartbeats_prune,
    mark_offline_stale_charge_points,
    ocpp_messages_prune,
    ocpp_messages_record,
)
from chargepoints.services.heartbeat_pace import charge_point_heartbeat_interval_taken

__all__ = [
    "BootResult",
    "ChargePointAlreadyExists",
    "ChargePointHasHistory",
    "Connection",
    "LoggedFrame",
    "ReceivedHeartbeat",
    "charge_point_admit",
    "charge_point_boot",
    "charge_point_connect",
    "charge_point_delete",
    "charge_point_disconnect",
    "charge_point_heartbeat",
    "charge_point_heartbeat_interval_taken",
    "charge_point_heartbeats_record",
    "charge_point_password_taken",
    "charge_point_register",
    "charge_point_seen",
    "charge_point_update",
    "charge_points_release_process",
    "connector_status_set",
    "gateway_process_holds_presence",
    "gateway_processes_holding_presence",
    "heartbeats_prune",
    "mark_offline_stale_charge_points",
    "ocpp_messages_prune",
    "ocpp_messages_record",
]
