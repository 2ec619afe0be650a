"""snake_case for Python and the API, camelCase for OCPP: on OCPP fields only.

Vendor data is opaque (OCPP 2.0.1 part 2, DataTransfer and CustomDataType): the value of a
payload's top-level ``data`` (DataTransfer) and every key of a ``customData`` object except its
``vendorId`` keep their spelling in both directions. ``install`` puts these conversions in place of
the ``ocpp`` package's, which handlers' keyword arguments and answers go through.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from kernel import ocpp_package

_CUSTOM_DATA = {"customData", "custom_data"}
_VENDOR_ID = {"vendorId", "vendor_id"}
_NESTED = (dict, list)  # what holds keys to convert; any other value is kept as it is


# Every frame converts the same few hundred OCPP names; the package's regular expressions ran
# for each key of each frame. Bounded: keys come from chargers.
@lru_cache(maxsize=4096)
def snake_name(name: str) -> str:
    """``name`` (an OCPP field or action) in snake_case: ``BootNotification`` -> ``boot_notification``."""
    return next(iter(ocpp_package.package_snake_case({name: None})))


@lru_cache(maxsize=4096)
def camel_name(name: str) -> str:
    return next(iter(ocpp_package.package_camel_case({name: None})))


def snake_case(payload: Any) -> Any:
    """``payload`` with the keys of its OCPP fields in snake_case (a copy)."""
    return _converted(payload, snake_name, top_level=True)


def camel_case(payload: Any) -> Any:
    """``payload`` with the keys of its OCPP fields in camelCase (a copy)."""
    return _converted(payload, camel_name, top_level=True)


def camel_case_keys(payload: Any, path: str = "") -> list[str]:
    """The paths (``id_token.idToken``) of ``payload``'s OCPP field names that are not in
    snake_case as the CSMS spells them, vendor data left out as above: an API body written in OCPP's
    camelCase, or a name that becomes an OCPP field only once converted (``type_``, ``connector__id``:
    ``type``, ``connectorId``), which the CSMS would send but not read, nor record, as that field.
    Each one's meant spelling is ``snake_name(camel_name(name))``."""
    found: list[str] = []
    items = enumerate(payload) if isinstance(payload, list) else payload.items() if isinstance(payload, dict) else ()
    for name, inner in items:
        where = f"{path}.{name}" if path else str(name)
        if isinstance(name, str):
            if (not path and name == "data") or name in _CUSTOM_DATA:
                continue
            if name != name.lower() or snake_name(camel_name(name)) != name:
                found.append(where)
        if isinstance(inner, _NESTED):
            found.extend(camel_case_keys(inner, where))
    return found


def _converted(value: Any, key: Callable[[str], str], *, top_level: bool = False) -> Any:
    # Scalars are most of a frame's values: they are kept without a call each (issue 15).
    if isinstance(value, list):
        return [_converted(item, key) if isinstance(item, _NESTED) else item for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for name, inner in value.items():
        if top_level and name == "data":
            result[name] = inner
        elif name in _CUSTOM_DATA:
            result[key(name)] = _custom_data(inner, key)
        else:
            result[key(name)] = _converted(inner, key) if isinstance(inner, _NESTED) else inner
    return result


def _custom_data(value: Any, key: Callable[[str], str]) -> Any:
    if not isinstance(value, dict):
        return value
    return {key(name) if name in _VENDOR_ID else name: inner for name, inner in value.items()}


def install() -> None:
    """Make the ``ocpp`` package convert inbound CALLs and their answers with these rules (idempotent)."""
    ocpp_package.case_conversions_install(snake_case, camel_case)
