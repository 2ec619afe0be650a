"""Reading the configuration store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet

from chargepoints.models import ChargePoint
from charging.models import LocalAuthList
from charging.selectors import local_list_entries_applied, local_lists_of_their_version
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


def device_model_limit(
    *, charge_point: ChargePoint, variable: str, instance: str = "", component: str = "DeviceDataCtrlr"
) -> int | None:
    """A positive whole number the charger reported as ``<component>.<variable>`` of ``instance``
    (``DeviceDataCtrlr.ItemsPerMessage``/``BytesPerMessage`` of ``SetVariables``, ...: OCPP 2.0.1
    part 2 B05/B06; ``LocalAuthListCtrlr.ItemsPerMessage``, D01), its Actual value; None when it
    reported none, or no such number."""
    value = (
        DeviceModelAttribute.objects.filter(
            variable__charge_point=charge_point,
            variable__component_name__iexact=component,
            variable__variable_name__iexact=variable,
            variable__variable_instance__iexact=instance,
            type=AttributeType.ACTUAL,
        )
        .values_list("value", flat=True)
        .first()
    )
    return _positive(value)


def device_model_max_limit(*, charge_point: ChargePoint, component: str, variable: str) -> int | None:
    """The ``maxLimit`` the charger reported in the characteristics of ``<component>.<variable>``
    (``LocalAuthListCtrlr.Entries``: how many tokens its local list holds, OCPP 2.0.1 D01), if a
    positive whole number."""
    characteristics = (
        DeviceModelVariable.objects.filter(
            charge_point=charge_point, component_name__iexact=component, variable_name__iexact=variable
        )
        .values_list("characteristics", flat=True)
        .first()
    )
    limit = (characteristics or {}).get("max_limit") if isinstance(characteristics, dict) else None
    if isinstance(limit, bool) or not isinstance(limit, int | float) or limit != int(limit):
        return None
    return int(limit) if limit > 0 else None


def configuration_key_number(*, charge_point: ChargePoint, key: str) -> int | None:
    """A positive whole number the charger reported as its 1.6 key ``key`` (``GetConfigurationMaxKeys``,
    ``SendLocalListMaxLength``, ...), None when it reported none, or no such number."""
    value = (
        ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact=key)
        .values_list("value", flat=True)
        .first()
    )
    return _positive(value)


def configuration_key_value(*, charge_point: ChargePoint, key: str) -> tuple[str | None, bool] | None:
    """The value the charger reported as its 1.6 key ``key`` (matched ignoring case) and whether it
    reported the key unknown; None when the CSMS knows nothing of the key."""
    return (
        ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact=key)
        .values_list("value", "unknown")
        .first()
    )


def _positive(value: str | None) -> int | None:
    try:
        number = int((value or "").strip())
    except ValueError:
        return None
    return number if number > 0 else None


def device_model_request_warnings(*, charge_point: ChargePoint, request: str, items: int, size: int) -> list[str]:
    """What to tell of a ``request`` (``GetVariables``, ``SetVariables``, ``GetReport``) of ``items``
    entries in a frame of ``size`` bytes that exceeds the charger's reported
    ``DeviceDataCtrlr.ItemsPerMessage`` or ``BytesPerMessage`` of that instance: it may refuse it
    whole with a CALLERROR (OCPP 2.0.1 B05, B06, B08). Sent as asked; nothing when it reported no limit."""
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
    most = configuration_key_number(charge_point=charge_point, key="GetConfigurationMaxKeys")
    if most is not None and most < keys:
        return [
            f"{keys} keys exceed the {most} the charge point reported as GetConfigurationMaxKeys:"
            " it may refuse the request; ask for fewer at a time."
        ]
    return []


# OCPP 1.6 9.4 ChargingScheduleAllowedChargingRateUnit (a CSL of Current, Power) and 2.0.1
# SmartChargingCtrlr.RateUnit (a member list of A, W): the unit each name means.
_RATE_UNITS = {"current": "A", "power": "W", "a": "A", "w": "W"}


@dataclass(frozen=True)
class ProfileLimits:
    """What a charger reported it takes in a charging profile, each as (its name, the value; None:
    none reported): the highest stack level, the periods in one schedule, the rate units (a
    comma-separated list)."""

    stack_level: tuple[str, int | None]
    periods: tuple[str, int | None]
    rate_units: tuple[str, str | None]


def charging_profile_limits_16(*, charge_point: ChargePoint) -> ProfileLimits:
    """OCPP 1.6 9.4's Smart Charging keys, as the charger reported them."""
    level, periods, units = (
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleMaxPeriods",
        "ChargingScheduleAllowedChargingRateUnit",
    )
    allowed = ConfigurationKey.objects.filter(charge_point=charge_point, key__iexact=units).values_list(
        "value", flat=True
    )
    return ProfileLimits(
        stack_level=(level, configuration_key_number(charge_point=charge_point, key=level)),
        periods=(periods, configuration_key_number(charge_point=charge_point, key=periods)),
        rate_units=(units, allowed.first()),
    )


def charging_profile_limits_201(*, charge_point: ChargePoint) -> ProfileLimits:
    """OCPP 2.0.1 SmartChargingCtrlr's ProfileStackLevel, PeriodsPerSchedule and RateUnit (Actual
    values), as the station reported them."""
    component = "SmartChargingCtrlr"
    units = DeviceModelAttribute.objects.filter(
        variable__charge_point=charge_point,
        variable__component_name__iexact=component,
        variable__variable_name__iexact="RateUnit",
        type=AttributeType.ACTUAL,
    ).values_list("value", flat=True)
    return ProfileLimits(
        stack_level=(
            f"{component}.ProfileStackLevel",
            device_model_limit(charge_point=charge_point, component=component, variable="ProfileStackLevel"),
        ),
        periods=(
            f"{component}.PeriodsPerSchedule",
            device_model_limit(charge_point=charge_point, component=component, variable="PeriodsPerSchedule"),
        ),
        rate_units=(f"{component}.RateUnit", units.first()),
    )


def charging_profile_request_warnings(
    *, limits: ProfileLimits, stack_level: int, periods: int, rate_units: set[str]
) -> list[str]:
    """What to tell of a SetChargingProfile whose profile the charger reported it cannot take
    (``limits``): a ``stack_level`` above its highest, more ``periods`` in a schedule than it takes, a
    rate unit (of ``rate_units``: A, W) it leaves out (OCPP 1.6 9.4; 2.0.1 SmartChargingCtrlr): it
    answers Rejected. Sent as asked; nothing for what it reported none of."""
    warnings = []
    (level_name, most_level), (periods_name, most_periods), (units_name, allowed) = (
        limits.stack_level,
        limits.periods,
        limits.rate_units,
    )
    if most_level is not None and stack_level > most_level:
        warnings.append(
            f"Stack level {stack_level} is above the {most_level} the charge point reported as"
            f" {level_name}: it may reject the profile."
        )
    if most_periods is not None and periods > most_periods:
        warnings.append(
            f"{periods} schedule periods exceed the {most_periods} the charge point reported as"
            f" {periods_name}: it may reject the profile."
        )
    units = {_RATE_UNITS.get(name.strip().lower()) for name in (allowed or "").split(",")} - {None}
    for unit in sorted(rate_units - units if units else set()):
        warnings.append(
            f"Charging rate unit {unit} is not among those the charge point reported as"
            f" {units_name} ({allowed}): it may reject the profile."
        )
    return warnings


@dataclass(frozen=True)
class ListLimit:
    """A limit of the charger's local authorization list: its name (a 1.6 key, a 2.0.1 variable),
    the number reported (None: none)."""

    name: str
    most: int | None


def local_list_request_warnings(
    *,
    charge_point: ChargePoint,
    full: bool,
    entries: dict[str, bool],
    per_message: ListLimit,
    capacity: ListLimit,
    size: int = 0,
    bytes_per_message: ListLimit = ListLimit("", None),
    version: int | None = None,
) -> list[str]:
    """What to tell of a SendLocalList (``entries``: its tokens, True for one it adds or changes,
    False for one a Differential update removes) the charger reported it cannot take: more entries
    than ``per_message`` (1.6 ``SendLocalListMaxLength``, 2.0.1 ``LocalAuthListCtrlr.ItemsPerMessage``),
    a frame of ``size`` bytes over ``bytes_per_message`` (2.0.1 ``LocalAuthListCtrlr.BytesPerMessage``),
    or a list that would hold more than ``capacity`` (1.6 ``LocalAuthListMaxLength``, 2.0.1
    ``LocalAuthListCtrlr.Entries`` maxLimit; a Differential update counted against the list the
    CSMS knows the charger holds, not at all when it knows none). The charger answers Failed, or
    refuses it whole (OCPP 1.6 5.15, 9.4; 2.0.1 D01). A Differential update whose ``version`` is not
    after the list version the CSMS knows the charger holds is answered VersionMismatch (1.6 7.44,
    2.0.1 SendLocalListStatusEnumType). Sent as asked."""
    warnings = []
    held = None if full else _list_held(charge_point)
    if held is not None and version is not None and version <= held[0]:
        warnings.append(
            f"A Differential update of version {version} is not after the charge point's list version"
            f" {held[0]}: it answers VersionMismatch; send version {held[0] + 1} or more, or a Full update."
        )
    if per_message.most is not None and len(entries) > per_message.most:
        warnings.append(
            f"{len(entries)} entries exceed the {per_message.most} the charge point reported as {per_message.name}:"
            " it may refuse the update; send a Full update of at most that many, then Differential ones."
        )
    if bytes_per_message.most is not None and size > bytes_per_message.most:
        warnings.append(
            f"The {size}-byte message exceeds the {bytes_per_message.most} the charge point reported as"
            f" {bytes_per_message.name}: it may refuse it whole; send fewer entries at a time."
        )
    after = _entries_after(full, entries, held) if capacity.most is not None else None
    if after is not None and capacity.most is not None and after > capacity.most:
        warnings.append(
            f"The list would hold {after} entries, more than the {capacity.most} the charge point reported as"
            f" {capacity.name}: it may answer Failed."
        )
    return warnings


def _list_held(charge_point: ChargePoint) -> tuple[int, dict[str, Any]] | None:
    """The version and entries of the list the CSMS knows the charger holds; None when it knows none
    (or only one it held in the other OCPP version: ``local_lists_of_their_version``)."""
    lists = LocalAuthList.objects.filter(local_lists_of_their_version(), charge_point=charge_point)
    return lists.values_list("version", "entries").first()


def _entries_after(full: bool, entries: dict[str, bool], held: tuple[int, dict[str, Any]] | None) -> int | None:
    """How many entries the charger's list (``held``) holds after the update, as the CSMS records
    it (``charging.selectors.local_list_entries_applied``: tokens matched ignoring case, 2.0.1 ones
    with their type); None for a Differential one when the CSMS knows no list of the charger."""
    if not full and held is None:
        return None
    update = {key: True if kept else None for key, kept in entries.items()}
    return len(local_list_entries_applied({} if full or held is None else held[1], update))


def _any_named(field: str, names: Sequence[str]) -> Q:
    query = Q()
    for name in names:
        query |= Q(**{f"{field}__iexact": name})
    return query
