"""A payload's JSON schema errors as jsonschema's ``Draft4Validator`` finds them (the same errors,
order, messages and paths), at a cost set by the errors that matter, not by the payload's size.

jsonschema walks a whole payload in Python: about 13 µs a valid 2.0.1 sampledValue and 300 µs an
invalid one, so one 60 KB MeterValues cost the gateway 350-700 ms. Only arrays make a payload
large, so here the schema of an array's items is also compiled (jsonschema-rs, its ``$ref``
inlined), and an item is read in Python only when the compiled form rejects it:

- ``errors`` yields jsonschema's errors without reading the items that have none, nor those whose
  only errors are of keywords at places (``Group``) the caller needs once, or not at all;
- ``best_error`` is ``jsonschema.exceptions.best_match`` of all of them: the shallowest error, then
  the last of its siblings; compiled checks cut at a depth tell which item holds it.

An item the compiled form cannot check (a value jsonschema-rs does not take) is read in Python. The
OCPP request schemas use Draft 4's ``$ref`` (to a definition, never recursive), ``properties``,
``items`` (one schema) and keywords that look at one value (type, enum, maxLength, required,
additionalProperties as a boolean, minItems, ...): ``place_of`` refuses any other schema.
"""

from __future__ import annotations

import decimal
import functools
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

# (place path, keyword): the errors of one keyword at one place, e.g. ("meterValue/*/sampledValue/*/unit", "enum").
Group = tuple[str, str]
Path = tuple[str | int, ...]

# Keywords that apply a schema to other values, which ``Place`` does not model.
_APPLICATORS = frozenset({"allOf", "anyOf", "oneOf", "not", "dependencies", "patternProperties"})
_KEYWORD_CHECKS = {
    keyword: check
    for keyword, check in Draft4Validator.VALIDATORS.items()
    if keyword not in {"properties", "items", "$ref", *_APPLICATORS}
}
_CHECKER = Draft4Validator({})  # what the keyword checks ask a value's type (no format checker, as the package's)
_NO_GROUPS: frozenset[Group] = frozenset()


@dataclass(eq=False, frozen=True)
class Place:
    """One place of a schema: the schema that applies there (its ``$ref`` followed) and the places below.

    ``path`` names it as a payload path, "*" for any array index (``meterValue/*/timestamp``, "" at the
    root); ``schema_path`` as jsonschema's errors do (``("properties", "meterValue", "items")``).
    """

    path: str
    schema: Mapping[str, Any]
    schema_path: Path
    properties: Mapping[str, Place]
    items: Place | None
    height: int  # levels of places below this one
    groups: frozenset[Group]  # the keywords of this place and of those below


def place_of(schema: Mapping[str, Any]) -> Place:
    """The places of a Draft 4 ``schema``. Raises ValueError for what ``Place`` does not model."""
    return _place(schema, schema, "", ())


def _place(schema: Mapping[str, Any], root: Mapping[str, Any], path: str, schema_path: Path) -> Place:
    schema = _resolved(schema, root)
    if _APPLICATORS & schema.keys() or not isinstance(schema.get("additionalProperties", False), bool):
        raise ValueError(f"{path or '(root)'}: a schema that applies schemas to other values")
    if not isinstance(schema.get("items", {}), Mapping):
        raise ValueError(f"{path or '(root)'}: items as a list of schemas")
    properties = {
        name: _place(sub, root, _below(path, name), (*schema_path, "properties", name))
        for name, sub in schema.get("properties", {}).items()
    }
    items = _place(schema["items"], root, _below(path, "*"), (*schema_path, "items")) if "items" in schema else None
    below = [*properties.values(), *([items] if items else [])]
    own = {(path, keyword) for keyword in schema if keyword in _KEYWORD_CHECKS}
    return Place(
        path=path,
        schema=schema,
        schema_path=schema_path,
        properties=properties,
        items=items,
        height=max((place.height + 1 for place in below), default=0),
        groups=frozenset(own).union(*(place.groups for place in below)),
    )


def _below(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _resolved(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with its ``$ref`` followed (Draft 4 ignores a ``$ref``'s siblings); a local ref only."""
    for _ in range(64):  # a chain of refs; a longer one is a loop
        ref = schema.get("$ref")
        if ref is None:
            return schema
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"{ref!r}: not a reference inside the schema")
        schema = functools.reduce(lambda node, key: node[key], ref[2:].split("/"), root)
    raise ValueError("a $ref that refers to itself")


@functools.cache
def _compiled(place: Place, without: frozenset[Group], depth: int | None) -> Any:
    """``_compile``, kept for the process: called only for a bounded set of forms (an array and its
    items as the schema has them, cut at each depth, or without the groups a caller's walks all
    start without); a walk's other forms are its own (``_Walk``)."""
    return _compile(place, without, depth)


def _compile(place: Place, without: frozenset[Group], depth: int | None) -> Any:
    """The compiled schema of ``place`` without the keywords of ``without`` and, for a ``depth``,
    without those of the places more than ``depth`` levels below; None if it will not compile."""
    try:
        return jsonschema_rs.Draft4Validator(_inlined(place, without, depth), validate_formats=False)
    except Exception:  # a schema jsonschema-rs refuses: Python reads every item
        return None


def _inlined(place: Place, without: frozenset[Group], depth: int | None) -> dict[str, Any]:
    """The schema of ``place`` with those below inlined; past ``depth``, any value goes (though
    ``additionalProperties`` still knows the names)."""
    below = None if depth is None else depth - 1
    schema = {
        keyword: value
        for keyword, value in place.schema.items()
        if keyword not in ("definitions", "properties", "items") and (place.path, keyword) not in without
    }
    if "properties" in place.schema:
        schema["properties"] = {
            name: {} if depth == 0 else _inlined(child, without, below) for name, child in place.properties.items()
        }
    if place.items is not None and depth != 0:
        schema["items"] = _inlined(place.items, without, below)
    return schema


def _is_valid(compiled: Any, instance: Any) -> bool | None:
    """Whether ``compiled`` accepts ``instance``; None when it cannot say."""
    if compiled is None:
        return None
    try:
        return bool(compiled.is_valid(instance))
    except Exception:  # a value jsonschema-rs does not take (a lone surrogate, a Decimal)
        return None


def errors(
    place: Place, instance: Any, *, omissible: frozenset[Group] = _NO_GROUPS, first_kept: bool = True
) -> Iterator[ValidationError]:
    """jsonschema's errors of ``instance``, in its order, each as its ``iter_errors`` yields it, but
    those of an ``omissible`` group may be left out after its first (``first_kept``) or all along."""
    found = set() if first_kept else set(omissible)
    return _Walk(omissible, frozenset(found), found).errors(place, instance, ())


@dataclass
class _Walk:
    """One walk: the omissible groups found so far, and the compiled item schemas without them."""

    omissible: frozenset[Group]
    found_first: frozenset[Group]  # as the walk started: their compiled forms are kept for later walks
    found: set[Group]
    _by_place: dict[Place, Any] = field(default_factory=dict)  # items' compiled forms, without ``found`` as it is now

    def errors(self, place: Place, instance: Any, path: Path) -> Iterator[ValidationError]:
        for keyword in place.schema:
            if keyword == "properties" and isinstance(instance, dict):
                for name, child in place.properties.items():
                    if name in instance:
                        yield from self.errors(child, instance[name], (*path, name))
            elif keyword == "items" and isinstance(instance, list) and place.items is not None:
                for index, item in enumerate(instance):
                    if not self._skips(place.items, item):
                        yield from self.errors(place.items, item, (*path, index))
            elif keyword in _KEYWORD_CHECKS:
                for error in _keyword_errors(place, keyword, instance, path):
                    self._found((place.path, keyword))
                    yield error

    def _skips(self, place: Place, item: Any) -> bool:
        """Whether ``item`` has no errors but of groups found already (which may be left out)."""
        if place not in self._by_place:
            without = frozenset(self.found) & place.groups
            compile_ = _compiled if without == self.found_first & place.groups else _compile
            self._by_place[place] = compile_(place, without, None)
        return _is_valid(self._by_place[place], item) is True

    def _found(self, group: Group) -> None:
        if group in self.omissible and group not in self.found:
            self.found.add(group)
            self._by_place.clear()


def _keyword_errors(place: Place, keyword: str, instance: Any, path: Path) -> Iterator[ValidationError]:
    """The errors of one keyword of ``place`` about ``instance`` (none below), as jsonschema sets them."""
    value = place.schema[keyword]
    for found in _KEYWORD_CHECKS[keyword](_CHECKER, value, instance, place.schema) or ():
        yield ValidationError(
            found.message,
            validator=keyword,
            validator_value=value,
            instance=instance,
            schema=place.schema,
            path=(*path, *found.relative_path),
            schema_path=(*place.schema_path, keyword, *found.relative_schema_path),
            cause=found.cause,
            context=found.context,
            type_checker=_CHECKER.TYPE_CHECKER,
        )


def _local_errors(place: Place, instance: Any, path: Path) -> list[ValidationError]:
    """The errors of ``place``'s own keywords about ``instance``, in jsonschema's order."""
    return [
        error
        for keyword in place.schema
        if keyword in _KEYWORD_CHECKS
        for error in _keyword_errors(place, keyword, instance, path)
    ]


class _Undecided(Exception):
    """The compiled checks and Python disagree, or the compiled form cannot check an item."""


def best_error(place: Place, instance: Any, *, described: Callable[[Any], Any] | None = None) -> ValidationError | None:
    """``jsonschema.exceptions.best_match`` of every error of ``instance`` (None: it has none).

    That is the shallowest error, the last of its siblings (the greatest path), then the most
    relevant keyword there, the first of equals. Python reads the places above the arrays; of an
    array, compiled checks cut at a depth choose the one item to read. The error is described with
    its value read by ``described`` when given (e.g. floats as Decimals, as the caller's validator
    reads them).
    """
    read = described or _as_is
    try:
        return _best_error(place, instance, (), read)
    except _Undecided:
        return best_match(errors(place, read(instance)))


def _as_is(value: Any) -> Any:
    return value


def _best_error(place: Place, instance: Any, path: Path, read: Callable[[Any], Any]) -> ValidationError | None:
    """The best error at or below ``place``: its own when it has any, else the best of those below."""
    own = _local_errors(place, instance, path)
    if own:  # the errors below are deeper
        value = read(instance)
        return best_match(own if value is instance else _local_errors(place, value, path))
    below = []
    if isinstance(instance, dict):
        for name, child in place.properties.items():
            if name in instance:
                below.append(_best_error(child, instance[name], (*path, name), read))
    if isinstance(instance, list) and place.items is not None:
        below.append(_best_item_error(place, instance, path, read))
    return best_match(error for error in below if error is not None)


def _best_item_error(place: Place, items: list[Any], path: Path, read: Callable[[Any], Any]) -> ValidationError | None:
    """The best error of the ``items`` of the array at ``place`` (which has none of its own): in the
    last of the items whose errors are the least deep; None when all are valid."""
    item_place = place.items
    depth = _shallowest(place, items)
    if depth is None or item_place is None:
        return None
    if depth == 0:  # the array's own keywords, which Python found none of
        raise _Undecided
    cut = _compiled(item_place, _NO_GROUPS, depth - 1 if depth - 1 < item_place.height else None)
    index = next((index for index in reversed(range(len(items))) if not _checked(cut, items[index])), None)
    if index is None:
        raise _Undecided
    error = _best_error(item_place, items[index], (*path, index), read)
    if error is None or len(error.relative_path) != len(path) + depth:
        raise _Undecided
    return error


def _shallowest(place: Place, instance: Any) -> int | None:
    """How many levels below ``place`` the shallowest error of ``instance`` is; None when it has none."""
    if _checked(_compiled(place, _NO_GROUPS, None), instance):
        return None
    cuts = (depth for depth in range(place.height) if not _checked(_compiled(place, _NO_GROUPS, depth), instance))
    return next(cuts, place.height)


def _checked(compiled: Any, item: Any) -> bool:
    valid = _is_valid(compiled, item)
    if valid is None:
        raise _Undecided
    return valid


def message_in_json(error: ValidationError) -> str:
    """``error.message`` in JSON terms, as a charger or integrator sent the value it names: jsonschema
    starts a message about a value with Python's repr of it (``Decimal('1.0') is not of type
    'integer'``, ``True``, ``None``, ``'text'``, ``{'a': 1}``), here its JSON text (``1.0 is not of
    type 'integer'``, ``true``, ``null``, ``"text"``, ``{"a": 1}``). The schema's own terms (``'integer'``,
    a required or unexpected property's name) are kept as jsonschema says them."""
    message, shown = error.message, repr(error.instance)
    if not message.startswith(shown):
        return message
    return json_text(error.instance) + message[len(shown) :]


def json_text(value: Any) -> str:
    """A parsed JSON ``value`` as JSON text, its Decimals (a 1.6 message read with them) as numbers."""
    try:
        return json.dumps(value, ensure_ascii=False, default=_decimal_number)
    except (TypeError, ValueError):  # not JSON's (no parsed payload holds such a value)
        return repr(value)


def _decimal_number(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
