"""An OCPP 1.6 charger: its messages, and its answers to the CSMS's commands."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint
from ocpp.v16 import call, call_result

from ocpp_gateway.simulator.base import Session, SessionRequest, SimulatedCharger, SimulatorOptions, utc_now

_TRIGGERABLE = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"}


class V16Simulator(SimulatedCharger, ChargePoint):
    def __init__(self, charge_point_id: str, connection: Any, options: SimulatorOptions) -> None:
        ChargePoint.__init__(self, charge_point_id, connection, response_timeout=30)
        self.simulator_setup(options)
        self.charging_profiles: dict[int, dict[str, Any]] = {}
        self.local_list_version = 0
        self.reservations: set[int] = set()

    def _configuration(self) -> dict[str, tuple[str, bool]]:
        """Key -> (value, read-only)."""
        return {
            "HeartbeatInterval": (str(self.heartbeat_interval), False),
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
        connector_id = connector_id or 1
        if not self.can_start(connector_id):
            return call_result.RemoteStartTransaction(status="Rejected")
        await self.remote_starts.put(SessionRequest(connector_id=connector_id, id_tag=id_tag, remote_start_id=0))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on("RemoteStopTransaction")
    async def on_remote_stop(self, transaction_id: int) -> Any:
        running = self.session is not None and self.session.transaction_id == transaction_id
        accepted = running and self.stop_session("Remote")
        return call_result.RemoteStopTransaction(status="Accepted" if accepted else "Rejected")

    @on("Reset")
    async def on_reset(self, type: str) -> Any:  # noqa: A002 (the OCPP field name)
        return call_result.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str) -> None:  # noqa: A002
        await self.reset()

    @on("ChangeAvailability")
    async def on_change_availability(self, connector_id: int, type: str) -> Any:  # noqa: A002
        busy = self.session is not None and self.session.request.connector_id in self.connector_ids(connector_id)
        return call_result.ChangeAvailability(status="Scheduled" if busy and type == "Inoperative" else "Accepted")

    @after("ChangeAvailability")
    async def after_change_availability(self, connector_id: int, type: str) -> None:  # noqa: A002
        await self.set_availability(self.connector_ids(connector_id), operative=type == "Operative")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, connector_id: int | None = None) -> Any:
        return call_result.TriggerMessage(status="Accepted" if requested_message in _TRIGGERABLE else "NotImplemented")

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, connector_id: int | None = None) -> None:
        if requested_message == "BootNotification":
            await self.send_boot()
        elif requested_message == "Heartbeat":
            await self.send_heartbeat()
        elif requested_message == "StatusNotification":
            for each in self.connector_ids(connector_id):
                busy = self.session is not None and self.session.request.connector_id == each
                await self.send_status(each, "Charging" if busy else self._idle_status(each))
        elif requested_message == "MeterValues":
            for each in self.connector_ids(connector_id):
                sample = self._sample(self.meter_wh, "Trigger")
                await self.call(call.MeterValues(connector_id=each, meter_value=[sample]))

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any]) -> Any:
        self.charging_profiles[cs_charging_profiles["charging_profile_id"]] = cs_charging_profiles
        return call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, id: int | None = None, **criteria: Any) -> Any:  # noqa: A002
        if id is None:
            cleared = bool(self.charging_profiles)
            self.charging_profiles.clear()
        else:
            cleared = self.charging_profiles.pop(id, None) is not None
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

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
        if key == "HeartbeatInterval" and value.isdigit():
            self.heartbeat_interval = int(value)
        return call_result.ChangeConfiguration(status="Accepted")

    @on("UnlockConnector")
    async def on_unlock_connector(self, connector_id: int) -> Any:
        return call_result.UnlockConnector(status="Unlocked")

    @on("ClearCache")
    async def on_clear_cache(self) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on("ReserveNow")
    async def on_reserve_now(self, connector_id: int, reservation_id: int, **_: Any) -> Any:
        if not self.can_start(connector_id or 1):
            return call_result.ReserveNow(status="Occupied")
        self.reservations.add(reservation_id)
        return call_result.ReserveNow(status="Accepted")

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int) -> Any:
        known = reservation_id in self.reservations
        self.reservations.discard(reservation_id)
        return call_result.CancelReservation(status="Accepted" if known else "Rejected")

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
