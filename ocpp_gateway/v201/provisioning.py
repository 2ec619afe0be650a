"""OCPP 2.0.1 Provisioning block: BootNotification and Heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action, BootReasonEnumType

from chargepoints import services
from configuration.changes import configuration_read_recent
from kernel.ocpp_package import on_payload
from kernel.timestamps import format_ocpp_time, utc_now
from maintenance.services import firmware
from ocpp_gateway.configuration_refresh import configuration_current
from ocpp_gateway.group_commit import in_commit_group
from ocpp_gateway.heartbeats import heartbeats


class ProvisioningHandlers:
    id: str
    heartbeat_interval: int  # ``OcppRouter``'s: the interval the charger heartbeats at
    firmware_version_changed: Callable[[str], bool]  # ``OcppRouter``'s
    configuration_current = False  # the stored configuration needs no read after the last boot

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> call_result.BootNotification:
        modem = charging_station.get("modem") or {}
        firmware_version = charging_station.get("firmware_version", "")
        result = await in_commit_group(services.charge_point_boot)(
            charge_point_id=self.id,
            vendor=charging_station["vendor_name"],
            model=charging_station["model"],
            serial_number=charging_station.get("serial_number", ""),
            firmware_version=firmware_version,
            iccid=modem.get("iccid", ""),
            imsi=modem.get("imsi", ""),
            restarted=reason != BootReasonEnumType.triggered,  # F06: a TriggerMessage's, no restart
            condition=configuration_read_recent(),
        )
        self.configuration_current = configuration_current(result)
        if self.firmware_version_changed(firmware_version):  # a campaign's image installed?
            await in_commit_group(firmware.firmware_booted)(charge_point_id=self.id, firmware_version=firmware_version)
        self.heartbeat_interval = result.interval  # which the charger adopts from this answer
        return call_result.BootNotification(
            # The clock the charger sets by it: now, not when the boot's write began (it may have waited for a lock)
            current_time=format_ocpp_time(utc_now()),
            interval=result.interval,
            status=result.status,
        )

    @on_payload(Action.heartbeat)
    async def on_heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{}`` -> ``{"currentTime": ...}`` (OCPP 2.0.1 G02)."""
        now = utc_now()
        heartbeats.add(services.ReceivedHeartbeat(charge_point_id=self.id, received_at=now))
        return {"currentTime": format_ocpp_time(now)}
