"""Signed readings as each version sends them: 2.0.1's value is the reading, its signedMeterValue
beside it (SampledValueType); 1.6's SignedData format carries the signed blob as its value."""

from __future__ import annotations

from decimal import Decimal

from charging.services.meter_ledger import sample_rows
from ocpp_gateway.v16.transactions import sampled_values as sampled_values16
from ocpp_gateway.v201.transactions import sampled_values as sampled_values201

T = "2026-05-01T10:00:00Z"
SIGNED = {
    "signedMeterData": "OCMF|1.5",
    "signingMethod": "ECDSA-secp256r1-SHA256",
    "encodingMethod": "OCMF",
    "publicKey": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
}


def test_a_2_0_1_signed_reading_counts_in_its_unit_and_multiplier():
    sampled = {"value": 1.5, "unitOfMeasure": {"unit": "kWh", "multiplier": 1}, "signedMeterValue": SIGNED}
    [row] = sample_rows(3, None, sampled_values201([{"timestamp": T, "sampledValue": [sampled]}]), source="MeterValues")
    assert row.value == Decimal(15000)  # 1.5 x 10^1 kWh
    assert (row.format, row.signed_data["signed_meter_data"]) == ("", "OCMF|1.5")


def test_a_1_6_signed_data_value_is_a_blob_however_it_reads():
    sampled = {"value": "1500", "format": "SignedData"}
    [row] = sample_rows(3, None, sampled_values16([{"timestamp": T, "sampledValue": [sampled]}]), source="MeterValues")
    assert row.value is None
    assert (row.format, row.signed_data) == ("SignedData", {"format": "SignedData", "value": "1500"})
