"""Every use of the ``ocpp`` package's internals, in one module (pinned: ocpp==2.1.0).

The gateway builds on the package's public surface: ``ocpp.routing.on`` / ``after``, the message
classes of ``ocpp.messages``, the exceptions of ``ocpp.exceptions`` and the versions'
``ChargePoint``, ``call`` and ``call_result``. It also relies on these internals, which a release
may change without notice, and which only this module touches:

- dispatch: the route map ``ocpp.routing.create_route_map`` builds from what ``@on`` / ``@after``
  record on a handler (and the handler they wrap, as ``__wrapped__``), and the steps of
  ``ChargePoint._handle_call`` (validate the request, convert it to snake_case, call the handler,
  serialize its answer, drop the Nones (``answer_payload``, one walk instead of
  ``serialize_as_dict`` and ``remove_nones``), convert to camelCase, validate and send the answer,
  start the ``@after`` hook), which ``RoutedChargePoint`` performs on a route map built once per
  class; an ``@on_payload`` handler takes the payload and gives the answer as sent, in camelCase,
  with no conversion or dataclass between them;
- the validator cache ``ocpp.messages._validators``, its keys (``validator_key``), and ``ASYNC_VALIDATION``;
- the JSON schema files inside the package, and the 1.6 CALLs it validates with Decimal numbers;
- the case conversions ``ocpp.charge_point.camel_to_snake_case`` / ``snake_to_camel_case``, which
  the package's ``call`` and ``_handle_call`` (the simulator's, the test clients') look up at each use.

kernel/tests/test_ocpp_package.py checks each of these against the installed package: a
release that changes one fails there, by name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import functools
import inspect
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

from django.db import InterfaceError, OperationalError
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError
from ocpp import charge_point, messages
from ocpp.charge_point import ChargePoint, remove_nones, serialize_as_dict
from ocpp.exceptions import (
    FormatViolationError,
    InternalError,
    OccurrenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
    TypeConstraintViolationError,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, validate_payload
from ocpp.routing import create_route_map, on

from kernel import schema_errors
from kernel.outages import dependency_outage

_SCHEMA_FOLDERS = {"1.6": "v16", "2.0.1": "v201"}
# The CALLERROR description of a message the database did not take (unreachable, restarting, the pool's
# timeout, a row lock held elsewhere past the batch's timeout): an outage, not a fault of the message.
DATABASE_FAILED = "The CSMS's database is unavailable or busy: the message may not be stored."
# The 1.6 CALLs the package validates with Decimal numbers (``ocpp.messages._validate_payload``).
DECIMAL_CALLS_16 = frozenset({"SetChargingProfile", "RemoteStartTransaction"})
# The package's own conversions, before ``case_conversions_install`` replaces them.
package_snake_case: Callable[[Any], Any] = charge_point.camel_to_snake_case
package_camel_case: Callable[[Any], Any] = charge_point.snake_to_camel_case


@dataclass(frozen=True, slots=True)
class Route:
    """One action's handlers: ``on`` answers it, ``after`` runs once the answer is sent."""

    on: Callable[..., Any]
    after: Callable[..., Any] | None
    validated: bool  # False when declared ``@on(action, skip_schema_validation=True)``
    on_takes_unique_id: bool
    after_takes_unique_id: bool
    takes_payload: bool = False  # declared ``@on_payload``: the payload and answer as sent, camelCase


def on_payload(action: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@on(action)`` for a coroutine handler ``(self, payload) -> answer`` that takes the CALL's
    payload as the charger sent it (camelCase, validated) and returns the CALLRESULT's payload as
    it is sent (camelCase, no None values): no keyword arguments, snake_case or dataclass between
    them (issue 15). The payload is the message's own dict: the handler reads it, never changes it.
    Its answer is still validated against the action's response schema."""

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(handler):
            raise TypeError(f"@on_payload({action!r}): {handler.__name__} must be a coroutine function")
        routed = on(action)(handler)
        routed._takes_payload = True
        return routed

    return decorator


def _takes_unique_id(handler: Callable[..., Any] | None) -> bool:
    return handler is not None and "call_unique_id" in inspect.signature(handler).parameters


def route_map_of(cls: type) -> Mapping[str, Route]:
    """Action name -> ``Route`` for the ``@on`` / ``@after`` handlers of ``cls`` (unbound functions).

    Raises TypeError for an ``@after`` hook without an ``@on`` handler for its action.
    Handlers are kept without the package's wrapper (a call that only passes its arguments on).
    """
    routes = {}
    for action, handlers in create_route_map(cls).items():
        if "_on_action" not in handlers:
            raise TypeError(f"{cls.__name__}: @after({action!r}) without an @on handler for it")
        after = handlers.get("_after_action")
        routes[action] = Route(
            on=_unwrapped(handlers["_on_action"]),
            after=_unwrapped(after) if after is not None else None,
            validated=not handlers.get("_skip_schema_validation", False),
            on_takes_unique_id=_takes_unique_id(handlers["_on_action"]),
            after_takes_unique_id=_takes_unique_id(after),
            takes_payload=getattr(handlers["_on_action"], "_takes_payload", False),
        )
    return MappingProxyType(routes)


def _unwrapped(handler: Callable[..., Any]) -> Callable[..., Any]:
    """The function ``@on`` / ``@after`` wrapped (``functools.wraps``' ``__wrapped__``)."""
    return getattr(handler, "__wrapped__", handler)


# A handler's failure names the CALL, not its payload, which may carry what no log may (a password a
# charger reports of itself); its frame is in the message log, with such values redacted.
_HANDLER_FAILED = "Error while handling request %r (%s); its frame is in the message log"


class RoutedChargePoint(ChargePoint):
    """The package's ``ChargePoint`` with one read-only route map per class, not one per connection.

    The package builds, for every instance, a dict of bound handlers, and the lock and queue its
    ``call()`` uses. A router answers CALLs and sends its own (``OcppRouter.send_call``), so an
    instance holds only its id, connection and logger.
    """

    route_map: ClassVar[Mapping[str, Route]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.route_map = route_map_of(cls)

    def __init__(self, id: str, connection: Any, *, logger: logging.Logger) -> None:  # noqa: A002 (the package's name)
        # Not the package's __init__: its per-connection route map, lock and queue serve call().
        self.id = id
        self._connection = connection
        self.logger = logger

    async def _handle_call(self, msg: Call) -> Any:
        return await self.call_dispatched(msg)

    async def call_dispatched(self, msg: Call, *, validated: bool = True) -> Any:
        """Answer the CALL ``msg`` as the package's ``_handle_call`` does, from the class's route map.

        ``validated=False`` handles this one message without schema validation (request and
        answer), whatever its route declares. The action must be in ``route_map``. Raises the
        package's OCPPError for an invalid request or answer; a handler's exception is answered
        with its CALLERROR. Returns what the ``@after`` hook returned (None without one).
        """
        route = self.route_map[msg.action]
        validating = validated and route.validated
        if validating and not valid_at_once(msg, self._ocpp_version):
            refusal = await request_refusal(msg, self._ocpp_version)
            if refusal is not None:
                raise refusal
        try:  # an @on_payload handler's answer is sent as it returns it: awaited here, no layer between
            answered = await (route.on(self, msg.payload) if route.takes_payload else self._handler_answer(route, msg))
        except (OperationalError, InterfaceError) as error:
            if not dependency_outage(error):  # a deadlock, a statement cancelled: a bug's traceback
                self.logger.exception(_HANDLER_FAILED, msg.unique_id, msg.action)
                await self._send_message(msg.create_call_error(error))
                return None
            # The database away or busy: one line per message (its batch's failure is logged once by
            # the group commit), not a traceback per message of every charger for the whole outage.
            self.logger.warning("%s: %s %r failed on the database: %s", self.id, msg.action, msg.unique_id, error)
            await self._send_message(msg.create_call_error(InternalError(description=DATABASE_FAILED)))
            return None
        except Exception as error:
            self.logger.exception(_HANDLER_FAILED, msg.unique_id, msg.action)
            await self._send_message(msg.create_call_error(error))
            return None
        answer = msg.create_call_result(answered)
        if validating and not valid_at_once(answer, self._ocpp_version):
            await validate_payload(answer, self._ocpp_version)
        await self._send_message(answer)
        if route.after is None:
            return None
        payload = charge_point.camel_to_snake_case(msg.payload)
        unique_id = {"call_unique_id": msg.unique_id} if route.after_takes_unique_id else {}
        hook = route.after(self, **payload, **unique_id)
        if inspect.isawaitable(hook):
            asyncio.ensure_future(hook)  # noqa: RUF006 (as the package does: the hook may send a CALL)
        return hook

    async def _handler_answer(self, route: Route, msg: Call) -> Any:
        """The CALLRESULT payload (camelCase) of ``route``'s handler for ``msg``, a handler that is not
        ``@on_payload``: converted from its keyword arguments and answer."""
        payload = charge_point.camel_to_snake_case(msg.payload)
        unique_id = {"call_unique_id": msg.unique_id} if route.on_takes_unique_id else {}
        response = route.on(self, **payload, **unique_id)
        if inspect.isawaitable(response):
            response = await response
        return charge_point.snake_to_camel_case(answer_payload(response))

    async def _send_message(self, message: Call | CallResult | CallError) -> None:
        """Send ``message`` (a router that reads what it sends may take it as it is, not as text)."""
        await self._send(frame_text(message))


# One encoder for every frame: ``to_json`` of the package's messages builds one per call.
_ENCODER = messages._DecimalEncoder(separators=(",", ":"))
# What ``_ENCODER.encode`` builds at every call, built once: json's C encoder with the same options,
# without the check for circular references (a frame is built from JSON values and handler answers,
# never circular), so that it keeps no state between calls and threads.
_C_MAKE_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None where json has no C accelerator
_C_ENCODER = (
    _C_MAKE_ENCODER(None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    if _C_MAKE_ENCODER is not None
    else None
)


def _json_text(frame: list[Any]) -> str:
    return "".join(_C_ENCODER(frame, 0)) if _C_ENCODER is not None else _ENCODER.encode(frame)


def frame_text(message: Call | CallResult | CallError) -> str:
    """``message.to_json()``: the same text, the package's compact separators and Decimal encoding."""
    if isinstance(message, Call):
        return _json_text([message.message_type_id, message.unique_id, message.action, message.payload])
    if isinstance(message, CallResult):
        return _json_text([message.message_type_id, message.unique_id, message.payload])
    return _json_text(
        [
            message.message_type_id,
            message.unique_id,
            message.error_code,
            message.error_description,
            message.error_details,
        ]
    )


# Schema keywords a value of the right type breaks by what it holds (OCPP-J 1.6 §4.2.3, OCPP 2.0.1
# part 4 §4.3: "at least one field contains an invalid value"); maxLength stays the package's
# TypeConstraintViolation.
_VALUE_KEYWORDS = frozenset(
    {"enum", "const", "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
)
_CAUSE_CHARS = 200  # a cause quotes the value: a 60 KB value is not sent back


def violation_refusal(error: ValidationError) -> OCPPError:
    """The CALLERROR a request's schema violation is answered with: a missing field ProtocolError,
    a value of the wrong type (or too long) TypeConstraintViolation, a value no field may hold (out
    of its enum or range, against its pattern) PropertyConstraintViolation, anything else (an
    unknown field) FormatViolation, too few or too many items OccurrenceConstraintViolation (1.6 spells
    it OccurenceConstraintViolation when sent). Its details give the cause, never the frame back."""
    details = {"cause": schema_errors.message_in_json(error)[:_CAUSE_CHARS]}
    if error.validator == "required":
        return ProtocolError(details=details)
    if error.validator in ("type", "maxLength"):
        return TypeConstraintViolationError(details=details)
    if error.validator in _VALUE_KEYWORDS:
        return PropertyConstraintViolationError(details=details)
    if error.validator in ("minItems", "maxItems"):  # too few or too many of a repeated field
        return OccurrenceConstraintViolationError(details=details)
    return FormatViolationError(details=details)


async def request_refusal(msg: Call, ocpp_version: str) -> OCPPError | None:
    """The CALLERROR ``msg``'s payload is refused with (None: it is valid): ``violation_refusal`` of
    the error jsonschema's ``best_match`` picks among all its errors, found by compiled checks and
    described in Python at its place alone (``schema_errors.best_error``): a few ms however large
    the payload, where walking all of it in Python took hundreds. A 1.6 CALL is described with its
    numbers read as Decimals, as it always was.

    The 1.6 CALLs the package reads with Decimal numbers are the package's to check (and convert,
    for their handler); its refusal is answered without the frame it echoes.
    """
    if ocpp_version == "1.6" and msg.action in DECIMAL_CALLS_16:
        try:
            await validate_payload(msg, ocpp_version)
        except OCPPError as refused:
            if isinstance(refused.details, dict):
                refused.details.pop("ocpp_message", None)
                if isinstance(refused.__context__, ValidationError):  # the package's cause is its message
                    refused.details["cause"] = schema_errors.message_in_json(refused.__context__)[:_CAUSE_CHARS]
            return refused
        return None
    described = decimal_numbers if ocpp_version == "1.6" else None
    error = schema_errors.best_error(request_place(ocpp_version, msg.action), msg.payload, described=described)
    return violation_refusal(error) if error is not None else None


def decimal_numbers(value: Any) -> Any:
    """``value`` with its floats as Decimals (``value`` itself when it holds none)."""
    return value if float_free(value) else json.loads(json.dumps(value), parse_float=decimal.Decimal)


def float_free(value: Any) -> bool:
    """Whether no float is anywhere in a parsed JSON ``value``."""
    level = [value]
    while level:
        item = level.pop()
        if isinstance(item, float):
            return False
        if isinstance(item, dict):
            level.extend(item.values())
        elif isinstance(item, list):
            level.extend(item)
    return True


def valid_at_once(message: Call | CallResult, ocpp_version: str) -> bool:
    """True when the validator the package would use for ``message`` has a fast check
    (``accepts``, see ocpp_gateway.compiled_schemas) and that check passes. Otherwise the caller
    asks ``request_refusal`` (a CALL) or the package's ``validate_payload`` (an answer).

    The 1.6 CALLs the package validates with Decimal numbers always go to the package.
    """
    if ocpp_version == "1.6" and message.action in DECIMAL_CALLS_16:
        return False
    validator = messages._validators.get(validator_key(message.message_type_id, message.action, ocpp_version))
    accepts = getattr(validator, "accepts", None)
    return accepts is not None and bool(accepts(message.payload))


@functools.cache
def validator_key(message_type_id: int, action: str, ocpp_version: str) -> str:
    """The key of ``messages._validators`` that ``messages.get_validator`` reads for this message."""
    schema_name = action
    if message_type_id == MessageType.CallResult:
        schema_name += "Response"
    elif message_type_id == MessageType.Call and ocpp_version != "1.6":
        schema_name += "Request"
    return f"{schema_name}_{ocpp_version}"


class _KeepAsPackage(Exception):
    """A value ``answer_payload`` does not convert itself (a tuple): the package's steps do."""


def answer_payload(response: Any) -> Any:
    """A handler's answer as the package sends it, before the camelCase step:
    ``remove_nones(serialize_as_dict(response))`` without ``dataclasses.asdict``'s deep copy.

    Values other than dataclasses, dicts and lists are passed as they are (JSON encodes them next).
    """
    try:
        return _plain(response)
    except _KeepAsPackage:
        return remove_nones(serialize_as_dict(response))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(inner) for key, inner in value.items() if inner is not None}
    if isinstance(value, list):
        return [_plain(inner) for inner in value if inner is not None]
    if isinstance(value, tuple):
        raise _KeepAsPackage
    names = _field_names(type(value))
    if names is None:
        return value
    return {name: _plain(inner) for name in names if (inner := getattr(value, name)) is not None}


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """The fields of a dataclass, in order; None for any other type (kept per class)."""
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else None
    return _FIELD_NAMES[cls]


def schema_path(ocpp_version: str, schema_name: str) -> Path:
    """The package's JSON schema ``schema_name`` (``Authorize``, ``AuthorizeRequest``, ``AuthorizeResponse``)."""
    return Path(messages.__file__).parent / _SCHEMA_FOLDERS[ocpp_version] / "schemas" / f"{schema_name}.json"


def request_schema_name(ocpp_version: str, action: str) -> str:
    return action if ocpp_version == "1.6" else f"{action}Request"


def request_actions(ocpp_version: str) -> list[str]:
    """Every action the package has a request schema for, in ``ocpp_version``."""
    suffix = request_schema_name(ocpp_version, "")
    names = (path.name.removesuffix(".json") for path in schema_path(ocpp_version, "").parent.glob("*.json"))
    requests = (name for name in names if name.endswith(suffix) and not name.endswith("Response"))
    return sorted(name.removesuffix(suffix) for name in requests)


def request_validator_key(ocpp_version: str, action: str) -> str:
    """The key under which the package caches the validator of ``action``'s request."""
    return f"{request_schema_name(ocpp_version, action)}_{ocpp_version}"


def request_validator(ocpp_version: str, action: str) -> Any:
    """The validator the package checks ``action``'s request with (the cached one, if any)."""
    return messages.get_validator(MessageType.Call, action, ocpp_version)


_REQUEST_PLACES: dict[tuple[str, str], schema_errors.Place] = {}


def request_place(ocpp_version: str, action: str) -> schema_errors.Place:
    """The places of the schema ``request_validator`` checks ``action``'s request with (built once
    for each schema the package's cache holds)."""
    schema = request_validator(ocpp_version, action).schema
    place = _REQUEST_PLACES.get((ocpp_version, action))
    if place is None or place.schema is not schema:
        place = _REQUEST_PLACES[(ocpp_version, action)] = schema_errors.place_of(schema)
    return place


def validator_cache() -> dict[str, Any]:
    """The package's validator cache: key -> validator (``messages._validators``)."""
    return messages._validators


def validator_cache_replace(cache: dict[str, Any]) -> None:
    """Make ``cache`` the package's validator cache (it should hold the current entries)."""
    messages._validators = cache


def validator_store(key: str, validator: Draft4Validator) -> None:
    messages._validators[key] = validator


def validation_inline() -> None:
    """Validate in the calling thread, not in the executor the package defaults to."""
    messages.ASYNC_VALIDATION = False


def case_conversions_install(snake_case: Callable[[Any], Any], camel_case: Callable[[Any], Any]) -> None:
    """Make every package conversion of payload keys use these (routers and package clients alike)."""
    charge_point.camel_to_snake_case = snake_case
    charge_point.snake_to_camel_case = camel_case
