"""The OCPP JSON schemas for what the CSMS checks itself: its own commands and chargers' answers.

Schemas and payloads are both parsed with ``Decimal`` numbers, so OCPP 1.6's ``multipleOf 0.1``
holds for 10.1 (a float would not be a multiple of 0.1) and no float ever meets a Decimal inside a
validator. These validators have their own cache: the ``ocpp`` package's cache is keyed without the
number parser and holds the gateway's adjusted validators for inbound CALLs (``relaxed_schemas``).

A payload without a float (most commands and their answers: strings, integers, booleans) is first
checked by a compiled form of its schema (jsonschema-rs): one it finds valid has no errors, without
converting the payload or walking it in Python (issue 15); any other payload goes to the Decimal
validator.
"""

from __future__ import annotations

import copy
import decimal
import functools
import json
import re
from collections.abc import Iterator
from typing import Any, cast

import jsonschema_rs
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from kernel import ocpp_package, payload_case, schema_errors
from kernel.timestamps import format_ocpp_time, parse_ocpp_time, parse_sent_time


@functools.cache
def _validator(ocpp_version: str, schema_name: str) -> Draft4Validator:
    path = ocpp_package.schema_path(ocpp_version, schema_name)
    return Draft4Validator(json.loads(path.read_text(encoding="utf-8-sig"), parse_float=decimal.Decimal))


@functools.cache
def _compiled(ocpp_version: str, schema_name: str) -> Any:
    """The schema compiled (jsonschema-rs, formats unchecked as jsonschema's are here); None if it
    will not compile. Its numbers are floats: only float-free payloads are checked with it."""
    path = ocpp_package.schema_path(ocpp_version, schema_name)
    try:
        return jsonschema_rs.Draft4Validator(json.loads(path.read_text(encoding="utf-8-sig")), validate_formats=False)
    except Exception:
        return None


def _valid_at_once(ocpp_version: str, schema_name: str, payload: Any) -> bool:
    compiled = _compiled(ocpp_version, schema_name)
    if compiled is None or not ocpp_package.float_free(payload):
        return False
    try:
        return bool(compiled.is_valid(payload))
    except Exception:  # a value it cannot take (a Decimal): the Decimal validator decides
        return False


# Digits of the Decimal arithmetic a check runs with: ``multipleOf 0.1`` divides a value by 0.1, and
# 28 digits (Python's default) cannot hold the quotient of 1e27 (DivisionImpossible: a 500).
_CHECK_PRECISION = 400


def _errors(validator: Draft4Validator, payload: Any) -> list[ValidationError]:
    with decimal.localcontext(prec=_CHECK_PRECISION):
        return list(validator.iter_errors(json.loads(json.dumps(payload), parse_float=decimal.Decimal)))


def request_schema(*, ocpp_version: str, action: str) -> dict[str, Any]:
    """The request schema of ``action`` (numbers as Decimals)."""
    schema = _validator(ocpp_version, ocpp_package.request_schema_name(ocpp_version, action)).schema
    return cast(dict[str, Any], schema)  # an OCPP schema is an object, never a bare bool


def request_errors(*, ocpp_version: str, action: str, payload: Any) -> list[ValidationError]:
    """How a camelCase CALL payload of ``action`` breaks its request schema (empty: it does not)."""
    schema_name = ocpp_package.request_schema_name(ocpp_version, action)
    if _valid_at_once(ocpp_version, schema_name, payload):
        return []
    return _errors(_validator(ocpp_version, schema_name), payload)


def response_errors(*, ocpp_version: str, action: str, payload: Any) -> list[ValidationError]:
    """How a camelCase CALLRESULT payload answering ``action`` breaks its response schema (empty: it
    does not). A valid answer is found valid by the compiled schema (1.4 µs for a ``Reset`` answer,
    loaded machine), not the Decimal validator after a JSON round trip (27 µs), issue 15."""
    schema_name = f"{action}Response"
    if _valid_at_once(ocpp_version, schema_name, payload):
        return []
    return _errors(_validator(ocpp_version, schema_name), payload)


# OCPP's integers are 32-bit (1.6 §4 "integer", 2.0.1 part 2 §2.1 "integer"): a larger one sent to
# a charger may wrap there, and its answer's echo does not fit the CSMS's own integer columns.
INT32_RANGE = range(-(2**31), 2**31)
# RFC 3339 date-time (OCPP-J §4.1.6, 2.0.1 part 2 §2.1.2): a date, ``T``, a time and its offset.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


# An absolute URI (RFC 3986 §3, §4.3: a scheme, ``:``, then URI characters, percent-encoded or not),
# what a ``uri`` of the 1.6 schemas names (UpdateFirmware's and GetDiagnostics' ``location``) and
# 2.0.1's data type URI (UpdateFirmware's ``firmware.location``, GetLog's ``log.remoteLocation``,
# whose schemas say only ``string``): the charger fetches or uploads there, and no relative, empty or
# space-holding one can be used.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+", re.ASCII)


def uri_error(value: str) -> str | None:
    """Why ``value`` is not an absolute URI (``_URI``) a charger can download from or upload to;
    None when it is one."""
    if _URI.fullmatch(value):
        return None
    return (
        f"{value!r} is not an absolute URI: a scheme and where (https://files.example.com/fw.bin,"
        " ftp://user:password@host/path), any space or other character outside URIs percent-encoded."
    )


# Already as OCPP sends times: UTC (``Z``), at most three decimals. Kept as written.
_UTC_Z = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z", re.ASCII)


# Counts, ids of connectors and EVSEs, durations, limits and stack levels: OCPP describes each as
# 0 or more (1.6 §7 "connectorId ... >= 0", "stackLevel ... >= 0", "duration ... in seconds";
# 2.0.1 part 2's datatypes), which its JSON schemas leave unsaid. And the ids a 2.0.1 request gives
# itself (GetLog's, GetReport's, ... requestId; RequestStartTransaction's remoteStartId), which the
# charger's notifications and TransactionEvents echo: counters, as every id the CSMS hands out; a
# reservation's id too (1.6 reservationId, 2.0.1 CancelReservation's; 2.0.1 ReserveNow's, named
# ``id`` as many other things are, is checked in ``commands.body_rules``).
NON_NEGATIVE = frozenset(
    {
        "connectorId",
        "evseId",
        "requestId",
        "remoteStartId",
        "reservationId",
        "stackLevel",
        "duration",
        "retries",
        "retryInterval",
        "startPeriod",
        "numberPhases",
        "limit",
        "minChargingRate",
    }
)


def request_values(
    *, ocpp_version: str, action: str, payload: Any, named: Any = None
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any], Any]]:
    """Every value of a request ``payload`` the schema of ``action`` describes, with its path (the
    payload's own keys) and its schema: ``(path, schema, value)``, depth first. ``named`` maps a
    payload key to the schema's property name (``payload_case.camel_name`` for an API body in
    snake_case; default: as it is). Values the schema does not describe (vendor data) are skipped."""
    root = request_schema(ocpp_version=ocpp_version, action=action)
    name = named or (lambda key: key)

    def walk(schema: dict[str, Any], value: Any, path: tuple[str | int, ...]) -> Iterator[Any]:
        while "$ref" in schema:
            schema = root["definitions"][schema["$ref"].rsplit("/", 1)[-1]]
        yield path, schema, value
        if isinstance(value, dict):
            properties = schema.get("properties", {})
            for key, item in value.items():
                if isinstance(key, str) and isinstance(properties.get(name(key)), dict):
                    yield from walk(properties[name(key)], item, (*path, key))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                yield from walk(schema["items"], item, (*path, index))

    return walk(root, payload, ())


def value_errors(
    *, ocpp_version: str, action: str, payload: Any, named: Any = None
) -> dict[tuple[str | int, ...], str]:
    """What the schema of ``action`` cannot say about a schema-valid request ``payload``: a
    ``date-time`` that is not RFC 3339 with its offset (OCPP times; jsonschema checks no format
    here), or that UTC does not hold as written (before year 1000 or after 9999 there, a second 60:
    ``parse_sent_time``), a ``uri`` that is not an absolute URI (``_URI``), an integer beyond 32 bits, a negative
    count, id, duration or limit (``NON_NEGATIVE``). Keyed by path (``request_values``)."""
    errors: dict[tuple[str | int, ...], str] = {}
    name = named or (lambda key: key)
    for path, schema, value in request_values(ocpp_version=ocpp_version, action=action, payload=payload, named=named):
        if schema.get("format") == "date-time" and isinstance(value, str):
            if not _DATE_TIME.fullmatch(value) or parse_ocpp_time(value) is None:
                errors[path] = f"{value!r} is not an RFC 3339 date-time with its offset (2027-01-31T09:00:00Z)."
            elif (parsed := parse_sent_time(value)) is None or parsed.year < 1000:  # UTC in four digits
                errors[path] = (
                    f"{value!r} is no time the CSMS can send as written: in UTC (2027-01-31T09:00:00Z) from"
                    " the year 1000 to 9999, its second from 0 to 59."
                )
        elif schema.get("format") == "uri" and isinstance(value, str) and (refused := uri_error(value)):
            errors[path] = refused
        elif schema.get("type") == "integer" and isinstance(value, int) and value not in INT32_RANGE:
            errors[path] = f"{value} is beyond OCPP's 32-bit integers ({INT32_RANGE[0]} to {INT32_RANGE[-1]})."
        elif path and isinstance(path[-1], str) and name(path[-1]) in NON_NEGATIVE and _negative(value):
            errors[path] = "Must be 0 or more."
    return errors


def _negative(value: Any) -> bool:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool) and value < 0


def times_normalized(*, ocpp_version: str, action: str, payload: Any, named: Any = None) -> Any:
    """``payload`` with each ``date-time`` of the schema of ``action`` that is not in UTC with ``Z``
    and at most three decimals (RFC 3339 allows offsets and any number of decimals, 2.0.1 at most
    three) as OCPP sends times (``format_ocpp_time``: UTC, ``Z``, milliseconds). The same object when
    none changes; else a copy. Unreadable times are left as they are (``value_errors`` refuses them)."""
    rewrites = []
    for path, schema, value in request_values(ocpp_version=ocpp_version, action=action, payload=payload, named=named):
        if schema.get("format") == "date-time" and isinstance(value, str) and path:
            parsed = parse_sent_time(value) if _DATE_TIME.fullmatch(value) else None
            if parsed is not None and not _UTC_Z.fullmatch(value):
                rewrites.append((path, format_ocpp_time(parsed)))
    if not rewrites:
        return payload
    copied = copy.deepcopy(payload)
    for path, text in rewrites:
        holder = copied
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = text
    return copied


def _field_path(path: list[Any]) -> str:
    return ".".join(str(next(iter(payload_case.snake_case({p: None})))) if isinstance(p, str) else str(p) for p in path)


def described(errors: list[ValidationError]) -> dict[str, list[str]]:
    """Schema errors as the API's ``details``: messages keyed by snake_case field path
    (``cs_charging_profiles.stack_level``; ``non_field_errors`` for the payload as a whole), each
    message once: jsonschema raises a ``required`` error per missing field, each naming them all."""
    details: dict[str, list[str]] = {}
    for error in errors:
        for field, message in _describe(error):
            messages = details.setdefault(field, [])
            if message not in messages:
                messages.append(message)
    return details


def _describe(error: ValidationError) -> list[tuple[str, str]]:
    path = list(error.absolute_path)
    instance = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in instance]  # type: ignore[union-attr]  # a raised error has it
        return [(_field_path([*path, name]), "This field is required.") for name in missing]
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))  # type: ignore[union-attr]  # an object schema's error
        return [(_field_path([*path, name]), "Unknown field.") for name in instance if name not in known]
    message = schema_errors.message_in_json(error)
    if error.validator == "enum":
        message = f"{schema_errors.json_text(error.instance)} is not one of {error.validator_value}."
    return [(_field_path(path) or "non_field_errors", message)]


def plain(value: Any) -> Any:
    """A parsed value with its Decimals as the floats (or ints) they were sent as."""
    return json.loads(json.dumps(value, default=float))
