"""An OCPP 2.0.1 charging station: its messages, and its answers to the CSMS's commands."""

from __future__ import annotations

import uuid
from typing import Any

from ocpp.routing import after, on
from ocpp.v201 import ChargePoint
from ocpp.v201 import call, call_result

from ocpp_gateway.simulator.base import Session, SessionRequest, SimulatedCharger, SimulatorOptions, utc_now

_TRIGGERABLE = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues"}
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
        self.charging_profiles: dict[int, dict[str, Any]] = {}
        self.local_list_version = 0
        self.reservations: set[int] = set()
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

    def _variable(self, component: str, variable: str) -> str | None:
        return {
            ("OCPPCommCtrlr", "HeartbeatInterval"): str(self.heartbeat_interval),
            ("SampledDataCtrlr", "TxUpdatedInterval"): str(int(self.options.meter_interval)),
            ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
        }.get((component, variable))

    # --- Answers to the CSMS's commands ---------------------------------------------------------

    @on("RequestStartTransaction")
    async def on_request_start(self, id_token: dict[str, Any], remote_start_id: int, evse_id: int | None = None,
                               **_: Any) -> Any:
        connector_id = evse_id or 1
        if not self.can_start(connector_id):
            return call_result.RequestStartTransaction(status="Rejected")
        await self.remote_starts.put(
            SessionRequest(connector_id=connector_id, id_tag=id_token["id_token"], remote_start_id=remote_start_id)
        )
        return call_result.RequestStartTransaction(status="Accepted")

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        running = self.session is not None and self.session.transaction_id == transaction_id
        accepted = running and self.stop_session("Remote")
        return call_result.RequestStopTransaction(status="Accepted" if accepted else "Rejected")

    @on("Reset")
    async def on_reset(self, type: str, **_: Any) -> Any:  # noqa: A002 (the OCPP field name)
        return call_result.Reset(status="Accepted")

    @after("Reset")
    async def after_reset(self, type: str, **_: Any) -> None:  # noqa: A002
        await self.reset()

    @on("ChangeAvailability")
    async def on_change_availability(self, operational_status: str, evse: dict[str, Any] | None = None,
                                     **_: Any) -> Any:
        named = self.connector_ids((evse or {}).get("id"))
        busy = self.session is not None and self.session.request.connector_id in named
        return call_result.ChangeAvailability(
            status="Scheduled" if busy and operational_status == "Inoperative" else "Accepted"
        )

    @after("ChangeAvailability")
    async def after_change_availability(self, operational_status: str, evse: dict[str, Any] | None = None,
                                        **_: Any) -> None:
        named = self.connector_ids((evse or {}).get("id"))
        await self.set_availability(named, operative=operational_status == "Operative")

    @on("TriggerMessage")
    async def on_trigger_message(self, requested_message: str, **_: Any) -> Any:
        return call_result.TriggerMessage(status="Accepted" if requested_message in _TRIGGERABLE else "NotImplemented")

    @after("TriggerMessage")
    async def after_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> None:
        if requested_message == "BootNotification":
            await self.send_boot()
        elif requested_message == "Heartbeat":
            await self.send_heartbeat()
        elif requested_message == "StatusNotification":
            for each in self.connector_ids((evse or {}).get("id")):
                busy = self.session is not None and self.session.request.connector_id == each
                await self.send_status(each, "Charging" if busy else self._idle_status(each))
        elif requested_message == "MeterValues":
            for each in self.connector_ids((evse or {}).get("id")):
                await self.call(call.MeterValues(evse_id=each, meter_value=[self._sample(self.meter_wh, "Trigger")]))

    @on("SetChargingProfile")
    async def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.charging_profiles[charging_profile["id"]] = charging_profile
        return call_result.SetChargingProfile(status="Accepted")

    @on("ClearChargingProfile")
    async def on_clear_charging_profile(self, charging_profile_id: int | None = None, **_: Any) -> Any:
        if charging_profile_id is None:
            cleared = bool(self.charging_profiles)
            self.charging_profiles.clear()
        else:
            cleared = self.charging_profiles.pop(charging_profile_id, None) is not None
        return call_result.ClearChargingProfile(status="Accepted" if cleared else "Unknown")

    @on("GetVariables")
    async def on_get_variables(self, get_variable_data: list[dict[str, Any]], **_: Any) -> Any:
        results = []
        for wanted in get_variable_data:
            value = self._variable(wanted["component"]["name"], wanted["variable"]["name"])
            result = {"attribute_status": "Accepted" if value is not None else "UnknownVariable",
                      "component": wanted["component"], "variable": wanted["variable"]}
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
            results.append({"attribute_status": "Accepted" if accepted else "Rejected",
                            "component": wanted["component"], "variable": wanted["variable"]})
        return call_result.SetVariables(set_variable_result=results)

    @on("UnlockConnector")
    async def on_unlock_connector(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        return call_result.UnlockConnector(status="Unlocked")

    @on("ClearCache")
    async def on_clear_cache(self, **_: Any) -> Any:
        return call_result.ClearCache(status="Accepted")

    @on("ReserveNow")
    async def on_reserve_now(self, id: int, evse_id: int | None = None, **_: Any) -> Any:  # noqa: A002
        if not self.can_start(evse_id or 1):
            return call_result.ReserveNow(status="Occupied")
        self.reservations.add(id)
        return call_result.ReserveNow(status="Accepted")

    @on("CancelReservation")
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        known = reservation_id in self.reservations
        self.reservations.discard(reservation_id)
        return call_result.CancelReservation(status="Accepted" if known else "Rejected")

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
