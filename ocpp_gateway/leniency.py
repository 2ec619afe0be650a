"""Lenient with audit: which schema violations a lenient charger model may get away with.

A violation is harmless when the CSMS copes with any value there: an enum value it does not
know, or a string longer than the schema allows, at a place it stores as text or ignores. A
message whose violations are all harmless is accepted (each violation recorded); one with any
other violation is answered as a strict charger's would be.
"""

from __future__ import annotations

import copy
from typing import Any

from jsonschema.exceptions import ValidationError
from ocpp import messages
from ocpp.messages import MessageType

from chargepoints.services.profiles import ReceivedViolation
from ocpp_gateway import schemas

_HARMLESS_KEYWORDS = {"enum", "maxLength"}

# (version, action) -> payload path ("*" for any array index) -> characters the CSMS stores there.
_HARMLESS_PATHS: dict[tuple[str, str], dict[str, int]] = {
    ("1.6", "BootNotification"): {
        "chargePointVendor": 50,
        "chargePointModel": 50,
        "chargePointSerialNumber": 50,
        "chargeBoxSerialNumber": 50,
        "firmwareVersion": 50,
        "iccid": 20,
        "imsi": 20,
        "meterType": 25,
        "meterSerialNumber": 25,
    },
    ("1.6", "StatusNotification"): {"errorCode": 50, "info": 50, "vendorId": 255, "vendorErrorCode": 50},
    ("1.6", "MeterValues"): {"meterValue/*/sampledValue/*/unit": 20},
    ("1.6", "StopTransaction"): {"transactionData/*/sampledValue/*/unit": 20},
    ("2.0.1", "BootNotification"): {
        "chargingStation/vendorName": 50,
        "chargingStation/model": 50,
        "chargingStation/serialNumber": 50,
        "chargingStation/firmwareVersion": 50,
        "chargingStation/modem/iccid": 20,
        "chargingStation/modem/imsi": 20,
    },
    ("2.0.1", "MeterValues"): {"meterValue/*/sampledValue/*/unitOfMeasure/unit": 20},
    ("2.0.1", "TransactionEvent"): {"meterValue/*/sampledValue/*/unitOfMeasure/unit": 20},
}


def tolerated_violations(*, ocpp_version: str, action: str, payload: Any) -> list[ReceivedViolation]:
    """The payload's schema violations if every one is harmless; empty when it is valid or when
    any violation is not harmless (the package's own validation then answers it)."""
    harmless = _HARMLESS_PATHS.get((ocpp_version, action))
    if not harmless:
        return []
    errors = list(messages.get_validator(MessageType.Call, action, ocpp_version).iter_errors(payload))
    if not all(error.validator in _HARMLESS_KEYWORDS and _path(error, any_index=True) in harmless for error in errors):
        return []
    return [
        ReceivedViolation(path=_path(error), validator=str(error.validator), value=error.instance) for error in errors
    ]


def received_violations(errors: list[ValidationError]) -> list[ReceivedViolation]:
    """Schema errors as the violations a lenient profile records (values as they were sent)."""
    return [
        ReceivedViolation(path=_path(error), validator=str(error.validator), value=schemas.plain(error.instance))
        for error in errors
    ]


def truncated(payload: dict[str, Any], *, ocpp_version: str, action: str) -> dict[str, Any]:
    """A copy of ``payload`` with its strings at harmless paths cut to what the CSMS stores."""
    result = copy.deepcopy(payload)
    for path, length in _HARMLESS_PATHS.get((ocpp_version, action), {}).items():
        _truncate(result, path.split("/"), length)
    return result


def boot_identity(*, ocpp_version: str, payload: Any) -> tuple[str, str, str]:
    """(vendor, model, firmware version) a BootNotification names, "" where it names none."""
    station = payload.get("chargingStation") if ocpp_version == "2.0.1" and isinstance(payload, dict) else payload
    if not isinstance(station, dict):
        return "", "", ""
    keys = ("vendorName", "model") if ocpp_version == "2.0.1" else ("chargePointVendor", "chargePointModel")
    values = [station.get(key) for key in (*keys, "firmwareVersion")]
    vendor, model, firmware = (value if isinstance(value, str) else "" for value in values)
    return vendor, model, firmware


def _path(error: ValidationError, *, any_index: bool = False) -> str:
    """Where the error is, e.g. ``meterValue/0/sampledValue/1/unit`` (``meterValue/*/...`` for ``any_index``)."""
    return "/".join("*" if any_index and isinstance(part, int) else str(part) for part in error.absolute_path)


def _truncate(node: Any, parts: list[str], length: int) -> None:
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(node, list):
        keys: list[Any] = list(range(len(node)))
    elif isinstance(node, dict) and head in node:
        keys = [head]
    else:
        return
    for key in keys:
        if rest:
            _truncate(node[key], rest, length)
        elif isinstance(node[key], str):
            node[key] = node[key][:length]
