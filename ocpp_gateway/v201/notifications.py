"""OCPP 2.0.1 notifications the CSMS acknowledges (monitoring reports, events), external charging
limits it records (K12, K13), security events (recorded: ``ocpp_gateway.security_events``), and
DataTransfer. NotifyReport is stored (``device_model``); firmware and log status are tracked
(``firmware``); a connector's availability told by NotifyEvent is its status (``availability``'s)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError
from ocpp.v201 import call_result
from ocpp.v201.enums import (
    Action,
    ConnectorStatusEnumType,
    DataTransferStatusEnumType,
    GenericStatusEnumType,
    NotifyEVChargingNeedsStatusEnumType,
)

from chargepoints import services
from chargepoints.connector_ids import connector_ids_refusal
from charging.services import ev_charging_needs, external_limits
from commands import charger_passwords
from kernel.ocpp_package import on_payload
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.acknowledge import LOGGED_PAYLOAD, acknowledging_handler
from ocpp_gateway.group_commit import in_commit_group
from ocpp_gateway.security_events import security_event_handler

logger = logging.getLogger(__name__)

_CONNECTOR_STATUSES = frozenset(status.value for status in ConnectorStatusEnumType)


def connector_states(event_data: list[Any]) -> Iterator[dict[str, Any]]:
    """The connector statuses among NotifyEvent's ``eventData`` (as sent: ``[{timestamp, actualValue,
    component: {name, evse: {id, connectorId}}, variable: {name}, ...}]``), in order, each as
    ``connector_status_set``'s arguments ``{evse_id, connector_id, status, timestamp}``: a
    ``Connector`` component's ``AvailabilityState`` (2.0.1 part 2's components and variables: the
    state a StatusNotification reports, G01; here as an event, N07), its value one of
    ConnectorStatusEnumType's, its EVSE and connector named (both > 0, at most ``CSMS_MAX_CONNECTOR_ID``:
    each new one is a connector row, ``chargepoints.connector_ids``). Names are
    matched ignoring case. An EVSE's own AvailabilityState is left: the CSMS keeps connectors'."""
    for item in event_data:
        component, variable = item.get("component") or {}, item.get("variable") or {}
        evse = component.get("evse") or {}
        evse_id, connector_id = evse.get("id"), evse.get("connectorId")
        if (
            str(component.get("name", "")).lower() == "connector"
            and str(variable.get("name", "")).lower() == "availabilitystate"
            and item.get("actualValue") in _CONNECTOR_STATUSES
            and _positive(evse_id)
            and _positive(connector_id)
            and not connector_ids_refusal(evse_id=evse_id, connector_id=connector_id)
        ):
            at = parse_ocpp_time(item.get("timestamp"))
            yield {"evse_id": evse_id, "connector_id": connector_id, "status": item["actualValue"], "timestamp": at}


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31


class NotificationHandlers:
    id: str
    frame_work_kept: Callable[[list[Any], str], Coroutine[Any, Any, list[Any]]]

    @on_payload(Action.notify_event)
    async def on_notify_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{generatedAt, seqNo, tbc?, eventData}`` -> ``{}``. Each connector status it tells
        (``connector_states``) is set as its StatusNotification sets it (``connector_status_set``:
        the same ordering by time, the same replays ignored), all of them as one unit of work
        (``connector_statuses_set``: one batch, however many); every event is logged, as before.

        Each status after the first takes a turn of the frame rate (``CSMS_MAX_FRAMES_PER_SECOND``),
        as the StatusNotification it stands for would, waiting for it a few seconds at most
        (``frame_work_kept``: a station catching up its queue has its statuses set): one frame of
        230 statuses cost 350 Heartbeats' CPU. The statuses past the wait are logged only."""
        events = charger_passwords.event_data_redacted(payload["eventData"])  # a password it reports, never logged
        logged = payload if events is payload["eventData"] else {**payload, "eventData": events}
        logger.info(LOGGED_PAYLOAD, self.id, Action.notify_event, logged)
        states = await self.frame_work_kept(
            list(connector_states(payload["eventData"])), "NotifyEvent's connector statuses"
        )
        if len(states) == 1:  # as a StatusNotification: its batch may write it with the others'
            await in_commit_group(services.connector_status_set)(charge_point_id=self.id, **states[0])
        elif states:
            await in_commit_group(services.connector_statuses_set)(charge_point_id=self.id, statuses=states)
        return {}

    on_notify_monitoring_report = acknowledging_handler(
        Action.notify_monitoring_report, call_result.NotifyMonitoringReport
    )

    @on_payload(Action.notify_charging_limit)
    async def on_notify_charging_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{chargingLimit: {chargingLimitSource, isGridCritical?}, chargingSchedule?, evseId?}`` -> ``{}``
        (K12): the limit recorded (``external_limit_notified``). It is kept per EVSE (and source), so an
        ``evseId`` over ``CSMS_MAX_CONNECTOR_ID`` is refused, as a StatusNotification's is: a station
        counting them up made a row (its schedules as sent, up to a frame) and an event for each."""
        if refusal := connector_ids_refusal(evse_id=payload.get("evseId"), connector_id=None):
            raise PropertyConstraintViolationError(description=refusal)
        limit = payload["chargingLimit"]
        await in_commit_group(external_limits.external_limit_notified)(
            charge_point_id=self.id,
            evse_id=payload.get("evseId"),
            source=limit["chargingLimitSource"],
            grid_critical=limit.get("isGridCritical"),
            schedules=payload.get("chargingSchedule") or [],
        )
        return {}

    @on_payload(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{chargingLimitSource, evseId?}`` -> ``{}`` (K13): the limit forgotten (``external_limits_cleared``)."""
        await in_commit_group(external_limits.external_limits_cleared)(
            charge_point_id=self.id, evse_id=payload.get("evseId"), source=payload["chargingLimitSource"]
        )
        return {}

    @on_payload(Action.notify_ev_charging_needs)
    async def on_notify_ev_charging_needs(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``{evseId, chargingNeeds, maxScheduleTuples?}`` -> ``{status: Rejected}`` (ISO 15118, K15):
        the CSMS computes no schedule from an EV's needs (the station goes on with the limits it
        holds; a site's TxProfile, sent as any other, still reaches it and the station renegotiates,
        K16); it records them for the operator (``ev_charging_needs_record``)."""
        await in_commit_group(ev_charging_needs.ev_charging_needs_record)(
            charge_point_id=self.id, evse_id=payload["evseId"], needs=payload["chargingNeeds"]
        )
        return {"status": NotifyEVChargingNeedsStatusEnumType.rejected.value}

    # K17: the EV's own schedule breaks no ISO 15118 schedule of the CSMS's (it sent none): Accepted;
    # kept in the message log.
    on_notify_ev_charging_schedule = acknowledging_handler(
        Action.notify_ev_charging_schedule,
        lambda: call_result.NotifyEVChargingSchedule(status=GenericStatusEnumType.accepted),
    )
    on_notify_customer_information = acknowledging_handler(
        Action.notify_customer_information, call_result.NotifyCustomerInformation
    )
    on_notify_display_messages = acknowledging_handler(
        Action.notify_display_messages, call_result.NotifyDisplayMessages
    )
    on_publish_firmware_status_notification = acknowledging_handler(
        Action.publish_firmware_status_notification, call_result.PublishFirmwareStatusNotification
    )
    on_security_event_notification = security_event_handler(Action.security_event_notification)
    on_data_transfer = acknowledging_handler(
        Action.data_transfer, lambda: call_result.DataTransfer(status=DataTransferStatusEnumType.unknown_vendor_id)
    )
