"""``manage.py simulate_charger`` against a real daphne: sessions land in the database, and API
commands reach it and are answered the way a charger would."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from decimal import Decimal

import pytest

from billing.models import Tariff
from chargepoints.models import ChargePoint, IdTag, Transaction
from conftest import ROOT, _test_database_url, ahttp, eventually

pytestmark = pytest.mark.django_db(transaction=True)


def simulator(daphne, tmp_path, *args: str) -> subprocess.Popen[str]:
    """The command in its own process, as a user runs it next to ``make run``."""
    env = {**os.environ, "DATABASE_URL": _test_database_url(), "CSMS_VAR_DIR": str(tmp_path),
           "DJANGO_SECRET_KEY": "tests-only-secret-key"}
    return subprocess.Popen(
        [sys.executable, "manage.py", "simulate_charger", *args, "--url", f"ws://127.0.0.1:{daphne.port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


async def finished(process: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.to_thread(process.communicate, timeout=timeout)
    return process.returncode, stdout, stderr


async def connected(charge_point_id: str) -> bool:
    return await ChargePoint.objects.filter(charge_point_id=charge_point_id).exclude(connection_channel="").aexists()


async def test_a_registered_simulator_runs_a_billed_session_and_exits(daphne, tmp_path):
    await Tariff.objects.acreate(name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"),
                                 session_fee=Decimal("1.00"), is_default=True)
    process = simulator(daphne, tmp_path, "SIM-16", "--register", "--sessions", "1", "--meter-values", "2",
                        "--meter-interval", "0.1")
    code, stdout, stderr = await finished(process)
    assert code == 0, stderr
    assert "SIM-16: registered" in stdout
    for action in ("BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
                   "MeterValues", "StopTransaction"):
        assert f'"{action}"' in stdout
    assert "SIM-16: 1 session(s) done, disconnected" in stdout
    assert await IdTag.objects.filter(id_tag="SIM-TAG-1", status="Accepted").aexists()
    session = await Transaction.objects.select_related("billing_record").aget(charge_point__charge_point_id="SIM-16")
    assert (session.status, session.id_tag, session.energy_wh, session.stop_reason) == ("ended", "SIM-TAG-1",
                                                                                        Decimal(2000), "Local")
    assert (session.billing_record.currency, session.billing_record.total) == ("EUR", Decimal("1.60"))


@pytest.mark.parametrize(
    ("version", "start_path", "start_body", "stop_path", "stop_field"),
    [
        ("1.6", "ocpp16/SIM-R/remote_start_transaction", {"connector_id": 1, "id_tag": "SIM-TAG-1"},
         "ocpp16/SIM-R/remote_stop_transaction", "id"),
        ("2.0.1", "ocpp201/SIM-R/request_start_transaction",
         {"id_token": {"id_token": "SIM-TAG-1", "type": "ISO14443"}, "remote_start_id": 7, "evse_id": 1},
         "ocpp201/SIM-R/request_stop_transaction", "ocpp_transaction_id"),
    ],
)
async def test_remote_start_and_stop_over_the_api_drive_the_simulator(
    daphne, api_key, tmp_path, version, start_path, start_body, stop_path, stop_field
):
    process = simulator(daphne, tmp_path, "SIM-R", "--register", "--version", version, "--remote", "--sessions", "1",
                        "--meter-values", "600", "--meter-interval", "0.1")
    await eventually(lambda: connected("SIM-R"), timeout=20)
    status, answer = await ahttp(f"{daphne.http_url}/api/v1/{start_path}", method="POST", api_key=api_key,
                                 body=start_body)
    assert (status, answer["status"]) == (200, "Accepted"), answer
    session = await eventually(
        lambda: Transaction.objects.filter(charge_point__charge_point_id="SIM-R", status="active",
                                           last_register_wh__gt=0).afirst(),
        timeout=10,
    )  # charging, with a meter value in
    transaction_id = session.id if stop_field == "id" else session.ocpp_transaction_id
    status, answer = await ahttp(f"{daphne.http_url}/api/v1/{stop_path}", method="POST", api_key=api_key,
                                 body={"transaction_id": transaction_id})
    assert (status, answer["status"]) == (200, "Accepted"), answer
    code, stdout, stderr = await finished(process)
    assert code == 0, stderr
    await session.arefresh_from_db()
    assert (session.status, session.stop_reason, session.id_tag) == ("ended", "Remote", "SIM-TAG-1")
    assert session.energy_wh > 0


V16_COMMANDS = [
    ("reset", {"type": "Soft"}, {"status": "Accepted"}),
    ("change_availability", {"connector_id": 1, "type": "Inoperative"}, {"status": "Accepted"}),
    ("remote_start_transaction", {"connector_id": 1, "id_tag": "SIM-TAG-1"}, {"status": "Rejected"}),  # inoperative
    ("change_availability", {"connector_id": 1, "type": "Operative"}, {"status": "Accepted"}),
    ("trigger_message", {"requested_message": "StatusNotification", "connector_id": 1}, {"status": "Accepted"}),
    ("trigger_message", {"requested_message": "DiagnosticsStatusNotification"}, {"status": "NotImplemented"}),
    ("set_charging_profile", {"connector_id": 1, "cs_charging_profiles": {
        "charging_profile_id": 3, "stack_level": 0, "charging_profile_purpose": "TxDefaultProfile",
        "charging_profile_kind": "Absolute", "charging_schedule": {
            "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 7400}]}}},
     {"status": "Accepted"}),
    ("clear_charging_profile", {"id": 3}, {"status": "Accepted"}),
    ("get_configuration", {"key": ["NumberOfConnectors", "Nonsense"]},
     {"configuration_key": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}],
      "unknown_key": ["Nonsense"]}),
    ("change_configuration", {"key": "NumberOfConnectors", "value": "2"}, {"status": "Rejected"}),
    ("unlock_connector", {"connector_id": 1}, {"status": "Unlocked"}),
]


async def test_the_simulator_answers_commands_as_a_charger_would(daphne, api_key, tmp_path):
    process = simulator(daphne, tmp_path, "SIM-C", "--register", "--sessions", "0")
    try:
        await eventually(lambda: connected("SIM-C"), timeout=20)
        for command, body, expected in V16_COMMANDS:
            status, answer = await ahttp(f"{daphne.http_url}/api/v1/ocpp16/SIM-C/{command}", method="POST",
                                         api_key=api_key, body=body)
            assert status in (200, 409), (command, answer)
            reply = answer.get("response", answer)
            assert {key: reply[key] for key in expected} == expected, command
    finally:
        process.send_signal(signal.SIGINT)
        code, stdout, stderr = await finished(process)
    assert "Traceback" not in stderr
    assert "SIM-C: interrupted, disconnected" in stdout
    assert stdout.count('"BootNotification"') == 2  # booted again after the reset


async def test_an_unknown_charger_is_told_why_it_is_refused(daphne, tmp_path):
    code, stdout, stderr = await finished(simulator(daphne, tmp_path, "SIM-UNKNOWN"))
    assert code == 1
    assert "refused the handshake (HTTP 403)" in stderr
    assert "--register" in stderr
