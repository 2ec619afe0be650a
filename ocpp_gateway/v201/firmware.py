"""OCPP 2.0.1 Firmware Management (L) and Diagnostics (N) blocks: FirmwareStatusNotification and
LogStatusNotification, tracked against the campaign or log request their ``requestId`` names, and
the answer to UpdateFirmware that cancels the update under way."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from commands.models import Command
from maintenance.services import diagnostics, firmware
from ocpp_gateway.command_routes import (
    answer,
    answer_accepted,
    answer_status,
    answering_charge_point,
    before_sending,
    unsent,
)
from ocpp_gateway.group_commit import in_commit_group


class FirmwareHandlers:
    id: str

    @staticmethod
    @answer(Action.update_firmware)
    def after_update_firmware(command: Command) -> None:
        """The update the charger cancelled for it fails, and a campaign's whose requestId one sent
        by hand took for another image (its reports would be taken for the campaign's); refused, the
        target its sending put back in flight (``before_update_firmware``) is failed again."""
        charge_point, request_id = answering_charge_point(command), command.request.get("request_id")
        by_hand = command.api_key_id is not None or command.user_id is not None
        location = (command.request.get("firmware") or {}).get("location", "") if by_hand else None
        if answer_status(command) == firmware.CANCELED_ANOTHER:
            firmware.firmware_updates_canceled(charge_point=charge_point, request_id=request_id, location=location)
        elif not answer_accepted(command):
            firmware.firmware_target_resend_undone(command=command)
        if answer_accepted(command) and by_hand:
            firmware.firmware_request_id_reused(charge_point=charge_point, request_id=request_id, location=location)

    @staticmethod
    @before_sending(Action.update_firmware)
    def before_update_firmware(command: Command) -> None:
        """One sent by hand under the requestId of a target whose campaign download failed, to the
        CSMS's link of its image (the campaign's UpdateFirmware re-sent: the operator's retry), puts
        that target back in flight before it leaves."""
        firmware.firmware_target_resend(command=command)

    @staticmethod
    @unsent(Action.update_firmware)
    def after_update_firmware_unsent(command: Command) -> None:
        """Never reached the station, or refused with a CALLERROR: the target it put back in flight
        is failed again."""
        firmware.firmware_target_resend_undone(command=command)

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(
        self, status: str, request_id: int | None = None, **_: Any
    ) -> call_result.FirmwareStatusNotification:
        if status in firmware.FIRMWARE_STATUS_PROGRESS:
            await in_commit_group(firmware.firmware_status_record)(
                charge_point_id=self.id,
                progress=firmware.FIRMWARE_STATUS_PROGRESS[status],
                status=status,
                request_id=request_id,
            )
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status_notification(
        self, status: str, request_id: int | None = None, **_: Any
    ) -> call_result.LogStatusNotification:
        if status in diagnostics.LOG_STATUS_STATE:
            await in_commit_group(diagnostics.log_status_record)(
                charge_point_id=self.id,
                state=diagnostics.LOG_STATUS_STATE[status],
                status=status,
                request_id=request_id,
            )
        return call_result.LogStatusNotification()
