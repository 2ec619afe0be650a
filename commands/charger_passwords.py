"""A charger's HTTP Basic password set over OCPP: 1.6 ``ChangeConfiguration`` of ``AuthorizationKey``
(security whitepaper, A00.FR.205: the password's octets, hex-encoded) and 2.0.1 ``SetVariables`` of
``SecurityCtrlr.BasicAuthPassword`` (A01: the password as text).

The CSMS checks the new password once the charger accepts it (``password_taken``: the answer's
follow-up stores its hash), and keeps the value nowhere in plain text: the command's recorded request,
the message log's frame and the configuration store hold ``REDACTED`` in its place.
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
    """The password a command body (snake_case, as sent) gives the charger, or None."""
    if version == "1.6" and _is_authorization_key(body):
        try:
            return bytes.fromhex(str(body.get("value", ""))).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    for item in body.get("set_variable_data") or [] if version == "2.0.1" else []:
        if is_password_variable(item):
            return str(item.get("attribute_value", ""))
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


def frame_redacted(version: str, action: str, text: str) -> str:
    """An outbound CALL's text for the message log, the password it sets replaced (only a
    ChangeConfiguration or SetVariables frame is read; any other is the same text)."""
    if action not in ("ChangeConfiguration", "SetVariables"):
        return text
    if "authorizationkey" not in text.lower() and "basicauthpassword" not in text.lower():
        return text
    frame = json.loads(text)
    payload = frame[3] if len(frame) > 3 and isinstance(frame[3], dict) else {}
    if version == "1.6" and _is_authorization_key(payload):
        payload["value"] = REDACTED
    for item in payload.get("setVariableData") or []:
        if is_password_variable(item):
            item["attributeValue"] = REDACTED
    return json.dumps(frame, separators=(",", ":"))
