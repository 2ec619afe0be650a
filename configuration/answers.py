"""What a configuration command's answer teaches the store (called by ``commands.services``).

Reads the command's snake_case request and response: 1.6 GetConfiguration and ChangeConfiguration,
2.0.1 GetVariables, SetVariables, GetBaseReport and GetReport.
"""

from __future__ import annotations

from typing import Any

from commands.models import Command
from configuration import services
from configuration.models import AttributeType, LearnedFrom

FOLLOWED_COMMANDS = frozenset(
    {"get_configuration", "change_configuration", "get_variables", "set_variables", "get_base_report", "get_report"}
)


def configuration_command_follow(command: Command) -> None:
    """Record what the charger's answer to ``command`` (one of FOLLOWED_COMMANDS) says of its configuration."""
    assert command.charge_point is not None
    charge_point, request, response = command.charge_point, command.request, command.response or {}
    if command.command == "get_configuration":
        services.configuration_keys_record(
            charge_point=charge_point,
            keys=response.get("configuration_key") or [],
            unknown_keys=response.get("unknown_key") or [],
            complete=not request.get("key"),
            command=command,
        )
    elif command.command == "change_configuration":
        services.configuration_key_changed(
            charge_point=charge_point,
            key=request["key"],
            value=request["value"],
            status=response.get("status", ""),
            command=command,
        )
    elif command.command in ("get_variables", "set_variables"):
        _variables_follow(command)
    elif response.get("status") == services.ACCEPTED:
        services.device_model_report_expect(
            charge_point=charge_point, request_id=request["request_id"], command=command
        )
    else:
        services.device_model_report_refused(charge_point=charge_point, request_id=request["request_id"])


def _variables_follow(command: Command) -> None:
    assert command.charge_point is not None
    if command.command == "get_variables":
        learned_from = LearnedFrom.GET_VARIABLES
        attributes = [
            services.ReportedAttribute(
                component=result["component"],
                variable=result["variable"],
                type=result.get("attribute_type", AttributeType.ACTUAL),
                value=result.get("attribute_value"),
            )
            for result in (command.response or {}).get("get_variable_result") or []
            if result.get("attribute_status") == services.ACCEPTED
        ]
    else:
        learned_from = LearnedFrom.SET_VARIABLES
        attributes = _set_attributes(command.request, command.response or {})
    if attributes:
        services.device_model_attributes_record(
            charge_point=command.charge_point, attributes=attributes, learned_from=learned_from, command=command
        )


def _set_attributes(request: dict[str, Any], response: dict[str, Any]) -> list[services.ReportedAttribute]:
    """The values a SetVariables answer took: Accepted now, RebootRequired after the next reboot."""
    asked = {
        (*services.variable_identity(item["component"], item["variable"]), item.get("attribute_type", "Actual")): item
        for item in request.get("set_variable_data") or []
    }
    taken = []
    for result in response.get("set_variable_result") or []:
        attribute_type = result.get("attribute_type", AttributeType.ACTUAL)
        item = asked.get((*services.variable_identity(result["component"], result["variable"]), attribute_type))
        status = result.get("attribute_status")
        if item is None or status not in (services.ACCEPTED, services.REBOOT_REQUIRED):
            continue
        value = item["attribute_value"]
        taken.append(
            services.ReportedAttribute(
                component=result["component"],
                variable=result["variable"],
                type=attribute_type,
                value=value if status == services.ACCEPTED else None,
                pending_value=value if status == services.REBOOT_REQUIRED else None,
            )
        )
    return taken
