"""OCPP 1.6 schemas loosened where real chargers deviate harmlessly and the CSMS copes.

- ``meterStart`` / ``meterStop`` are integers in the spec, but meters report fractional Wh.
  The CSMS keeps the exact value (and notes it as an anomaly on the transaction).
- StopTransaction ``idTag`` sent as ``null`` instead of left out: acknowledged, and the
  stop is parked for review.

And tightened where the spec leaves a number open but the database cannot store it: outside
the session messages (which are kept whatever their numbers), every integer is bounded to 32
bits and connector and EVSE ids may not be negative, so a StatusNotification for connector
``-1`` or ``2**70`` is answered with a CALLERROR instead of failing in the database.

Everything else is the ``ocpp`` package's own schema, so every other violation is answered
with the CALLERROR it always was. The loosened validators replace the package's cached ones,
which keeps its error mapping (TypeConstraintViolation, FormationViolation, ...) intact. Each is
read with the number parser the package validates that message with (its cache key does not say):
``Decimal`` for the 1.6 CALLs with ``multipleOf 0.1`` fields, float for the rest.
"""

from __future__ import annotations

import decimal
import json
from typing import Any

from jsonschema import Draft4Validator

from kernel import ocpp_package

_LOOSENED: dict[str, dict[str, dict[str, Any]]] = {
    "StartTransaction": {"meterStart": {"type": "number"}},
    "StopTransaction": {"meterStop": {"type": "number"}, "idTag": {"type": ["string", "null"], "maxLength": 20}},
}


_INT32 = (-(2**31), 2**31 - 1)
# Messages that carry a session are never refused for an odd number: the transaction services keep
# what fits and flag the rest, because a refused stop or meter value is lost revenue.
_KEPT_AS_SENT = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}
_NON_NEGATIVE = {"connectorId", "evseId"}


def bounded(schema: Any, name: str = "") -> Any:
    """``schema`` with every integer bounded to 32 bits (and to >= 0 for connector / EVSE ids)."""
    if isinstance(schema, list):
        return [bounded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: bounded(value, key) if key == "properties" else bounded(value) for key, value in schema.items()}
    if "properties" in schema and isinstance(schema["properties"], dict):
        result["properties"] = {key: bounded(value, key) for key, value in schema["properties"].items()}
    kinds = schema.get("type")
    if kinds == "integer" or (isinstance(kinds, list) and "integer" in kinds):
        low = 0 if name in _NON_NEGATIVE else _INT32[0]
        result["minimum"] = max(schema.get("minimum", low), low)
        result["maximum"] = min(schema.get("maximum", _INT32[1]), _INT32[1])
    return result


def _package_schema(version: str, action: str) -> dict[str, Any]:
    """The package's request schema of ``action``, parsed as the package parses it for validation."""
    path = ocpp_package.schema_path(version, ocpp_package.request_schema_name(version, action))
    parse_float = decimal.Decimal if version == "1.6" and action in ocpp_package.DECIMAL_CALLS_16 else float
    return json.loads(path.read_text(encoding="utf-8-sig"), parse_float=parse_float)


def install() -> None:
    """Put the adjusted validators of every CALL a charger may send in the package's cache (idempotent)."""
    for version in ("1.6", "2.0.1"):
        for action in ocpp_package.request_actions(version):
            schema = _package_schema(version, action)
            if version == "1.6" and action in _LOOSENED:
                schema["properties"].update(_LOOSENED[action])
            validator = Draft4Validator(schema if action in _KEPT_AS_SENT else bounded(schema))
            ocpp_package.validator_store(ocpp_package.request_validator_key(version, action), validator)
