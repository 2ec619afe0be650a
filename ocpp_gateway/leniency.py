"""Which schema violations the CSMS accepts (and records) instead of refusing the message.

Messages that carry or end a session (1.6 StartTransaction, StopTransaction, MeterValues; 2.0.1
TransactionEvent, MeterValues) are never refused, in any profile, for what the CSMS can
interpret: a string over its ``maxLength``, an enum value it does not know (kept as text), a
number sent as a string or a string as a number (converted), a required field it has a safe
default for, an optional field sent as ``null`` (absent), a field the schema does not name (left
out), a list of objects sent as its one object (that list), a 2.0.1 sampled value that is no
number (kept raw, as a 1.6 one: ``unparseable_value``; in either version a boolean, object or
list there as its JSON text). A refused stop is retried forever while the session stays open; a
refused meter value loses energy.
Only a message the CSMS cannot apply at all (no session id, an eventType it does not know, a
required field null or missing without a default) keeps its CALLERROR.

Other messages: a lenient charger model's message is accepted when every violation is harmless
(an enum value or an over-long string at a place the CSMS stores as text; vendor text, 1.6 DataTransfer
``data``, sent as another JSON value: handled as its JSON text).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, cast

from jsonschema.exceptions import ValidationError

from chargepoints.services.profiles import ReceivedViolation
from kernel import ocpp_package, schema_errors, schemas
from kernel.timestamps import format_ocpp_time

# An empty list where the schema wants one item at least ("meterValue": [], a firmware with no
# measurands configured) is kept: it holds nothing to apply, and refusing it left an Ended unapplied.
_HARMLESS_KEYWORDS = {"enum", "maxLength", "minItems"}

_SAMPLED_16 = {"measurand": 64, "phase": 8, "unit": 20, "context": 32, "location": 16, "format": 16}
_SAMPLED_201 = {"measurand": 64, "phase": 8, "context": 32, "location": 16, "unitOfMeasure/unit": 20}


def _sampled(prefix: str, columns: dict[str, int]) -> dict[str, int]:
    return {f"{prefix}/*/sampledValue/*/{name}": length for name, length in columns.items()}


# An id tag a lenient model's Authorize sends over its maxLength is read up to this many characters:
# more than any registered tag holds (36), so a longer one still matches none.
_AUTHORIZED_WHOLE = 255

# (version, action) -> payload path ("*" for any array index) -> characters the CSMS stores there.
_STORED: dict[tuple[str, str], dict[str, int]] = {
    ("1.6", "BootNotification"): {
        "chargePointVendor": 50,
        "chargePointModel": 50,
        "chargePointSerialNumber": 50,
        "chargeBoxSerialNumber": 50,
        "firmwareVersion": 50,
        "iccid": 20,
        "imsi": 20,
        "meterType": 25,
        "meterSerialNumber": 25,
    },
    ("1.6", "StatusNotification"): {"errorCode": 50, "info": 50, "vendorId": 255, "vendorErrorCode": 50},
    # Firmware of the security whitepaper sends its statuses (InstallRebooting, UploadFailure, ...)
    # in the plain notifications too: followed as the signed ones are (``v16.firmware``); a status no
    # version lists is acknowledged and changes nothing. 32: ``CampaignTarget.status``, ``LogUpload.status``.
    ("1.6", "FirmwareStatusNotification"): {"status": 32},
    ("1.6", "DiagnosticsStatusNotification"): {"status": 32},
    ("1.6", "SignedFirmwareStatusNotification"): {"status": 32},
    ("1.6", "LogStatusNotification"): {"status": 32},
    ("2.0.1", "FirmwareStatusNotification"): {"status": 32},
    ("2.0.1", "LogStatusNotification"): {"status": 32},
    ("2.0.1", "BootNotification"): {
        "chargingStation/vendorName": 50,
        "chargingStation/model": 50,
        "chargingStation/serialNumber": 50,
        "chargingStation/firmwareVersion": 50,
        "chargingStation/modem/iccid": 20,
        "chargingStation/modem/imsi": 20,
    },
    # Authorize: a registered tag (up to 36 characters) over 1.6's 20 or a token over 2.0.1's 36, as
    # the model's StartTransaction or TransactionEvent sends it, answered as those are (a CALLERROR
    # left its card unable to start). Cut only beyond any registered tag: still answered Invalid/Unknown.
    ("1.6", "Authorize"): {"idTag": _AUTHORIZED_WHOLE},
    ("2.0.1", "Authorize"): {"idToken/idToken": _AUTHORIZED_WHOLE},
    # Session messages: id tags are kept whole here (the services store their first 36 characters
    # after authorizing the whole tag, which then matches no registered tag).
    ("1.6", "StartTransaction"): {},
    ("1.6", "StopTransaction"): {"reason": 32, **_sampled("transactionData", _SAMPLED_16)},
    ("1.6", "MeterValues"): _sampled("meterValue", _SAMPLED_16),
    ("2.0.1", "TransactionEvent"): {
        "transactionInfo/transactionId": 36,
        "transactionInfo/stoppedReason": 32,
        "idToken/type": 20,
        **_sampled("meterValue", _SAMPLED_201),
    },
    ("2.0.1", "MeterValues"): _sampled("meterValue", _SAMPLED_201),
}
# Vendor text the CSMS passes on as it is (1.6 DataTransfer ``data``, a string): a lenient model's value
# there that is no string (an object, an array, a number: firmware that sends its JSON unquoted) is
# kept as its JSON text; one sent as ``null`` is left out (as if not sent: the field is optional).
_JSON_TEXT: dict[tuple[str, str], frozenset[str]] = {("1.6", "DataTransfer"): frozenset({"data"})}
SESSION_ACTIONS = frozenset(
    {
        ("1.6", "StartTransaction"),
        ("1.6", "StopTransaction"),
        ("1.6", "MeterValues"),
        ("2.0.1", "TransactionEvent"),
        ("2.0.1", "MeterValues"),
    }
)
# Enums that decide what the CSMS does with the message: an unknown value cannot be applied.
_DECISIVE = {("2.0.1", "TransactionEvent"): {"eventType"}}


def _received_time(received_at: datetime) -> str:
    return format_ocpp_time(received_at)


def _not_read(received_at: datetime) -> None:
    return None


def _receipt_in_the_handler(received_at: datetime) -> None:
    """Left out: the handler takes the receipt, knowing no time was sent (a 1.6 start or stop
    resent after a lost answer is then the same as its first copy, not one a new receipt dates)."""
    return None


def _last_reading_in_the_handler(received_at: datetime) -> None:
    """Left out: a 1.6 stop without ``meterStop`` (firmware that does not know its register at the
    stop, or sends ``null``) ends its session at its last register reading, as a 2.0.1 Ended does
    (``charging.services.transaction_stop``): refused, the stop would be retried for ever."""
    return None


# Required fields a session message may leave out: the default the CSMS uses (the time of receipt),
# or None where the CSMS does not read the field (it stays out).
_DEFAULTS: dict[tuple[str, str], dict[str, Callable[[datetime], str | None]]] = {
    ("1.6", "StartTransaction"): {"timestamp": _receipt_in_the_handler},
    ("1.6", "StopTransaction"): {
        "timestamp": _receipt_in_the_handler,
        "meterStop": _last_reading_in_the_handler,
        "transactionData/*/timestamp": _received_time,
    },
    ("1.6", "MeterValues"): {"meterValue/*/timestamp": _received_time},
    ("2.0.1", "TransactionEvent"): {
        "timestamp": _received_time,
        "triggerReason": _not_read,
        "idToken/type": _not_read,  # a token without a type matches a registered tag of any type
        "meterValue/*/timestamp": _received_time,
    },
    ("2.0.1", "MeterValues"): {"meterValue/*/timestamp": _received_time},
}


# A change that removes the field at its path (``_changed``).
_LEFT_OUT = object()


@dataclass(frozen=True)
class Accepted:
    """A message accepted despite its violations: the payload to handle, and what to record."""

    payload: dict[str, Any]
    violations: list[ReceivedViolation]


def accepted(*, ocpp_version: str, action: str, payload: Any, lenient: bool, received_at: datetime) -> Accepted | None:
    """The payload to handle and its violations, when every violation may be accepted; None when
    the payload is valid or (not a session message) has a violation the profile does not accept:
    the package's validation then answers it.

    Raises the CALLERROR of a session message's first violation the CSMS cannot absorb (not that
    of an over-long string next to it).

    Python reads only the parts the compiled schema rejects, and of a kept violation (an enum value,
    an over-long string) only its first place: a 60 KB MeterValues whose every sampledValue holds
    one costs a few ms, not hundreds (``schema_errors.errors``).
    """
    key = (ocpp_version, action)
    if not isinstance(payload, dict) or (
        key not in SESSION_ACTIONS and not (lenient and (_STORED.get(key) or key in _JSON_TEXT))
    ):
        return None
    place = ocpp_package.request_place(ocpp_version, action)
    if key not in SESSION_ACTIONS:
        return _harmless(key, place, payload)
    return _absorbed(key, place, payload, received_at)


def _harmless(key: tuple[str, str], place: schema_errors.Place, payload: dict[str, Any]) -> Accepted | None:
    """A lenient model's message whose every violation is harmless, with its violations; else None.
    Vendor text sent as another JSON value (``_JSON_TEXT``) is handled as its JSON text."""
    errors = []
    changes: list[tuple[list[Any], Any]] = []
    for error in schema_errors.errors(place, payload, omissible=_kept_groups(key, place, harmless_only=True)):
        if _json_text(key, error):
            value = error.instance
            changes.append((list(error.absolute_path), _LEFT_OUT if value is None else json.dumps(value)))
        elif not _kept(key, error, harmless_only=True):
            return None
        errors.append(error)
    if not errors:
        return None
    return Accepted(truncated(_changed(payload, changes), ocpp_version=key[0], action=key[1]), _violations(errors))


def _json_text(key: tuple[str, str], error: ValidationError) -> bool:
    """A string of ``_JSON_TEXT`` sent as another JSON value."""
    return (
        error.validator == "type"
        and error.validator_value == "string"
        and _path(error, any_index=True) in _JSON_TEXT.get(key, frozenset())
    )


def _absorbed(
    key: tuple[str, str],
    place: schema_errors.Place,
    payload: dict[str, Any],
    received_at: datetime,
    listed: tuple[ValidationError, ...] = (),
) -> Accepted | None:
    """A session message with its violations mended (``_fixed``) or kept, and its violations.
    ``listed``: the lists sent as their one item that an earlier walk made lists (``_single_item``)."""
    kept = _kept_groups(key, place)
    errors: list[ValidationError] = list(listed)
    changes: list[tuple[list[Any], Any]] = []
    single: list[ValidationError] = []
    for error in schema_errors.errors(place, payload, omissible=kept):
        if _single_item(error):
            single.append(error)
            continue
        if not (_kept(key, error) or _fixed(key, error, changes, received_at)):
            raise ocpp_package.violation_refusal(error)
        errors.append(error)
    if single:  # walked again as lists: what their item holds is checked only then (each walk goes deeper)
        relisted = _changed(payload, [(list(error.absolute_path), [error.instance]) for error in single])
        return _absorbed(key, place, relisted, received_at, (*listed, *single))
    if not errors:
        return None
    fixed = _changed(payload, changes)
    # A required field sent as null is left out above: its object then misses it, and is left out as
    # one sent without it is (``"evse": {"id": null}`` as ``"evse": {}``, ``_incomplete_left_out``);
    # the payload is then checked once more.
    emptied: list[tuple[list[Any], Any]] = []
    for error in schema_errors.errors(place, fixed, omissible=kept, first_kept=False):
        if _kept(key, error) or _left_out(key, error) or _raw_reading(key, error):
            continue
        left_out = _incomplete_left_out(key, list(error.absolute_path)) if error.validator == "required" else None
        if left_out is not None:
            emptied.append((left_out, _LEFT_OUT))
            continue
        raise ocpp_package.violation_refusal(error)
    if emptied:
        fixed = _changed(fixed, emptied)
        for error in schema_errors.errors(place, fixed, omissible=kept, first_kept=False):
            if not (_kept(key, error) or _left_out(key, error) or _raw_reading(key, error)):
                raise ocpp_package.violation_refusal(error)
    return Accepted(truncated(fixed, ocpp_version=key[0], action=key[1]), _violations(errors))


def _single_item(error: ValidationError) -> bool:
    """A list of objects sent as its one object (``"meterValue": {"timestamp": ..., "sampledValue": [...]}``:
    a Huawei wallbox's MeterValues, lbbrhzn/ocpp#1144): that one item where a list of them belongs is
    the list of it, nothing to guess (refused, every reading of the charger was lost, a stop so sent
    retried for ever). A list of other values (``"sampledValue": "12"``) keeps its refusal."""
    return error.validator == "type" and error.validator_value == "array" and isinstance(error.instance, dict)


def received_violations(errors: list[ValidationError]) -> list[ReceivedViolation]:
    """Schema errors as the violations a lenient profile records (values as they were sent)."""
    return [
        ReceivedViolation(path=_path(error), validator=str(error.validator), value=schemas.plain(error.instance))
        for error in errors
    ]


# Paths of identifiers among ``_STORED``'s: cut, they keep a digest of the whole (``_fitted``).
_IDENTIFIERS = frozenset({"transactionInfo/transactionId"})


def truncated(payload: dict[str, Any], *, ocpp_version: str, action: str) -> dict[str, Any]:
    """``payload`` with its strings cut to what the CSMS stores (``_fitted``): ``payload`` itself
    when none is longer, else a copy of what changes that shares the rest (``_changed``)."""
    over = schema_errors.errors(_stored_place(ocpp_version, action), payload)
    return _changed(payload, [_cut(error) for error in over])


def _cut(error: ValidationError) -> tuple[list[Any], str]:
    """A string longer than the CSMS stores (a ``maxLength`` error of ``_stored_place``): where it is, what is kept."""
    text, length = cast(str, error.instance), cast(int, error.validator_value)
    return list(error.absolute_path), _fitted(text, length, identifier=_path(error, any_index=True) in _IDENTIFIERS)


@functools.cache
def _stored_place(ocpp_version: str, action: str) -> schema_errors.Place:
    """``_STORED`` as a schema, its lengths as ``maxLength``: its errors are the strings to cut."""
    schema: dict[str, Any] = {}
    for path, length in _STORED.get((ocpp_version, action), {}).items():
        node = schema
        for part in path.split("/"):
            node = (
                node.setdefault("items", {}) if part == "*" else node.setdefault("properties", {}).setdefault(part, {})
            )
        node["maxLength"] = length
    return schema_errors.place_of(schema)


def _changed(payload: dict[str, Any], changes: list[tuple[list[Any], Any]]) -> dict[str, Any]:
    """``payload`` with the value at each path of ``changes`` set: the dicts and lists on a changed
    path are copies, the rest is shared, ``payload`` stays as it was."""
    if not changes:
        return payload
    copies: set[int] = set()

    def own(node: Any) -> Any:
        if id(node) in copies:
            return node
        copied = node.copy()
        copies.add(id(copied))
        return copied

    result = own(payload)
    for path, value in changes:
        node = result
        for part in path[:-1]:
            node[part] = own(node[part])
            node = node[part]
        if value is _LEFT_OUT:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return result


def _fitted(text: str, length: int, *, identifier: bool) -> str:
    """``text`` cut to ``length`` characters; an identifier (a 2.0.1 transactionId) keeps its first
    characters, ``~`` and 8 hex digits of the SHA-256 of the whole: two ids sharing their first 36
    characters stay two sessions, and a resend of one is still its session."""
    if len(text) <= length or not identifier:
        return text[:length]
    return text[: length - 9] + "~" + hashlib.sha256(text.encode()).hexdigest()[:8]


def boot_identity(*, ocpp_version: str, payload: Any) -> tuple[str, str, str]:
    """(vendor, model, firmware version) a BootNotification names, "" where it names none."""
    station = payload.get("chargingStation") if ocpp_version == "2.0.1" and isinstance(payload, dict) else payload
    if not isinstance(station, dict):
        return "", "", ""
    keys = ("vendorName", "model") if ocpp_version == "2.0.1" else ("chargePointVendor", "chargePointModel")
    values = [station.get(key) for key in (*keys, "firmwareVersion")]
    vendor, model, firmware = (value if isinstance(value, str) else "" for value in values)
    return vendor, model, firmware


def _kept(key: tuple[str, str], error: ValidationError, *, harmless_only: bool = False) -> bool:
    """A violation accepted with the value as sent: an unknown enum value, an over-long string."""
    return _kept_at(key, (_path(error, any_index=True), str(error.validator)), harmless_only=harmless_only)


def _kept_at(key: tuple[str, str], group: schema_errors.Group, *, harmless_only: bool = False) -> bool:
    """Whether the violations of a keyword at a place (``meterValue/*/sampledValue/*/unit``, ``enum``) are kept."""
    path, keyword = group
    if keyword not in _HARMLESS_KEYWORDS:
        return False
    if harmless_only:
        return path in _STORED.get(key, {})
    return keyword != "enum" or path not in _DECISIVE.get(key, set())


@functools.cache
def _kept_groups(
    key: tuple[str, str], place: schema_errors.Place, *, harmless_only: bool = False
) -> frozenset[schema_errors.Group]:
    """The keywords at places of ``place`` whose violations are kept: after the first, Python need not read them."""
    return frozenset(group for group in place.groups if _kept_at(key, group, harmless_only=harmless_only))


def _fixed(
    key: tuple[str, str], error: ValidationError, changes: list[tuple[list[Any], Any]], received_at: datetime
) -> bool:
    """Mend one violation: add to ``changes`` (path, value) the converted type of a value, a field's
    default, or ``_LEFT_OUT`` for a field the schema does not name or sent as ``null`` (absent: a
    required one is then refused by the second pass unless it has a default). False if it cannot be
    mended."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        changes.extend((place, _LEFT_OUT) for place, _ in _places(error))
        return True
    if error.validator == "type" and _raw_reading(key, error):
        if error.instance is None:
            changes.append((path, "null"))  # stored as the JSON it was
        elif (converted := _converted(error.instance, error.validator_value)) is not None:
            changes.append((path, converted))
        elif not isinstance(error.instance, str):  # true, an object, a list: stored as the JSON it was
            changes.append((path, json.dumps(error.instance)))
        return True
    if error.validator == "type" and error.instance is None and path and isinstance(path[-1], str):
        default = _DEFAULTS.get(key, {}).get(_joined(path, any_index=True))
        value = default(received_at) if default else None
        changes.append((path, _LEFT_OUT if value is None else value))
        return True
    if error.validator == "type":
        converted = _converted(error.instance, error.validator_value)
        if converted is None and (_fraction_left_out(key, error) or _flag_left_out(key, error)):
            converted = _LEFT_OUT
        if converted is None:
            return False
        changes.append((path, converted))
        return True
    if error.validator == "required":
        defaults = _DEFAULTS.get(key, {})
        parent = list(error.absolute_path)
        fields = {name: _joined([*parent, name], any_index=True) for name in _missing(error)}
        if any(field not in defaults for field in fields.values()):
            left_out = _incomplete_left_out(key, parent)
            if left_out is None:
                return False
            changes.append((left_out, _LEFT_OUT))
            return True
        for name, field in fields.items():
            value = defaults[field](received_at)
            if value is not None:
                changes.append(([*parent, name], value))
        return True
    return False


_READINGS = frozenset({"meterValue/*/sampledValue/*/value", "transactionData/*/sampledValue/*/value"})

# Optional whole numbers a session does not hang on, sent with a fraction (a charger's float) or as a
# value no reading makes a whole number (``""``, ``"n/a"``, ``true``): left out, as if not sent (a
# refused Ended left its session open, resent forever). Not the numbers that place a message or a
# reading (connectorId, EVSE id, seqNo, a reading's multiplier): no guess there.
_FRACTIONS_LEFT_OUT: dict[tuple[str, str], frozenset[str]] = {
    ("1.6", "StartTransaction"): frozenset({"reservationId"}),
    ("1.6", "MeterValues"): frozenset({"transactionId"}),  # then the connector's open session, as an unknown id
    ("2.0.1", "TransactionEvent"): frozenset(
        {
            "transactionInfo/timeSpentCharging",
            "transactionInfo/remoteStartId",
            "reservationId",
            "numberOfPhasesUsed",
            "cableMaxCurrent",
            "evse/connectorId",
        }
    ),
}


# Optional flags a session does not hang on, sent as a value no reading makes a boolean (``"offline":
# "yes"``): left out, as if not sent (the 2.0.1 flag only tells how the event was queued).
_FLAGS_LEFT_OUT: dict[tuple[str, str], frozenset[str]] = {("2.0.1", "TransactionEvent"): frozenset({"offline"})}


def _flag_left_out(key: tuple[str, str], error: ValidationError) -> bool:
    """An optional flag of ``_FLAGS_LEFT_OUT`` sent as a value ``_converted`` cannot read as a boolean."""
    return error.validator_value == "boolean" and _path(error, any_index=True) in _FLAGS_LEFT_OUT.get(key, frozenset())


def _fraction_left_out(key: tuple[str, str], error: ValidationError) -> bool:
    """An optional whole number of ``_FRACTIONS_LEFT_OUT`` sent as a number with a fraction, or as a
    value ``_converted`` cannot read as one."""
    return error.validator_value == "integer" and _path(error, any_index=True) in _FRACTIONS_LEFT_OUT.get(
        key, frozenset()
    )


# Optional objects a session message may do without, left out when they miss a field they require
# (``"evse": {}``, ``"customData": {}``, a ``signedMeterValue`` without its data): refused, an Ended
# left its session open, resent forever. The reading a signedMeterValue signs is counted all the same.
_INCOMPLETE_LEFT_OUT: dict[tuple[str, str], frozenset[str]] = {
    ("2.0.1", "TransactionEvent"): frozenset(
        {"evse", "idToken", "meterValue/*/sampledValue/*/signedMeterValue", "meterValue/*/sampledValue/*/unitOfMeasure"}
    ),
    ("2.0.1", "MeterValues"): frozenset(
        {"meterValue/*/sampledValue/*/signedMeterValue", "meterValue/*/sampledValue/*/unitOfMeasure"}
    ),
}


# Lists of objects the CSMS never reads, left out whole when one of their items misses a field it
# requires (an item alone cannot be: the others' places would move).
_INCOMPLETE_LISTS_LEFT_OUT: dict[tuple[str, str], frozenset[str]] = {
    ("2.0.1", "TransactionEvent"): frozenset({"idToken/additionalInfo"}),
}


def _incomplete_left_out(key: tuple[str, str], parent: list[Any]) -> list[Any] | None:
    """What is left out for the object at ``parent`` that misses a field it requires: the object,
    when one of ``_INCOMPLETE_LEFT_OUT`` or a ``customData`` anywhere (the CSMS reads none); its list,
    when an item of ``_INCOMPLETE_LISTS_LEFT_OUT``; else None (refused)."""
    if not parent or key not in _INCOMPLETE_LEFT_OUT:
        return None
    if parent[-1] == "customData" or _joined(parent, any_index=True) in _INCOMPLETE_LEFT_OUT[key]:
        return parent
    if isinstance(parent[-1], int) and _joined(parent[:-1]) in _INCOMPLETE_LISTS_LEFT_OUT.get(key, frozenset()):
        return parent[:-1]
    return None


def _raw_reading(key: tuple[str, str], error: ValidationError) -> bool:
    """A sampled value that is no number (2.0.1 ``"n/a"``; ``null``, ``true``, an object or a list in
    either version): kept as sent (as its JSON text where it is no text), stored raw with no number
    (``unparseable_value``), so the message and its session still apply (a stop refused for it was
    resent forever, its session left open)."""
    return error.validator == "type" and _path(error, any_index=True) in _READINGS


def _left_out(key: tuple[str, str], error: ValidationError) -> bool:
    """A required field the CSMS does not read, left out."""
    defaults = _DEFAULTS.get(key, {})
    return error.validator == "required" and all(
        _joined([*error.absolute_path, name], any_index=True) in defaults for name in _missing(error)
    )


def _missing(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [name for name in error.validator_value if name not in instance]  # type: ignore[union-attr]  # a raised error has it


# A boolean sent as text or as a number, as ``_converted`` reads it.
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}


def _converted(value: Any, expected: Any) -> Any:
    """``value`` as the type the schema expects, when it says the same: 2000 -> "2000", "1" -> 1,
    "true" -> true (2.0.1 ``"offline": "true"``), 1 or "1" -> true and 0 or "0" -> false where a
    boolean belongs (a firmware writing its booleans as numbers)."""
    kinds = expected if isinstance(expected, list) else [expected]
    if isinstance(value, bool):
        return None
    if "boolean" in kinds and isinstance(value, (str, int)):
        return _BOOLEANS.get(str(value).strip().lower())
    if isinstance(value, (int, float)) and "string" in kinds:
        return json.dumps(value)
    number = _number(value)
    if number is None:
        return None
    if "integer" in kinds and number == number.to_integral_value():
        return int(number)
    if "number" in kinds:
        return int(number) if number == number.to_integral_value() else number
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, (str, int)):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() and abs(number.adjusted()) < 30 else None


def _violations(errors: list[ValidationError]) -> list[ReceivedViolation]:
    """One violation per kind and place (``meterValue/*/sampledValue/*/value`` once per message),
    with the path and value of its first occurrence."""
    first: dict[tuple[str, str], ReceivedViolation] = {}
    for error in errors:
        for parts, value in _places(error):
            violation = ReceivedViolation(path=_joined(parts), validator=str(error.validator), value=value)
            first.setdefault((_joined(parts, any_index=True), violation.validator), violation)
    return list(first.values())


def _places(error: ValidationError) -> list[tuple[list[Any], Any]]:
    """Where a violation is and the value there: each field a ``required`` error misses (value ""),
    each field an ``additionalProperties`` error names (its value), else the error's own."""
    path = list(error.absolute_path)
    if error.validator == "required":
        return [([*path, name], "") for name in _missing(error)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        named = cast(dict[str, Any], error.schema).get("properties", {})
        return [([*path, name], value) for name, value in error.instance.items() if name not in named]
    return [(path, error.instance)]


def _path(error: ValidationError, *, any_index: bool = False) -> str:
    """Where the error is, e.g. ``meterValue/0/sampledValue/1/unit`` (``meterValue/*/...`` for ``any_index``)."""
    return _joined(list(error.absolute_path), any_index=any_index)


def _joined(parts: list[Any], *, any_index: bool = False) -> str:
    return "/".join("*" if any_index and isinstance(part, int) else str(part) for part in parts)
