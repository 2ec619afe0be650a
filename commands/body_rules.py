"""The rules of a command body that the OCPP specifications state in prose, not in their JSON schemas.

A body breaking one is refused with a 400 naming the field (``catalog.validate_body``), before
anything is recorded or sent: the charger would refuse it, or take it and do what the spec forbids.
Each rule names the section it implements. Bodies are the API's (snake_case), already schema-valid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Refusals = dict[str, list[str]]


def refusals(version: str, action: str, body: dict[str, Any]) -> Refusals:
    """The fields of a schema-valid ``body`` of ``action`` that break a rule, with why; {} when none."""
    rule = _RULES.get((version, action))
    return rule(body) if rule else {}


def _remote_start(target: str) -> Callable[[dict[str, Any]], Refusals]:
    """1.6 §5.11 / §6.33 and 2.0.1 F01 (RequestStartTransactionRequest): the connector or EVSE, when
    given, is > 0; a charging profile given is a TxProfile without a transactionId (there is none yet)."""

    def check(body: dict[str, Any]) -> Refusals:
        found: Refusals = {}
        if body.get(target) == 0:
            found[target] = [f"Must be greater than 0; leave {target} out to let the charger choose."]
        profile = body.get("charging_profile")
        if isinstance(profile, dict):
            purpose = profile.get("charging_profile_purpose")
            if purpose != "TxProfile":
                found["charging_profile.charging_profile_purpose"] = [
                    f"A remote start's charging profile is a TxProfile, not {purpose!r}."
                ]
            if "transaction_id" in profile:
                found["charging_profile.transaction_id"] = [
                    "A remote start's charging profile has no transaction id: the transaction does not exist yet."
                ]
        return found

    return check


def _local_list(version_field: str, info_field: str, token_of: Callable[[Any], Any]) -> Callable[..., Refusals]:
    """1.6 §5.15 / §6.49 and 2.0.1 D01: a list version is at least 1 (0 and -1 are what
    GetLocalListVersion reports for an empty list and for none); a full list's entries each carry
    their authorization (``info_field``); a token is named once in a list (matched case-insensitively)."""

    def check(body: dict[str, Any]) -> Refusals:
        found: Refusals = {}
        if isinstance(body.get(version_field), int) and body[version_field] < 1:
            found[version_field] = ["Must be at least 1: 0 and -1 are reserved for an empty list and for none."]
        entries = body.get("local_authorization_list") or []
        seen: set[Any] = set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            if body.get("update_type") == "Full" and info_field not in entry:
                found[f"local_authorization_list.{index}.{info_field}"] = ["Required in a Full update."]
            token = token_of(entry)
            if token in seen:
                found[f"local_authorization_list.{index}"] = ["This token is already in the list."]
            seen.add(token)
        return found

    return check


def _token16(entry: dict[str, Any]) -> Any:
    return str(entry.get("id_tag", "")).lower()


def _token201(entry: dict[str, Any]) -> Any:
    token = entry.get("id_token") or {}
    return str(token.get("id_token", "")).lower(), token.get("type")


def _unlock(*targets: str) -> Callable[[dict[str, Any]], Refusals]:
    """1.6 §5.18 / 2.0.1 F05: a connector is unlocked, never the whole station (connector or EVSE 0)."""

    def check(body: dict[str, Any]) -> Refusals:
        return {
            target: ["Must be greater than 0: a connector is unlocked."] for target in targets if body.get(target) == 0
        }

    return check


# A charger's HTTP Basic password (1.6 security whitepaper's AuthorizationKey, 2.0.1 A01's
# SecurityCtrlr.BasicAuthPassword): a generic configuration command would keep it in plain text
# (the command's row, the message log, the configuration store) while the CSMS went on checking the
# old password's hash, so the charger, reconnecting with the new one, would be refused.
_PASSWORD_REFUSAL = (
    "A charger's password is not set through a configuration command: the CSMS would keep it in plain "
    "text and go on checking the old one (PATCH /api/v1/chargepoints/{id} sets the one it checks)."
)


def _no_password16(body: dict[str, Any]) -> Refusals:
    if str(body.get("key", "")).lower() == "authorizationkey":
        return {"key": [_PASSWORD_REFUSAL]}
    return {}


def _no_password201(body: dict[str, Any]) -> Refusals:
    found: Refusals = {}
    for index, item in enumerate(body.get("set_variable_data") or []):
        if not isinstance(item, dict):
            continue
        component = str((item.get("component") or {}).get("name", "")).lower()
        variable = str((item.get("variable") or {}).get("name", "")).lower()
        if (component, variable) == ("securityctrlr", "basicauthpassword"):
            found[f"set_variable_data.{index}.variable"] = [_PASSWORD_REFUSAL]
    return found


_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], Refusals]] = {
    ("1.6", "ChangeConfiguration"): _no_password16,
    ("2.0.1", "SetVariables"): _no_password201,
    ("1.6", "UnlockConnector"): _unlock("connector_id"),
    ("2.0.1", "UnlockConnector"): _unlock("evse_id", "connector_id"),
    ("1.6", "RemoteStartTransaction"): _remote_start("connector_id"),
    ("2.0.1", "RequestStartTransaction"): _remote_start("evse_id"),
    ("1.6", "SendLocalList"): _local_list("list_version", "id_tag_info", _token16),
    ("2.0.1", "SendLocalList"): _local_list("version_number", "id_token_info", _token201),
}
