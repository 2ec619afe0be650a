"""The API's JSON parser: a body nested too deeply is a 400, never a RecursionError; text
PostgreSQL cannot store, and a name given twice in one object, are a 400 naming each field."""

from __future__ import annotations

import codecs
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser, get_encoding  # type: ignore[attr-defined]  # unstubbed
from rest_framework.utils import json

from kernel.storable_text import unstorable_text_paths

# No request of this API nests deeper (an OCPP charging profile is about 6 levels deep); the limit keeps
# every later recursive step (OCPP schema validation, snake/camel conversion) far from Python's.
MAX_JSON_DEPTH = 64
_TOO_DEEP = f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels"
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def json_depth(value: Any) -> int:
    """Levels of arrays and objects in a parsed JSON value (a scalar is 0), counted without recursion."""
    depth, level = 0, [(value, 0)]
    while level:
        item, seen = level.pop()
        if isinstance(item, dict | list):
            depth = max(depth, seen + 1)
            level.extend((child, seen + 1) for child in (item.values() if isinstance(item, dict) else item))
    return depth


class _Duplicated(dict[str, Any]):
    """A parsed object one of whose names was given more than once (``names``); holds the last value."""

    names: list[str]


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    parsed = dict(pairs)
    if len(parsed) == len(pairs):
        return parsed
    duplicated = _Duplicated(parsed)
    given = Counter(name for name, _ in pairs)  # linear: a count per name was quadratic (40,000 names: 114 s)
    duplicated.names = [name for name in parsed if given[name] > 1]
    return duplicated


class JsonParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        """DRF's, and a name given twice in one object (RFC 8259 §4 leaves which one counts to the
        parser: a client must not find out by which of its values was taken) is a 400 naming it."""
        decoded: Any = codecs.getreader(get_encoding(parser_context or {}))(stream)  # a text stream
        parse_constant = json.strict_constant if self.strict else None
        try:
            data = json.load(decoded, parse_constant=parse_constant, object_pairs_hook=_object)
        except RecursionError:
            raise ParseError(_TOO_DEEP) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(_TOO_DEEP)
        duplicated = _duplicated_name_paths(data)
        if duplicated:
            raise ValidationError({path: ["Given more than once in the same object."] for path in duplicated})
        paths = unstorable_text_paths(data)
        if paths:
            problem = "NUL characters and unpaired surrogates cannot be stored."
            raise ValidationError({path or "(body)": [problem] for path in paths})
        overflowing = _overflowing_number_paths(data)
        if overflowing:
            problem = "A number beyond what the CSMS carries: a 64-bit integer, a double-precision float (1.8e308)."
            raise ValidationError({path or "(body)": [problem] for path in overflowing})
        return data


def _duplicated_name_paths(value: Any) -> list[str]:
    """The dotted paths of the names given twice in one object, found without recursion."""
    found: list[str] = []
    level = [(value, "")]
    while level:
        item, path = level.pop()
        if isinstance(item, _Duplicated):
            found.extend(f"{path}.{name}" if path else name for name in item.names)
        if isinstance(item, dict):
            level.extend((child, f"{path}.{key}" if path else str(key)) for key, child in item.items())
        elif isinstance(item, list):
            level.extend((child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item))
    return sorted(found)


def _overflowing_number_paths(value: Any) -> list[str]:
    """The dotted paths of the numbers the CSMS cannot carry, found without recursion: one that
    overflowed to infinity when parsed (``1e309``: JSON has no infinity, nor have OCPP and
    PostgreSQL's JSON), an integer beyond 64 bits (the channel layer's messages carry no larger)."""
    found, level = [], [(value, "")]
    while level:
        item, path = level.pop()
        if (isinstance(item, float) and math.isinf(item)) or (
            isinstance(item, int) and not _INT64_MIN <= item <= _UINT64_MAX
        ):
            found.append(path)
        elif isinstance(item, dict):
            level.extend((child, f"{path}.{key}" if path else str(key)) for key, child in item.items())
        elif isinstance(item, list):
            level.extend((child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(item))
    return sorted(found)
