"""OCPP 1.6 Core profile, configuration: read after each accepted boot (GetConfiguration)."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after
from ocpp.v16.enums import Action

from ocpp_gateway.configuration_refresh import refresh_after_boot


class ConfigurationHandlers:
    id: str

    @after(Action.boot_notification)
    async def after_boot_notification(self, **_: Any) -> None:
        await refresh_after_boot(self.id)
