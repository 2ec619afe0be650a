"""OCPP 1.6 Core profile: BootNotification and Heartbeat."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

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
        self,
        charge_point_vendor: str,
        charge_point_model: str,
        charge_point_serial_number: str = "",
        charge_box_serial_number: str = "",
        firmware_version: str = "",
        iccid: str = "",
        imsi: str = "",
        meter_type: str = "",
        meter_serial_number: str = "",
        **_: Any,
    ) -> call_result.BootNotification:
        result = await in_commit_group(services.charge_point_boot)(
            charge_point_id=self.id,
            vendor=charge_point_vendor,
            model=charge_point_model,
            serial_number=charge_point_serial_number or charge_box_serial_number,
            firmware_version=firmware_version,
            iccid=iccid,
            imsi=imsi,
            meter_type=meter_type,
            meter_serial_number=meter_serial_number,
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
        """``{}`` -> ``{"currentTime": ...}`` (OCPP 1.6 §4.6)."""
        now = utc_now()
        heartbeats.add(services.ReceivedHeartbeat(charge_point_id=self.id, received_at=now))
        return {"currentTime": format_ocpp_time(now)}
