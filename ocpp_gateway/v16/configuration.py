"""OCPP 1.6 Core profile, configuration: read after an accepted boot (GetConfiguration), and the
answers to GetConfiguration and ChangeConfiguration kept in the configuration store."""

from __future__ import annotations

from typing import Any

from ocpp.routing import after
from ocpp.v16.enums import Action

from commands.models import Command
from configuration import services
from ocpp_gateway.command_routes import answer
from ocpp_gateway.configuration_refresh import LocalCaller, refresh_after_boot


class ConfigurationHandlers:
    id: str
    _connection: LocalCaller
    configuration_current: bool  # set by the BootNotification handler (``configuration_current``)

    @after(Action.boot_notification)
    async def after_boot_notification(self, **_: Any) -> None:
        await refresh_after_boot(self.id, self._connection, current=self.configuration_current)

    @staticmethod
    @answer(Action.get_configuration)
    def after_get_configuration(command: Command) -> None:
        """The keys reported; a request naming no keys reports them all (``complete``)."""
        assert command.charge_point is not None
        response = command.response or {}
        services.configuration_keys_record(
            charge_point=command.charge_point,
            keys=response.get("configuration_key") or [],
            unknown_keys=response.get("unknown_key") or [],
            complete=not command.request.get("key"),
            command=command,
        )

    @staticmethod
    @answer(Action.change_configuration)
    def after_change_configuration(command: Command) -> None:
        assert command.charge_point is not None
        services.configuration_key_changed(
            charge_point=command.charge_point,
            key=command.request["key"],
            value=command.request["value"],
            status=(command.response or {}).get("status", ""),
            command=command,
        )
