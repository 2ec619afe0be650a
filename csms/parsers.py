"""The API's request parser."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.parsers import JSONParser

from csms.storable_text import unstorable_text_paths


class StorableJSONParser(JSONParser):
    """JSON whose text PostgreSQL can store: a NUL or an unpaired surrogate (``\\u0000``,
    ``\\ud800``) anywhere is a 400 naming each field (dotted path), before any view runs."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        paths = unstorable_text_paths(data)
        if paths:
            problem = "NUL characters and unpaired surrogates cannot be stored."
            raise ValidationError({path or "(body)": [problem] for path in paths})
        return data
