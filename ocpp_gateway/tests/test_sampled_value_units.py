"""A sampled value sent without a unit: OCPP 1.6 §7.45 SampledValue.unit and 2.0.1 UnitOfMeasureType.unit
default to Wh only when the measurand is an Energy one; another measurand's unit is not stated."""

from __future__ import annotations

from decimal import Decimal

import pytest

from charging.services.meter_ledger import sample_rows
from ocpp_gateway.v16.transactions import sampled_values as sampled_values16
from ocpp_gateway.v201.transactions import sampled_values as sampled_values201

T = "2026-05-01T10:00:00Z"
WITHOUT_UNIT = [
    {"value": "7400", "measurand": "Power.Active.Import"},
    {"value": "16.1", "measurand": "Current.Import", "phase": "L1"},
    {"value": "55", "measurand": "SoC", "location": "EV"},
    {"value": "12000"},  # the default measurand, Energy.Active.Import.Register
    {"value": "300", "measurand": "Energy.Active.Import.Interval"},
]
UNITS = {
    "Power.Active.Import": "",
    "Current.Import": "",
    "SoC": "",
    "Energy.Active.Import.Register": "Wh",
    "Energy.Active.Import.Interval": "Wh",
}


def _rows(version: str) -> list:
    if version == "1.6":
        samples = sampled_values16([{"timestamp": T, "sampledValue": WITHOUT_UNIT}])
    else:
        sent = [{**s, "value": float(s["value"])} | ({"unitOfMeasure": {"multiplier": 0}}) for s in WITHOUT_UNIT]
        samples = sampled_values201([{"timestamp": T, "sampledValue": sent}])
    return sample_rows(3, None, samples, source="MeterValues")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_only_an_energy_measurand_sent_without_a_unit_is_in_wh(version):
    rows = _rows(version)
    assert {row.measurand: row.unit for row in rows} == UNITS
    assert {row.measurand: row.value for row in rows}["Current.Import"] == Decimal("16.1")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_unit_sent_is_kept_whatever_the_measurand(version):
    if version == "1.6":
        samples = sampled_values16(
            [{"timestamp": T, "sampledValue": [{"value": "7.4", "measurand": "Power.Active.Import", "unit": "kW"}]}]
        )
    else:
        sent = {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}
        samples = sampled_values201([{"timestamp": T, "sampledValue": [sent]}])
    [row] = sample_rows(3, None, samples, source="MeterValues")
    assert (row.unit, row.value) == ("kW", Decimal("7400.0"))
