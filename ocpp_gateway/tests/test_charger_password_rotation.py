"""A charger's HTTP Basic password set over OCPP (round 40's probe: the charger accepted a new
BasicAuthPassword, the CSMS went on checking the old one and refused its reconnect, and kept the new
one in plain text in the command, the message log and the configuration store). Raw-frame chargers
with HTTP Basic, real daphne, PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint, OcppMessage
from commands.charger_passwords import REDACTED
from commands.models import Command
from commands.services import ABANDONED_MARGIN_SECONDS
from configuration.models import ConfigurationKey, DeviceModelAttribute
from conftest import ahttp, start_daphne, stop_daphne
from ocpp_gateway.tasks import time_out_abandoned_commands

pytestmark = pytest.mark.django_db(transaction=True)

OLD, NEW = "FirstPassword-123456", "SecondPassword-6543"  # 19 octets: a 1.6 key holds 16 to 20
SET_PASSWORD = {
    "2.0.1": (
        "set_variables",
        {
            "set_variable_data": [
                {
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                    "attribute_value": NEW,
                }
            ]
        },
        lambda call: {
            "setVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    **{key: call[3]["setVariableData"][0][key] for key in ("component", "variable")},
                }
            ]
        },
    ),
    "1.6": (
        "change_configuration",
        {"key": "AuthorizationKey", "value": NEW.encode().hex()},
        lambda call: {"status": "Accepted"},
    ),
}


def _named(item: dict) -> dict:
    return {"component": item["component"], "variable": item["variable"]}


BOOT = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "A1"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "A1"}},
}


def connected(daphne, version: str, charge_point_id: str, password: str | None):
    """A handshake with HTTP Basic ``password`` (None: without credentials)."""
    token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode()
    return connect(
        daphne.ws_url(version, charge_point_id),
        subprotocols=[Subprotocol(f"ocpp{version}")],
        compression=None,
        additional_headers={"Authorization": f"Basic {token}"} if password is not None else None,
    )


async def _command_answered(daphne, api_key, websocket, version, charge_point_id, command, body, answer):
    """Boot, post ``command`` with ``body`` to the API, answer its CALL with ``answer(call)``: the
    API's (status, body)."""
    await websocket.send(json.dumps([2, "b", "BootNotification", BOOT[version]]))
    await asyncio.wait_for(websocket.recv(), 5)
    path = "ocpp16" if version == "1.6" else "ocpp201"
    url = f"{daphne.http_url}/api/v1/{path}/{charge_point_id}/{command}"
    post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body=body))
    call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
    if answer is not None:  # None: the charger never answers
        await websocket.send(json.dumps([3, call[1], answer(call)]))
    return await post


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_the_charger_accepts_is_the_one_checked_and_is_kept_nowhere_in_plain_text(
    daphne, api_key, version
):
    charge_point_id = f"CP-PW-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, answer = SET_PASSWORD[version]
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        status, _ = await _command_answered(daphne, api_key, websocket, version, charge_point_id, command, body, answer)
    assert status == 200
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(NEW, charge_point.password_hash)
    async with connected(daphne, version, charge_point_id, NEW) as websocket:  # admitted with the new one
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    secret = NEW if version == "2.0.1" else NEW.encode().hex()
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert secret not in json.dumps(recorded.request) and REDACTED in json.dumps(recorded.request)
    frames = [message.frame async for message in OcppMessage.objects.filter(charge_point=charge_point)]
    assert frames and not any(secret in frame for frame in frames)
    stored = ConfigurationKey if version == "1.6" else DeviceModelAttribute
    assert [value async for value in stored.objects.values_list("value", flat=True)] == [REDACTED]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("ocpp16", {"key": "AuthorizationKey", "value": "not-hex"}, "value"),
        ("ocpp16", {"key": "AuthorizationKey", "value": "ff" * 16}, "value"),  # not UTF-8 text
        (
            "ocpp201",
            {
                "set_variable_data": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "attribute_value": "short",
                    }
                ]
            },
            "set_variable_data.0.attribute_value",
        ),
    ],
)
def test_a_password_the_charger_or_the_csms_could_not_use_is_a_400(
    api_client, register_charge_point, path, body, field
):
    register_charge_point("CP-1", ocpp_version="1.6" if path == "ocpp16" else "2.0.1")
    command = "change_configuration" if path == "ocpp16" else "set_variables"
    response = api_client.post(f"/api/v1/{path}/CP-1/{command}", body, format="json")
    assert response.status_code == 400 and field in response.json()["details"]


REPORTED = "Reported-Password-1234"  # what a charger reports of its write-only password
READ_PASSWORD = {
    "1.6": (
        "get_configuration",
        {"key": ["AuthorizationKey"]},
        {"configurationKey": [{"key": "AuthorizationKey", "readonly": False, "value": REPORTED}]},
    ),
    "2.0.1": (
        "get_variables",
        {"get_variable_data": [{"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}]},
        {
            "getVariableResult": [
                {
                    "attributeStatus": "Accepted",
                    "component": {"name": "SecurityCtrlr"},
                    "variable": {"name": "BasicAuthPassword"},
                    "attributeValue": REPORTED,
                }
            ]
        },
    ),
}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_the_charger_reports_is_kept_nowhere_in_plain_text(daphne, api_key, version):
    """The password is write-only (1.6 security whitepaper, 2.0.1 WriteOnly), yet some chargers
    report it: the API's answer, the command, the message log and the configuration store redact it."""
    charge_point_id = f"CP-RP-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, answer = READ_PASSWORD[version]
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        status, answered = await _command_answered(
            daphne, api_key, websocket, version, charge_point_id, command, body, lambda call: answer
        )
        if version == "2.0.1":
            report = {
                "requestId": 7,
                "generatedAt": "2026-12-06T08:00:00Z",
                "seqNo": 0,
                "reportData": [
                    {
                        "component": {"name": "SecurityCtrlr"},
                        "variable": {"name": "BasicAuthPassword"},
                        "variableAttribute": [{"type": "Actual", "value": REPORTED, "mutability": "WriteOnly"}],
                    }
                ],
            }
            await websocket.send(json.dumps([2, "r", "NotifyReport", report]))
            while (frame := json.loads(await asyncio.wait_for(websocket.recv(), 5)))[1] != "r":
                pass
            assert frame[0] == 3
    assert status == 200 and REPORTED not in json.dumps(answered) and REDACTED in json.dumps(answered)
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert REPORTED not in json.dumps(recorded.response)
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    for _ in range(50):  # the message log is written behind, within CSMS_MESSAGE_LOG_FLUSH_MS
        frames = [message.frame async for message in OcppMessage.objects.filter(charge_point=charge_point)]
        if any(REDACTED in frame for frame in frames) and len(frames) >= (4 if version == "1.6" else 6):
            break
        await asyncio.sleep(0.1)
    assert not any(REPORTED in frame for frame in frames)
    stored = ConfigurationKey if version == "1.6" else DeviceModelAttribute
    assert REDACTED in [value async for value in stored.objects.values_list("value", flat=True)]
    assert REPORTED not in [value async for value in stored.objects.values_list("value", flat=True)]


async def test_a_password_a_station_reports_in_an_event_is_neither_in_the_message_log_nor_in_the_log(daphne):
    """A NotifyEvent about ``SecurityCtrlr.BasicAuthPassword`` (a station telling each change of its
    configuration, a monitor on it) carries its ``actualValue``: the message log kept it in plain text
    and the gateway's log line of the event showed it."""
    charge_point_id, in_event = "CP-RE-2.0.1", "Password-In-An-Event-1234"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    event = {
        "eventId": 1,
        "timestamp": "2026-12-06T08:00:00Z",
        "trigger": "Delta",
        "actualValue": in_event,
        "eventNotificationType": "HardWiredMonitor",
        "component": {"name": "SecurityCtrlr"},
        "variable": {"name": "BasicAuthPassword"},
    }
    async with connected(daphne, "2.0.1", charge_point_id, OLD) as websocket:
        payload = {"generatedAt": "2026-12-06T08:00:00Z", "seqNo": 0, "eventData": [event]}
        await websocket.send(json.dumps([2, "e", "NotifyEvent", payload]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5)) == [3, "e", {}]
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    for _ in range(50):  # the message log is written behind, within CSMS_MESSAGE_LOG_FLUSH_MS
        frames = [message.frame async for message in OcppMessage.objects.filter(charge_point=charge_point)]
        if len(frames) >= 2:
            break
        await asyncio.sleep(0.1)
    notify_event = next(frame for frame in frames if "NotifyEvent" in frame)
    assert in_event not in notify_event and REDACTED in notify_event
    assert "HardWiredMonitor" in notify_event  # the rest of the event as sent
    assert f"{charge_point_id}: NotifyEvent" in daphne.log()
    assert in_event not in daphne.log()


@pytest.mark.parametrize("old", [OLD, None], ids=["a password before", "none before"])
@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_taken_after_a_reboot_admits_beside_the_old_one_until_the_charger_presents_it(
    daphne, api_key, version, old
):
    """Answered RebootRequired, the new password takes effect when the charger reboots: until then it
    presents the old one, or none (round 41's probe: it was refused with 403 until it rebooted)."""
    charge_point_id = f"CP-PWR-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(old) if old else ""
    )
    command, body, _ = SET_PASSWORD[version]

    def reboot_required(call: list) -> dict:
        if version == "1.6":
            return {"status": "RebootRequired"}
        return {"setVariableResult": [{"attributeStatus": "RebootRequired", **_named(call[3]["setVariableData"][0])}]}

    async with connected(daphne, version, charge_point_id, old) as websocket:
        status, _ = await _command_answered(
            daphne, api_key, websocket, version, charge_point_id, command, body, reboot_required
        )
    assert status == 200
    for password in (old, NEW, NEW):  # before the reboot, after it, and again
        async with connected(daphne, version, charge_point_id, password) as websocket:
            await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
            assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(NEW, charge_point.password_hash) and charge_point.password_hash_after_reboot == ""
    with pytest.raises(InvalidStatus):  # the old one (or none) no longer admits it
        async with connected(daphne, version, charge_point_id, old):
            pass


async def test_a_password_set_under_names_in_another_case_than_the_answer_s_is_the_one_checked(daphne, api_key):
    """Component and variable names are OCPP's case-insensitive CiString: a SetVariables asking
    ``securityctrlr.basicauthpassword`` (and ``ocppcommctrlr.heartbeatinterval``) answered Accepted
    under the station's own spelling is taken as asked (the CSMS went on checking the old password,
    locking out the charger that took the new one, and kept neither value)."""
    charge_point_id = "CP-PW-CASE"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    body = {
        "set_variable_data": [
            {"component": {"name": "securityctrlr"}, "variable": {"name": "basicauthpassword"}, "attribute_value": NEW},
            {
                "component": {"name": "ocppcommctrlr"},
                "variable": {"name": "HEARTBEATINTERVAL"},
                "attribute_value": "120",
            },
        ]
    }

    def answer(call: list) -> dict:
        canonical = [("SecurityCtrlr", "BasicAuthPassword"), ("OCPPCommCtrlr", "HeartbeatInterval")]
        return {
            "setVariableResult": [
                {"component": {"name": component}, "variable": {"name": variable}, "attributeStatus": "Accepted"}
                for component, variable in canonical
            ]
        }

    async with connected(daphne, "2.0.1", charge_point_id, OLD) as websocket:
        status, _ = await _command_answered(
            daphne, api_key, websocket, "2.0.1", charge_point_id, "set_variables", body, answer
        )
    assert status == 200
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(NEW, charge_point.password_hash) and charge_point.heartbeat_interval == 120
    async with connected(daphne, "2.0.1", charge_point_id, NEW) as websocket:
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    stored = DeviceModelAttribute.objects.order_by("variable__variable_name").values_list(
        "variable__component_name", "variable__variable_name", "value"
    )
    assert [row async for row in stored] == [
        ("SecurityCtrlr", "BasicAuthPassword", REDACTED),
        ("OCPPCommCtrlr", "HeartbeatInterval", "120"),
    ]


@pytest.fixture(scope="session")
def impatient_daphne(daphne_factory):
    """A daphne that waits 2 s for a charger's answer (``CSMS_OCPP_CALL_TIMEOUT``)."""
    return daphne_factory(CSMS_OCPP_CALL_TIMEOUT="2")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_whose_command_timed_out_admits_beside_the_old_one_until_the_charger_presents_one(
    impatient_daphne, transactional_db, api_key, version
):
    """The CALL setting the password left, its answer did not come back in time (504): the charger
    may have taken the new password (it was locked out at its next connection), or not."""
    daphne, charge_point_id = impatient_daphne, f"CP-PW-LATE-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, _ = SET_PASSWORD[version]
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        status, _ = await _command_answered(daphne, api_key, websocket, version, charge_point_id, command, body, None)
    assert status == 504
    async with connected(daphne, version, charge_point_id, OLD) as websocket:  # it did not take it
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    async with connected(daphne, version, charge_point_id, NEW) as websocket:  # it took it
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    with pytest.raises(InvalidStatus):  # the new one presented: the old one no longer admits
        async with connected(daphne, version, charge_point_id, OLD):
            pass


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_whose_sending_process_died_admits_the_charger_that_took_it(
    daphne, tmp_path, api_key, version
):
    """The process that sent the password died before the charger's answer came back (the API's
    ``?wait=false`` command, its gateway killed): the sweep of abandoned commands times it out from
    its recorded row, which holds the password redacted, so the CSMS knew only the old password and
    refused the charger that took the new one at its next handshake. The candidate's hash is stored
    before the CALL leaves: old and new both admit it until it presents the new one."""
    charge_point_id = f"CP-PW-DIED-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, _ = SET_PASSWORD[version]
    doomed = await sync_to_async(start_daphne)(tmp_path)
    try:
        with contextlib.suppress(ConnectionClosed):  # its socket dies with its process
            async with connected(doomed, version, charge_point_id, OLD) as websocket:
                await websocket.send(json.dumps([2, "b", "BootNotification", BOOT[version]]))
                await asyncio.wait_for(websocket.recv(), 5)
                path = "ocpp16" if version == "1.6" else "ocpp201"
                url = f"{doomed.http_url}/api/v1/{path}/{charge_point_id}/{command}?wait=false"
                status, _ = await ahttp(url, method="POST", api_key=api_key, body=body)
                assert status == 202
                call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
                assert call[2] == SET_PASSWORD[version][0].title().replace("_", "")  # the charger takes it...
                doomed.process.kill()  # ...and the process that sent it dies before its answer
                doomed.process.wait()
    finally:
        await sync_to_async(stop_daphne)(doomed)
    abandoned_at = timezone.now() - timedelta(seconds=settings.CSMS_OCPP_CALL_TIMEOUT + ABANDONED_MARGIN_SECONDS + 5)
    await Command.objects.filter(charge_point_identity=charge_point_id).aupdate(created_at=abandoned_at)
    assert await sync_to_async(time_out_abandoned_commands)() >= 1
    assert (await Command.objects.aget(charge_point_identity=charge_point_id, command=command)).state == "timeout"
    async with connected(daphne, version, charge_point_id, NEW) as websocket:  # it took it: admitted
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(NEW, charge_point.password_hash) and charge_point.password_hash_after_reboot == ""
    with pytest.raises(InvalidStatus):  # the new one presented: the old one no longer admits
        async with connected(daphne, version, charge_point_id, OLD):
            pass
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert NEW not in json.dumps(recorded.request)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_the_charger_refuses_drops_its_candidate_and_keeps_one_taken_for_after_a_reboot(
    daphne, api_key, version
):
    """The candidate stored before the CALL leaves admits beside the old password until the answer
    settles it: refused (Rejected), it admits no one; a candidate the charger took earlier for
    after its reboot (RebootRequired) still admits it."""
    charge_point_id = f"CP-PW-REFUSED-{version}"
    earlier = "EarlierPassword-98765"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id,
        heartbeat_interval=60,
        password_hash=make_password(OLD),
        password_hash_after_reboot=make_password(earlier),
    )
    command, body, _ = SET_PASSWORD[version]

    def rejected(call: list) -> dict:
        if version == "1.6":
            return {"status": "Rejected"}
        return {"setVariableResult": [{"attributeStatus": "Rejected", **_named(call[3]["setVariableData"][0])}]}

    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        status, answered = await _command_answered(
            daphne, api_key, websocket, version, charge_point_id, command, body, rejected
        )
    assert status == 409, answered  # Rejected
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(OLD, charge_point.password_hash)
    assert check_password(earlier, charge_point.password_hash_after_reboot)
    with pytest.raises(InvalidStatus):  # the refused one admits no one
        async with connected(daphne, version, charge_point_id, NEW):
            pass
    for password in (OLD, earlier):
        async with connected(daphne, version, charge_point_id, password) as websocket:
            await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
            assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_that_never_reached_the_charger_admits_no_one(daphne, api_key, version):
    """The charger's presence named a socket no process holds any more (a gateway that died): the
    CALL never reached it (``not_connected``), so the candidate stored before sending is dropped; it
    admitted anyone presenting a password the charger never got."""
    charge_point_id = f"CP-PW-GONE-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id,
        heartbeat_interval=60,
        ocpp_version=version,
        password_hash=make_password(OLD),
        connection_channel="specific.deadbeef!gone",
        connected=True,
    )
    command, body, _ = SET_PASSWORD[version]
    path = "ocpp16" if version == "1.6" else "ocpp201"
    url = f"{daphne.http_url}/api/v1/{path}/{charge_point_id}/{command}"
    status, answered = await ahttp(url, method="POST", api_key=api_key, body=body)
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert recorded.state == "not_connected", (status, answered)
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert charge_point.password_hash_after_reboot == ""
    await ChargePoint.objects.filter(pk=charge_point.pk).aupdate(connection_channel="", connected=False)
    with pytest.raises(InvalidStatus):
        async with connected(daphne, version, charge_point_id, NEW):
            pass


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_the_charger_answers_with_a_callerror_admits_no_one(daphne, api_key, version):
    """Review: a CALLERROR (NotSupported) left the candidate stored before sending in place, and a
    handshake presenting the password the charger never took was admitted and made current, locking
    the real charger (still on the old one) out. The CALLERROR drops it, as a refusal does."""
    charge_point_id = f"CP-PW-CALLERROR-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, _ = SET_PASSWORD[version]
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        await websocket.send(json.dumps([2, "b", "BootNotification", BOOT[version]]))
        await asyncio.wait_for(websocket.recv(), 5)
        path = "ocpp16" if version == "1.6" else "ocpp201"
        url = f"{daphne.http_url}/api/v1/{path}/{charge_point_id}/{command}"
        post = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body=body))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        await websocket.send(json.dumps([4, call[1], "NotSupported", "", {}]))
        status, answered = await post
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert recorded.state == "call_error", (status, answered)
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert charge_point.password_hash_after_reboot == ""
    with pytest.raises(InvalidStatus):
        async with connected(daphne, version, charge_point_id, NEW):
            pass
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_whose_answer_could_not_be_read_keeps_its_candidate(daphne, api_key, version):
    """Second review: a CALLERROR dropped the candidate, including the FormatViolation the gateway
    makes of an answer it cannot read (here nested deeper than any OCPP message): a charger that took
    the password and said so unreadably was locked out at its next handshake. Such an answer is taken
    as unanswered: the candidate admits the charger, which confirms it."""
    charge_point_id = f"CP-PW-UNREAD-{version}"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    command, body, _ = SET_PASSWORD[version]

    def unreadable(call: list) -> dict:
        deep: dict = {}
        for _ in range(80):
            deep = {"a": deep}
        return {"status": "Accepted", "customData": {"vendorId": "x", "deep": deep}}

    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        status, answered = await _command_answered(
            daphne, api_key, websocket, version, charge_point_id, command, body, unreadable
        )
    recorded = await Command.objects.aget(charge_point_identity=charge_point_id, command=command)
    assert (recorded.state, recorded.error_code) == ("call_error", "FormatViolation"), (status, answered)
    async with connected(daphne, version, charge_point_id, NEW) as websocket:
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(NEW, charge_point.password_hash)


async def test_a_handshake_finding_its_candidate_made_current_by_a_concurrent_one_is_admitted():
    """Second review: two handshakes of one charger at once, both presenting its candidate: the first
    made it current, and the second, finding no candidate under the row's lock, was refused."""
    from asgiref.sync import sync_to_async

    from chargepoints.passwords import charger_password_matches
    from chargepoints.services import fleet

    promoted = make_password(NEW)
    await ChargePoint.objects.acreate(
        charge_point_id="CP-PW-TWICE", heartbeat_interval=60, password_hash=promoted, password_hash_after_reboot=""
    )
    # the second handshake verified the password against the candidate's hash before the first made it current
    assert charger_password_matches(charge_point_id="CP-PW-TWICE", password=NEW, password_hash=promoted)
    made_current = sync_to_async(fleet._password_after_reboot_made_current)
    assert await made_current("CP-PW-TWICE", NEW) == ""
    assert await made_current("CP-PW-TWICE", OLD) == "wrong password"


def _password_set(version: str, password: str) -> tuple[str, dict]:
    """The command and body setting the charger's password to ``password``."""
    if version == "1.6":
        return "change_configuration", {"key": "AuthorizationKey", "value": password.encode().hex()}
    item = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    return "set_variables", {"set_variable_data": [{**item, "attribute_value": password}]}


def _reboot_required(version: str):
    def answer(call: list) -> dict:
        if version == "1.6":
            return {"status": "RebootRequired"}
        return {"setVariableResult": [{"attributeStatus": "RebootRequired", **_named(call[3]["setVariableData"][0])}]}

    return answer


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_password_taken_for_after_a_reboot_still_admits_once_a_second_rotation_is_not_answered(
    impatient_daphne, transactional_db, api_key, version
):
    """Probe (h6): a rotation started twice. The first password was answered RebootRequired, the
    second's CALL was not answered (504: the charger busy, rebooting, or its answer lost). The
    second's candidate replaced the first's in the one candidate slot, so the charger rebooting onto
    the first password it accepted was refused at every handshake from then: locked out. An earlier
    candidate is kept beside the newer one until the charger presents one of them."""
    daphne, charge_point_id = impatient_daphne, f"CP-PW-TWICE-{version}"
    first, second = "FirstRotation-123456", "SecondRotation-76543"
    await ChargePoint.objects.acreate(
        charge_point_id=charge_point_id, heartbeat_interval=60, password_hash=make_password(OLD)
    )
    async with connected(daphne, version, charge_point_id, OLD) as websocket:
        command, body = _password_set(version, first)
        status, _ = await _command_answered(
            daphne, api_key, websocket, version, charge_point_id, command, body, _reboot_required(version)
        )
        assert status == 200
        command, body = _password_set(version, second)
        status, _ = await _command_answered(daphne, api_key, websocket, version, charge_point_id, command, body, None)
        assert status == 504
    async with connected(daphne, version, charge_point_id, first) as websocket:  # rebooted onto the first
        await websocket.send(json.dumps([2, "h", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[0] == 3
    charge_point = await ChargePoint.objects.aget(charge_point_id=charge_point_id)
    assert check_password(first, charge_point.password_hash)
    with pytest.raises(InvalidStatus):  # the first presented: the old one no longer admits
        async with connected(daphne, version, charge_point_id, OLD):
            pass
