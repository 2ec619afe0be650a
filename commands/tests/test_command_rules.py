"""What OCPP says in prose about a command body, and its schemas leave out (round 40's probes): refused
with a 400 naming the field and nothing sent, times sent as UTC with ``Z``, and a command whose answer
the CSMS cannot apply to its own state is still completed (in-process API client)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from charging.models import AuthorizationStatus, IdTag, Reservation, ReservationStatus, Transaction
from commands import selectors
from commands.models import Command, CommandState
from ocpp_gateway.tests.test_command_routes import answered

pytestmark = pytest.mark.django_db

PROFILE = {
    "charging_profile_id": 1,
    "stack_level": 0,
    "charging_profile_purpose": "TxProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 0, "limit": 16}]},
}
LATE_FIRST_PERIOD = {
    "charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": [{"start_period": 300, "limit": 16}]}
}
UNORDERED_PERIODS = {
    "charging_schedule": {
        "charging_rate_unit": "A",
        "charging_schedule_period": [{"start_period": 0, "limit": 16}, {"start_period": 0, "limit": 8}],
    }
}
NO_PERIOD = {"charging_schedule": {"charging_rate_unit": "A", "charging_schedule_period": []}}
STATION_MAX = "ChargePointMaxProfile"
PROFILE201: dict[str, Any] = {
    "id": 1,
    "stack_level": 0,
    "charging_profile_purpose": "TxDefaultProfile",
    "charging_profile_kind": "Absolute",
    "charging_schedule": [
        {
            "id": 1,
            "start_schedule": "2031-01-01T00:00:00Z",
            "charging_rate_unit": "A",
            "charging_schedule_period": [{"start_period": 0, "limit": 16}],
        }
    ],
}
EXTERNAL = "ChargingStationExternalConstraints"


def profile201(schedule: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """``PROFILE201`` with ``fields`` changed and its schedule with ``schedule``'s (None: left out)."""
    [base] = PROFILE201["charging_schedule"]
    changed = {**base, **(schedule or {})}
    profile = {**PROFILE201, **fields, "charging_schedule": [{k: v for k, v in changed.items() if v is not None}]}
    return {k: v for k, v in profile.items() if v is not None}


def periods(*period: dict[str, Any]) -> dict[str, Any]:
    return {"charging_schedule_period": list(period)}


SCHEDULE0 = "charging_profile.charging_schedule.0"
TWO_SCHEDULES = [  # ISO 15118: the EV chooses one
    PROFILE201["charging_schedule"][0],
    {**PROFILE201["charging_schedule"][0], "id": 2, "charging_schedule_period": [{"start_period": 0, "limit": 10}]},
]
HEARTBEAT_VARIABLE = {
    "component": {"name": "OCPPCommCtrlr"},
    "variable": {"name": "HeartbeatInterval"},
    "attribute_value": "60",
}
RESERVE16 = {"connector_id": 1, "expiry_date": "2031-01-01T00:00:00Z", "id_tag": "RFID-1", "reservation_id": 7}
TOKEN = {"id_token": "RFID-1", "type": "ISO14443"}
LIST_ENTRY = {"id_tag": "A", "id_tag_info": {"status": "Accepted"}}
FULL_WIDTH_DIGITS = "2031-01-01T10:00:00Z".translate({ord(d): ord(d) + 0xFEE0 for d in "0123456789"})
ONE_ENTRY = {"local_authorization_list": [LIST_ENTRY]}
LOG = {"remote_location": "https://logs.example/upload"}
FUTURE = "2031-01-01T00:00:00Z"
LOG_AT, FW_AT, FW_SIG = "log.remote_location", "firmware.location", "firmware.signature"


def firmware201(location: str) -> dict[str, Any]:
    """A 2.0.1 UpdateFirmware's ``firmware`` from ``location``."""
    return {"location": location, "retrieve_date_time": FUTURE}


FIRMWARE = firmware201("https://fw.example.com/fw.bin")


@pytest.mark.parametrize(
    ("version", "command", "body", "field"),
    [
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "not-a-date"}, "expiry_date"),
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "2031-01-01T00:00:00"}, "expiry_date"),  # no offset
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "2031-01-01"}, "expiry_date"),
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "2031-13-01T00:00:00Z"}, "expiry_date"),
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": FULL_WIDTH_DIGITS}, "expiry_date"),
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "0001-01-01T00:00:00+01:00"}, "expiry_date"),
        # Year 10000 in UTC: it was sent as 9999-12-31T23:59:59.999Z, an hour earlier than asked
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "9999-12-31T23:59:59-01:00"}, "expiry_date"),
        (
            "2.0.1",
            "get_log",
            {
                "log": {**LOG, "oldest_timestamp": "9999-12-31T23:30:00.000-14:00"},
                "log_type": "DiagnosticsLog",
                "request_id": 1,
            },
            "log.oldest_timestamp",
        ),
        # Second 60 (no leap second falls there): sent as written, which the charger's clock library may refuse
        ("1.6", "reserve_now", {**RESERVE16, "expiry_date": "2031-01-01T00:00:60Z"}, "expiry_date"),
        ("1.6", "reserve_now", {**RESERVE16, "reservation_id": 2**31}, "reservation_id"),
        ("1.6", "reserve_now", {**RESERVE16, "connector_id": -3}, "connector_id"),
        ("1.6", "reserve_now", {**RESERVE16, "reservation_id": -1}, "reservation_id"),
        ("1.6", "cancel_reservation", {"reservation_id": -1}, "reservation_id"),
        ("2.0.1", "reserve_now", {"id": -1, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": TOKEN}, "id"),
        # H01: an EVSE is reserved (> 0), or none named (any); EVSE 0 would be recorded on no EVSE's
        (
            "2.0.1",
            "reserve_now",
            {"id": 1, "evse_id": 0, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": TOKEN},
            "evse_id",
        ),
        ("2.0.1", "cancel_reservation", {"reservation_id": -1}, "reservation_id"),
        ("1.6", "send_local_list", {"list_version": 2**40, "update_type": "Full"}, "list_version"),
        (
            "1.6",
            "send_local_list",
            {"list_version": 0, "update_type": "Full", "local_authorization_list": [LIST_ENTRY]},
            "list_version",
        ),
        ("1.6", "send_local_list", {"list_version": -1, "update_type": "Differential"}, "list_version"),
        (
            "1.6",
            "send_local_list",
            {"list_version": 3, "update_type": "Full", "local_authorization_list": [{"id_tag": "A"}]},
            "local_authorization_list.0.id_tag_info",
        ),
        (
            "1.6",
            "send_local_list",
            {
                "list_version": 3,
                "update_type": "Full",
                "local_authorization_list": [LIST_ENTRY, {**LIST_ENTRY, "id_tag": "a"}],
            },
            "local_authorization_list.1",
        ),
        (
            "2.0.1",
            "send_local_list",
            {"version_number": -2, "update_type": "Full"},
            "version_number",
        ),
        ("1.6", "remote_start_transaction", {"connector_id": 0, "id_tag": "A"}, "connector_id"),
        ("1.6", "remote_start_transaction", {"connector_id": -1, "id_tag": "A"}, "connector_id"),
        (
            "1.6",
            "remote_start_transaction",
            {"id_tag": "A", "charging_profile": {**PROFILE, "charging_profile_purpose": "TxDefaultProfile"}},
            "charging_profile.charging_profile_purpose",
        ),
        (
            "1.6",
            "remote_start_transaction",
            {"id_tag": "A", "charging_profile": {**PROFILE, "transaction_id": 5}},
            "charging_profile.transaction_id",
        ),
        ("2.0.1", "request_start_transaction", {"evse_id": 0, "remote_start_id": 1, "id_token": TOKEN}, "evse_id"),
        ("1.6", "unlock_connector", {"connector_id": 0}, "connector_id"),
        ("2.0.1", "unlock_connector", {"evse_id": 0, "connector_id": 1}, "evse_id"),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, "stack_level": -1}},
            "cs_charging_profiles.stack_level",
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, "stack_level": 2**40}},
            "cs_charging_profiles.stack_level",
        ),
        ("1.6", "get_diagnostics", {"location": "ftp://x/", "start_time": "garbage"}, "start_time"),
        # Probe: a location the schema's format "uri" refuses was sent, the charger unable to use it
        ("1.6", "get_diagnostics", {"location": ""}, "location"),
        ("1.6", "get_diagnostics", {"location": "uploads.example.com/diag"}, "location"),
        ("1.6", "update_firmware", {"location": "fw.example.com/fw.bin", "retrieve_date": FUTURE}, "location"),
        ("1.6", "update_firmware", {"location": "https://fw.example.com/a b", "retrieve_date": FUTURE}, "location"),
        (
            "1.6",
            "get_diagnostics",
            {"location": "ftp://x/", "start_time": "2031-01-02T00:00:00Z", "stop_time": "2031-01-01T00:00:00Z"},
            "stop_time",
        ),
        ("2.0.1", "get_log", {"log_type": "DiagnosticsLog", "request_id": -1, "log": LOG}, "request_id"),
        (
            "2.0.1",
            "get_log",
            {
                "log_type": "DiagnosticsLog",
                "request_id": 1,
                "log": {**LOG, "oldest_timestamp": "2031-01-02T00:00:00Z", "latest_timestamp": "2031-01-01T00:00:00Z"},
            },
            "log.latest_timestamp",
        ),
        # Probe: a 2.0.1 location that is no absolute URI (its data type URI, its schema a string) was sent
        ("2.0.1", "get_log", {"log_type": "DiagnosticsLog", "request_id": 1, "log": {"remote_location": ""}}, LOG_AT),
        (
            "2.0.1",
            "get_log",
            {"log_type": "DiagnosticsLog", "request_id": 1, "log": {"remote_location": "relative/path"}},
            LOG_AT,
        ),
        ("2.0.1", "update_firmware", {"request_id": 1, "firmware": firmware201("")}, FW_AT),
        ("2.0.1", "update_firmware", {"request_id": 1, "firmware": firmware201("fw.example.com/fw.bin")}, FW_AT),
        # L01 FirmwareType: the signature is Base64; one that is not was sent, the station failing the image
        # InvalidSignature once downloaded
        *(
            ("2.0.1", "update_firmware", {"request_id": 1, "firmware": {**FIRMWARE, "signature": sig}}, FW_SIG)
            for sig in ("0x3045022100ab", "not base64 !!", "", "MEUCIQ")
        ),
        ("2.0.1", "get_base_report", {"request_id": -1, "report_base": "FullInventory"}, "request_id"),
        ("2.0.1", "request_start_transaction", {"remote_start_id": -5, "id_token": TOKEN}, "remote_start_id"),
        ("2.0.1", "request_stop_transaction", {"transaction_id": ""}, "transaction_id"),
        ("2.0.1", "get_transaction_status", {"transaction_id": ""}, "transaction_id"),  # was sent as ""
        (
            "2.0.1",
            "trigger_message",
            {"requested_message": "StatusNotification", "evse": {"id": 0, "connector_id": 1}},
            "evse.id",
        ),
        ("2.0.1", "trigger_message", {"requested_message": "StatusNotification", "evse": {"id": 0}}, "evse.id"),
        # F06.FR.13: a StatusNotification is triggered for an EVSE (a station reports statuses per connector)
        ("2.0.1", "trigger_message", {"requested_message": "StatusNotification"}, "evse"),
        # K10.FR.06: the CSMS never clears an external system's limits
        (
            "2.0.1",
            "clear_charging_profile",
            {"charging_profile_criteria": {"charging_profile_purpose": "ChargingStationExternalConstraints"}},
            "charging_profile_criteria.charging_profile_purpose",
        ),
        # K10.FR.02: a ClearChargingProfile names what it clears (an id, or an EVSE, stack level or purpose);
        # both were sent, a station left to guess (clear every profile, the site's failsafe too, or none)
        ("2.0.1", "clear_charging_profile", {}, "charging_profile_criteria"),
        ("2.0.1", "clear_charging_profile", {"charging_profile_criteria": {}}, "charging_profile_criteria"),
        # K09.FR.03: a GetChargingProfiles names ids, or a stack level, source or purpose (an EVSE is no criterion)
        ("2.0.1", "get_charging_profiles", {"request_id": 1, "charging_profile": {}}, "charging_profile"),
        (
            "2.0.1",
            "get_charging_profiles",
            {"request_id": 1, "evse_id": 1, "charging_profile": {}},
            "charging_profile",
        ),
        ("2.0.1", "change_availability", {"operational_status": "Inoperative", "evse": {"id": 0}}, "evse.id"),
        (
            "2.0.1",
            "change_availability",
            {"operational_status": "Inoperative", "evse": {"id": 0, "connector_id": 1}},
            "evse.id",
        ),
        (
            "2.0.1",
            "change_availability",
            {"operational_status": "Inoperative", "evse": {"id": 1, "connector_id": 0}},
            "evse.connector_id",
        ),
        (
            "2.0.1",
            "get_variables",
            {"get_variable_data": [{"component": {"name": "EVSE", "evse": {"id": 0}}, "variable": {"name": "Power"}}]},
            "get_variable_data.0.component.evse.id",
        ),
        ("2.0.1", "reset", {"type": "Immediate", "evse_id": 0}, "evse_id"),
        (
            "2.0.1",
            "set_variables",
            {"set_variable_data": [HEARTBEAT_VARIABLE, {**HEARTBEAT_VARIABLE, "attribute_value": "5"}]},
            "set_variable_data.1",
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 0, "cs_charging_profiles": PROFILE},
            "connector_id",  # a TxProfile on the whole station
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, "charging_profile_purpose": STATION_MAX}},
            "connector_id",
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, **LATE_FIRST_PERIOD}},
            "cs_charging_profiles.charging_schedule.charging_schedule_period.0.start_period",
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, **UNORDERED_PERIODS}},
            "cs_charging_profiles.charging_schedule.charging_schedule_period.1.start_period",
        ),
        (
            "1.6",
            "set_charging_profile",
            {
                "connector_id": 1,
                "cs_charging_profiles": {
                    **PROFILE,
                    "valid_from": "2031-01-02T00:00:00Z",
                    "valid_to": "2031-01-01T00:00:00Z",
                },
            },
            "cs_charging_profiles.valid_to",
        ),
        (
            "1.6",
            "set_charging_profile",
            {
                "connector_id": 1,
                "cs_charging_profiles": {
                    **PROFILE,
                    "charging_profile_purpose": "TxDefaultProfile",
                    "transaction_id": 5,
                },
            },
            "cs_charging_profiles.transaction_id",  # 1.6 §7.8: only a TxProfile names a transaction
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": {
                    "id": 1,
                    "stack_level": 0,
                    "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Absolute",
                    "transaction_id": "tx-1",
                    "charging_schedule": [
                        {
                            "id": 1,
                            "charging_rate_unit": "A",
                            "charging_schedule_period": [{"start_period": 0, "limit": 16}],
                        }
                    ],
                },
            },
            "charging_profile.transaction_id",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 0, "charging_profile": {**PROFILE201, "charging_profile_purpose": EXTERNAL}},
            "charging_profile.charging_profile_purpose",  # K01.FR.22: the CSMS does not set it
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201(charging_profile_purpose="TxProfile")},
            "charging_profile.transaction_id",  # K01.FR.03
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201(charging_profile_kind="Relative")},
            f"{SCHEDULE0}.start_schedule",  # K01.FR.41
        ),
        # K01.FR.40: an Absolute or Recurring schedule says when it starts (a station rejects it without:
        # its periods count from no point in time); a remote start's profile too. Both were sent.
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201({"start_schedule": None})},
            f"{SCHEDULE0}.start_schedule",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    {"start_schedule": None}, charging_profile_kind="Recurring", recurrency_kind="Daily"
                ),
            },
            f"{SCHEDULE0}.start_schedule",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {
                "remote_start_id": 1,
                "id_token": TOKEN,
                "charging_profile": profile201({"start_schedule": None}, charging_profile_purpose="TxProfile"),
            },
            "charging_profile.charging_schedule.0.start_schedule",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201(charging_profile_kind="Recurring")},
            "charging_profile.recurrency_kind",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(periods({"start_period": 0, "limit": 16, "phase_to_use": 2})),
            },
            f"{SCHEDULE0}.charging_schedule_period.0.phase_to_use",  # number_phases: 3 when left out
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    periods({"start_period": 0, "limit": 16, "number_phases": 3, "phase_to_use": 1})
                ),
            },
            f"{SCHEDULE0}.charging_schedule_period.0.phase_to_use",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    periods({"start_period": 0, "limit": 16, "number_phases": 1, "phase_to_use": 4})
                ),
            },
            f"{SCHEDULE0}.charging_schedule_period.0.phase_to_use",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {
                "remote_start_id": 1,
                "id_token": TOKEN,
                "charging_profile": profile201(
                    periods({"start_period": 0, "limit": 16, "phase_to_use": 3}), charging_profile_purpose="TxProfile"
                ),
            },
            f"{SCHEDULE0}.charging_schedule_period.0.phase_to_use",
        ),
        (
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, "charging_profile_kind": "Recurring"}},
            "cs_charging_profiles.recurrency_kind",
        ),
        (
            "1.6",
            "remote_start_transaction",
            {"id_tag": "A", "charging_profile": {**PROFILE, "charging_profile_kind": "Recurring"}},
            "charging_profile.recurrency_kind",
        ),
        (
            "1.6",
            "remote_start_transaction",
            {"id_tag": "A", "charging_profile": {**PROFILE, **LATE_FIRST_PERIOD}},
            "charging_profile.charging_schedule.charging_schedule_period.0.start_period",
        ),
        (  # round 48's probe: a period of 0 phases (a limit in W with no current) or 4 was sent
            "1.6",
            "set_charging_profile",
            {
                "connector_id": 1,
                "cs_charging_profiles": {
                    **PROFILE,
                    "charging_schedule": {
                        "charging_rate_unit": "W",
                        "charging_schedule_period": [{"start_period": 0, "limit": 7400, "number_phases": 0}],
                    },
                },
            },
            "cs_charging_profiles.charging_schedule.charging_schedule_period.0.number_phases",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(periods({"start_period": 0, "limit": 16, "number_phases": 4})),
            },
            f"{SCHEDULE0}.charging_schedule_period.0.number_phases",
        ),
        # 2.0.1 ChargingProfileType chargingSchedule: more than one (up to 3) only in a TxProfile
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": {**PROFILE201, "charging_schedule": TWO_SCHEDULES}},
            "charging_profile.charging_schedule",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 0,
                "charging_profile": {
                    **PROFILE201,
                    "charging_profile_purpose": "ChargingStationMaxProfile",
                    "charging_schedule": TWO_SCHEDULES,
                },
            },
            "charging_profile.charging_schedule",
        ),
        # 2.0.1 ChargingScheduleType id identifies the schedule (ISO 15118's choice is reported by it):
        # two of one id in a TxProfile were sent, the EV's choice made ambiguous
        (
            "2.0.1",
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": {
                    **PROFILE201,
                    "charging_profile_purpose": "TxProfile",
                    "transaction_id": "tx-1",
                    "charging_schedule": [TWO_SCHEDULES[0], {**TWO_SCHEDULES[1], "id": 1}],
                },
            },
            "charging_profile.charging_schedule.1.id",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {
                "remote_start_id": 1,
                "id_token": TOKEN,
                "charging_profile": {
                    **PROFILE201,
                    "charging_profile_purpose": "TxProfile",
                    "charging_schedule": [TWO_SCHEDULES[0], {**TWO_SCHEDULES[1], "id": 1}],
                },
            },
            "charging_profile.charging_schedule.1.id",
        ),
        # 2.0.1 ChargingSchedulePeriodType limit, ChargingScheduleType minChargingRate: "at most one
        # digit fraction (e.g. 8.1)", as 1.6's schema says (multipleOf 0.1)
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201(periods({"start_period": 0, "limit": 16.25}))},
            f"{SCHEDULE0}.charging_schedule_period.0.limit",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201({"min_charging_rate": 6.55})},
            f"{SCHEDULE0}.min_charging_rate",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {
                "remote_start_id": 1,
                "id_token": TOKEN,
                "charging_profile": profile201(
                    periods({"start_period": 0, "limit": 7400}, {"start_period": 600, "limit": 3680.05}),
                    charging_profile_purpose="TxProfile",
                ),
            },
            f"{SCHEDULE0}.charging_schedule_period.1.limit",
        ),
        (  # round 43's probe: a schedule of no period was sent (1.6's schema has no minItems)
            "1.6",
            "set_charging_profile",
            {"connector_id": 1, "cs_charging_profiles": {**PROFILE, **NO_PERIOD}},
            "cs_charging_profiles.charging_schedule.charging_schedule_period",
        ),
        (
            "1.6",
            "remote_start_transaction",
            {"id_tag": "A", "charging_profile": {**PROFILE, **NO_PERIOD}},
            "charging_profile.charging_schedule.charging_schedule_period",
        ),
        (
            "2.0.1",
            "set_charging_profile",
            {"evse_id": 0, "charging_profile": profile201(periods())},
            "charging_profile.charging_schedule.0.charging_schedule_period",
        ),
    ],
)
def test_a_body_breaking_what_ocpp_says_in_prose_is_a_400_naming_the_field_and_nothing_is_sent(
    api_client, register_charge_point, version, command, body, field
):
    register_charge_point("CP-1", ocpp_version=version)
    path = "ocpp16" if version == "1.6" else "ocpp201"
    response = api_client.post(f"/api/v1/{path}/CP-1/{command}", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"], response.json()
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("command", "body"),
    [
        (
            "get_log",
            {
                "log_type": "DiagnosticsLog",
                "request_id": 0,
                "log": {**LOG, "oldest_timestamp": "2031-01-01T00:00:00Z", "latest_timestamp": "2031-01-01T00:00:00Z"},
            },
        ),
        ("request_stop_transaction", {"transaction_id": "TX-1"}),
        ("get_transaction_status", {"transaction_id": "TX-1"}),
        ("get_transaction_status", {}),  # E14: every transaction's messages
        ("trigger_message", {"requested_message": "StatusNotification", "evse": {"id": 1, "connector_id": 1}}),
        ("trigger_message", {"requested_message": "StatusNotification", "evse": {"id": 1}}),  # each connector
        ("trigger_message", {"requested_message": "Heartbeat"}),
        ("clear_charging_profile", {"charging_profile_criteria": {"charging_profile_purpose": "TxDefaultProfile"}}),
        ("clear_charging_profile", {"charging_profile_id": 7}),
        ("clear_charging_profile", {"charging_profile_criteria": {"evse_id": 0}}),  # every profile of the station's
        ("clear_charging_profile", {"charging_profile_criteria": {"stack_level": 0}}),
        ("get_charging_profiles", {"request_id": 1, "evse_id": 1, "charging_profile": {"charging_profile_id": [3]}}),
        ("get_charging_profiles", {"request_id": 1, "charging_profile": {"stack_level": 0}}),
        ("get_charging_profiles", {"request_id": 1, "charging_profile": {"charging_limit_source": ["CSO", "EMS"]}}),
        ("change_availability", {"operational_status": "Inoperative", "evse": {"id": 1}}),  # a whole EVSE
        ("reset", {"type": "OnIdle", "evse_id": 1}),
        ("reserve_now", {"id": 0, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": TOKEN}),
        ("reserve_now", {"id": 1, "evse_id": 1, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": TOKEN}),
        ("cancel_reservation", {"reservation_id": 0}),
        (
            "set_charging_profile",
            {"evse_id": 1, "charging_profile": profile201(charging_profile_purpose="TxProfile", transaction_id="tx-1")},
        ),
        (
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    periods({"start_period": 0, "limit": 16, "number_phases": 1, "phase_to_use": 3}),
                    charging_profile_kind="Recurring",
                    recurrency_kind="Weekly",
                ),
            },
        ),
        (
            "set_charging_profile",
            {
                "evse_id": 0,
                "charging_profile": profile201(charging_profile_purpose="ChargingStationMaxProfile"),
            },
        ),
        (
            "request_start_transaction",
            {
                "remote_start_id": 1,
                "id_token": TOKEN,
                "charging_profile": profile201(
                    {"start_schedule": None}, charging_profile_purpose="TxProfile", charging_profile_kind="Relative"
                ),
            },
        ),
        # Sent as asked, the charger deciding (the strict charger's scenario sends it): K01.FR.38.
        (
            "set_charging_profile",
            {
                "evse_id": 0,
                "charging_profile": profile201(
                    {"start_schedule": None},
                    charging_profile_purpose="ChargingStationMaxProfile",
                    charging_profile_kind="Relative",
                ),
            },
        ),
        (
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": {
                    **PROFILE201,
                    "charging_profile_purpose": "TxProfile",
                    "transaction_id": "tx-1",
                    "charging_schedule": TWO_SCHEDULES,
                },
            },
        ),
        (
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    {"min_charging_rate": 6.5, "charging_schedule_period": [{"start_period": 0, "limit": 16.1}]}
                ),
            },
        ),
        (
            "set_charging_profile",
            {
                "evse_id": 1,
                "charging_profile": profile201(
                    {"charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 11000.5}]}
                ),
            },
        ),
        (
            "update_firmware",
            {"request_id": 1, "firmware": firmware201("ftp://fw.example.com/a%20b.bin?v=1&t=a~b")},
        ),
    ],
)
def test_bodies_at_the_edge_of_those_rules_are_recorded(api_client, register_charge_point, command, body):
    register_charge_point("CP-201", ocpp_version="2.0.1")
    response = api_client.post(f"/api/v1/ocpp201/CP-201/{command}", body, format="json")
    assert response.json()["error"] == "NotConnected"  # recorded, then not sent: the charger is away
    assert Command.objects.get().request == body


def test_times_in_a_body_are_recorded_and_sent_as_utc_with_z_and_milliseconds(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    body = {**RESERVE16, "expiry_date": "2031-01-01T10:00:00.123456789+01:00"}
    response = api_client.post("/api/v1/ocpp16/CP-1/reserve_now", body, format="json")
    assert response.json()["error"] == "NotConnected"  # recorded, then not sent: the charger is away
    assert Command.objects.get().request["expiry_date"] == "2031-01-01T09:00:00.123Z"


def test_an_idempotency_key_longer_than_it_is_kept_is_a_400_not_cut_into_another_key(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(
        "/api/v1/ocpp16/CP-1/reset", {"type": "Soft"}, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["details"]
    assert not Command.objects.exists()


def test_an_answer_the_csms_cannot_apply_still_completes_the_command(register_charge_point):
    """The charger's accepted GetLocalListVersion of 2**40 (no 32-bit column holds it), and a
    reservation recorded before times were checked: completed, not left pending for ever."""
    charge_point = register_charge_point("CP-1", ocpp_version="1.6")
    version = answered(charge_point, "1.6", "get_local_list_version", {}, {"listVersion": 2**40})
    reservation = answered(
        charge_point, "1.6", "reserve_now", {**RESERVE16, "expiry_date": "soon"}, {"status": "Accepted"}
    )
    assert [version.state, reservation.state] == [CommandState.ACCEPTED, CommandState.ACCEPTED]
    assert Command.objects.filter(state=CommandState.PENDING).count() == 0


def test_a_remote_start_id_names_the_token_of_the_request_the_charger_accepted(register_charge_point):
    charge_point = register_charge_point("CP-201", ocpp_version="2.0.1")
    accepted = {"remote_start_id": 50, "evse_id": 1, "id_token": TOKEN}
    answered(charge_point, "2.0.1", "request_start_transaction", accepted, {"status": "Accepted"})
    refused = {**accepted, "id_token": {"id_token": "BLK1", "type": "ISO14443"}}
    answered(charge_point, "2.0.1", "request_start_transaction", refused, {"status": "Rejected"})
    assert selectors.remote_start_id_token(charge_point_id="CP-201", remote_start_id=50) == TOKEN


def test_a_no_authorization_remote_start_carries_no_warning(api_client, register_charge_point):
    register_charge_point("CP-201", ocpp_version="2.0.1")
    body = {"remote_start_id": 1, "evse_id": 1, "id_token": {"id_token": "", "type": "NoAuthorization"}}
    api_client.post("/api/v1/ocpp201/CP-201/request_start_transaction", body, format="json")
    assert Command.objects.get().warnings == []


@pytest.mark.parametrize("status", ["InvalidCertificate", "RevokedCertificate"])
def test_an_update_firmware_refused_for_its_certificate_is_rejected(register_charge_point, status):
    """2.0.1 L01: a campaign took these for Accepted and waited an hour for a download never begun."""
    charge_point = register_charge_point("CP-201", ocpp_version="2.0.1")
    body = {"request_id": 1, "firmware": {"location": "https://fw/x.bin", "retrieve_date_time": "2031-01-01T00:00:00Z"}}
    assert answered(charge_point, "2.0.1", "update_firmware", body, {"status": status}).state == CommandState.REJECTED


def test_a_full_local_list_of_version_0_without_entries_clears_the_list_and_is_sent(api_client, register_charge_point):
    """How a list is cleared (1.6 §5.15: the charger then reports version 0); refused for a moment."""
    register_charge_point("CP-1", ocpp_version="1.6")
    body = {"list_version": 0, "update_type": "Full"}
    assert api_client.post("/api/v1/ocpp16/CP-1/send_local_list", body, format="json").json()["error"] == "NotConnected"


@pytest.mark.parametrize(
    ("command", "body"),
    [
        ("change_configuration", {"key": "HeartbeatInterval", "value": "0"}),
        # the charger answers Rejected for a value it cannot take (1.6 §5.3): sent as asked
        ("change_configuration", {"key": "HeartbeatInterval", "value": "abc"}),
        ("change_configuration", {"key": "VendorCounter", "value": "-5"}),
        ("change_configuration", {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register"}),
        ("reserve_now", RESERVE16),
        ("reserve_now", {**RESERVE16, "expiry_date": "2020-01-01T00:00:00Z"}),  # past: it ends at once
        ("update_firmware", {"location": "https://fw.example.com/fw%202.bin?v=1&t=a~b", "retrieve_date": FUTURE}),
        ("get_diagnostics", {"location": "ftp://user:p%40ss@[2001:db8::1]:2121/diag/"}),
        ("set_charging_profile", {"connector_id": 1, "cs_charging_profiles": {**PROFILE, "transaction_id": 5}}),
    ],
)
def test_a_1_6_body_within_those_rules_is_recorded_and_sent(api_client, register_charge_point, command, body):
    register_charge_point("CP-1", ocpp_version="1.6")
    response = api_client.post(f"/api/v1/ocpp16/CP-1/{command}", body, format="json")
    assert response.json()["error"] == "NotConnected"  # recorded, then not sent: the charger is away
    assert Command.objects.count() == 1


@pytest.mark.parametrize("signature", ["MEUCIQDxab==", "MEUCIQDx\nab=="])  # wrapped as ``base64`` prints it
def test_a_2_0_1_update_firmware_with_a_base64_signature_is_recorded_and_sent(
    api_client, register_charge_point, signature
):
    register_charge_point("CP-201", ocpp_version="2.0.1")
    body = {"request_id": 1, "firmware": {**FIRMWARE, "signature": signature}}
    response = api_client.post("/api/v1/ocpp201/CP-201/update_firmware", body, format="json")
    assert response.json()["error"] == "NotConnected"  # recorded, then not sent: the charger is away
    assert Command.objects.count() == 1


RESERVE201 = {"id": 3, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": {**TOKEN, "id_token": "RFID-X"}}


@pytest.mark.parametrize(("version", "body"), [("1.6", {**RESERVE16, "id_tag": "RFID-X"}), ("2.0.1", RESERVE201)])
@pytest.mark.parametrize(
    ("stored", "warned"),
    [
        (None, "is not known to the CSMS (1.6 Invalid, 2.0.1 Unknown)"),
        (AuthorizationStatus.BLOCKED, "is Blocked"),
        # Probe: a tag registered Invalid was warned 'is not known to the CSMS', though registered
        (AuthorizationStatus.INVALID, "'RFID-X' is Invalid;"),
    ],
)
def test_a_reservation_for_a_token_the_csms_would_refuse_is_recorded_with_a_warning(
    api_client, register_charge_point, version, body, stored, warned
):
    """As a remote start's: the charger is answered so when a session starts on the reservation, and
    may stop it (said as if the session went on, only flagged unauthorized_token)."""
    register_charge_point("CP-1", ocpp_version=version)
    if stored:
        IdTag.objects.create(id_tag="RFID-X", status=stored)
    path = "ocpp16" if version == "1.6" else "ocpp201"
    api_client.post(f"/api/v1/{path}/CP-1/reserve_now", body, format="json")
    [warning] = Command.objects.get().warnings
    assert "'RFID-X'" in warning and warned in warning and "unauthorized_token" in warning
    assert "when a session starts on the reservation, and may stop it" in warning


def test_a_reservation_for_an_accepted_token_carries_no_warning(api_client, register_charge_point):
    register_charge_point("CP-1", ocpp_version="1.6")
    IdTag.objects.create(id_tag="RFID-X", status=AuthorizationStatus.ACCEPTED)
    api_client.post("/api/v1/ocpp16/CP-1/reserve_now", {**RESERVE16, "id_tag": "RFID-X"}, format="json")
    assert Command.objects.get().warnings == []


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_cancel_of_a_reservation_the_csms_knows_no_active_one_by_is_sent_with_a_warning_saying_why(
    api_client, register_charge_point, version
):
    """As a remote stop's (1.6 §5.2, 2.0.1 H02: the charger answers Rejected for a reservation it
    does not hold). Probe: a cancel of a reservation used by a session, expired or never made was a
    bare 409 Rejected, with nothing to tell the caller why."""
    charge_point = register_charge_point("CP-1", ocpp_version=version)
    start_key = itertools.count()

    def reserve(reservation_id: int, status: str, *, used: bool = False) -> None:
        reservation = Reservation.objects.create(
            charge_point=charge_point,
            reservation_id=reservation_id,
            id_tag="RFID-1",
            expiry_date=timezone.now() + timedelta(hours=1),
            status=status,
        )
        if used:
            Transaction.objects.create(
                charge_point=charge_point,
                ocpp_version=version,
                ocpp_transaction_id="TX-9" if version == "2.0.1" else "",
                start_key=f"k-{next(start_key)}",
                started_at=timezone.now(),
                reservation=reservation,
            )

    reserve(1, ReservationStatus.ACTIVE)
    reserve(2, ReservationStatus.USED, used=True)
    reserve(3, ReservationStatus.EXPIRED)
    reserve(3, ReservationStatus.ACTIVE)  # its id reused: active again
    reserve(4, ReservationStatus.CANCELLED)
    path = "ocpp16" if version == "1.6" else "ocpp201"

    def warnings(reservation_id: int) -> list[str]:
        body = {"reservation_id": reservation_id}
        return (
            api_client.post(f"/api/v1/{path}/CP-1/cancel_reservation", body, format="json").json().get("warnings", [])
        )

    assert warnings(1) == warnings(3) == []
    session = Transaction.objects.get(reservation__reservation_id=2)
    tail = "; the charger answers Rejected if it holds no such reservation."
    assert warnings(2) == [
        f"Reservation 2 of CP-1 has ended for the CSMS (used by transaction {session.ocpp_id}){tail}"
    ]
    assert warnings(4) == [f"Reservation 4 of CP-1 has ended for the CSMS (cancelled){tail}"]
    assert warnings(5) == [f"Reservation 5 is not known to the CSMS{tail}"]
    assert Command.objects.exclude(warnings=[]).count() == 3


@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        ("1.6", "ocpp16/CP-1/remote_start_transaction", {"connector_id": 1, "id_tag": "FLEET-X"}),
        (
            "2.0.1",
            "ocpp201/CP-1/request_start_transaction",
            {"remote_start_id": 1, "evse_id": 1, "id_token": {"id_token": "FLEET-X", "type": "ISO14443"}},
        ),
    ],
)
def test_a_remote_start_for_a_card_at_its_session_limit_elsewhere_is_sent_with_a_concurrent_tx_warning(
    api_client, register_charge_point, version, path, body
):
    """Probe: a fleet card (one session at a time) charging at CP-2 was remote-started at CP-1 with no
    warning; the charger's start is answered ConcurrentTx, stopped or flagged unauthorized_token."""
    register_charge_point("CP-1", ocpp_version=version)
    elsewhere = register_charge_point("CP-2", ocpp_version="1.6")
    IdTag.objects.create(id_tag="FLEET-X", max_concurrent_sessions=1)
    started = timezone.now() - timedelta(minutes=5)
    Transaction.objects.create(
        charge_point=elsewhere, connector_id=1, id_tag="fleet-x", id_tag_status="Accepted", started_at=started
    )
    api_client.post(f"/api/v1/{path}", body, format="json")
    [warning] = Command.objects.get().warnings
    assert "'FLEET-X' is ConcurrentTx" in warning and "unauthorized_token" in warning
    Transaction.objects.update(status="ended")  # the card is free again: no warning
    api_client.post(f"/api/v1/{path}", body, format="json")
    assert sorted(len(command.warnings) for command in Command.objects.all()) == [0, 1]


@pytest.mark.parametrize(
    ("version", "command", "body", "field"),
    [
        ("1.6", "remote_start_transaction", {"connector_id": 1, "id_tag": ""}, "id_tag"),
        ("1.6", "remote_start_transaction", {"connector_id": 1, "id_tag": " SIM-TAG-1"}, "id_tag"),
        ("1.6", "reserve_now", {**RESERVE16, "id_tag": ""}, "id_tag"),
        ("1.6", "reserve_now", {**RESERVE16, "parent_id_tag": "FLEET\u200b"}, "parent_id_tag"),
        (
            "1.6",
            "send_local_list",
            {"list_version": 2, "update_type": "Full", "local_authorization_list": [{**LIST_ENTRY, "id_tag": ""}]},
            "local_authorization_list.0.id_tag",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {"remote_start_id": 1, "id_token": {"id_token": "", "type": "ISO14443"}},
            "id_token.id_token",
        ),
        (
            "2.0.1",
            "request_start_transaction",
            {"remote_start_id": 1, "id_token": TOKEN, "group_id_token": {"id_token": "A B", "type": "Central"}},
            "group_id_token.id_token",
        ),
        (
            "2.0.1",
            "reserve_now",
            {"id": 1, "expiry_date_time": "2031-01-01T00:00:00Z", "id_token": {"id_token": "", "type": "Local"}},
            "id_token.id_token",
        ),
    ],
)
def test_an_id_token_no_card_could_present_is_a_400_naming_it_and_nothing_is_sent(
    api_client, register_charge_point, version, command, body, field
):
    """Probe: a remote start of ``{"id_tag": ""}`` (an integrator's unset variable) was sent, accepted
    and started a session the CSMS answered Invalid: no id tag it holds is empty or has whitespace."""
    register_charge_point("CP-1", ocpp_version=version)
    path = "ocpp16" if version == "1.6" else "ocpp201"
    response = api_client.post(f"/api/v1/{path}/CP-1/{command}", body, format="json")
    assert response.status_code == 400, response.json()
    assert list(response.json()["details"]) == [field], response.json()
    assert not Command.objects.exists()


@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        ("1.6", "ocpp16/CP-1/remote_start_transaction", {"id_tag": "FLEET-X"}),
        (
            "2.0.1",
            "ocpp201/CP-1/request_start_transaction",
            {"remote_start_id": 1, "id_token": {"id_token": "FLEET-X", "type": "ISO14443"}},
        ),
    ],
)
def test_a_remote_start_naming_no_connector_warns_of_the_cards_session_on_the_same_charger(
    api_client, register_charge_point, version, path, body
):
    """Probe: a fleet card (one session at a time) charging on CP-1's connector / EVSE 1 was
    remote-started at CP-1 naming no connector with no warning (counted as an Authorize: other
    chargers only); the charger starts it on another connector, and that start is ConcurrentTx."""
    charger = register_charge_point("CP-1", ocpp_version=version)
    IdTag.objects.create(id_tag="FLEET-X", max_concurrent_sessions=1)
    place = {"connector_id": 1} if version == "1.6" else {"evse_id": 1, "connector_id": 1}
    Transaction.objects.create(
        charge_point=charger,
        id_tag="fleet-x",
        id_tag_status="Accepted",
        started_at=timezone.now() - timedelta(minutes=5),
        ocpp_version=version,
        **place,
    )
    api_client.post(f"/api/v1/{path}", body, format="json")
    [warning] = Command.objects.get().warnings
    assert "'FLEET-X' is ConcurrentTx" in warning
    Transaction.objects.update(status="ended")  # the card is free again: no warning
    api_client.post(f"/api/v1/{path}", body, format="json")
    assert sorted(len(command.warnings) for command in Command.objects.all()) == [0, 1]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_tx_profile_where_the_csms_knows_no_active_session_is_sent_with_a_warning_saying_why(
    api_client, register_charge_point, version
):
    """1.6 §5.16, 2.0.1 K01.FR.09 / K01.FR.33: the charger rejects a TxProfile while no transaction
    is active on its connector (EVSE), or for one it does not have open there. Probe: a TxProfile for
    a session that had ended, another charger's, or on a connector with no session, was a bare 409
    Rejected, as a remote stop's was before it said why."""
    charge_point = register_charge_point("CP-1", ocpp_version=version)
    elsewhere = register_charge_point("CP-2", ocpp_version=version)
    keys = itertools.count()

    def session(owner: Any, tx: str, status: str = "active") -> Any:
        place = {"connector_id": 1} if version == "1.6" else {"evse_id": 1, "connector_id": 1}
        created = Transaction.objects.create(
            charge_point=owner,
            ocpp_version=version,
            ocpp_transaction_id=tx if version == "2.0.1" else "",
            start_key=f"k-{next(keys)}",
            started_at=timezone.now(),
            status=status,
            **place,
        )
        return int(created.ocpp_id) if version == "1.6" else tx

    active, ended, others = (
        session(charge_point, "TX-A"),
        session(charge_point, "TX-E", "ended"),
        session(elsewhere, "TX-O"),
    )
    unknown = 999_999 if version == "1.6" else "TX-U"
    path = "ocpp16" if version == "1.6" else "ocpp201"

    def warnings(where: int, transaction_id: Any = None) -> list[str]:
        if version == "1.6":
            profile = {**PROFILE} | ({"transaction_id": transaction_id} if transaction_id is not None else {})
            body = {"connector_id": where, "cs_charging_profiles": profile}
        else:
            body = {
                "evse_id": where,
                "charging_profile": profile201(charging_profile_purpose="TxProfile", transaction_id=transaction_id),
            }
        response = api_client.post(f"/api/v1/{path}/CP-1/set_charging_profile", body, format="json")
        assert response.status_code != 400, response.json()
        return [w for w in response.json().get("warnings", []) if "TxProfile" in w]

    place = "connector" if version == "1.6" else "EVSE"
    tail = "; the charger rejects a TxProfile for a transaction if it has no such transaction open."
    assert warnings(1, active) == []
    assert warnings(2, active) == [
        f"Transaction {active} is on {place} 1 of CP-1, not 2; the charger rejects a TxProfile for a"
        f" transaction not on its {place}."
    ]
    assert warnings(1, ended) == [f"Transaction {ended} of CP-1 has ended for the CSMS{tail}"]
    # a 2.0.1 station names its transactions itself: another's id is looked for among its own only
    verdict = "is a session of CP-2, not of CP-1" if version == "1.6" else "is not known to the CSMS"
    assert warnings(1, others) == [f"Transaction {others} {verdict}{tail}"]
    assert warnings(1, unknown) == [f"Transaction {unknown} is not known to the CSMS{tail}"]
    if version == "1.6":  # a 1.6 TxProfile without a transaction id limits the connector's
        assert warnings(1) == []
        assert warnings(2) == [
            "No session is active on connector 2 of CP-1 for the CSMS; the charger rejects a TxProfile while no"
            " transaction runs there."
        ]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (
            "ocpp201/CP-1/request_start_transaction",
            {"remote_start_id": 1, "evse_id": 1, "id_token": {"id_token": "RFID-X", "type": "eMAID"}},
        ),
        ("ocpp201/CP-1/reserve_now", {**RESERVE201, "id_token": {"id_token": "RFID-X", "type": "eMAID"}}),
    ],
)
def test_a_2_0_1_token_of_another_type_than_the_registered_card_is_warned_as_that_idtoken_unknown(
    api_client, register_charge_point, path, body
):
    """A 2.0.1 idToken is its value and its type (C01, IdTokenType): the card RFID-X registered as
    ISO14443 does not stand for the eMAID RFID-X, which the station's Started is answered Unknown.
    Probe: the warning said the id tag 'is not known to the CSMS', though the CSMS holds RFID-X, and
    the integrator looked for a typo in a tag the admin lists."""
    register_charge_point("CP-1", ocpp_version="2.0.1")
    IdTag.objects.create(id_tag="RFID-X", token_type="ISO14443", status=AuthorizationStatus.ACCEPTED)
    api_client.post(f"/api/v1/{path}", body, format="json")
    [warning] = Command.objects.get().warnings
    assert "'RFID-X' of type eMAID is not known to the CSMS (2.0.1 Unknown)" in warning
    assert "it holds 'RFID-X' as a token of type ISO14443 only" in warning and "unauthorized_token" in warning
