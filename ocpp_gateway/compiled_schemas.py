"""The ``ocpp`` package's JSON schemas, checked by a compiled validator (jsonschema-rs).

The package keeps one jsonschema ``Draft4Validator`` per message, schema and parse mode in
``ocpp.messages._validators`` (the relaxed 1.6 schemas of relaxed_schemas.py are entries there
too). Each entry is wrapped here, as it is, in a ``CompiledValidator`` built from that entry's own
schema: a payload the compiled form finds valid is accepted at once; any other payload goes to
the original validator, whose first error the package maps to the CALLERROR code it always did
(TypeConstraintViolation, FormationViolation, ProtocolError, ...). So the schemas, the cache keys
(one per schema and parse mode) and every answer to an invalid payload stay the package's own;
only the valid common case is faster. The router checks ``accepts`` first itself
(``kernel.ocpp_package.valid_at_once``); a request it rejects is described by
``kernel.schema_errors`` (the error jsonschema would pick, reading only the array items this
compiled form rejects), an answer by the package's validation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, cast

import jsonschema_rs
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError

from kernel import ocpp_package

logger = logging.getLogger(__name__)


class CompiledValidator:
    """A jsonschema ``Draft4Validator`` with a compiled fast path for valid payloads."""

    def __init__(self, validator: Draft4Validator) -> None:
        self.original = validator
        self.schema = cast(dict[str, Any], validator.schema)  # an OCPP schema is an object, never a bare bool
        try:
            self._compiled: Any = jsonschema_rs.Draft4Validator(self.schema, validate_formats=False)
        except Exception:  # a schema the compiler refuses: the original validates alone
            logger.warning("schema not compiled, validated by jsonschema: %.80r", self.schema.get("title"))
            self._compiled = None

    def is_valid(self, payload: Any) -> bool:
        return self.accepts(payload) or self.original.is_valid(payload)

    def validate(self, payload: Any) -> None:
        """Returns when valid; raises the original validator's ``ValidationError`` otherwise."""
        if not self.accepts(payload):
            self.original.validate(payload)

    def iter_errors(self, payload: Any) -> Iterator[ValidationError]:
        if self.accepts(payload):
            return iter(())
        return self.original.iter_errors(payload)

    def accepts(self, payload: Any) -> bool:
        """True when the compiled form finds ``payload`` valid; False means "ask the original"."""
        if self._compiled is None:
            return False
        try:
            return bool(self._compiled.is_valid(payload))
        except Exception:  # a value it cannot convert (e.g. an integer beyond 64 bits): ask the original
            return False


class _CompilingCache(dict[str, Any]):
    """``ocpp.messages._validators``: every validator stored in it is stored compiled."""

    def __setitem__(self, key: str, validator: Any) -> None:
        super().__setitem__(key, compiled(validator))


def compiled(validator: Any) -> Any:
    """``validator`` wrapped in a ``CompiledValidator`` (once; anything else is returned as is)."""
    return CompiledValidator(validator) if isinstance(validator, Draft4Validator) else validator


def install() -> None:
    """Compile every validator the package has cached, and every one it caches from now on (idempotent).

    Validation then runs inline: the package's default hands every payload to a worker thread,
    a hop that costs more than checking a compiled schema.
    """
    ocpp_package.validation_inline()
    if not isinstance(ocpp_package.validator_cache(), _CompilingCache):
        cache = _CompilingCache()
        for key, validator in ocpp_package.validator_cache().items():
            cache[key] = validator
        ocpp_package.validator_cache_replace(cache)
