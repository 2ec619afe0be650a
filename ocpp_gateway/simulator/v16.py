"""An OCPP 1.6 charger: its messages, and its answers to the CSMS's commands."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result

from ocpp_gateway.simulator.base import (
    TRIGGERABLE,
    Session,
    SimulatedCharger,
    SimulatorOptions,
    accepted_status,
    utc_now,
)


class V16Simulator(SimulatedCharger, ChargePoint):
    def __init__(self, charge_point_id: str, connection: Any, options: SimulatorOptions) -> None:
        ChargePoint.__init__(self, charge_point_id, connection, response_timeout=30)
        self.simulator_setup(options)

    def _configuration(self) -> dict[str, tuple[str, bool]]:
        """Key -> (value, read-only). A change of WebSocketPingInterval waits for a reboot."""
        return {
            "HeartbeatInterval": (str(self.heartbeat_interval), False),
            "WebSocketPingInterval": ("0", False),
            "MeterValueSampleInterval": (str(int(self.options.meter_interval)), False),
            "NumberOfConnectors": (str(self.options.connectors), True),
            "AuthorizeRemoteTxRequests": ("false", False),
            "LocalAuthListEnabled": ("true", False),
            "SupportedFeatureProfiles": ("Core,RemoteTrigger,SmartCharging,Reservation,LocalAuthListManagement", True),
        }

    # --- What the charger sends -----------------------------------------------------------------

    async def send_boot(self) -> tuple[bool, int]:
        answer = await self.call(
            call.BootNotification(charge_point_vendor=self.options.vendor, charge_point_model=self.options.model)
        )
        return answer.status == "Accepted", answer.interval

    async def send_heartbeat(self) -> None:
        await self.call(call.Heartbeat())

    async def send_status(self, connector_id: int, status: str) -> None:
        await self.call(call.StatusNotification(connector_id=connector_id, error_code="NoError", status=status))

    async def send_authorize(self, id_tag: str) -> bool:
        answer = await self.call(call.Authorize(id_tag=id_tag))
        return answer.id_tag_info["status"] == "Accepted"

    async def send_start(self, session: Session) -> bool:
        answer = await self.call(
            call.StartTransaction(
                connector_id=session.request.connector_id,
                id_tag=session.request.id_tag,
                meter_start=session.meter_wh,
                timestamp=utc_now(),
            )
        )
        session.transaction_id = answer.transaction_id
        if answer.id_tag_info["status"] != "Accepted":
            session.stop_reason = "DeAuthorized"
            await self.send_stop(session)
            return False
        return True

    async def send_meter_values(self, session: Session) -> None:
        await self.call(
            call.MeterValues(
                connector_id=session.request.connector_id,
                transaction_id=session.transaction_id,
                meter_value=[self._sample(session.meter_wh, "Sample.Periodic")],
            )
        )

    async def send_stop(self, session: Session) -> None:
        await self.call(
            call.StopTransaction(
                meter_stop=session.meter_wh,
                timestamp=utc_now(),
                transaction_id=session.transaction_id,
                reason=session.stop_reason or "Local",
                id_tag=session.request.id_tag,
            )
        )

    async def send_triggered_meter_values(self, connector_id: int) -> None:
        await self.call(
            call.MeterValues(connector_id=connector_id, meter_value=[self._sample(self.meter_wh, "Trigger")])
        )

    @staticmethod
    def _sample(meter_wh: int, context: str) -> dict[str, Any]:
        return {
            "timestamp": utc_now(),
            "sampled_value": [
                {"value": str(meter_wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
            ],
        }

    # --- Answers to the CSMS's commands ---------------------------------------------------------

    @on("RemoteStartTransaction")
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any) -> Any:
        accepted = await self.remote_start(connector_id or 1, id_tag, remote_start_id=0)
        return call_result.RemoteStartTransaction(status=accepted_status(accepted))

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, transaction_id: int) -> Any:
        return call_result.RemoteStopTransaction(status=accepted_status(self.remote_stop(transaction_id)))

    @on("Reset")
    async def on_reset(self, type: str) -> Any:  # noqa: A002 (the OCPP field name)
        return call_result.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str) -> None:  # noqa: A002
        await self.reset("HardReset" if type == "Hard" else "SoftReset")  # §5.14: the stop's reason

    @on("ChangeAvailability")
    async def on_change_availability(self, connector_id: int, type: str) -> Any:  # noqa: A002
        if not self.has_connector(connector_id):
            return call_result.ChangeAvailability(status="Rejected")
        status = self.availability_status(self.connector_ids(connector_id), operative=type == "Operative")
        return call_result.ChangeAvailability(status=status)

    @after("ChangeAvailability")
    async def after_change_availability(self, connector_id: int, type: str) -> None:  # noqa: A002
        if not self.has_connector(connector_id):
            return
        await self.set_availability(self.connector_ids(connector_id), operative=type == "Operative")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None) -> Any:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status=accepted_status(self.has_connector(connector_id)))

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None) -> None:
        if not self.has_connector(connector_id):
            return
        await self.send_triggered(requested_message, connector_id)

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        accepted = self.has_connector(connector_id) and self.charging_profile_set(
            cs_charging_profiles["charging_profile_id"], cs_charging_profiles
        )
        return call_result.SetChargingProfile(status=accepted_status(accepted))

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, id: int | None = None, **criteria: Any) -> Any:  # noqa: A002
        return call_result.ClearChargingProfile(status="Accepted" if self.charging_profile_clear(id) else "Unknown")

    @on("GetConfiguration")
    async def on_get_configuration(self, key: list[str] | None = None) -> Any:
        configuration = self._configuration()
        wanted = key or list(configuration)
        return call_result.GetConfiguration(
            configuration_key=[
                {"key": name, "readonly": configuration[name][1], "value": configuration[name][0]}
                for name in wanted
                if name in configuration
            ],
            unknown_key=[name for name in wanted if name not in configuration] or None,
        )

    @on("ChangeConfiguration")
    async def on_change_configuration(self, key: str, value: str) -> Any:
        known = self._configuration().get(key)
        if known is None:
            return call_result.ChangeConfiguration(status="NotSupported")
        if known[1]:
            return call_result.ChangeConfiguration(status="Rejected")
        if key == "WebSocketPingInterval":
            return call_result.ChangeConfiguration(status="RebootRequired")
        if key == "HeartbeatInterval" and value.isdigit():
            self.heartbeat_interval = int(value)
        return call_result.ChangeConfiguration(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock_connector(self, connector_id: int) -> Any:
        # 1.6 UnlockStatus NotSupported: "ConnectorId is unknown"
        return call_result.UnlockConnector(status="Unlocked" if self.has_connector(connector_id) else "NotSupported")

    @on("ClearCache")
    async def on_clear_cache(self) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on("ReserveNow")
    async def on_reserve_now(self, connector_id: int, reservation_id: int, **_: Any) -> Any:
        if not self.has_connector(connector_id):
            return call_result.ReserveNow(status="Rejected")
        return call_result.ReserveNow(status="Accepted" if self.reserve(reservation_id, connector_id) else "Occupied")

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int) -> Any:
        return call_result.CancelReservation(status=accepted_status(self.reservation_cancel(reservation_id)))

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self) -> Any:
        return call_result.GetLocalListVersion(list_version=self.local_list_version)

    @on("SendLocalList")
    async def on_send_local_list(self, list_version: int, update_type: str, **_: Any) -> Any:
        self.local_list_version = list_version
        return call_result.SendLocalList(status="Accepted")

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @on("GetCompositeSchedule")
    async def on_get_composite_schedule(self, connector_id: int, duration: int, **_: Any) -> Any:
        return call_result.GetCompositeSchedule(status="Rejected")

    @on("UpdateFirmware")
    async def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        return call_result.UpdateFirmware()

    @after("UpdateFirmware")
    async def after_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> None:
        """Downloads at once, whatever ``retrieve_date`` says."""
        await self.firmware_install(location, self._firmware_status)

    @on("GetDiagnostics")
    async def on_get_diagnostics(self, location: str, **_: Any) -> Any:
        return call_result.GetDiagnostics(file_name=self._diagnostics_file_name())

    @after("GetDiagnostics")
    async def after_get_diagnostics(self, location: str, **_: Any) -> None:
        await self.diagnostics_upload(location, self._diagnostics_file_name(), self._diagnostics_status)

    def _diagnostics_file_name(self) -> str:
        return f"{self.id}-diagnostics.log"

    async def _firmware_status(self, status: str) -> None:
        await self.call(call.FirmwareStatusNotification(status=status))

    async def _diagnostics_status(self, status: str) -> None:
        await self.call(call.DiagnosticsStatusNotification(status=status))
