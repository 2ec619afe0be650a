"""A charger's identity: OCPP's identifierString, the last segment of its WebSocket URL.

OCPP 2.0.1 part 2 (primitive datatypes, identifierString) and OCPP-J 1.6 §3.1.1: at most 48 of
``a-z A-Z 0-9 * - _ = : + | @ .``, percent-encoded in the URL where needed (``RDAM%7C123``).
``.`` and ``..`` are refused: as a URL path segment they mean "this" and "the parent" folder
(RFC 3986 §5.2.4), so no charger could reach a URL named by them.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

IDENTITY_CHARACTERS = r"[A-Za-z0-9*\-_=:+|@.]"
# The same rule for URL routes (WebSocket and API), without anchors.
IDENTITY_PATTERN = rf"(?!\.\.?(?:/|$)){IDENTITY_CHARACTERS}{{1,48}}"
_IDENTITY = re.compile(rf"{IDENTITY_PATTERN}\Z")
IDENTITY_RULE = "Use 1 to 48 letters, digits or * - _ = : + | @ . (OCPP identifierString), not . or .. alone."


def charge_point_id_validate(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is an identity a charger can connect with."""
    if not _IDENTITY.match(value):
        raise ValidationError(IDENTITY_RULE, code="invalid")
