"""The configuration read after a boot, shared by both versions' routers (``@after`` BootNotification)."""

from __future__ import annotations

import logging

from django.conf import settings

from commands.services import command_dispatch
from configuration.changes import configuration_refresh_on_boot
from ocpp_gateway.db import database_sync_to_async

logger = logging.getLogger(__name__)


async def refresh_after_boot(charge_point_id: str) -> None:
    """Ask for the configuration once the Boot answer is out; never fails the connection."""
    if not settings.CSMS_CONFIGURATION_REFRESH_ON_BOOT:
        return
    try:
        command = await database_sync_to_async(configuration_refresh_on_boot)(charge_point_id=charge_point_id)
    except Exception:
        logger.exception("%s: could not ask for the configuration after its boot", charge_point_id)
        return
    if command is not None:
        command_dispatch(command)
