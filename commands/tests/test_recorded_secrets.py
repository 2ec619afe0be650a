"""What a command carries that the charger alone may know (round 46's probe): a charger's password,
the password of a file location, the token of a CSMS link. The charger gets it whole; the command's
recorded request and the message log hold it redacted, and nothing the CSMS does later takes the
redacted stand-in for the real value. Real daphne, chargers of the ``ocpp`` package, PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.utils import timezone
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as V201Client
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint, OcppMessage
from commands.charger_passwords import REDACTED
from commands.models import Command, CommandState
from commands.redaction import location_redacted
from commands.services import ABANDONED_MARGIN_SECONDS
from commands.tests.conftest import answering_charger
from commands.tests.test_idempotency import post
from conftest import ahttp, eventually, ocpp_charger
from ocpp_gateway.tasks import time_out_abandoned_commands

SECRET = "hunter2-of-the-ftp"
FTP = f"ftp://fw:{SECRET}@files.example.com/images/wallbox.bin"
PASSWORD = "SecondPassword-6543"  # 19 octets: a 1.6 AuthorizationKey holds 16 to 20
PASSWORD_ITEM = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
CLIENTS = {
    "1.6": answering_charger(
        V16Client,
        {
            "UpdateFirmware": result16.UpdateFirmware(),
            "GetDiagnostics": result16.GetDiagnostics(file_name="diag.zip"),
            "ChangeConfiguration": result16.ChangeConfiguration(status="Accepted"),
        },
    ),
    "2.0.1": answering_charger(
        V201Client,
        {
            "UpdateFirmware": result201.UpdateFirmware(status="Accepted"),
            "GetLog": result201.GetLog(status="Accepted", filename="log.txt"),
            "SetVariables": result201.SetVariables(
                set_variable_result=[{**PASSWORD_ITEM, "attribute_status": "Accepted"}]
            ),
        },
    ),
}


@pytest.mark.parametrize(
    ("location", "redacted"),
    [
        (FTP, "ftp://fw:[redacted]@files.example.com/images/wallbox.bin"),
        ("ftps://fw:p@ss:w@rd@host:2121/x?y=@#z", "ftps://fw:[redacted]@host:2121/x?y=@#z"),
        ("https://fw@files.example.com/a.bin", "https://fw@files.example.com/a.bin"),  # a user, no password
        ("https://files.example.com/a.bin?at=x:y@z", "https://files.example.com/a.bin?at=x:y@z"),
        ("http://csms/firmware/download/abc:def:ghi", "http://csms/firmware/download/[redacted]"),
        ("http://csms/diagnostics/upload/tok3n", "http://csms/diagnostics/upload/[redacted]"),
        ("not a url", "not a url"),
    ],
)
def test_a_location_keeps_all_but_its_password_and_the_token_of_a_csms_link(location, redacted):
    assert location_redacted(location) == redacted


ASKED = [
    ("1.6", "update_firmware", {"location": FTP, "retrieve_date": "2027-01-01T00:00:00Z"}, "UpdateFirmware"),
    ("1.6", "get_diagnostics", {"location": FTP}, "GetDiagnostics"),
    (
        "2.0.1",
        "update_firmware",
        {"request_id": 7, "firmware": {"location": FTP, "retrieve_date_time": "2027-01-01T00:00:00Z"}},
        "UpdateFirmware",
    ),
    ("2.0.1", "get_log", {"log_type": "DiagnosticsLog", "request_id": 8, "log": {"remote_location": FTP}}, "GetLog"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("version", "command", "body", "action"), ASKED)
async def test_the_password_of_an_operators_location_reaches_the_charger_and_is_kept_nowhere(
    daphne, api_key, version, command, body, action
):
    charge_point_id = f"CP-LOC-{version}-{command}"
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version=version)
    path = "ocpp16" if version == "1.6" else "ocpp201"
    async with ocpp_charger(daphne, version, charge_point_id, client_class=CLIENTS[version]) as charger:
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/{path}/{charge_point_id}/{command}", method="POST", api_key=api_key, body=body
        )
    assert status == 200
    assert SECRET in json.dumps(charger.received)  # the charger can log in to fetch it
    recorded = json.dumps((await Command.objects.aget(charge_point_identity=charge_point_id)).request)
    assert SECRET not in recorded and "fw:[redacted]@files.example.com" in recorded
    logged = OcppMessage.objects.filter(charge_point__charge_point_id=charge_point_id, action=action)

    async def call_and_answer_logged() -> bool:
        return await logged.acount() == 2

    await eventually(call_and_answer_logged)
    frames = [frame async for frame in logged.values_list("frame", flat=True)]
    assert not any(SECRET in frame for frame in frames)
    assert any("fw:[redacted]@files.example.com" in frame for frame in frames)


BOOT = {
    "1.6": call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"),
    "2.0.1": call201.BootNotification(charging_station={"vendor_name": "Acme", "model": "A1"}, reason="PowerUp"),
}
SENT = {"1.6": "ChangeConfiguration", "2.0.1": "SetVariables"}
SET_PASSWORD = {
    "1.6": ("change_configuration", {"key": "AuthorizationKey", "value": PASSWORD.encode().hex()}),
    "2.0.1": ("set_variables", {"set_variable_data": [{**PASSWORD_ITEM, "attribute_value": PASSWORD}]}),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_command_retried_under_its_key_once_the_charger_is_back_sends_the_real_password(
    daphne, api_key, version
):
    """The first POST found the charger not connected (503); the retry under the same
    Idempotency-Key sent the command's recorded row: the charger was given ``********`` as its
    password, and a 2.0.1 charger accepting it had the CSMS check ``********`` from then on."""
    charge_point_id = f"CP-PW-RETRY-{version}"
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    command, body = SET_PASSWORD[version]
    url = f"{daphne.http_url}/api/v1/{'ocpp16' if version == '1.6' else 'ocpp201'}/{charge_point_id}/{command}"
    status, answer, first_id = await asyncio.to_thread(post, url, body, api_key=api_key, key="pw-1")
    assert (status, answer["error"]) == (503, "NotConnected")
    async with ocpp_charger(daphne, version, charge_point_id, client_class=CLIENTS[version]) as charger:
        await charger.call(BOOT[version])
        status, _, retry_id = await asyncio.to_thread(post, url, body, api_key=api_key, key="pw-1")
    assert (status, retry_id) == (200, first_id)
    assert charger.received == [(SENT[version], body)]  # the real password
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(PASSWORD, charge_point.password_hash)
    recorded = await Command.objects.aget(pk=first_id)
    assert recorded.state == CommandState.ACCEPTED and REDACTED in json.dumps(recorded.request)


@pytest.mark.django_db
def test_an_abandoned_password_command_admits_no_one_with_the_redacted_stand_in():
    """A SetVariables of the password whose sending process died is timed out by the sweep, from its
    recorded row: the charger may have taken the password, so the CSMS admits it beside the old one.
    The row holds ``********``, which the sweep took for the password: anyone presenting
    ``********`` was admitted as the charger. Nothing is admitted beside the old one now."""
    charge_point = ChargePoint.objects.create(
        charge_point_id="CP-PW-ABANDONED", heartbeat_interval=60, ocpp_version="2.0.1", password_hash=make_password("x")
    )
    made = Command.objects.create(
        charge_point=charge_point,
        charge_point_identity=charge_point.charge_point_id,
        ocpp_version="2.0.1",
        command="set_variables",
        action="SetVariables",
        request={"set_variable_data": [{**PASSWORD_ITEM, "attribute_value": REDACTED}]},  # as recorded
    )
    abandoned_at = timezone.now() - timedelta(seconds=settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5)
    Command.objects.filter(pk=made.pk).update(created_at=abandoned_at)

    assert time_out_abandoned_commands() == 1

    charge_point.refresh_from_db()
    assert charge_point.password_hash_after_reboot == ""
