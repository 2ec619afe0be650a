"""The one place that maps an API command to its OCPP message and back.

Request bodies are the OCPP fields in snake_case; they are checked against the OCPP JSON
schema bundled with the ``ocpp`` package before anything is sent.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.charge_point import camel_to_snake_case, snake_to_camel_case
from ocpp.messages import MessageType, get_validator

COMMANDS: dict[str, tuple[str, ...]] = {
    "1.6": (
        "remote_start_transaction",
        "remote_stop_transaction",
        "change_availability",
        "set_charging_profile",
        "clear_charging_profile",
        "reset",
        "trigger_message",
        "reserve_now",
        "cancel_reservation",
        "change_configuration",
        "get_configuration",
        "unlock_connector",
        "clear_cache",
        "data_transfer",
        "get_diagnostics",
        "update_firmware",
        "get_local_list_version",
        "send_local_list",
        "get_composite_schedule",
    ),
    "2.0.1": (
        "request_start_transaction",
        "request_stop_transaction",
        "change_availability",
        "set_charging_profile",
        "clear_charging_profile",
        "get_charging_profiles",
        "get_composite_schedule",
        "reset",
        "trigger_message",
        "reserve_now",
        "cancel_reservation",
        "get_variables",
        "set_variables",
        "get_base_report",
        "unlock_connector",
        "clear_cache",
        "data_transfer",
        "get_log",
        "update_firmware",
        "send_local_list",
        "get_local_list_version",
        "get_transaction_status",
    ),
}

# Fields the docs page promises in a response even when the charger's answer lacks them.
RESPONSE_DEFAULTS: dict[str, dict[str, Any]] = {
    "remote_start_transaction": {"transaction_id": None},
    "request_start_transaction": {"transaction_id": None},
}

# OCPP 1.6 schemas with decimal fields declare "multipleOf 0.1"; floats would fail it.
_DECIMAL_ACTIONS = {("1.6", "SetChargingProfile"), ("1.6", "RemoteStartTransaction")}


def ocpp_action(command: str) -> str:
    """``remote_start_transaction`` -> ``RemoteStartTransaction``."""
    return "".join(part.capitalize() for part in command.split("_"))


def to_ocpp_payload(body: dict[str, Any]) -> dict[str, Any]:
    return snake_to_camel_case(body)


def from_ocpp_payload(command: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {**RESPONSE_DEFAULTS.get(command, {}), **camel_to_snake_case(payload)}


def _field_path(path: list[Any]) -> str:
    return ".".join(str(camel_to_snake_case({p: None}).popitem()[0]) if isinstance(p, str) else str(p) for p in path)


def _describe(error: SchemaError) -> list[tuple[str, str]]:
    path = list(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in instance]
        return [(_field_path([*path, name]), "This field is required.") for name in missing]
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        return [(_field_path([*path, name]), "Unknown field.") for name in instance if name not in known]
    message = error.message
    if error.validator == "enum":
        message = f"{error.instance!r} is not one of {error.validator_value}."
    return [(_field_path(path) or "non_field_errors", message)]


def validate_payload(version: str, action: str, payload: dict[str, Any]) -> dict[str, list[str]]:
    """Check a camelCase payload against the OCPP schema; errors keyed by snake_case field path."""
    if (version, action) in _DECIMAL_ACTIONS:
        validator = get_validator(MessageType.Call, action, version, parse_float=decimal.Decimal)
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    else:
        validator = get_validator(MessageType.Call, action, version)
    errors: dict[str, list[str]] = {}
    for error in validator.iter_errors(payload):
        for field, message in _describe(error):
            errors.setdefault(field, []).append(message)
    return errors
