from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chargepoints.quirks import STRIP_IDTAG_SUFFIX, UNIT_ALIASES
from ocpp_gateway import leniency
from ocpp_gateway.quirks import (
    error_code_spelled,
    id_tag_stripped,
    payload_fixed,
    unit_canonical,
)


@pytest.mark.parametrize(
    ("received", "pattern", "expected"),
    [
        ("04A2B3C4\x00", "", "04A2B3C4"),
        ("04A2B3C4  \x00\x00", "", "04A2B3C4"),
        ("04A2B3C4:1", r":\d+", "04A2B3C4"),
        ("04A2B3C4-0", "-0", "04A2B3C4"),
        ("04A2B3C4-0 ", "-0", "04A2B3C4"),
        ("04A2-0B3C4", "-0", "04A2-0B3C4"),
        ("04A2B3C4:1", "", "04A2B3C4:1"),
    ],
)
def test_id_tags_lose_trailing_padding_and_the_vendor_suffix(received, pattern, expected):
    assert id_tag_stripped(received, suffix_pattern=pattern) == expected


@pytest.mark.parametrize(
    ("received", "expected"),
    [("KWH", "kWh"), ("kwh", "kWh"), ("wh", "Wh"), ("KW", "kW"), ("%", "Percent"), ("celsius", "Celsius")],
)
def test_units_in_another_case_or_an_alias_get_the_ocpp_spelling(received, expected):
    assert unit_canonical(received) == expected


def test_an_unknown_unit_stays_as_it_is():
    assert unit_canonical("furlongs") == "furlongs"


@pytest.mark.parametrize(
    ("code", "version", "expected"),
    [
        ("FormatViolation", "1.6", "FormationViolation"),
        ("FormationViolation", "1.6", "FormationViolation"),
        ("OccurrenceConstraintViolation", "1.6", "OccurenceConstraintViolation"),
        ("FormationViolation", "2.0.1", "FormatViolation"),
        ("FormatViolation", "2.0.1", "FormatViolation"),
        ("NotImplemented", "1.6", "NotImplemented"),
    ],
)
def test_either_format_violation_spelling_becomes_the_version_s_own(code, version, expected):
    assert error_code_spelled(code, ocpp_version=version) == expected


def test_payload_quirks_apply_only_when_enabled_and_keep_the_original():
    payload = {"connectorId": 1, "idTag": "TAG-1:2\x00", "meterStart": 0, "timestamp": "2026-01-01T00:00:00Z"}
    assert payload_fixed(payload, quirks=()) is payload
    fixed = payload_fixed(payload, quirks=(STRIP_IDTAG_SUFFIX,), id_tag_suffix=r":\d+")
    assert fixed["idTag"] == "TAG-1"
    assert payload["idTag"] == "TAG-1:2\x00"


def test_v201_id_tokens_are_stripped_too():
    payload = {"idToken": {"idToken": "ABC ", "type": "ISO14443"}}
    assert payload_fixed(payload, quirks=(STRIP_IDTAG_SUFFIX,))["idToken"] == {"idToken": "ABC", "type": "ISO14443"}


def test_units_of_both_versions_sampled_values_are_canonicalised():
    v16 = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1", "unit": "KWH"}, {"value": "2"}]}]}
    v201 = {"meterValue": [{"sampledValue": [{"value": 1, "unitOfMeasure": {"unit": "kwh"}}]}]}
    stop = {"transactionData": [{"sampledValue": [{"value": "1", "unit": "wh"}]}]}
    assert payload_fixed(v16, quirks=(UNIT_ALIASES,))["meterValue"][0]["sampledValue"][0]["unit"] == "kWh"
    assert payload_fixed(v201, quirks=(UNIT_ALIASES,))["meterValue"][0]["sampledValue"][0]["unitOfMeasure"] == {
        "unit": "kWh"
    }
    assert payload_fixed(stop, quirks=(UNIT_ALIASES,))["transactionData"][0]["sampledValue"][0]["unit"] == "Wh"


def test_malformed_payloads_pass_through_for_validation_to_answer():
    odd = {"idTag": 7, "idToken": "x", "meterValue": [None, {"sampledValue": "x"}, {"sampledValue": [3]}]}
    assert payload_fixed(odd, quirks=(STRIP_IDTAG_SUFFIX, UNIT_ALIASES)) == odd
    assert payload_fixed([1, 2], quirks=(STRIP_IDTAG_SUFFIX,)) == [1, 2]


# --- Which violations a lenient profile tolerates -------------------------------------------

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "A1"}
AT = datetime(2026, 1, 1, tzinfo=UTC)


def tolerated(version: str, action: str, payload: dict) -> leniency.Accepted | None:
    return leniency.accepted(ocpp_version=version, action=action, payload=payload, lenient=True, received_at=AT)


def test_an_over_long_serial_number_is_tolerated_and_cut_to_the_stored_length():
    payload = {**BOOT, "chargePointSerialNumber": "S" * 60}
    result = tolerated("1.6", "BootNotification", payload)
    assert result is not None
    assert [(v.path, v.validator) for v in result.violations] == [("chargePointSerialNumber", "maxLength")]
    assert result.payload["chargePointSerialNumber"] == "S" * 50 and len(payload["chargePointSerialNumber"]) == 60


def test_an_unknown_error_code_and_unit_are_tolerated():
    status = {"connectorId": 1, "errorCode": "FanFailure", "status": "Available"}
    meter = {
        "connectorId": 1,
        "meterValue": [
            {
                "timestamp": "2026-01-01T00:00:00Z",
                "sampledValue": [{"value": "1", "unit": "kWh"}, {"value": "2", "unit": "KWH"}],
            }
        ],
    }
    status_result, meter_result = tolerated("1.6", "StatusNotification", status), tolerated("1.6", "MeterValues", meter)
    assert status_result is not None and meter_result is not None
    assert [(v.path, v.value) for v in status_result.violations] == [("errorCode", "FanFailure")]
    assert [(v.path, v.value) for v in meter_result.violations] == [("meterValue/0/sampledValue/1/unit", "KWH")]


def test_any_harmful_violation_makes_the_whole_message_refused():
    unknown_status = {"connectorId": 1, "errorCode": "FanFailure", "status": "Sleeping"}
    extra_field = {**BOOT, "chargePointSerialNumber": "S" * 60, "x": 1}
    assert tolerated("1.6", "StatusNotification", unknown_status) is None
    assert tolerated("1.6", "BootNotification", extra_field) is None
    assert tolerated("1.6", "Heartbeat", {"x": 1}) is None


def test_a_valid_payload_has_nothing_to_tolerate():
    assert tolerated("1.6", "BootNotification", BOOT) is None


def test_a_v201_boot_names_its_model_and_its_long_serial_is_tolerated():
    payload = {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "Acme", "model": "A2", "serialNumber": "S" * 30, "firmwareVersion": "2.1"},
    }
    assert leniency.boot_identity(ocpp_version="2.0.1", payload=payload) == ("Acme", "A2", "2.1")
    assert leniency.boot_identity(ocpp_version="1.6", payload={**BOOT, "firmwareVersion": 3}) == ("Acme", "A1", "")
    result = tolerated("2.0.1", "BootNotification", payload)
    assert result is not None
    assert [v.path for v in result.violations] == ["chargingStation/serialNumber"]
