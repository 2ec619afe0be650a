"""Named fixups for chargers that deviate from OCPP in known, harmless ways.

A charger model's profile (``ChargerModelProfile.quirks``) enables them by name. Payload quirks
rewrite an inbound CALL's payload before schema validation; the message log keeps the frame as
it was received. Every fixup is a pure function: it returns a new value and never raises on a
payload that is malformed in other ways (validation answers those).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from chargepoints.quirks import STRIP_IDTAG_SUFFIX, UNIT_ALIASES

_UNITS = (  # noqa: SIM905  (the spec's list, as it reads there)
    "Wh kWh varh kvarh W kW VA kVA var kvar A V K Celcius Celsius Fahrenheit Percent"  # 1.6 UnitOfMeasure
).split()
_UNIT_ALIASES = {unit.lower(): unit for unit in _UNITS} | {"%": "Percent", "°c": "Celsius", "°f": "Fahrenheit"}

# Each code's spelling per version; a charger may use either.
_ERROR_CODE_SPELLINGS = {
    "1.6": {"FormatViolation": "FormationViolation", "OccurrenceConstraintViolation": "OccurenceConstraintViolation"},
    "2.0.1": {"FormationViolation": "FormatViolation", "OccurenceConstraintViolation": "OccurrenceConstraintViolation"},
}


def id_tag_stripped(id_tag: str, *, suffix_pattern: str = "") -> str:
    """``id_tag`` without trailing whitespace or NUL, then without a match of ``suffix_pattern`` at its end."""
    stripped = id_tag.rstrip(" \t\r\n\x00")
    if suffix_pattern:
        stripped = re.sub(f"(?:{suffix_pattern})$", "", stripped)
    return stripped


def unit_canonical(unit: str) -> str:
    """The OCPP spelling of ``unit`` ('KWH' -> 'kWh'); a unit it does not know stays as it is."""
    return _UNIT_ALIASES.get(unit.strip().lower(), unit)


def error_code_spelled(code: str, *, ocpp_version: str) -> str:
    """``code`` as ``ocpp_version`` spells it: 1.6 FormationViolation, 2.0.1 FormatViolation."""
    return _ERROR_CODE_SPELLINGS.get(ocpp_version, {}).get(code, code)


def payload_fixed(payload: Any, *, quirks: tuple[str, ...], id_tag_suffix: str = "") -> Any:
    """An inbound CALL payload with the enabled payload quirks applied (a copy; ``payload`` is kept)."""
    if not quirks or not isinstance(payload, dict) or not ({STRIP_IDTAG_SUFFIX, UNIT_ALIASES} & set(quirks)):
        return payload
    fixed = copy.deepcopy(payload)
    if STRIP_IDTAG_SUFFIX in quirks:
        _strip_id_tags(fixed, id_tag_suffix)
    if UNIT_ALIASES in quirks:
        _canonicalise_units(fixed)
    return fixed


def _strip_id_tags(payload: dict[str, Any], suffix_pattern: str) -> None:
    """1.6 ``idTag`` and 2.0.1 ``idToken.idToken`` (Authorize, Start/StopTransaction, TransactionEvent)."""
    if isinstance(payload.get("idTag"), str):
        payload["idTag"] = id_tag_stripped(payload["idTag"], suffix_pattern=suffix_pattern)
    token = payload.get("idToken")
    if isinstance(token, dict) and isinstance(token.get("idToken"), str):
        token["idToken"] = id_tag_stripped(token["idToken"], suffix_pattern=suffix_pattern)


def _canonicalise_units(payload: dict[str, Any]) -> None:
    """Sampled values of 1.6 MeterValues / StopTransaction and 2.0.1 MeterValues / TransactionEvent."""
    for key in ("meterValue", "transactionData"):
        meter_values = payload.get(key)
        for meter_value in meter_values if isinstance(meter_values, list) else []:
            sampled = meter_value.get("sampledValue") if isinstance(meter_value, dict) else None
            for value in sampled if isinstance(sampled, list) else []:
                if not isinstance(value, dict):
                    continue
                if isinstance(value.get("unit"), str):
                    value["unit"] = unit_canonical(value["unit"])
                measure = value.get("unitOfMeasure")
                if isinstance(measure, dict) and isinstance(measure.get("unit"), str):
                    measure["unit"] = unit_canonical(measure["unit"])
