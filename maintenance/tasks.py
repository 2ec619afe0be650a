"""Celery edges of the maintenance services."""

from __future__ import annotations

from celery import shared_task

from kernel.single_flight import Sweep
from maintenance.services import diagnostics, firmware


@shared_task(base=Sweep)
def advance_firmware_campaigns() -> int:
    return firmware.campaigns_advance()


@shared_task
def advance_firmware_campaign(campaign_id: str) -> None:
    firmware.campaign_advance(campaign_id=campaign_id)


@shared_task(base=Sweep)
def expire_log_uploads() -> int:
    return diagnostics.log_uploads_expire()
