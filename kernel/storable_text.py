"""Text PostgreSQL cannot store, found and escaped at the edges (issue 14 B2/B3).

PostgreSQL refuses NUL (U+0000) in text and in ``jsonb``, and a lone surrogate (U+D800 to
U+DFFF, which JSON's ``\\ud800`` escape can produce) has no UTF-8 encoding. Either one in a row
fails the whole INSERT or UPDATE, so each edge decides once: refuse the value (a CALLERROR, a
JSON 400 naming the field) or replace it before it reaches the database. So do the numbers
PostgreSQL's JSON refuses (NaN, infinity) where a charger's JSON reaches a JSON column as it was sent.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In raw JSON text: a NUL, or an escape that decodes to one of the above (a quick filter, may over-match).
_MAY_DECODE_TO_UNSTORABLE = re.compile(r"\x00|\\u(?:0000|[dD][89a-fA-F])")
REPLACEMENT_CHARACTER = "\ufffd"


def json_text_may_hold_unstorable_text(raw: str) -> bool:
    """Whether decoding ``raw`` JSON may give unstorable text; False means it certainly does not."""
    if "\\u" not in raw and "\x00" not in raw:  # nearly every frame: two scans in C, no regex
        return False
    return _MAY_DECODE_TO_UNSTORABLE.search(raw) is not None


def text_escaped(value: str) -> str:
    """``value`` with each unstorable character written as its JSON escape (``\\u0000``)."""
    if value.isascii() and "\x00" not in value:  # ASCII is known without a scan (CPython): no surrogate
        return value
    if _UNSTORABLE.search(value) is None:
        return value
    return _UNSTORABLE.sub(lambda match: f"\\u{ord(match.group()):04x}", value)


def unstorable_text_paths(value: Any, path: str = "") -> list[str]:
    """Where in a decoded JSON value a key or a string holds unstorable text, as dotted paths
    (``idToken.idToken``, ``meterValue.0.sampledValue.1.unit``; the root is ``""``)."""
    if isinstance(value, str):
        return [path] if _UNSTORABLE.search(value) else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            item_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                found.append(text_escaped(item_path))
            found += unstorable_text_paths(item, text_escaped(item_path))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unstorable_text_paths(item, f"{path}.{index}" if path else str(index))
    return found


def unstorable_text_replaced(value: Any) -> Any:
    """A copy of a decoded JSON value with each unstorable character replaced by U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, value)
    if isinstance(value, dict):
        return {unstorable_text_replaced(key): unstorable_text_replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unstorable_text_replaced(item) for item in value]
    return value


# Numbers: Python's JSON reads NaN, Infinity and -Infinity (which JSON does not have) and reads a
# float beyond a double (1e400) as infinity; PostgreSQL's JSON refuses all three. The channel layer
# (msgpack) carries no integer beyond 64 bits.
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


def _number_storable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else json.dumps(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if _INT64_MIN <= value <= _UINT64_MAX else str(value)
    return value


def unstorable_numbers_replaced(value: Any) -> Any:
    """``value`` (a decoded JSON value), or a copy with each number PostgreSQL's JSON cannot store
    or the channel layer cannot carry written as its text: ``"NaN"``, ``"Infinity"``,
    ``"-Infinity"``, an integer beyond 64 bits as its digits. Walked without recursion: a charger's
    JSON may nest as deep as the decoder goes."""
    found, level = False, [value]
    while level and not found:
        item = level.pop()
        if isinstance(item, dict):
            level.extend(item.values())
        elif isinstance(item, list):
            level.extend(item)
        else:
            found = _number_storable(item) is not item
    if not found:
        return value
    root = [value]
    places: list[tuple[Any, Any]] = [(root, 0)]
    while places:
        container, key = places.pop()
        item = container[key]
        if isinstance(item, dict):
            container[key] = copied = dict(item)
            places.extend((copied, child) for child in copied)
        elif isinstance(item, list):
            container[key] = items = list(item)
            places.extend((items, index) for index in range(len(items)))
        else:
            container[key] = _number_storable(item)
    return root[0]
