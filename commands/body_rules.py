"""The rules of a command body that the OCPP specifications state in prose, not in their JSON schemas.

A body breaking one is refused with a 400 naming the field (``catalog.validate_body``), before
anything is recorded or sent: the charger would refuse it, or take it and do what the spec forbids.
Each rule names the section it implements. Bodies are the API's (snake_case), already schema-valid.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from commands import charger_passwords
from kernel import payload_case, schemas
from kernel.timestamps import parse_ocpp_time

Refusals = dict[str, list[str]]


def refusals(version: str, action: str, body: dict[str, Any]) -> Refusals:
    """The fields of a schema-valid ``body`` of ``action`` that break a rule, with why; {} when none:
    the action's rule, each id token's (``_token_refusals``), and in 2.0.1 each EVSE's (``_evse_refusals``)."""
    rule = _RULES.get((version, action))
    found = _token_refusals(version, action, body) | (rule(body) if rule else {})
    return (_evse_refusals(action, body) | found) if version == "2.0.1" else found


_TOKEN_RULE = "An id tag is not empty and has printable characters only, no whitespace (no card could match it)."


def _token_refusals(version: str, action: str, body: dict[str, Any]) -> Refusals:
    """Each id token a command gives the charger (a remote start's, a reservation's, a local list's
    and their parents / groups): as a card can present it and the CSMS can hold it (the id tags'
    rule: not empty, printable, no whitespace), else no card ever matches it and the charger's
    Authorize / StartTransaction of it is answered Invalid (``{"id_tag": ""}`` started a session
    the CSMS refused). A 2.0.1 ``NoAuthorization`` token is empty (C02.FR.01): left to the charger."""
    found: Refusals = {}
    for path, schema, value in schemas.request_values(
        ocpp_version=version, action=action, payload=body, named=payload_case.camel_name
    ):
        if version == "1.6" and path and payload_case.camel_name(str(path[-1])) in ("idTag", "parentIdTag"):
            token, at = value, ".".join(map(str, path))
        elif version == "2.0.1" and schema.get("javaType") == "IdToken" and isinstance(value, dict):
            if value.get("type") == "NoAuthorization":
                continue
            token, at = value.get("id_token"), ".".join(map(str, (*path, "id_token")))
        else:
            continue
        if isinstance(token, str) and not _token_usable(token):
            found[at] = [_TOKEN_RULE]
    return found


def _token_usable(token: str) -> bool:
    return bool(token) and token.isprintable() and not any(character.isspace() for character in token)


def _evse_refusals(action: str, body: dict[str, Any]) -> Refusals:
    """2.0.1 EVSEType (ChangeAvailability's, TriggerMessage's, a component's in GetVariables, ...):
    its ``id`` and ``connector_id`` are > 0; the whole station is meant by leaving the EVSE out, a
    whole EVSE by leaving its connector out."""
    found: Refusals = {}
    for path, schema, value in schemas.request_values(
        ocpp_version="2.0.1", action=action, payload=body, named=payload_case.camel_name
    ):
        if schema.get("javaType") != "EVSE" or not isinstance(value, dict):
            continue
        at = ".".join(map(str, path))
        if value.get("id") == 0:
            found[f"{at}.id"] = [f"Must be greater than 0; leave {at} out to mean the whole station."]
        if value.get("connector_id") == 0:
            found[f"{at}.connector_id"] = [f"Must be greater than 0; leave it out to mean the whole EVSE {at}.id."]
    return found


def _remote_start(version: str, target: str) -> Callable[[dict[str, Any]], Refusals]:
    """1.6 §5.11 / §6.33 and 2.0.1 F01 (RequestStartTransactionRequest): the connector or EVSE, when
    given, is > 0; a charging profile given is a TxProfile without a transactionId (there is none yet)
    that keeps the rules of any profile (``_profile_refusals``)."""

    def check(body: dict[str, Any]) -> Refusals:
        found: Refusals = {}
        if body.get(target) == 0:
            found[target] = [f"Must be greater than 0; leave {target} out to let the charger choose."]
        profile = body.get("charging_profile")
        if isinstance(profile, dict):
            found |= _profile_refusals(version, profile, "charging_profile")
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
    """1.6 §5.15 / §6.49 and 2.0.1 D01: a list version is 0 or more, and 0 only for an empty list (a
    Full update without entries clears the list, and the charger then reports 0; -1 is what it
    reports for no list support); a full list's entries each carry their authorization
    (``info_field``); a token is named once in a list (matched case-insensitively)."""

    def check(body: dict[str, Any]) -> Refusals:
        found: Refusals = {}
        entries = body.get("local_authorization_list") or []
        version = body.get(version_field)
        if isinstance(version, int) and (version < 0 or (version == 0 and entries)):
            found[version_field] = ["Must be at least 1 for a list with entries (0 is an empty list, -1 none)."]
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


def _change_configuration(body: dict[str, Any]) -> Refusals:
    """A charger's password (``charger_passwords``) it and the CSMS can use. Other values go as
    asked: the charger answers Rejected for one it cannot take (1.6 §5.3)."""
    return charger_passwords.password_refusals("1.6", body)


def _reserve_now201(body: dict[str, Any]) -> Refusals:
    """2.0.1 H01: the reservation ``id`` is 0 or more, as 1.6's ``reservationId``
    (``kernel.schemas.NON_NEGATIVE``, where a name as common as ``id`` cannot be listed); the EVSE
    reserved, when named, is > 0: any EVSE is reserved by leaving ``evse_id`` out (H01), and an EVSE
    0 names none (its record would follow no EVSE's status or start). An expiry already past goes
    as asked: the reservation ends at once (the sweep, or the charger's Expired)."""
    found: Refusals = {}
    if isinstance(body.get("id"), int) and body["id"] < 0:
        found["id"] = ["Must be 0 or more."]
    if body.get("evse_id") == 0:
        found["evse_id"] = ["Must be greater than 0; leave evse_id out to reserve any EVSE."]
    return found


def _set_variables(body: dict[str, Any]) -> Refusals:
    """A charger's password (``charger_passwords``) it and the CSMS can use, and each attribute set
    once: the answer names attributes, not items, so the value of one set twice could not be told
    from the other's."""
    found: Refusals = charger_passwords.password_refusals("2.0.1", body)
    seen: set[str] = set()
    for index, item in enumerate(body.get("set_variable_data") or []):
        if not isinstance(item, dict):
            continue
        attribute = json.dumps(
            [item.get("component"), item.get("variable"), item.get("attribute_type", "Actual")], sort_keys=True
        ).lower()
        if attribute in seen:
            found[f"set_variable_data.{index}"] = ["This attribute is already set in this request."]
        seen.add(attribute)
    return found


# 2.0.1 ChargingProfilePurposeEnumType: the limits an external system (an energy manager) sets.
_EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"


def _set_profile(
    version: str, target: str, profile_field: str, station_max: str
) -> Callable[[dict[str, Any]], Refusals]:
    """1.6 §3.13 / §5.16 and 2.0.1 K01: a station maximum profile on connector/EVSE 0 only, a TxProfile
    on a connector/EVSE only (> 0) and in 2.0.1 naming its transaction (K01.FR.03; a 1.6 one without
    applies to the connector's transaction); the rules of any profile (``_profile_refusals``)."""

    def check(body: dict[str, Any]) -> Refusals:
        profile = body.get(profile_field)
        if not isinstance(profile, dict):
            return {}
        found = _profile_refusals(version, profile, profile_field)
        purpose, where = profile.get("charging_profile_purpose"), body.get(target)
        if purpose == station_max and where != 0:
            found[target] = [f"A {station_max} is set on {target} 0 (the whole station)."]
        if purpose == "TxProfile" and where == 0:
            found[target] = ["A TxProfile is set on a connector or EVSE (greater than 0), where its transaction is."]
        if version == "2.0.1" and purpose == "TxProfile" and "transaction_id" not in profile:
            found[f"{profile_field}.transaction_id"] = ["A TxProfile names the transaction it limits (K01.FR.03)."]
        return found

    return check


def _profile_refusals(version: str, profile: dict[str, Any], at: str) -> Refusals:
    """The rules of a charging profile (``at``: its field), set alone or with a remote start (1.6
    §7.8 ChargingProfile, 2.0.1 K01 and ChargingProfileType): none of the external constraints
    (K01.FR.22: the CSMS does not set them); a transaction id in a TxProfile only; a Recurring
    profile says how it recurs (``recurrency_kind``: Daily or Weekly); a validity that ends after it
    begins; in 2.0.1 one schedule but in a TxProfile (ChargingProfileType ``chargingSchedule``: more,
    up to 3, only for a TxProfile, the EV choosing among them over ISO 15118; no rule says which one
    another profile's limit would be), each of its own ``id`` (ChargingScheduleType: it identifies the
    schedule, the EV's choice among them reported by it); each schedule's (``_schedule_refusals``).
    A Relative station maximum (K01.FR.38) is sent as asked: the charger decides (independent
    chargers' scenarios send one)."""
    found: Refusals = {}
    purpose, kind = profile.get("charging_profile_purpose"), profile.get("charging_profile_kind")
    if purpose == _EXTERNAL_CONSTRAINTS:
        found[f"{at}.charging_profile_purpose"] = [
            f"{_EXTERNAL_CONSTRAINTS} is set by an external system, never by the CSMS (K01.FR.22)."
        ]
    if "transaction_id" in profile and purpose != "TxProfile":
        found[f"{at}.transaction_id"] = [f"Only a TxProfile names a transaction, not a {purpose}."]
    if kind == "Recurring" and "recurrency_kind" not in profile:
        found[f"{at}.recurrency_kind"] = ["Required for a Recurring profile: Daily or Weekly."]
    valid_from, valid_to = (parse_ocpp_time(profile.get(name)) for name in ("valid_from", "valid_to"))
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        found[f"{at}.valid_to"] = ["Must be after valid_from."]
    schedules = profile.get("charging_schedule")
    listed = schedules if isinstance(schedules, list) else [schedules]
    if version == "2.0.1" and len(listed) > 1 and purpose != "TxProfile":
        found[f"{at}.charging_schedule"] = [
            f"One schedule for a {purpose}: more (up to 3, for ISO 15118 to choose from) only in a TxProfile."
        ]
    ids: set[Any] = set()
    for index, schedule in enumerate(listed):
        where = f"{at}.charging_schedule" + (f".{index}" if isinstance(schedules, list) else "")
        found |= _schedule_refusals(version, kind, schedule, where)
        if version == "2.0.1" and isinstance(schedule, dict) and isinstance(schedule.get("id"), int):
            if schedule["id"] in ids:
                found[f"{where}.id"] = [
                    "Another schedule of this profile has this id: each is named by its own (ChargingScheduleType),"
                    " the one the EV chooses over ISO 15118 too."
                ]
            ids.add(schedule["id"])
    return found


def _schedule_refusals(version: str, kind: Any, schedule: Any, at: str) -> Refusals:
    """A charging schedule's rules: its periods (``_periods_checked``); in 2.0.1 no start
    (``start_schedule``) for a Relative profile (K01.FR.41), whose periods count from the
    transaction's start, and one for an Absolute or Recurring profile (K01.FR.40: a station rejects
    it without, its periods counting from no point in time; 1.6 §7.13 says no such thing, and its
    chargers count one without from the start of charging: sent as asked); a period's ``number_phases``
    1, 2 or 3 (1.6 §7.14 ChargingSchedulePeriod, 2.0.1 ChargingSchedulePeriodType: the phases an AC
    charge may use; 0 leaves a limit in W no current, more are not there), its ``phase_to_use`` (1, 2
    or 3) only with ``number_phases`` 1 (2.0.1 ChargingSchedulePeriodType; 3 when left out); in 2.0.1
    a ``limit`` and ``min_charging_rate`` of at most one decimal (``_one_decimal``)."""
    if not isinstance(schedule, dict):
        return {}
    found = _periods_checked(schedule, at)
    if version == "2.0.1" and kind == "Relative" and "start_schedule" in schedule:
        found[f"{at}.start_schedule"] = ["A Relative profile counts from the transaction's start: none (K01.FR.41)."]
    if version == "2.0.1" and kind in ("Absolute", "Recurring") and "start_schedule" not in schedule:
        found[f"{at}.start_schedule"] = [f"Required for a {kind} profile: when its periods start (K01.FR.40)."]
    if version == "2.0.1" and not _one_decimal(schedule.get("min_charging_rate")):
        found[f"{at}.min_charging_rate"] = [_ONE_DECIMAL]
    for index, period in enumerate(schedule.get("charging_schedule_period") or []):
        if not isinstance(period, dict):
            continue
        if version == "2.0.1" and not _one_decimal(period.get("limit")):
            found[f"{at}.charging_schedule_period.{index}.limit"] = [_ONE_DECIMAL]
        if period.get("number_phases", 3) not in (1, 2, 3):
            found[f"{at}.charging_schedule_period.{index}.number_phases"] = ["Must be 1, 2 or 3: the phases used."]
        if "phase_to_use" not in period:
            continue
        where = f"{at}.charging_schedule_period.{index}.phase_to_use"
        if period["phase_to_use"] not in (1, 2, 3):
            found[where] = ["Must be 1, 2 or 3: the phase used."]
        elif period.get("number_phases") != 1:
            found[where] = ["Only with number_phases 1: it names the one phase a single-phase charge uses."]
    return found


_ONE_DECIMAL = "At most one digit after the decimal point (e.g. 8.1)."


def _one_decimal(value: Any) -> bool:
    """2.0.1 ChargingSchedulePeriodType ``limit`` and ChargingScheduleType ``minChargingRate``
    "accept at most one digit fraction (e.g. 8.1)" (1.6's schema says it: ``multipleOf`` 0.1); a
    value that is no number is the schema's to refuse."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return True
    exact = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not exact.is_finite():
        return True  # ``schemas.value_errors`` refuses it
    exponent = exact.normalize().as_tuple().exponent  # 16.10: 161e-1; 1e27 (no remainder of its 28 digits)
    return isinstance(exponent, int) and exponent >= -1


def _periods_checked(schedule: Any, at: str) -> Refusals:
    """At least one period (1.6 §7.13 ChargingSchedule ``chargingSchedulePeriod`` 1..*, which its
    schema leaves unsaid; 2.0.1's says it), the first at 0 s, each after the one before."""
    periods = schedule.get("charging_schedule_period") if isinstance(schedule, dict) else None
    if periods == []:
        return {f"{at}.charging_schedule_period": ["At least one period: the schedule's limit from its start (0 s)."]}
    sent = [period.get("start_period") for period in periods or [] if isinstance(period, dict)]
    starts = [start for start in sent if isinstance(start, int)]
    if not starts or len(starts) != len(sent):
        return {}  # the schema's errors name them
    if starts[0] != 0:
        return {f"{at}.charging_schedule_period.0.start_period": ["The first period starts at 0."]}
    for index in range(1, len(starts)):
        if starts[index] <= starts[index - 1]:
            return {f"{at}.charging_schedule_period.{index}.start_period": ["Must be after the period before."]}
    return {}


def _time_window(holder: str, start: str, end: str) -> Callable[[dict[str, Any]], Refusals]:
    """1.6 §5.9 / §6.25 GetDiagnostics (startTime, stopTime) and 2.0.1 N01 GetLog (log.oldestTimestamp,
    log.latestTimestamp): the logging to include runs from the first time to the second, so the
    second is not before the first. ``holder``: the object holding them ('' for the body)."""

    def check(body: dict[str, Any]) -> Refusals:
        times = body.get(holder) if holder else body
        if not isinstance(times, dict):
            return {}
        first, last = parse_ocpp_time(times.get(start)), parse_ocpp_time(times.get(end))
        if first is None or last is None or last >= first:
            return {}
        return {".".join(filter(None, (holder, end))): [f"Must not be before {start}."]}

    return check


def _location201(holder: str, field: str) -> Callable[[dict[str, Any]], Refusals]:
    """2.0.1 L01 UpdateFirmware (``firmware.location``) and N01 GetLog (``log.remoteLocation``): a
    URI (their data type, which the 2.0.1 schemas leave a ``string``; 1.6's say ``format: uri``, and
    ``schemas.value_errors`` refuses those): where the charger downloads the image or uploads the
    log, so an absolute one (``schemas.uri_error``). An empty or relative one was sent and accepted,
    the download or upload failing later at the charger."""

    def check(body: dict[str, Any]) -> Refusals:
        location = (body.get(holder) or {}).get(field)
        refused = schemas.uri_error(location) if isinstance(location, str) else None
        return {f"{holder}.{field}": [refused]} if refused else {}

    return check


_FIRMWARE_LOCATION = _location201("firmware", "location")


def _update_firmware201(body: dict[str, Any]) -> Refusals:
    """2.0.1 L01 UpdateFirmware: its download location (``_location201``), and its
    ``firmware.signature``, "Base64 encoded firmware signature" (FirmwareType; the schema leaves it a
    string): one that is not (a signature pasted as hex with a ``0x``, or with its ``openssl``
    header) was sent and accepted, the station downloading the whole image to fail it
    ``InvalidSignature``. Lines (a signature wrapped as ``base64`` prints it) are read as MIME does."""
    signature = (body.get("firmware") or {}).get("signature")
    if isinstance(signature, str) and not _base64(signature):
        return _FIRMWARE_LOCATION(body) | {"firmware.signature": ["Must be Base64 (the firmware's signature)."]}
    return _FIRMWARE_LOCATION(body)


def _base64(text: str) -> bool:
    """Whether ``text`` is Base64 (RFC 4648, padded) of at least one byte, line breaks aside."""
    joined = "".join(text.split())
    try:
        return bool(joined) and bool(binascii.a2b_base64(joined, strict_mode=True))
    except binascii.Error:
        return False


_LOG_LOCATION = _location201("log", "remote_location")
_LOG_WINDOW = _time_window("log", "oldest_timestamp", "latest_timestamp")


def _get_log201(body: dict[str, Any]) -> Refusals:
    """2.0.1 N01 GetLog: its upload location (``_location201``) and its time window (``_time_window``)."""
    return _LOG_LOCATION(body) | _LOG_WINDOW(body)


def _request_stop(body: dict[str, Any]) -> Refusals:
    """2.0.1 F03: the transaction to stop is named by its id; an empty one names none."""
    if body.get("transaction_id") == "":
        return {"transaction_id": ["Must name the transaction to stop; it is empty."]}
    return {}


def _transaction_status(body: dict[str, Any]) -> Refusals:
    """2.0.1 E14: ``transaction_id`` names the transaction whose messages are asked about; the
    charger's queue as a whole is asked about by leaving it out (an empty one names none)."""
    if body.get("transaction_id") == "":
        return {"transaction_id": ["Must name a transaction; leave transaction_id out to ask about every one."]}
    return {}


# 2.0.1 ClearChargingProfileType: the criteria that say which profiles a ClearChargingProfile clears.
_CLEAR_CRITERIA = ("evse_id", "stack_level", "charging_profile_purpose")


def _clear_profile201(body: dict[str, Any]) -> Refusals:
    """2.0.1 K10.FR.02: a ClearChargingProfile names the profiles it clears, by ``charging_profile_id``
    or by one criterion at least (``_CLEAR_CRITERIA``): without either (``{}``, or empty criteria,
    which the schema allows) a station is left to guess, clearing every profile (the site's failsafe
    and every session's limit with them) or none. K10.FR.06: the CSMS does not clear the profiles of
    purpose ChargingStationExternalConstraints (an external system sets and clears them), so its
    criteria never name that purpose."""
    criteria = body.get("charging_profile_criteria")
    if "charging_profile_id" not in body and not (
        isinstance(criteria, dict) and any(name in criteria for name in _CLEAR_CRITERIA)
    ):
        return {
            "charging_profile_criteria": [
                "Name the profiles to clear: charging_profile_id, or at least one of evse_id, stack_level"
                " and charging_profile_purpose here (K10.FR.02)."
            ]
        }
    if isinstance(criteria, dict) and criteria.get("charging_profile_purpose") == _EXTERNAL_CONSTRAINTS:
        return {
            "charging_profile_criteria.charging_profile_purpose": [
                f"{_EXTERNAL_CONSTRAINTS} is cleared by the external system that set it, never by the CSMS (K10.FR.06)."
            ]
        }
    return {}


# 2.0.1 ChargingProfileCriterionType: what a GetChargingProfiles asks about (its EVSE is no criterion).
_GET_CRITERIA = ("charging_profile_id", "stack_level", "charging_limit_source", "charging_profile_purpose")


def _get_profiles201(body: dict[str, Any]) -> Refusals:
    """2.0.1 K09.FR.03: a GetChargingProfiles' ``charging_profile`` names the profiles asked about, by
    their ids or by one of ``stack_level``, ``charging_limit_source`` and ``charging_profile_purpose``
    at least (``_GET_CRITERIA``); an empty one (the schema allows it, ``evse_id`` beside it or not)
    asks about nothing the spec defines."""
    criterion = body.get("charging_profile")
    if isinstance(criterion, dict) and not any(name in criterion for name in _GET_CRITERIA):
        return {
            "charging_profile": [
                "Name the profiles asked about: charging_profile_id, or at least one of stack_level,"
                " charging_limit_source and charging_profile_purpose (K09.FR.03); every profile is"
                ' charging_limit_source ["EMS", "Other", "SO", "CSO"].'
            ]
        }
    return {}


def _trigger_message201(body: dict[str, Any]) -> Refusals:
    """2.0.1 F06.FR.13: a TriggerMessage for a StatusNotification names its EVSE (``evse``; its
    connector too, or the station reports each of the EVSE's): a station reports statuses per
    connector, never for itself as a whole."""
    if body.get("requested_message") == "StatusNotification" and "evse" not in body:
        return {"evse": ["Required for a StatusNotification (F06.FR.13): statuses are reported per connector."]}
    return {}


def _reset201(body: dict[str, Any]) -> Refusals:
    """2.0.1 B12 (ResetRequest): ``evse_id`` names one EVSE (> 0) to reset; the whole station is
    reset by leaving it out."""
    if body.get("evse_id") == 0:
        return {"evse_id": ["Must be greater than 0; leave evse_id out to reset the whole station."]}
    return {}


_RULES: dict[tuple[str, str], Callable[[dict[str, Any]], Refusals]] = {
    ("1.6", "SetChargingProfile"): _set_profile("1.6", "connector_id", "cs_charging_profiles", "ChargePointMaxProfile"),
    ("2.0.1", "SetChargingProfile"): _set_profile("2.0.1", "evse_id", "charging_profile", "ChargingStationMaxProfile"),
    ("1.6", "ChangeConfiguration"): _change_configuration,
    ("2.0.1", "SetVariables"): _set_variables,
    ("1.6", "UnlockConnector"): _unlock("connector_id"),
    ("2.0.1", "UnlockConnector"): _unlock("evse_id", "connector_id"),
    ("1.6", "RemoteStartTransaction"): _remote_start("1.6", "connector_id"),
    ("2.0.1", "RequestStartTransaction"): _remote_start("2.0.1", "evse_id"),
    ("1.6", "SendLocalList"): _local_list("list_version", "id_tag_info", _token16),
    ("2.0.1", "SendLocalList"): _local_list("version_number", "id_token_info", _token201),
    ("1.6", "GetDiagnostics"): _time_window("", "start_time", "stop_time"),
    ("2.0.1", "GetLog"): _get_log201,
    ("2.0.1", "UpdateFirmware"): _update_firmware201,
    ("2.0.1", "RequestStopTransaction"): _request_stop,
    ("2.0.1", "GetTransactionStatus"): _transaction_status,
    ("2.0.1", "Reset"): _reset201,
    ("2.0.1", "TriggerMessage"): _trigger_message201,
    ("2.0.1", "ClearChargingProfile"): _clear_profile201,
    ("2.0.1", "GetChargingProfiles"): _get_profiles201,
    ("2.0.1", "ReserveNow"): _reserve_now201,
}
