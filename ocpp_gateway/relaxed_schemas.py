"""OCPP 1.6 schemas loosened where real chargers deviate harmlessly and the CSMS copes.

- ``meterStart`` / ``meterStop`` are integers in the spec, but meters report fractional Wh.
  The CSMS keeps the exact value (and notes it as an anomaly on the transaction).
- StopTransaction ``idTag`` sent as ``null`` instead of left out: acknowledged, and the
  stop is parked for review.

Everything else is the ``ocpp`` package's own schema, so every other violation is answered
with the CALLERROR it always was. The loosened validators replace the package's cached ones,
which keeps its error mapping (TypeConstraintViolation, FormationViolation, ...) intact.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft4Validator
from ocpp import messages
from ocpp.messages import MessageType

_LOOSENED: dict[str, dict[str, dict[str, Any]]] = {
    "StartTransaction": {"meterStart": {"type": "number"}},
    "StopTransaction": {"meterStop": {"type": "number"}, "idTag": {"type": ["string", "null"], "maxLength": 20}},
}


def install() -> None:
    """Put the loosened 1.6 validators in the package's validator cache (idempotent)."""
    for action, properties in _LOOSENED.items():
        schema = copy.deepcopy(messages.get_validator(MessageType.Call, action, "1.6").schema)
        schema["properties"].update(properties)
        messages._validators[f"{action}_1.6"] = Draft4Validator(schema)
