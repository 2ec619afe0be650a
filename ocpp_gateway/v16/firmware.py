"""OCPP 1.6 Firmware Management profile: FirmwareStatusNotification, DiagnosticsStatusNotification,
and the security whitepaper's SignedFirmwareStatusNotification and LogStatusNotification (acknowledged)."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from commands.models import Command
from maintenance.services import diagnostics, firmware
from ocpp_gateway.command_routes import answer, answer_accepted, answering_charge_point, before_sending, unsent
from ocpp_gateway.group_commit import in_commit_group


class FirmwareHandlers:
    id: str

    @staticmethod
    @answer(Action.update_firmware)
    def after_update_firmware(command: Command) -> None:
        """The update under way, if a campaign's, is superseded (its reports are this one's now),
        unless this one, sent by hand, is the CSMS's link to its image (the follow-up reads the
        location as sent: ``commands.redaction``)."""
        if answer_accepted(command):
            firmware.firmware_updates_superseded(
                charge_point=answering_charge_point(command),
                location=str(command.request.get("location", "")),
                by_hand=command.api_key_id is not None or command.user_id is not None,
            )

    @staticmethod
    @before_sending(Action.update_firmware)
    def before_update_firmware(command: Command) -> None:
        """One sent by hand to the CSMS's link of the image whose campaign download failed on the
        charger (the operator's retry) puts that target back in flight before it leaves: the
        charger's reports may be handled before its answer."""
        firmware.firmware_target_resend(command=command)

    @staticmethod
    @unsent(Action.update_firmware)
    def after_update_firmware_unsent(command: Command) -> None:
        """Never reached the charger, or refused with a CALLERROR: the target it put back in flight
        is failed again."""
        firmware.firmware_target_resend_undone(command=command)

    async def _firmware_status(self, status: str) -> None:
        if status in firmware.FIRMWARE_STATUS_PROGRESS:
            await in_commit_group(firmware.firmware_status_record)(
                charge_point_id=self.id, progress=firmware.FIRMWARE_STATUS_PROGRESS[status], status=status
            )

    async def _upload_status(self, status: str) -> None:
        if status in diagnostics.LOG_STATUS_STATE:
            await in_commit_group(diagnostics.log_status_record)(
                charge_point_id=self.id, state=diagnostics.LOG_STATUS_STATE[status], status=status
            )

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, status: str, **_: Any) -> call_result.FirmwareStatusNotification:
        await self._firmware_status(status)
        return call_result.FirmwareStatusNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status_notification(
        self, status: str, request_id: int | None = None, **_: Any
    ) -> call_result.SignedFirmwareStatusNotification:
        """Followed as a FirmwareStatusNotification when it names no request (a trigger's: the update under
        way); its requestId names a SignedUpdateFirmware, which the CSMS does not send in 1.6: acknowledged."""
        if request_id is None:
            await self._firmware_status(status)
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(
        self, status: str, **_: Any
    ) -> call_result.DiagnosticsStatusNotification:
        await self._upload_status(status)
        return call_result.DiagnosticsStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status_notification(self, **_: Any) -> call_result.LogStatusNotification:
        """Acknowledged (the message log keeps it): it reports on a GetLog (security whitepaper), which
        the CSMS does not send in 1.6; its GetDiagnostics uploads follow DiagnosticsStatusNotification."""
        return call_result.LogStatusNotification()
