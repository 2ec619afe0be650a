"""OCPP 1.6 Core profile, configuration: read after an accepted boot (GetConfiguration), and the
answers to GetConfiguration and ChangeConfiguration kept in the configuration store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ocpp.routing import after
from ocpp.v16.enums import Action

from chargepoints.models import ChargePoint
from commands import charger_passwords
from commands.models import Command
from configuration import changes, selectors, services
from ocpp_gateway.command_routes import answer, answers_together, before_sending, request_check, unanswered, unsent
from ocpp_gateway.configuration_refresh import LocalCaller, refresh_after_boot
from ocpp_gateway.password_offers import (
    password_answer,
    password_answered,
    password_offered,
    password_unanswered,
    password_unsent,
)


class ConfigurationHandlers:
    id: str
    _connection: LocalCaller
    configuration_current: bool  # set by the BootNotification handler (``configuration_current``)
    configuration_read_owed: bool  # loaded with the handshake (``OcppRouter.state_loaded``)

    @after(Action.boot_notification)
    def after_boot_notification(self, **_: Any) -> None:
        owed = self.configuration_read_owed
        if refresh_after_boot(self.id, self._connection, current=self.configuration_current, owed=owed):
            self.configuration_read_owed = False

    @staticmethod
    @request_check(Action.get_configuration)
    def get_configuration_warnings(*, charge_point: ChargePoint, body: dict[str, Any]) -> list[str]:
        keys = len(body.get("key") or [])
        return selectors.configuration_keys_request_warnings(charge_point=charge_point, keys=keys) if keys else []

    @staticmethod
    @answer(Action.get_configuration)
    def after_get_configuration(command: Command) -> None:
        """The keys reported; a request naming no keys reports them all (``complete``)."""
        read = _keys_read(command)
        services.configuration_keys_record(
            charge_point=read.charge_point,
            keys=read.keys,
            unknown_keys=read.unknown_keys,
            complete=read.complete,
            command=command,
        )

    @staticmethod
    @answers_together(Action.get_configuration)
    def after_get_configurations(commands: Sequence[Command]) -> None:
        """The keys of several answers (a group-commit batch's), stored as each alone, by one statement."""
        services.configuration_keys_recorded_together(reads=[_keys_read(command) for command in commands])

    @staticmethod
    @before_sending(Action.change_configuration)
    def before_change_configuration(command: Command) -> None:
        """A charger password's hash stored as the candidate before it leaves: whatever becomes of
        the command, a charger that took it is admitted (``password_offers``)."""
        password = charger_passwords.password_set_by("1.6", command.request)
        if password is not None:
            password_offered(command, password)

    @staticmethod
    @answer(Action.change_configuration)
    def after_change_configuration(command: Command) -> None:
        """The key's new value stored (a charger password: redacted, and the CSMS checks it from now;
        after the charger's reboot beside the old one; refused, the old one alone)."""
        assert command.charge_point is not None
        status = (command.response or {}).get("status", "")
        password = charger_passwords.password_set_by("1.6", command.request)
        if password is not None:
            password_answered(command, password, password_answer(status))
        services.configuration_key_changed(
            charge_point=command.charge_point,
            key=command.request["key"],
            value=charger_passwords.body_redacted("1.6", command.request)["value"],
            status=status,
            command=command,
        )

    @staticmethod
    @unanswered(Action.change_configuration)
    def after_change_configuration_unanswered(command: Command) -> None:
        """A ChangeConfiguration not answered in time: the charger may have taken the value, or not.
        The value sent is kept as unconfirmed and the configuration read owed, which settles it
        (``configuration_change_unanswered``); a charger password: both admit it until it presents
        the new one."""
        password = charger_passwords.password_set_by("1.6", command.request)
        if password is not None:
            password_unanswered(command, password)
        redacted = charger_passwords.body_redacted("1.6", command.request)
        changes.configuration_change_unanswered(command=command, keys=[(redacted["key"], redacted["value"])])

    @staticmethod
    @unsent(Action.change_configuration)
    def after_change_configuration_unsent(command: Command) -> None:
        """A charger password whose ChangeConfiguration never reached the charger: its candidate dropped."""
        password_unsent(command)


def _keys_read(command: Command) -> services.KeysRead:
    """A GetConfiguration answer's keys to store: a request naming no keys reports them all (``complete``)."""
    assert command.charge_point is not None
    response = command.response or {}
    return services.KeysRead(
        charge_point=command.charge_point,
        keys=response.get("configuration_key") or [],
        unknown_keys=response.get("unknown_key") or [],
        complete=not command.request.get("key"),
        command=command,
    )
