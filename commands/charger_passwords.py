"""A charger's HTTP Basic password set over OCPP: 1.6 ``ChangeConfiguration`` of ``AuthorizationKey``
(security whitepaper, A00.FR.205: the password's octets, hex-encoded) and 2.0.1 ``SetVariables`` of
``SecurityCtrlr.BasicAuthPassword`` (A01: the password as text).

The CSMS stores the new password's hash as a candidate before the CALL leaves, which admits the
charger beside the old one until the answer or the charger's handshake with it confirms it
(``ocpp_gateway.password_offers``), and keeps the value nowhere in plain text: the command's recorded request,
the message log's frame and the configuration store hold ``REDACTED`` in its place. So does what a
charger reports of its password, though it is write-only (a GetConfiguration, GetVariables or
NotifyReport that carries it).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

REDACTED = "********"
_AUTHORIZATION_KEY = "authorizationkey"
_BASIC_AUTH_PASSWORD = ("securityctrlr", "basicauthpassword")
# 1.6 A00.FR.205: 16 to 20 octets, as 32 to 40 hexadecimal digits.
_HEX_KEY = re.compile(r"([0-9A-Fa-f]{2}){16,20}")
# 2.0.1 part 2 §2.1.4 passwordString: 16 to 40 of these characters (A00.FR.205).
_PASSWORD_STRING = re.compile(r"[a-zA-Z0-9*\-_=:+|@.]{16,40}")


def _is_authorization_key(body: dict[str, Any]) -> bool:
    return str(body.get("key", "")).lower() == _AUTHORIZATION_KEY


def is_password_variable(item: Any) -> bool:
    """Whether a SetVariables item (or an attribute: ``{"component", "variable"}``) is the
    charger's password, ``SecurityCtrlr.BasicAuthPassword`` (names matched ignoring case)."""
    if not isinstance(item, dict):
        return False
    component = str((item.get("component") or {}).get("name", "")).lower()
    variable = str((item.get("variable") or {}).get("name", "")).lower()
    return (component, variable) == _BASIC_AUTH_PASSWORD


def password_refusals(version: str, body: dict[str, Any]) -> dict[str, list[str]]:
    """The fields of a password-setting body (snake_case) the charger or the CSMS could not use;
    {} for any other body. A 1.6 key whose octets are not UTF-8 text is refused: the handshake
    reads the password as text, so the charger could never be admitted with it."""
    if version == "1.6" and _is_authorization_key(body):
        value = str(body.get("value", ""))
        if not _HEX_KEY.fullmatch(value):
            return {"value": ["An AuthorizationKey is 16 to 20 octets as 32 to 40 hexadecimal digits."]}
        try:
            bytes.fromhex(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"value": ["This key's octets are not UTF-8 text: the CSMS could not check the password."]}
        return {}
    found: dict[str, list[str]] = {}
    if version == "2.0.1":
        for index, item in enumerate(body.get("set_variable_data") or []):
            if is_password_variable(item) and not _PASSWORD_STRING.fullmatch(str(item.get("attribute_value", ""))):
                found[f"set_variable_data.{index}.attribute_value"] = [
                    "A BasicAuthPassword is 16 to 40 of a-z A-Z 0-9 * - _ = : + | @ ."
                ]
    return found


def password_set_by(version: str, body: dict[str, Any]) -> str | None:
    """The password a command body (snake_case, as sent) gives the charger, or None; None too for a
    body as recorded (``body_redacted``: a command read back from the database, as the sweep of
    abandoned commands does), whose ``REDACTED`` is no password (1.6: not hex; 2.0.1: too short)."""
    if version == "1.6" and _is_authorization_key(body):
        try:
            return bytes.fromhex(str(body.get("value", ""))).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    for item in body.get("set_variable_data") or [] if version == "2.0.1" else []:
        if is_password_variable(item):
            value = str(item.get("attribute_value", ""))
            return None if value == REDACTED else value
    return None


def body_redacted(version: str, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with the password it sets replaced by ``REDACTED`` (a copy); ``body`` itself otherwise."""
    if password_set_by(version, body) is None:
        return body
    redacted = copy.deepcopy(body)
    if version == "1.6":
        redacted["value"] = REDACTED
    for item in redacted.get("set_variable_data") or []:
        if is_password_variable(item):
            item["attribute_value"] = REDACTED
    return redacted


def answer_redacted(version: str, action: str, answer: dict[str, Any]) -> dict[str, Any]:
    """A charger's answer (snake_case) with a password it reports replaced by ``REDACTED`` (a copy);
    ``answer`` itself otherwise. The password is write-only (1.6 security whitepaper: the
    AuthorizationKey's value is not reported; 2.0.1 ``BasicAuthPassword`` is WriteOnly), yet some
    chargers report it: a 1.6 GetConfiguration key's value, a 2.0.1 GetVariables result's value."""
    if (version, action) == ("1.6", "GetConfiguration"):
        return _items_redacted(answer, "configuration_key", "value")
    if (version, action) == ("2.0.1", "GetVariables"):
        return _items_redacted(answer, "get_variable_result", "attribute_value")
    return answer


def report_redacted(report_data: list[Any]) -> list[Any]:
    """A 2.0.1 NotifyReport's ``report_data`` (snake_case) with the values reported for
    ``SecurityCtrlr.BasicAuthPassword`` replaced by ``REDACTED`` (a copy); itself if it has none."""
    if not any(is_password_variable(item) for item in report_data):
        return report_data
    return [
        {**item, "variable_attribute": [_value_redacted(a, "value") for a in item.get("variable_attribute") or []]}
        if is_password_variable(item)
        else item
        for item in report_data
    ]


def event_data_redacted(event_data: list[Any]) -> list[Any]:
    """A 2.0.1 NotifyEvent's ``eventData`` (camelCase, as received) with the ``actualValue`` of an
    event about ``SecurityCtrlr.BasicAuthPassword`` (a monitor on it, a station telling each change
    of its configuration) replaced by ``REDACTED`` (a copy); itself if it has none."""
    if not any(is_password_variable(item) for item in event_data):
        return event_data
    return [_value_redacted(item, "actualValue") if is_password_variable(item) else item for item in event_data]


def _items_redacted(payload: dict[str, Any], items_field: str, value_field: str) -> dict[str, Any]:
    """``payload`` with the ``value_field`` of each item of its list ``items_field`` that names the
    charger's password (a 1.6 ``key`` or a 2.0.1 component and variable) redacted: a copy if any is."""
    items = payload.get(items_field)
    if not isinstance(items, list) or not any(_names_password(item) and item.get(value_field) for item in items):
        return payload
    return {
        **payload,
        items_field: [_value_redacted(item, value_field) if _names_password(item) else item for item in items],
    }


def _names_password(item: Any) -> bool:
    return isinstance(item, dict) and (_is_authorization_key(item) or is_password_variable(item))


def _value_redacted(item: Any, field: str) -> Any:
    """``item`` with its ``field`` replaced by ``REDACTED`` if it holds a value (a copy)."""
    if not isinstance(item, dict) or item.get(field) in (None, ""):
        return item
    return {**item, field: REDACTED}


# The frames whose payload may carry a charger's password, by action: the list holding it and the
# field of its value (camelCase, as on the wire). ChangeConfiguration's is the payload itself.
_LOGGED_PASSWORDS = {
    "SetVariables": ("setVariableData", "attributeValue"),
    "GetConfiguration": ("configurationKey", "value"),  # the answer's
    "GetVariables": ("getVariableResult", "attributeValue"),  # the answer's
}
# The actions whose frames ``frame_redacted`` reads (a caller on the gateway's path asks first).
REDACTED_ACTIONS = frozenset({*_LOGGED_PASSWORDS, "ChangeConfiguration", "NotifyReport", "NotifyEvent"})


def frame_redacted(version: str, action: str, text: str) -> str:
    """A frame's text for the message log (a CALL sent or received, or the answer to ``action``),
    with a charger password it carries replaced: a ChangeConfiguration or SetVariables setting it,
    a GetConfiguration, GetVariables, NotifyReport or NotifyEvent reporting it. Any other frame, and one that
    carries no password value, is the same text."""
    if action not in REDACTED_ACTIONS:
        return text
    if "authorizationkey" not in text.lower() and "basicauthpassword" not in text.lower():
        return text
    try:
        frame = json.loads(text)
        payload = frame[3 if frame[0] == 2 else 2]
    except (ValueError, LookupError, TypeError):
        return text
    if not isinstance(payload, dict):
        return text
    before = copy.deepcopy(payload)
    if action == "ChangeConfiguration" and version == "1.6" and _is_authorization_key(payload):
        payload["value"] = REDACTED
    elif action == "NotifyReport":
        for item in payload.get("reportData") or []:
            if is_password_variable(item):
                item["variableAttribute"] = [_value_redacted(a, "value") for a in item.get("variableAttribute") or []]
    elif action == "NotifyEvent":
        if isinstance(payload.get("eventData"), list):
            payload["eventData"] = event_data_redacted(payload["eventData"])
    elif action in _LOGGED_PASSWORDS:
        payload.update(_items_redacted(payload, *_LOGGED_PASSWORDS[action]))
    return text if payload == before else json.dumps(frame, separators=(",", ":"))
