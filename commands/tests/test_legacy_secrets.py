"""Rows written before round 46 kept the secrets the CSMS now redacts at the write (a signed firmware
link's token, an upload token, an FTP password, a charger's password) in the command's recorded
request and the message log: a read-only key or support staff could still read them there.
``redact_recorded_secrets`` redacts them in place, as they are written now."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from chargepoints.models import ChargePoint, MessageDirection, OcppMessage
from commands.models import Command, CommandState
from configuration.models import ConfigurationKey, DeviceModelAttribute, DeviceModelVariable
from kernel.api_keys import api_key_create
from kernel.models import ApiKeyScope

pytestmark = pytest.mark.django_db

TOKEN = "eyJmaXJtd2FyZSI6MX0:1tSignedToken-abcdef123456"
LINK = f"https://csms.example.com/firmware/download/{TOKEN}"
UPLOAD = "https://csms.example.com/diagnostics/upload/Upl0adT0ken-0123456789/diag.zip"
FTP_SECRET = "hunter2-of-the-ftp"
FTP = f"ftp://fw:{FTP_SECRET}@files.example.com/images/wallbox.bin"
KEY = b"First-Password-42".hex()  # a 1.6 AuthorizationKey: 17 octets, in hex
FIRMWARE = {"location": FTP}
KEY_SET = {"key": "AuthorizationKey", "value": KEY}
PASSWORD_ITEM = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
SECRETS = (TOKEN, "Upl0adT0ken-0123456789", FTP_SECRET, KEY, "SecondPassword-6543")


def _command(
    charge_point: ChargePoint,
    action: str,
    request: dict,
    state: str = CommandState.ACCEPTED,
    response: dict | None = None,
) -> Command:
    return Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version=charge_point.ocpp_version,
        command=action,
        action=action,
        request=request,
        response=response,
        state=state,
    )


def _frame(charge_point: ChargePoint, direction: str, message_type: int, action: str, frame: list) -> OcppMessage:
    return OcppMessage.objects.create(
        charge_point=charge_point,
        direction=direction,
        message_type=message_type,
        unique_id=str(frame[1]),
        action=action,
        frame=json.dumps(frame, separators=(",", ":")),
        created_at=timezone.now(),
    )


@pytest.fixture
def legacy_rows() -> dict[str, Command | OcppMessage]:
    v16 = ChargePoint.objects.create(charge_point_id="CP-OLD-16", heartbeat_interval=60, ocpp_version="1.6")
    v201 = ChargePoint.objects.create(charge_point_id="CP-OLD-201", heartbeat_interval=60, ocpp_version="2.0.1")
    out, into = MessageDirection.OUTBOUND, MessageDirection.INBOUND
    rows: dict[str, Command | OcppMessage] = {
        "firmware16": _command(v16, "UpdateFirmware", {"location": LINK, "retrieve_date": "2026-01-01T00:00:00Z"}),
        "diagnostics16": _command(v16, "GetDiagnostics", {"location": UPLOAD}),
        "firmware201": _command(v201, "UpdateFirmware", {"request_id": 1, "firmware": {"location": FTP}}),
        "log201": _command(v201, "GetLog", {"log_type": "DiagnosticsLog", "log": {"remote_location": UPLOAD}}),
        "key16": _command(v16, "ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY}),
        "password201": _command(
            v201, "SetVariables", {"set_variable_data": [{**PASSWORD_ITEM, "attribute_value": "SecondPassword-6543"}]}
        ),
        "reported16": _command(
            v16,
            "GetConfiguration",
            {"key": ["AuthorizationKey"]},
            response={"configuration_key": [{"key": "AuthorizationKey", "readonly": False, "value": KEY}]},
        ),
        "plain": _command(v16, "Reset", {"type": "Soft"}),
        "in_flight": _command(v201, "GetLog", {"log": {"remote_location": FTP}}, state=CommandState.PENDING),
        "frame_firmware16": _frame(v16, out, 2, "UpdateFirmware", [2, "a", "UpdateFirmware", {"location": LINK}]),
        "frame_log201": _frame(v201, out, 2, "GetLog", [2, "b", "GetLog", {"log": {"remoteLocation": UPLOAD}}]),
        "frame_ftp201": _frame(
            v201, out, 2, "UpdateFirmware", [2, "c", "UpdateFirmware", {"firmware": {"location": FTP}}]
        ),
        "frame_key16": _frame(
            v16,
            out,
            2,
            "ChangeConfiguration",
            [2, "d", "ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY}],
        ),
        "frame_reported16": _frame(
            v16,
            into,
            3,
            "GetConfiguration",
            [3, "e", {"configurationKey": [{"key": "AuthorizationKey", "readonly": False, "value": KEY}]}],
        ),
        "frame_event201": _frame(
            v201,
            into,
            2,
            "NotifyEvent",
            [
                2,
                "g",
                "NotifyEvent",
                {
                    "generatedAt": "2026-01-01T00:00:00Z",
                    "seqNo": 0,
                    "eventData": [
                        {
                            **PASSWORD_ITEM,
                            "eventId": 1,
                            "timestamp": "2026-01-01T00:00:00Z",
                            "trigger": "Delta",
                            "actualValue": "SecondPassword-6543",
                            "eventNotificationType": "HardWiredMonitor",
                        }
                    ],
                },
            ],
        ),
        "frame_plain": _frame(v16, into, 2, "Heartbeat", [2, "f", "Heartbeat", {}]),
    }
    stored_at = timezone.now()
    ConfigurationKey.objects.create(
        charge_point=v16,
        key="AuthorizationKey",
        value=KEY,
        pending_value=KEY,
        learned_from="GetConfiguration",
        learned_at=stored_at,
    )
    ConfigurationKey.objects.create(
        charge_point=v16, key="HeartbeatInterval", value="60", learned_from="GetConfiguration", learned_at=stored_at
    )
    variable = DeviceModelVariable.objects.create(
        charge_point=v201, component_name="SecurityCtrlr", variable_name="BasicAuthPassword", learned_at=stored_at
    )
    DeviceModelAttribute.objects.create(
        variable=variable, value="SecondPassword-6543", learned_from="GetVariables", learned_at=stored_at
    )
    return rows


def _text(row: Command | OcppMessage) -> str:
    row.refresh_from_db()
    return json.dumps([row.request, row.response]) if isinstance(row, Command) else row.frame


def test_old_rows_are_redacted_as_they_are_written_now(legacy_rows):
    before = {name: _text(row) for name, row in legacy_rows.items()}
    out = StringIO()
    call_command("redact_recorded_secrets", "--batch-size", "2", stdout=out)  # several batches of each table
    assert (
        out.getvalue().strip()
        == "Redacted 7 commands, 6 message log frames, 3 stored configuration values, 0 webhook history entries"
        " and 0 webhook errors."
    )

    after = {name: _text(row) for name, row in legacy_rows.items()}
    for name, text in after.items():
        if name in ("plain", "frame_plain", "in_flight"):
            assert text == before[name], name  # nothing to redact, or in flight: its answer may read it
        else:
            assert not any(secret in text for secret in SECRETS), (name, text)
            assert "[redacted]" in text or "********" in text, (name, text)
    assert json.loads(after["firmware16"])[0]["location"] == "https://csms.example.com/firmware/download/[redacted]"
    assert json.loads(after["firmware201"])[0]["firmware"]["location"] == (
        "ftp://fw:[redacted]@files.example.com/images/wallbox.bin"
    )
    assert json.loads(after["frame_ftp201"])[3]["firmware"]["location"] == (
        "ftp://fw:[redacted]@files.example.com/images/wallbox.bin"
    )
    stored = [
        *ConfigurationKey.objects.values_list("key", "value", "pending_value"),
        *DeviceModelAttribute.objects.values_list("variable__variable_name", "value", "pending_value"),
    ]
    assert sorted(stored) == [
        ("AuthorizationKey", "********", "********"),
        ("BasicAuthPassword", "********", None),
        ("HeartbeatInterval", "60", None),
    ]
    assert json.loads(after["firmware16"])[0]["retrieve_date"] == "2026-01-01T00:00:00Z"  # the rest kept

    again = StringIO()
    call_command("redact_recorded_secrets", stdout=again)
    assert (
        again.getvalue().strip()
        == "Redacted 0 commands, 0 message log frames, 0 stored configuration values, 0 webhook history entries"
        " and 0 webhook errors."
    )


def test_a_read_only_key_no_longer_reads_an_old_command_s_link(legacy_rows, client):
    call_command("redact_recorded_secrets", stdout=StringIO())
    key = api_key_create(name="dashboard", scope=ApiKeyScope.READ_ONLY)[1]
    answer = client.get("/api/v1/commands/?action=UpdateFirmware", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert answer.status_code == 200 and answer.json()["count"] == 2
    assert TOKEN not in answer.content.decode() and FTP_SECRET not in answer.content.decode()


def test_an_empty_database_and_a_bad_batch_size(db):
    out = StringIO()
    call_command("redact_recorded_secrets", stdout=out)
    assert (
        out.getvalue().strip()
        == "Redacted 0 commands, 0 message log frames, 0 stored configuration values, 0 webhook history entries"
        " and 0 webhook errors."
    )
    with pytest.raises(CommandError, match="batch-size"):
        call_command("redact_recorded_secrets", "--batch-size", "0")
