"""``manage.py simulate_charger`` against a real daphne: sessions land in the database, and API
commands reach it and are answered the way a charger would."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from billing.models import Tariff
from chargepoints.models import ChargePoint, OcppMessage
from charging.models import IdTag, Transaction
from conftest import ROOT, _test_database_url, ahttp, eventually
from csms.tests.test_operations import sample, scrape
from maintenance.links import firmware_download_url
from maintenance.models import LogUpload
from maintenance.services import diagnostics
from maintenance.services.firmware import firmware_file_create
from maintenance.tests.conftest import shared_files  # noqa: F401 (a fixture)
from ocpp_gateway.management.commands.simulate_charger import Command as SimulateCharger
from ocpp_gateway.simulator.transfers import is_on_this_machine

pytestmark = pytest.mark.django_db(transaction=True)

STARTUP = 90  # s: a simulator process starts Django first, slow on a busy machine (a bound, not a measure)


def simulator(daphne, tmp_path, *args: str) -> subprocess.Popen[str]:
    """The command in its own process, as a user runs it next to ``make run``."""
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "simulate_charger", *args, "--url", f"ws://127.0.0.1:{daphne.port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def finished(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    stdout, stderr = await asyncio.to_thread(process.communicate, timeout=timeout)
    return process.returncode, stdout, stderr


async def connected(charge_point_id: str) -> bool:
    return await ChargePoint.objects.filter(charge_point_id=charge_point_id).exclude(connection_channel="").aexists()


async def test_a_registered_simulator_runs_a_billed_session_and_exits(daphne, tmp_path):
    await Tariff.objects.acreate(
        name="Standard", currency="EUR", price_per_kwh=Decimal("0.30"), session_fee=Decimal("1.00"), is_default=True
    )
    process = simulator(
        daphne, tmp_path, "SIM-16", "--register", "--sessions", "1", "--meter-values", "2", "--meter-interval", "0.1"
    )
    code, stdout, stderr = await finished(process)
    assert code == 0, stderr
    assert "SIM-16: registered" in stdout
    for action in (
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ):
        assert f'"{action}"' in stdout
    assert "SIM-16: 1 session(s) done, disconnected" in stdout
    assert await IdTag.objects.filter(id_tag="SIM-TAG-1", status="Accepted").aexists()
    session = await Transaction.objects.select_related("billing_record").aget(charge_point__charge_point_id="SIM-16")
    assert (session.status, session.id_tag, session.energy_wh, session.stop_reason) == (
        "ended",
        "SIM-TAG-1",
        Decimal(2000),
        "Local",
    )
    assert (session.billing_record.currency, session.billing_record.total) == ("EUR", Decimal("1.60"))


@pytest.mark.parametrize(
    ("version", "start_path", "start_body", "stop_path", "stop_field"),
    [
        (
            "1.6",
            "ocpp16/SIM-R/remote_start_transaction",
            {"connector_id": 1, "id_tag": "SIM-TAG-1"},
            "ocpp16/SIM-R/remote_stop_transaction",
            "id",
        ),
        (
            "2.0.1",
            "ocpp201/SIM-R/request_start_transaction",
            {"id_token": {"id_token": "SIM-TAG-1", "type": "ISO14443"}, "remote_start_id": 7, "evse_id": 1},
            "ocpp201/SIM-R/request_stop_transaction",
            "ocpp_transaction_id",
        ),
    ],
)
async def test_remote_start_and_stop_over_the_api_drive_the_simulator(
    daphne, api_key, tmp_path, version, start_path, start_body, stop_path, stop_field
):
    process = simulator(
        daphne,
        tmp_path,
        "SIM-R",
        "--register",
        "--version",
        version,
        "--remote",
        "--sessions",
        "1",
        "--meter-values",
        "600",
        "--meter-interval",
        "0.1",
    )
    await eventually(lambda: connected("SIM-R"), timeout=STARTUP)
    status, answer = await ahttp(
        f"{daphne.http_url}/api/v1/{start_path}", method="POST", api_key=api_key, body=start_body
    )
    assert (status, answer["status"]) == (200, "Accepted"), answer
    session = await eventually(
        lambda: Transaction.objects.filter(
            charge_point__charge_point_id="SIM-R", status="active", last_register_wh__gt=0
        ).afirst(),
        timeout=10,
    )  # charging, with a meter value in
    transaction_id = session.id if stop_field == "id" else session.ocpp_transaction_id
    status, answer = await ahttp(
        f"{daphne.http_url}/api/v1/{stop_path}", method="POST", api_key=api_key, body={"transaction_id": transaction_id}
    )
    assert (status, answer["status"]) == (200, "Accepted"), answer
    code, _, stderr = await finished(process)
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
    (
        "set_charging_profile",
        {
            "connector_id": 1,
            "cs_charging_profiles": {
                "charging_profile_id": 3,
                "stack_level": 0,
                "charging_profile_purpose": "TxDefaultProfile",
                "charging_profile_kind": "Absolute",
                "charging_schedule": {
                    "charging_rate_unit": "W",
                    "charging_schedule_period": [{"start_period": 0, "limit": 7400}],
                },
            },
        },
        {"status": "Accepted"},
    ),
    ("clear_charging_profile", {"id": 3}, {"status": "Accepted"}),
    (
        "get_configuration",
        {"key": ["NumberOfConnectors", "Nonsense"]},
        {
            "configuration_key": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}],
            "unknown_key": ["Nonsense"],
        },
    ),
    ("change_configuration", {"key": "NumberOfConnectors", "value": "2"}, {"status": "Rejected"}),
    ("unlock_connector", {"connector_id": 1}, {"status": "Unlocked"}),
]


async def test_the_simulator_answers_commands_as_a_charger_would(daphne, api_key, tmp_path):
    process = simulator(daphne, tmp_path, "SIM-C", "--register", "--sessions", "0")
    try:
        await eventually(lambda: connected("SIM-C"), timeout=STARTUP)
        for command, body, expected in V16_COMMANDS:
            status, answer = await ahttp(
                f"{daphne.http_url}/api/v1/ocpp16/SIM-C/{command}", method="POST", api_key=api_key, body=body
            )
            assert status in (200, 409), (command, answer)
            reply = answer.get("response", answer)
            assert {key: reply[key] for key in expected} == expected, command
    finally:
        process.send_signal(signal.SIGINT)
        _, stdout, stderr = await finished(process)
    assert "Traceback" not in stderr
    assert "SIM-C: interrupted, disconnected" in stdout
    assert stdout.count('"BootNotification"') == 2  # booted again after the reset


async def _charging(daphne, api_key, tmp_path, version: str) -> tuple[subprocess.Popen[str], Transaction]:
    """A simulator of ``version`` serving until interrupted, charging a remote-started session (a meter value in)."""
    process = simulator(
        daphne, tmp_path, "SIM-RESET", "--register", "--version", version, "--remote", "--sessions", "0",
        "--meter-values", "6000", "--meter-interval", "0.1",
    )  # fmt: skip
    await eventually(lambda: connected("SIM-RESET"), timeout=STARTUP)
    path, body = (
        ("ocpp16/SIM-RESET/remote_start_transaction", {"connector_id": 1, "id_tag": "SIM-TAG-1"})
        if version == "1.6"
        else (
            "ocpp201/SIM-RESET/request_start_transaction",
            {"id_token": {"id_token": "SIM-TAG-1", "type": "ISO14443"}, "remote_start_id": 3, "evse_id": 1},
        )
    )
    status, answer = await ahttp(f"{daphne.http_url}/api/v1/{path}", method="POST", api_key=api_key, body=body)
    assert (status, answer["status"]) == (200, "Accepted"), answer
    session = await eventually(
        lambda: Transaction.objects.filter(
            charge_point__charge_point_id="SIM-RESET", status="active", last_register_wh__gt=0
        ).afirst(),
        timeout=15,
    )
    return process, session


@pytest.mark.parametrize(("reset", "reason"), [("Hard", "HardReset"), ("Soft", "SoftReset")])
async def test_a_1_6_reset_stops_the_simulator_s_session_with_its_own_reason(daphne, api_key, tmp_path, reset, reason):
    """OCPP 1.6 §5.14: a Hard reset's sessions stop with reason HardReset, a Soft one's SoftReset."""
    process, session = await _charging(daphne, api_key, tmp_path, "1.6")
    try:
        status, answer = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp16/SIM-RESET/reset", method="POST", api_key=api_key, body={"type": reset}
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        await eventually(lambda: Transaction.objects.filter(pk=session.pk, status="ended").aexists(), timeout=15)
    finally:
        await interrupted(process)
    await session.arefresh_from_db()
    assert session.stop_reason == reason


async def test_a_2_0_1_reset_on_idle_waits_for_the_simulator_s_session_to_end(daphne, api_key, tmp_path):
    """OCPP 2.0.1 B12.FR.01/02: OnIdle during a transaction is answered Scheduled; the station resets
    once it ended (here, by a remote stop), not at once with the session cut (ImmediateReset)."""
    process, session = await _charging(daphne, api_key, tmp_path, "2.0.1")
    url = f"{daphne.http_url}/api/v1/ocpp201/SIM-RESET"
    try:
        status, answer = await ahttp(f"{url}/reset", method="POST", api_key=api_key, body={"type": "OnIdle"})
        assert (status, answer["status"]) == (200, "Scheduled"), answer
        status, answer = await ahttp(
            f"{url}/get_transaction_status",
            method="POST",
            api_key=api_key,
            body={"transaction_id": session.ocpp_transaction_id},
        )
        assert answer["ongoing_indicator"] is True, answer  # still charging after the Reset's answer
        status, answer = await ahttp(
            f"{url}/request_stop_transaction",
            method="POST",
            api_key=api_key,
            body={"transaction_id": session.ocpp_transaction_id},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        boots = OcppMessage.objects.filter(
            charge_point__charge_point_id="SIM-RESET", action="BootNotification", message_type=2
        )
        await eventually(lambda: _at_least(boots.acount(), 2), timeout=15)  # then it reset
    finally:
        await interrupted(process)
    await session.arefresh_from_db()
    assert (session.status, session.stop_reason) == ("ended", "Remote")


UNKNOWN_CONNECTOR_COMMANDS = {
    "1.6": [
        ("change_availability", {"connector_id": 2, "type": "Inoperative"}, "Rejected"),
        ("trigger_message", {"requested_message": "StatusNotification", "connector_id": 2}, "Rejected"),
        ("trigger_message", {"requested_message": "MeterValues", "connector_id": 2}, "Rejected"),
        ("unlock_connector", {"connector_id": 2}, "NotSupported"),  # 1.6 UnlockStatus: "ConnectorId is unknown"
        (
            "reserve_now",
            {"connector_id": 2, "id_tag": "SIM-TAG-1", "reservation_id": 5, "expiry_date": "2099-01-01T00:00:00Z"},
            "Rejected",
        ),
        (
            "set_charging_profile",
            {
                "connector_id": 2,
                "cs_charging_profiles": {
                    "charging_profile_id": 4,
                    "stack_level": 0,
                    "charging_profile_purpose": "TxDefaultProfile",
                    "charging_profile_kind": "Absolute",
                    "charging_schedule": {
                        "charging_rate_unit": "A",
                        "charging_schedule_period": [{"start_period": 0, "limit": 16}],
                    },
                },
            },
            "Rejected",
        ),
    ],
    "2.0.1": [
        ("change_availability", {"operational_status": "Inoperative", "evse": {"id": 2}}, "Rejected"),
        (
            "trigger_message",
            {"requested_message": "StatusNotification", "evse": {"id": 2, "connector_id": 1}},
            "Rejected",
        ),
        ("unlock_connector", {"evse_id": 2, "connector_id": 1}, "UnknownConnector"),
        (
            "reserve_now",
            {
                "id": 5,
                "evse_id": 2,
                "id_token": {"id_token": "SIM-TAG-1", "type": "ISO14443"},
                "expiry_date_time": "2099-01-01T00:00:00Z",
            },
            "Rejected",
        ),
    ],
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_connector_the_simulator_does_not_have_is_refused_not_reported(daphne, api_key, tmp_path, version):
    """A charger of one connector (EVSE) told to make connector 2 unavailable, report it or unlock it
    refuses, as a real one does; it never reports a connector it does not have."""
    process = running(daphne, tmp_path, "SIM-ONE", "--version", version)
    prefix = "ocpp16" if version == "1.6" else "ocpp201"
    try:
        await eventually(lambda: connected("SIM-ONE"), timeout=STARTUP)
        for command, body, expected in UNKNOWN_CONNECTOR_COMMANDS[version]:
            status, answer = await ahttp(
                f"{daphne.http_url}/api/v1/{prefix}/SIM-ONE/{command}", method="POST", api_key=api_key, body=body
            )
            assert (status, answer.get("response", answer)["status"]) == (409, expected), (command, answer)
        # A command to connector 1 afterwards: every message the refused ones might have caused is in
        status, answer = await ahttp(
            f"{daphne.http_url}/api/v1/{prefix}/SIM-ONE/trigger_message",
            method="POST",
            api_key=api_key,
            body={"requested_message": "StatusNotification", "connector_id": 1}
            if version == "1.6"
            else {"requested_message": "StatusNotification", "evse": {"id": 1, "connector_id": 1}},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        reports = OcppMessage.objects.filter(
            charge_point__charge_point_id="SIM-ONE", action="StatusNotification", message_type=2
        )
        await eventually(lambda: _at_least(reports.acount(), 2), timeout=15)  # at its boot, then triggered
    finally:
        stdout = await interrupted(process)
    frames = OcppMessage.objects.filter(charge_point__charge_point_id="SIM-ONE", message_type=2, direction="in")
    reported = [json.loads(frame)[3] async for frame in frames.values_list("frame", flat=True)]
    assert [each for each in reported if each.get("evseId", each.get("connectorId")) == 2] == [], stdout


async def test_an_unknown_charger_is_told_why_it_is_refused(daphne, tmp_path):
    code, _, stderr = await finished(simulator(daphne, tmp_path, "SIM-UNKNOWN"))
    assert code == 1
    assert "refused the handshake (HTTP 403)" in stderr
    assert "--register" in stderr


def running(daphne, tmp_path, charge_point_id: str, *args: str) -> subprocess.Popen[str]:
    """A registered simulator serving commands until interrupted."""
    return simulator(daphne, tmp_path, charge_point_id, "--register", "--sessions", "0", *args)


async def interrupted(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    code, stdout, stderr = await finished(process)
    assert (code, "Traceback" in stderr) == (0, False), stderr
    return stdout


async def statuses(charge_point_id: str, action: str) -> list[str]:
    """The ``status`` of each ``action`` the charger sent, in order (from the CSMS's message log)."""
    frames = OcppMessage.objects.filter(
        charge_point__charge_point_id=charge_point_id, action=action, message_type=2
    ).order_by("created_at", "id")
    return [json.loads(frame)[3]["status"] async for frame in frames.values_list("frame", flat=True)]


async def firmware_on(server) -> tuple[str, int]:
    """A firmware image stored where ``server`` serves it from, and its signed download URL there."""
    image = ContentFile(b"\x7fELF simulated firmware" * 100, name="fw.bin")
    firmware = await sync_to_async(firmware_file_create)(name="fw.bin", version="9.9", upload=image)
    return firmware_download_url(firmware_id=str(firmware.pk)), firmware.size


@pytest.mark.parametrize(
    ("version", "path", "body"),
    [
        (
            "1.6",
            "ocpp16/SIM-FW/update_firmware",
            lambda url: {"location": url, "retrieve_date": "2026-01-01T00:00:00Z"},
        ),
        (
            "2.0.1",
            "ocpp201/SIM-FW/update_firmware",
            lambda url: {"request_id": 7, "firmware": {"location": url, "retrieve_date_time": "2026-01-01T00:00:00Z"}},
        ),
    ],
)
async def test_the_simulator_downloads_firmware_and_reports_each_step(
    shared_files, api_key, tmp_path, version, path, body
):
    url, size = await firmware_on(shared_files)
    process = running(shared_files, tmp_path, "SIM-FW", "--version", version)
    try:
        await eventually(lambda: connected("SIM-FW"), timeout=STARTUP)
        status, answer = await ahttp(
            f"{shared_files.http_url}/api/v1/{path}", method="POST", api_key=api_key, body=body(url)
        )
        assert status == 200, answer
        steps = ["Downloading", "Downloaded", "Installing", "Installed"]
        await eventually(lambda: _equals(statuses("SIM-FW", "FirmwareStatusNotification"), steps), timeout=15)
    finally:
        stdout = await interrupted(process)
    assert f"SIM-FW: firmware downloaded ({size} bytes)" in stdout


async def test_a_firmware_location_on_another_machine_is_not_fetched(daphne, api_key, tmp_path):
    process = running(daphne, tmp_path, "SIM-FAR")
    try:
        await eventually(lambda: connected("SIM-FAR"), timeout=STARTUP)
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp16/SIM-FAR/update_firmware",
            method="POST",
            api_key=api_key,
            body={"location": "https://firmware.example.com/fw.bin", "retrieve_date": "2026-01-01T00:00:00Z"},
        )
        assert status == 200
        await eventually(
            lambda: _equals(
                statuses("SIM-FAR", "FirmwareStatusNotification"),
                ["Downloading", "Downloaded", "Installing", "Installed"],
            ),
            timeout=15,
        )
    finally:
        stdout = await interrupted(process)
    assert "https://firmware.example.com/fw.bin is not on this machine: nothing transferred" in stdout


@pytest.mark.parametrize(
    ("version", "options", "action", "file_name"),
    [
        ("1.6", {}, "DiagnosticsStatusNotification", "SIM-DIAG-diagnostics.log"),
        ("2.0.1", {"log_type": "DiagnosticsLog"}, "LogStatusNotification", "SIM-DIAG-DiagnosticsLog.log"),
    ],
)
async def test_the_simulator_uploads_its_log_to_the_hosted_location(
    shared_files, tmp_path, version, options, action, file_name
):
    process = running(shared_files, tmp_path, "SIM-DIAG", "--version", version)
    try:
        await eventually(lambda: connected("SIM-DIAG"), timeout=STARTUP)
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id="SIM-DIAG", **options)
        upload = await eventually(
            lambda: LogUpload.objects.filter(
                pk=upload.pk, state="uploaded", status="Uploaded", received_at__isnull=False
            ).afirst(),
            timeout=15,
        )
        await eventually(lambda: _equals(statuses("SIM-DIAG", action), ["Uploading", "Uploaded"]), timeout=15)
    finally:
        await interrupted(process)
    assert upload.file_name == file_name
    assert upload.file.open("rb").read().startswith(b"SIM-DIAG: simulated diagnostics, ")


async def test_a_2_0_1_simulator_reports_its_device_model(daphne, api_key, tmp_path):
    process = running(daphne, tmp_path, "SIM-DM", "--version", "2.0.1")
    try:
        await eventually(lambda: connected("SIM-DM"), timeout=STARTUP)
        status, answer = await ahttp(
            f"{daphne.http_url}/api/v1/ocpp201/SIM-DM/get_base_report",
            method="POST",
            api_key=api_key,
            body={"request_id": 3, "report_base": "FullInventory"},
        )
        assert (status, answer["status"]) == (200, "Accepted"), answer
        url = f"{daphne.http_url}/api/v1/chargepoints/SIM-DM/configuration?component=OCPPCommCtrlr"

        async def reported() -> dict | None:
            _, body = await ahttp(url, api_key=api_key)
            return body if body["variables"] else None

        body = await eventually(reported, timeout=15)
    finally:
        await interrupted(process)
    [variable] = body["variables"]
    assert variable["variable"]["name"] == "HeartbeatInterval"
    assert variable["characteristics"]["unit"] == "s"
    [actual] = variable["attributes"]
    assert (actual["type"], actual["learned_from"], actual["report_request_id"]) == ("Actual", "NotifyReport", 3)


async def test_a_metrics_scrape_shows_the_simulated_charger(daphne_factory, tmp_path):
    server = daphne_factory(CSMS_METRICS_DIR=str(tmp_path / "metrics"))
    process = running(server, tmp_path, "SIM-M")
    try:
        await eventually(lambda: connected("SIM-M"), timeout=STARTUP)
        text = await eventually(lambda: _scrape_with(server, "StatusNotification"), timeout=10)
    finally:
        await interrupted(process)
    pid = str(server.process.pid)
    assert sample(text, "csms_chargers_connected", ocpp_version="1.6", pid=pid) == 1
    for action in ("BootNotification", "Heartbeat", "StatusNotification"):
        assert sample(text, "csms_ocpp_messages_total", ocpp_version="1.6", action=action, outcome="result") >= 1


async def _scrape_with(server, action: str) -> str | None:
    text = await asyncio.to_thread(scrape, server)
    return text if sample(text, "csms_ocpp_messages_total", action=action, outcome="result") else None


async def _equals(found, expected) -> bool:
    return await found == expected


async def _at_least(found, count: int) -> bool:
    return await found >= count


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8000/diagnostics/upload/t", True),
        ("https://[::1]/fw.bin", True),
        ("http://localhost:8000/fw.bin", True),
        ("http://10.0.0.5/fw.bin", False),
        ("https://csms.example.com/fw.bin", False),
        ("ftp://127.0.0.1/fw.bin", False),
        ("not a url", False),
    ],
)
def test_files_move_only_to_and_from_this_machine(url, local):
    assert is_on_this_machine(url) is local


@pytest.mark.parametrize(("port", "url"), [("9100", "ws://127.0.0.1:9100"), (None, "ws://127.0.0.1:8000")])
def test_the_charger_goes_to_the_port_make_run_was_given(monkeypatch, port, url):
    """``make run PORT=9100`` listens there; with the same PORT set, the simulator needs no ``--url``."""
    if port is None:
        monkeypatch.delenv("PORT", raising=False)
    else:
        monkeypatch.setenv("PORT", port)
    parser = SimulateCharger().create_parser("manage.py", "simulate_charger")
    assert parser.parse_args(["CP-1"]).url == url


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--meter-interval", "0"),
        ("--meter-interval", "-1"),
        ("--meter-interval", "nan"),
        ("--meter-interval", "inf"),
        ("--wh-per-sample", "0"),
        ("--wh-per-sample", "-1000"),
    ],
)
@pytest.mark.django_db  # refused before it reads the database: no flush needed
def test_a_meter_interval_or_energy_per_sample_a_meter_cannot_have_is_refused_before_connecting(option, value):
    """Taken, ``--meter-interval 0`` sent a session's meter values without a pause, ``-1`` too,
    ``inf`` none; ``--wh-per-sample 0`` or ``-1000`` billed a meter standing still or running back."""
    with pytest.raises(CommandError, match=option):
        call_command("simulate_charger", "CP-1", option, value, "--url", "ws://127.0.0.1:20799")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["CP 1"], "'CP 1' is not a charger id: Use 1 to 48 letters"),
        (["CP/1"], "'CP/1' is not a charger id"),
        (["C" * 49], "is not a charger id"),
        (["CP-1", "--id-tag", "T" * 21], "--id-tag must be 1 to 20 characters in OCPP 1.6"),
        (["CP-1", "--version", "2.0.1", "--id-tag", "T" * 37], "--id-tag must be 1 to 36 characters in OCPP 2.0.1"),
    ],
)
def test_an_id_or_id_tag_no_charger_can_use_is_refused_before_it_is_registered(args, message):
    """``--register`` saved them: a charger "CP 1", which no URL routes, then refused at its handshake as
    "unknown (use --register)" and left in the fleet; a 21-character tag, whose first Authorize broke
    the 1.6 schema in a traceback."""
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("simulate_charger", *args, "--register", "--url", "ws://127.0.0.1:20799")
    assert not ChargePoint.objects.exists()
    assert not IdTag.objects.exists()


@pytest.mark.django_db
def test_a_2_0_1_id_token_of_36_characters_is_registered():
    """The bound is the version's: 2.0.1's idToken holds 36 characters (refused at the connection here)."""
    with pytest.raises(CommandError, match="20799"):
        call_command(
            "simulate_charger",
            "CP-36",
            "--version",
            "2.0.1",
            "--id-tag",
            "T" * 36,
            "--register",
            "--url",
            "ws://127.0.0.1:20799",
        )
    assert IdTag.objects.get().id_tag == "T" * 36
