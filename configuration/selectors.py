"""Reading the configuration store."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Q, QuerySet

from chargepoints.models import ChargePoint
from configuration.models import ConfigurationKey, DeviceModelReport, DeviceModelVariable


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


def _any_named(field: str, names: Sequence[str]) -> Q:
    query = Q()
    for name in names:
        query |= Q(**{f"{field}__iexact": name})
    return query
