"""Reading the configuration store."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q, QuerySet

from chargepoints.models import ChargePoint
from configuration.models import (
    AttributeType,
    ConfigurationKey,
    DeviceModelAttribute,
    DeviceModelReport,
    DeviceModelVariable,
)


def configuration_keys_list(*, charge_point: ChargePoint, keys: Sequence[str] = ()) -> QuerySet[ConfigurationKey]:
    """The charger's 1.6 keys, by name; ``keys`` keeps those named (case-insensitive, as CiString50)."""
    queryset = ConfigurationKey.objects.filter(charge_point=charge_point).select_related("command")
    if keys:
        queryset = queryset.filter(_any_named("key", keys))
    return queryset


def device_model_variables_list(
    *, charge_point: ChargePoint, components: Sequence[str] = (), variables: Sequence[str] = ()
) -> QuerySet[DeviceModelVariable]:
    """The charger's 2.0.1 variables with their attributes; filtered by component or variable name."""
    queryset = DeviceModelVariable.objects.filter(charge_point=charge_point).prefetch_related("attributes")
    if components:
        queryset = queryset.filter(_any_named("component_name", components))
    if variables:
        queryset = queryset.filter(_any_named("variable_name", variables))
    return queryset


def device_model_report_latest(*, charge_point: ChargePoint) -> DeviceModelReport | None:
    return DeviceModelReport.objects.filter(charge_point=charge_point).order_by("-started_at", "-pk").first()


def device_model_limit(*, charge_point: ChargePoint, variable: str, instance: str) -> int | None:
    """A positive whole number the charger reported as ``DeviceDataCtrlr.<variable>`` of ``instance``
    (``ItemsPerMessage``/``BytesPerMessage`` of ``SetVariables``, ...: OCPP 2.0.1 part 2 B05/B06),
    its Actual value; None when it reported none, or no such number."""
    value = (
        DeviceModelAttribute.objects.filter(
            variable__charge_point=charge_point,
            variable__component_name__iexact="DeviceDataCtrlr",
            variable__variable_name__iexact=variable,
            variable__variable_instance__iexact=instance,
            type=AttributeType.ACTUAL,
        )
        .values_list("value", flat=True)
        .first()
    )
    try:
        limit = int((value or "").strip())
    except ValueError:
        return None
    return limit if limit > 0 else None


def device_model_request_warnings(*, charge_point: ChargePoint, request: str, items: int, size: int) -> list[str]:
    """What to tell of a ``request`` (``GetVariables``, ``SetVariables``) of ``items`` entries in a
    frame of ``size`` bytes that exceeds the charger's reported ``DeviceDataCtrlr.ItemsPerMessage``
    or ``BytesPerMessage`` of that instance: it may refuse it whole with a CALLERROR (OCPP 2.0.1
    B05, B06). Sent as asked; nothing when it reported no limit."""
    warnings = []
    most_items = device_model_limit(charge_point=charge_point, variable="ItemsPerMessage", instance=request)
    if most_items is not None and items > most_items:
        warnings.append(
            f"{items} items exceed the {most_items} the charge point reported as ItemsPerMessage{request}:"
            " it may refuse the request whole (OccurrenceConstraintViolation); send fewer at a time."
        )
    most_bytes = device_model_limit(charge_point=charge_point, variable="BytesPerMessage", instance=request)
    if most_bytes is not None and size > most_bytes:
        warnings.append(
            f"The {size}-byte message exceeds the {most_bytes} the charge point reported as BytesPerMessage{request}:"
            " it may refuse it whole (FormatViolation); send fewer at a time."
        )
    return warnings


def configuration_keys_request_warnings(*, charge_point: ChargePoint, keys: int) -> list[str]:
    """What to tell of a 1.6 GetConfiguration naming more ``keys`` than the charger's reported
    ``GetConfigurationMaxKeys``: it may refuse the request (OCPP 1.6 5.8, 9.1.10). Sent as asked."""
    value = (
        ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact="GetConfigurationMaxKeys")
        .values_list("value", flat=True)
        .first()
    )
    try:
        most = int((value or "").strip())
    except ValueError:
        return []
    if 0 < most < keys:
        return [
            f"{keys} keys exceed the {most} the charge point reported as GetConfigurationMaxKeys:"
            " it may refuse the request; ask for fewer at a time."
        ]
    return []


def _any_named(field: str, names: Sequence[str]) -> Q:
    query = Q()
    for name in names:
        query |= Q(**{f"{field}__iexact": name})
    return query
