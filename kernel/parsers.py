"""The API's JSON parser: a body nested too deeply is a 400, never a RecursionError; text
PostgreSQL cannot store is a 400 naming each field."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

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


class JsonParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_TOO_DEEP) from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(_TOO_DEEP)
        paths = unstorable_text_paths(data)
        if paths:
            problem = "NUL characters and unpaired surrogates cannot be stored."
            raise ValidationError({path or "(body)": [problem] for path in paths})
        overflowing = _overflowing_number_paths(data)
        if overflowing:
            problem = "A number beyond what the CSMS carries: a 64-bit integer, a double-precision float (1.8e308)."
            raise ValidationError({path or "(body)": [problem] for path in overflowing})
        return data


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
