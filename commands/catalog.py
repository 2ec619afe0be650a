"""The one place that maps an API command to its OCPP message and back.

Request bodies are the OCPP fields in snake_case; they are checked against the OCPP JSON
schema bundled with the ``ocpp`` package before anything is sent.
"""

from __future__ import annotations

import json
import re
from typing import Any, cast

from commands import body_rules
from kernel import payload_case, schemas

# Each version's commands are under /api/v1/<prefix>/ (``POST /api/v1/ocpp16/<charge point id>/reset``).
URL_PREFIX = {"1.6": "ocpp16", "2.0.1": "ocpp201"}
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
        "extended_trigger_message",  # the security whitepaper's TriggerMessage
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
        "get_report",
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


# Answers with a status per item instead of one ``status``: (list field, status field), camelCase.
_ITEM_STATUSES: dict[str, tuple[str, str]] = {"set_variables": ("setVariableResult", "attributeStatus")}


def answer_statuses(command: str, payload: dict[str, Any], *, snake_case: bool = False) -> set[str]:
    """The statuses a charger's answer to ``command`` carries: its ``status``, or each item's
    (2.0.1 SetVariables ``setVariableResult[].attributeStatus``). ``snake_case``: the answer as stored."""
    if command not in _ITEM_STATUSES:
        status = payload.get("status")
        return {status} if isinstance(status, str) else set()
    items_key, status_key = _ITEM_STATUSES[command]
    if snake_case:
        items_key, status_key = (next(iter(payload_case.snake_case({key: None}))) for key in (items_key, status_key))
    items = payload.get(items_key)
    return {
        item[status_key]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, dict) and isinstance(item.get(status_key), str)
    }


def answer_status_unknown(command: str, violations: dict[str, list[str]]) -> bool:
    """Whether an answer to ``command`` with these schema ``violations`` (snake_case paths, as a
    lenient model's answer is recorded with them) breaks the schema at a status: one the spec does
    not list, or none. Such an answer is passed on, and is no acceptance the CSMS may act on."""
    if command not in _ITEM_STATUSES:
        return "status" in violations
    items_key, status_key = (next(iter(payload_case.snake_case({key: None}))) for key in _ITEM_STATUSES[command])
    item_status = re.compile(rf"{re.escape(items_key)}\.[0-9]+\.{re.escape(status_key)}")
    return any(item_status.fullmatch(path) for path in violations)


# Integer fields the API shows as text elsewhere, taken as a client read them there: 1.6
# RemoteStopTransaction's transactionId is a session's ``transaction_id`` in /api/v1/transactions
# (``"7"``: the id the charger uses, text in both versions).
_INTEGERS_SHOWN_AS_TEXT: dict[tuple[str, str], tuple[str, ...]] = {
    ("1.6", "RemoteStopTransaction"): ("transaction_id",),
}
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII digits: "³" is a digit to str.isdigit, not to int()


def body_coerced(version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` (snake_case) with a string of ASCII digits given for an integer field the API shows
    as text elsewhere (``_INTEGERS_SHOWN_AS_TEXT``) as that integer, whose range ``validate_body``
    checks as any other's; the same object when nothing changes."""
    coerced = {
        name: int(body[name])
        for name in _INTEGERS_SHOWN_AS_TEXT.get((version, action), ())
        if isinstance(body.get(name), str) and _DIGITS.fullmatch(body[name])
    }
    return {**body, **coerced} if coerced else body


def ocpp_action(command: str) -> str:
    """``remote_start_transaction`` -> ``RemoteStartTransaction``."""
    return "".join(part.capitalize() for part in command.split("_"))


def ocpp_actions() -> list[str]:
    """Every OCPP action a command may send, of both versions, sorted (a command record's ``action``)."""
    return sorted({ocpp_action(command) for commands in COMMANDS.values() for command in commands})


def to_ocpp_payload(body: dict[str, Any]) -> dict[str, Any]:
    """An API body as the OCPP payload: snake_case OCPP fields in camelCase, vendor data as given."""
    return payload_case.camel_case(body)


def from_ocpp_payload(command: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A charger's answer for the API: OCPP fields in snake_case, vendor data as received."""
    return {**RESPONSE_DEFAULTS.get(command, {}), **payload_case.snake_case(payload)}


def call_frame_bytes(action: str, body: dict[str, Any]) -> int:
    """The size in bytes of the OCPP-J CALL frame carrying an API ``body`` (snake_case) as
    ``action`` (a 36-character message id, compact JSON, non-ASCII characters escaped as the gateway
    sends them), as a charger's BytesPerMessage counts it."""
    frame = [2, "0" * 36, action, to_ocpp_payload(body)]
    return len(json.dumps(frame, separators=(",", ":")))


def validate_payload(version: str, action: str, payload: dict[str, Any]) -> dict[str, list[str]]:
    """Check a camelCase payload against the OCPP schema; errors keyed by snake_case field path."""
    return schemas.described(schemas.request_errors(ocpp_version=version, action=action, payload=payload))


def validate_body(version: str, action: str, body: dict[str, Any]) -> dict[str, list[str]]:
    """Check an API body (snake_case) as the OCPP payload it becomes; errors keyed by field path.
    A field in camelCase (``expiryDateTime``), or misspelt into one once converted (``type_``,
    ``connector__id``), is an error of its own, named with its snake_case spelling: it would pass the
    schema once converted, but the CSMS reads the body's snake_case fields. Then what the
    schema cannot say (``schemas.value_errors``: times, URIs, 32-bit integers) and the rules the OCPP
    specification states in prose (``body_rules``)."""
    camel = payload_case.camel_case_keys(body)
    if camel:
        return {
            where: [f"Unknown field; fields are snake_case: {_meant(where.rsplit('.', 1)[-1])}."] for where in camel
        }
    errors = validate_payload(version, action, to_ocpp_payload(body))
    if errors:
        return errors
    values = schemas.value_errors(ocpp_version=version, action=action, payload=body, named=payload_case.camel_name)
    refusals = {".".join(map(str, path)): [message] for path, message in values.items()}
    return refusals or body_rules.refusals(version, action, body)


def _meant(name: str) -> str:
    """The snake_case spelling of the OCPP field a body's misspelt ``name`` stands for: a camelCase
    one's (``connectorId``, ``CONNECTOR_ID``: ``connector_id``), or the field a lowercase one becomes
    once converted (``connector__id``: ``connector_id``). A capital after an underscore (``Id_Tag``,
    ``connector_Id``) gains no second one: ``id_tag``, not ``id__tag``."""
    if name != name.lower():
        name = re.sub("_{2,}", "_", payload_case.snake_name(name))
    return payload_case.snake_name(payload_case.camel_name(name))


def body_normalized(version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
    """A valid API body as it is recorded and sent: its times in UTC with ``Z`` (those with an offset
    or more than three decimals rewritten, with milliseconds: ``schemas.times_normalized``); the same
    object when nothing changes."""
    normalized = schemas.times_normalized(
        ocpp_version=version, action=action, payload=body, named=payload_case.camel_name
    )
    return cast(dict[str, Any], normalized)
