"""OCPP 2.0.1 Provisioning block, device model: NotifyReport, and the configuration read after a boot."""

from __future__ import annotations

from typing import Any

from ocpp.exceptions import GenericError
from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoints.models import ChargePoint
from configuration import services
from kernel.timestamps import parse_ocpp_time
from ocpp_gateway.configuration_refresh import refresh_after_boot
from ocpp_gateway.group_commit import in_commit_group


class DeviceModelHandlers:
    id: str

    @on(Action.notify_report)
    async def on_notify_report(
        self,
        request_id: int,
        generated_at: str,
        seq_no: int,
        tbc: bool = False,
        report_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.NotifyReport:
        """Each part is stored before it is acknowledged (B07/B08)."""
        try:
            await in_commit_group(services.device_model_report_record)(
                charge_point_id=self.id,
                request_id=request_id,
                seq_no=seq_no,
                tbc=tbc,
                generated_at=parse_ocpp_time(generated_at),
                report_data=report_data or [],
            )
        except ChargePoint.DoesNotExist:
            raise GenericError(description="The charging station is not registered.") from None
        return call_result.NotifyReport()

    @after(Action.boot_notification)
    async def after_boot_notification(self, **_: Any) -> None:
        await refresh_after_boot(self.id)

