"""The rate units of the chargers whose configuration was read before ``ChargePoint.charging_rate_units``
existed (a boot of the same firmware reads it no more): copied from the keys and variables stored."""

from django.db import migrations

_UNITS = {"current": "A", "power": "W", "a": "A", "w": "W"}


def _units_of(value):
    # ``chargepoints.services.rate_units.charging_rate_units_of``, as it was written.
    named = {_UNITS.get(name.strip().casefold()) for name in (value or "").split(",")}
    return ",".join(sorted(unit for unit in named if unit is not None))


def forwards(apps, schema_editor):
    ChargePoint = apps.get_model("chargepoints", "ChargePoint")
    ConfigurationKey = apps.get_model("configuration", "ConfigurationKey")
    DeviceModelAttribute = apps.get_model("configuration", "DeviceModelAttribute")
    known = {}
    keys = ConfigurationKey.objects.filter(key__iexact="ChargingScheduleAllowedChargingRateUnit", unknown=False).exclude(
        charge_point__ocpp_version="2.0.1"
    )
    for charge_point_id, value in keys.values_list("charge_point_id", "value"):
        known[charge_point_id] = _units_of(value)
    attributes = (
        DeviceModelAttribute.objects.filter(
            type="Actual",
            variable__component_name__iexact="SmartChargingCtrlr",
            variable__variable_name__iexact="RateUnit",
        )
        .exclude(variable__charge_point__ocpp_version="1.6")
        .order_by("learned_at")
    )
    for charge_point_id, value in attributes.values_list("variable__charge_point_id", "value"):
        known[charge_point_id] = _units_of(value)
    by_units = {}
    for charge_point_id, units in known.items():
        by_units.setdefault(units, []).append(charge_point_id)
    for units, pks in by_units.items():
        if units:
            ChargePoint.objects.filter(pk__in=pks).update(charging_rate_units=units)


class Migration(migrations.Migration):
    dependencies = [
        ("configuration", "0003_report_complete_with_every_part"),
        ("chargepoints", "0024_charging_rate_units"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=True)]
