"""An OCPP 2.0.1 charging station: its messages, and its answers to the CSMS's commands."""

from __future__ import annotations

import uuid
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result

from ocpp_gateway.simulator.base import (
    TRIGGERABLE,
    Session,
    SimulatedCharger,
    SimulatorOptions,
    accepted_status,
    utc_now,
)

# The neutral session statuses and stop reasons in 2.0.1 terms.
_CONNECTOR_STATUS = {"Preparing": "Occupied", "Charging": "Occupied"}
_STOPPED_REASON = {"SoftReset": "ImmediateReset"}
_STOP_TRIGGER = {"Remote": "RemoteStop", "SoftReset": "ResetCommand", "DeAuthorized": "Deauthorized"}


def _id_token(id_tag: str) -> dict[str, str]:
    return {"id_token": id_tag, "type": "ISO14443"}


class V201Simulator(SimulatedCharger, ChargePoint):
    def __init__(self, charge_point_id: str, connection: Any, options: SimulatorOptions) -> None:
        ChargePoint.__init__(self, charge_point_id, connection, response_timeout=30)
        self.simulator_setup(options)
        self._seq_no = 0

    # --- What the station sends -----------------------------------------------------------------

    async def send_boot(self) -> tuple[bool, int]:
        answer = await self.call(
            call.BootNotification(
                charging_station={"model": self.options.model, "vendor_name": self.options.vendor}, reason="PowerUp"
            )
        )
        return answer.status == "Accepted", answer.interval

    async def send_heartbeat(self) -> None:
        await self.call(call.Heartbeat())

    async def send_status(self, connector_id: int, status: str) -> None:
        await self.call(
            call.StatusNotification(
                timestamp=utc_now(),
                connector_status=_CONNECTOR_STATUS.get(status, status),
                evse_id=connector_id,
                connector_id=1,
            )
        )

    async def send_authorize(self, id_tag: str) -> bool:
        answer = await self.call(call.Authorize(id_token=_id_token(id_tag)))
        return answer.id_token_info["status"] == "Accepted"

    async def send_start(self, session: Session) -> bool:
        session.transaction_id = str(uuid.uuid4())
        remote = session.request.remote_start_id is not None
        answer = await self._transaction_event(
            session, "Started", "RemoteStart" if remote else "Authorized", id_token=_id_token(session.request.id_tag)
        )
        if (answer.id_token_info or {}).get("status", "Accepted") != "Accepted":
            session.stop_reason = "DeAuthorized"
            await self.send_stop(session)
            return False
        return True

    async def send_meter_values(self, session: Session) -> None:
        await self._transaction_event(session, "Updated", "MeterValuePeriodic")

    async def send_stop(self, session: Session) -> None:
        reason = session.stop_reason or "Local"
        await self._transaction_event(
            session,
            "Ended",
            _STOP_TRIGGER.get(reason, "StopAuthorized"),
            stopped_reason=_STOPPED_REASON.get(reason, reason),
            context="Transaction.End",
        )

    async def _transaction_event(
        self,
        session: Session,
        event_type: str,
        trigger_reason: str,
        *,
        stopped_reason: str | None = None,
        context: str = "Sample.Periodic",
        **fields: Any,
    ) -> Any:
        self._seq_no += 1
        info: dict[str, Any] = {"transaction_id": session.transaction_id, "charging_state": "Charging"}
        if stopped_reason:
            info.update(stopped_reason=stopped_reason, charging_state="Idle")
        if session.request.remote_start_id is not None:
            info["remote_start_id"] = session.request.remote_start_id
        return await self.call(
            call.TransactionEvent(
                event_type=event_type,
                timestamp=utc_now(),
                trigger_reason=trigger_reason,
                seq_no=self._seq_no,
                transaction_info=info,
                evse={"id": session.request.connector_id, "connector_id": 1},
                meter_value=[self._sample(session.meter_wh, context)],
                **fields,
            )
        )

    async def send_triggered_meter_values(self, connector_id: int) -> None:
        await self.call(call.MeterValues(evse_id=connector_id, meter_value=[self._sample(self.meter_wh, "Trigger")]))

    @staticmethod
    def _sample(meter_wh: int, context: str) -> dict[str, Any]:
        return {
            "timestamp": utc_now(),
            "sampled_value": [
                {
                    "value": meter_wh,
                    "context": context,
                    "measurand": "Energy.Active.Import.Register",
                    "unit_of_measure": {"unit": "Wh"},
                }
            ],
        }

    def _variables(self) -> dict[tuple[str, str], tuple[str, str, str]]:
        """(component, variable) -> (value, data type, unit) of its device model."""
        return {
            ("OCPPCommCtrlr", "HeartbeatInterval"): (str(self.heartbeat_interval), "integer", "s"),
            ("SampledDataCtrlr", "TxUpdatedInterval"): (str(int(self.options.meter_interval)), "integer", "s"),
            ("AuthCtrlr", "AuthorizeRemoteStart"): ("false", "boolean", ""),
        }

    def _variable(self, component: str, variable: str) -> str | None:
        known = self._variables().get((component, variable))
        return known[0] if known else None

    def _report_data(self) -> list[dict[str, Any]]:
        """The device model as NotifyReportRequest's reportData (OCPP 2.0.1 part 2, use case B07)."""
        data = []
        for (component, variable), (value, data_type, unit) in self._variables().items():
            characteristics: dict[str, Any] = {"data_type": data_type, "supports_monitoring": False}
            if unit:
                characteristics["unit"] = unit
            data.append(
                {
                    "component": {"name": component},
                    "variable": {"name": variable},
                    "variable_attribute": [{"type": "Actual", "value": value, "mutability": "ReadWrite"}],
                    "variable_characteristics": characteristics,
                }
            )
        return data

    # --- Answers to the CSMS's commands ---------------------------------------------------------

    def _has_evse(self, evse: dict[str, Any] | None) -> bool:
        """Whether a command's EVSE (and connector) is one of this station's: each EVSE has connector 1."""
        return evse is None or (self.has_connector(evse.get("id")) and evse.get("connector_id", 1) == 1)

    @on("RequestStartTransaction")
    async def on_request_start(
        self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None, **_: Any
    ) -> Any:
        accepted = await self.remote_start(evse_id or 1, id_token["id_token"], remote_start_id)
        return call_result.RequestStartTransaction(status=accepted_status(accepted))

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        return call_result.RequestStopTransaction(status=accepted_status(self.remote_stop(transaction_id)))

    @on("Reset")
    async def on_reset(self, type: str, **_: Any) -> Any:  # noqa: A002 (the OCPP field name)
        # B12.FR.01/02: OnIdle while a transaction is ongoing resets once it ended
        return call_result.Reset(status="Scheduled" if type == "OnIdle" and self.session else "Accepted")

    @after("Reset")
    async def after_reset(self, type: str, **_: Any) -> None:  # noqa: A002
        await (self.reset_when_idle() if type == "OnIdle" else self.reset())

    @on("ChangeAvailability")
    async def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        if not self._has_evse(evse):
            return call_result.ChangeAvailability(status="Rejected")
        named = self.connector_ids((evse or {}).get("id"))
        status = self.availability_status(named, operative=operational_status == "Operative")
        return call_result.ChangeAvailability(status=status)

    @after("ChangeAvailability")
    async def after_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> None:
        if not self._has_evse(evse):
            return
        named = self.connector_ids((evse or {}).get("id"))
        await self.set_availability(named, operative=operational_status == "Operative")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> Any:
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        return call_result.TriggerMessage(status=accepted_status(self._has_evse(evse)))

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> None:
        if not self._has_evse(evse):
            return
        await self.send_triggered(requested_message, (evse or {}).get("id"))

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        accepted = self.has_connector(evse_id) and self.charging_profile_set(charging_profile["id"], charging_profile)
        return call_result.SetChargingProfile(status=accepted_status(accepted))

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, charging_profile_id: int | None = None, **_: Any) -> Any:
        cleared = self.charging_profile_clear(charging_profile_id)
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for wanted in get_variable_data:
            value = self._variable(wanted["component"]["name"], wanted["variable"]["name"])
            result = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": wanted["component"],
                "variable": wanted["variable"],
            }
            if value is not None:
                result["attribute_value"] = value
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on("SetVariables")
    async def on_set_variables(self, set_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for wanted in set_variable_data:
            names = (wanted["component"]["name"], wanted["variable"]["name"])
            accepted = names == ("OCPPCommCtrlr", "HeartbeatInterval") and str(wanted["attribute_value"]).isdigit()
            if accepted:
                self.heartbeat_interval = int(wanted["attribute_value"])
            results.append(
                {
                    "attribute_status": accepted_status(accepted),
                    "component": wanted["component"],
                    "variable": wanted["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @on("GetBaseReport")
    async def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        return call_result.GetBaseReport(status="Accepted")

    @after("GetBaseReport")
    async def after_get_base_report(self, request_id: int, report_base: str, **_: Any) -> None:
        """The whole (small) device model in one part, whichever base was asked for."""
        await self.call(
            call.NotifyReport(
                request_id=request_id, generated_at=utc_now(), seq_no=0, report_data=self._report_data(), tbc=False
            )
        )

    @on("UnlockConnector")
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        known = self._has_evse({"id": evse_id, "connector_id": connector_id})
        return call_result.UnlockConnector(status="Unlocked" if known else "UnknownConnector")

    @on("ClearCache")
    async def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on("ReserveNow")
    async def on_reserve_now(self, id: int, evse_id: int | None = None, **_: Any) -> Any:  # noqa: A002
        if not self.has_connector(evse_id):
            return call_result.ReserveNow(status="Rejected")
        return call_result.ReserveNow(status="Accepted" if self.reserve(id, evse_id) else "Occupied")

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        return call_result.CancelReservation(status=accepted_status(self.reservation_cancel(reservation_id)))

    @on("GetLocalListVersion")
    async def on_get_local_list_version(self, **_: Any) -> Any:
        return call_result.GetLocalListVersion(version_number=self.local_list_version)

    @on("SendLocalList")
    async def on_send_local_list(self, version_number: int, update_type: str, **_: Any) -> Any:
        self.local_list_version = version_number
        return call_result.SendLocalList(status="Accepted")

    @on("GetTransactionStatus")
    async def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        ongoing = self.session is not None and self.session.transaction_id == transaction_id
        return call_result.GetTransactionStatus(messages_in_queue=False, ongoing_indicator=ongoing)

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        return call_result.DataTransfer(status="UnknownVendorId")

    @on("UpdateFirmware")
    async def on_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> Any:
        return call_result.UpdateFirmware(status="Accepted")

    @after("UpdateFirmware")
    async def after_update_firmware(self, request_id: int, firmware: dict[str, Any], **_: Any) -> None:
        """Downloads at once, whatever ``retrieve_date_time`` says."""

        async def notify(status: str) -> None:
            await self.call(call.FirmwareStatusNotification(status=status, request_id=request_id))

        await self.firmware_install(firmware["location"], notify)

    @on("GetLog")
    async def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> Any:
        return call_result.GetLog(status="Accepted", filename=self._log_file_name(log_type))

    @after("GetLog")
    async def after_get_log(self, log: dict[str, Any], log_type: str, request_id: int, **_: Any) -> None:
        async def notify(status: str) -> None:
            await self.call(call.LogStatusNotification(status=status, request_id=request_id))

        await self.diagnostics_upload(log["remote_location"], self._log_file_name(log_type), notify)

    def _log_file_name(self, log_type: str) -> str:
        return f"{self.id}-{log_type}.log"
