"""Chargers that break the schema, through a real daphne: lenient models are heard, strict ones refused."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.utils import timezone

from chargepoints.models import (
    ChargePoint,
    ChargerModelProfile,
    Connector,
    MessageDirection,
    OcppMessage,
    SchemaViolation,
    Strictness,
)
from charging.models import IdTag
from conftest import ahttp, eventually, raw_socket
from maintenance.models import (
    Campaign,
    CampaignTarget,
    FirmwareFile,
    LogUpload,
    LogUploadState,
    TargetState,
)

pytestmark = pytest.mark.django_db(transaction=True)

LONG_SERIAL = "SN-" + "7" * 57
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Loose", "chargePointSerialNumber": LONG_SERIAL}
ODD_STATUS = {"connectorId": 1, "errorCode": "FanFailure", "status": "Available"}


async def exchange(websocket, unique_id: str, action: str, payload: dict) -> list:
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=5))


async def test_a_lenient_model_s_harmless_violations_are_accepted_and_recorded(daphne):
    await ChargerModelProfile.objects.acreate(vendor="acme", model="loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LENIENT", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-LENIENT") as websocket:
        boot = await exchange(websocket, "b1", "BootNotification", BOOT)
        assert boot[:2] == [3, "b1"] and boot[2]["status"] == "Accepted"
        status = await exchange(websocket, "s1", "StatusNotification", ODD_STATUS)
        assert status == [3, "s1", {}]
        harmful = await exchange(websocket, "s2", "StatusNotification", {**ODD_STATUS, "status": "Sleeping"})
        assert harmful[:2] == [4, "s2"]

    charge_point = await ChargePoint.objects.aget(charge_point_id="CP-LENIENT")
    assert charge_point.serial_number == LONG_SERIAL[:50]
    connector = await Connector.objects.aget(charge_point=charge_point, connector_id=1)
    assert connector.error_code == "FanFailure"
    violations = [
        (row.action, row.path, row.validator, row.value)
        async for row in SchemaViolation.objects.filter(charge_point=charge_point).order_by("received_at")
    ]
    assert violations == [
        ("BootNotification", "chargePointSerialNumber", "maxLength", LONG_SERIAL),
        ("StatusNotification", "errorCode", "enum", "FanFailure"),
    ]


async def test_the_same_frames_from_a_strict_charger_are_refused_as_before(daphne):
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-STRICT", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-STRICT") as websocket:
        boot = await exchange(websocket, "b1", "BootNotification", {**BOOT, "chargePointModel": "Tight"})
        assert boot[:3] == [4, "b1", "TypeConstraintViolation"]
        assert (await exchange(websocket, "h1", "Heartbeat", {}))[:2] == [3, "h1"]
        status = await exchange(websocket, "s1", "StatusNotification", ODD_STATUS)
        assert status[:3] == [4, "s1", "PropertyConstraintViolation"]  # an errorCode outside its enum
    assert not await SchemaViolation.objects.aexists()


async def test_a_model_s_quirks_fix_its_payloads_before_validation(daphne):
    await ChargerModelProfile.objects.acreate(
        vendor="Acme", model="Padded", quirks=["strip_idtag_suffix", "unit_aliases"], id_tag_suffix=r":\d+"
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-QUIRKY", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-QUIRKY") as websocket:
        boot = await exchange(
            websocket, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Padded"}
        )
        assert boot[2]["status"] == "Accepted"
        # 20 characters and a suffix: over the 1.6 idTag maxLength until the quirk strips it.
        authorize = await exchange(websocket, "a1", "Authorize", {"idTag": "ABCDEFGHIJKLMNOPQRST:1\u0000"})
        assert authorize[:2] == [3, "a1"]
        sample = {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "KWH"}
        meter = {"connectorId": 1, "meterValue": [{"timestamp": "2026-05-01T10:00:00Z", "sampledValue": [sample]}]}
        assert (await exchange(websocket, "m1", "MeterValues", meter))[:2] == [3, "m1"]
    assert not await SchemaViolation.objects.aexists()
    logged = await eventually(
        lambda: OcppMessage.objects.filter(unique_id="a1", direction=MessageDirection.INBOUND).afirst()
    )
    assert json.loads(logged.frame)[3]["idTag"] == "ABCDEFGHIJKLMNOPQRST:1\u0000"  # the log keeps it as received


async def test_a_callerror_in_the_other_spelling_is_recorded_in_the_version_s_own(daphne, api_key):
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Modern", quirks=["formation_violation_spelling"])
    await ChargePoint.objects.acreate(charge_point_id="CP-SPELL", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-SPELL") as websocket:
        await exchange(websocket, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Modern"})
        post = asyncio.create_task(
            ahttp(f"{daphne.http_url}/api/v1/ocpp16/CP-SPELL/clear_cache", method="POST", api_key=api_key, body={})
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        await websocket.send(json.dumps([4, call[1], "FormatViolation", "bad payload", {}]))
        status, reply = await post
    assert (status, reply["error"]) == (502, "FormationViolation")


async def test_a_lenient_model_s_over_long_id_tag_is_authorized_as_its_start_is(daphne):
    """A registered tag of 21 characters (the API takes 36) was refused in a lenient model's 1.6
    Authorize (TypeConstraintViolation) while its StartTransaction answered it Accepted: the card
    could not start where the charger authorizes first. Longer than any registered tag: Invalid."""
    await ChargerModelProfile.objects.acreate(vendor="acme", model="loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LONGTAG", heartbeat_interval=60)
    await IdTag.objects.acreate(id_tag="LABTAG-TOO-LONG-12345")
    async with raw_socket(daphne, "1.6", "CP-LONGTAG") as websocket:
        await exchange(websocket, "b1", "BootNotification", BOOT)
        registered = await exchange(websocket, "a1", "Authorize", {"idTag": "labtag-too-long-12345"})
        unknown = await exchange(websocket, "a2", "Authorize", {"idTag": "LABTAG-TOO-LONG-12345" + "X" * 300})
    assert registered == [3, "a1", {"idTagInfo": {"status": "Accepted"}}]
    assert unknown == [3, "a2", {"idTagInfo": {"status": "Invalid"}}]
    recorded = [(row.path, row.validator) async for row in SchemaViolation.objects.filter(action="Authorize")]
    assert set(recorded) == {("idTag", "maxLength")}


async def test_a_strict_charger_s_over_long_authorize_is_still_refused(daphne):
    await ChargePoint.objects.acreate(charge_point_id="CP-STRICTTAG", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-STRICTTAG") as websocket:
        refused = await exchange(websocket, "a1", "Authorize", {"idTag": "LABTAG-TOO-LONG-12345"})
    assert refused[:3] == [4, "a1", "TypeConstraintViolation"]


async def test_a_lenient_2_0_1_model_s_over_long_id_token_is_answered_unknown(daphne):
    await ChargerModelProfile.objects.acreate(vendor="acme", model="loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CS-LONGTAG", heartbeat_interval=60)
    boot = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "Loose"}}
    async with raw_socket(daphne, "2.0.1", "CS-LONGTAG") as websocket:
        await exchange(websocket, "b1", "BootNotification", boot)
        token = {"idToken": {"idToken": "E" * 40, "type": "eMAID"}}
        answered = await exchange(websocket, "a1", "Authorize", token)
    assert answered == [3, "a1", {"idTokenInfo": {"status": "Unknown"}}]


async def test_a_lenient_model_s_firmware_and_upload_statuses_outside_1_6_s_enums_are_followed(daphne):
    """Firmware that implements the security whitepaper sends its statuses (``InstallRebooting``,
    ``UploadFailure``) in plain 1.6 FirmwareStatusNotification and DiagnosticsStatusNotification:
    a lenient model's were refused (PropertyConstraintViolation), though the CSMS knows them from
    SignedFirmwareStatusNotification and LogStatusNotification; its campaign target and upload
    then waited for a status that had come. Now they are followed and the violation recorded; a
    status no version lists is acknowledged and changes nothing; a strict charger is refused."""
    await ChargerModelProfile.objects.acreate(vendor="acme", model="loose", strictness=Strictness.LENIENT)
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-FWSTATUS", heartbeat_interval=60)
    firmware = await FirmwareFile.objects.acreate(name="fw.bin", file="firmware/fw.bin", size=1, sha256="0" * 64)
    campaign = await Campaign.objects.acreate(name="c", firmware=firmware, start_at=timezone.now(), concurrency=1)
    target = await CampaignTarget.objects.acreate(
        campaign=campaign, charge_point=charge_point, state=TargetState.DOWNLOADED, sent_at=timezone.now()
    )
    upload = await LogUpload.objects.acreate(
        charge_point=charge_point,
        log_type="Diagnostics",
        state=LogUploadState.REQUESTED,
        token_sha256="1" * 64,
        token_expires_at=timezone.now(),
    )
    async with raw_socket(daphne, "1.6", "CP-FWSTATUS") as websocket:
        await exchange(websocket, "b1", "BootNotification", BOOT)
        rebooting = await exchange(websocket, "f1", "FirmwareStatusNotification", {"status": "InstallRebooting"})
        odd = await exchange(websocket, "f2", "FirmwareStatusNotification", {"status": "Rebooting"})
        failed = await exchange(websocket, "d1", "DiagnosticsStatusNotification", {"status": "UploadFailure"})
    assert [rebooting, odd, failed] == [[3, "f1", {}], [3, "f2", {}], [3, "d1", {}]]
    await target.arefresh_from_db()
    assert (target.state, target.status) == (TargetState.INSTALLING, "InstallRebooting")
    await upload.arefresh_from_db()
    assert (upload.state, upload.status) == (LogUploadState.FAILED, "UploadFailure")
    recorded = [
        (row.action, row.path, row.validator, row.value)
        async for row in SchemaViolation.objects.filter(charge_point=charge_point)
        .exclude(action="BootNotification")
        .order_by("received_at")
    ]
    assert recorded == [
        ("FirmwareStatusNotification", "status", "enum", "InstallRebooting"),
        ("FirmwareStatusNotification", "status", "enum", "Rebooting"),
        ("DiagnosticsStatusNotification", "status", "enum", "UploadFailure"),
    ]

    await ChargePoint.objects.acreate(charge_point_id="CP-FWSTRICT", heartbeat_interval=60)
    async with raw_socket(daphne, "1.6", "CP-FWSTRICT") as websocket:
        refused = await exchange(websocket, "f1", "FirmwareStatusNotification", {"status": "InstallRebooting"})
    assert refused[:3] == [4, "f1", "PropertyConstraintViolation"]


async def test_a_lenient_model_s_data_transfer_data_that_is_no_string_is_kept_as_json_text(daphne):
    """OCPP 1.6 DataTransfer ``data`` is a string; firmware that sends an object or an array there
    got a TypeConstraintViolation whatever its model's profile, so its vendor messages were refused
    for ever. A lenient model's is answered as any DataTransfer, the value recorded as the violation
    and passed on as JSON text; a strict charger's is still refused."""
    await ChargerModelProfile.objects.acreate(vendor="Acme", model="Loose", strictness=Strictness.LENIENT)
    await ChargePoint.objects.acreate(charge_point_id="CP-LOOSE-DT", heartbeat_interval=60)
    await ChargePoint.objects.acreate(charge_point_id="CP-STRICT-DT", heartbeat_interval=60)
    transfer = {"vendorId": "com.acme", "messageId": "state"}
    async with raw_socket(daphne, "1.6", "CP-LOOSE-DT") as websocket:
        assert (await exchange(websocket, "b1", "BootNotification", BOOT))[2]["status"] == "Accepted"
        for index, data in enumerate(({"soc": 80, "ids": [1, 2]}, [1, "x"], 17)):
            answer = await exchange(websocket, f"d{index}", "DataTransfer", {**transfer, "data": data})
            assert answer == [3, f"d{index}", {"status": "UnknownVendorId"}]
    async with raw_socket(daphne, "1.6", "CP-STRICT-DT") as websocket:
        strict = {"chargePointVendor": "Acme", "chargePointModel": "Tight"}
        assert (await exchange(websocket, "b1", "BootNotification", strict))[2]["status"] == "Accepted"
        answer = await exchange(websocket, "d0", "DataTransfer", {**transfer, "data": {"soc": 80}})
        assert answer[:3] == [4, "d0", "TypeConstraintViolation"]
    violations = [
        (row.action, row.path, row.validator, row.value)
        async for row in SchemaViolation.objects.filter(charge_point__charge_point_id="CP-LOOSE-DT").order_by(
            "received_at", "id"
        )
    ]
    assert violations == [
        ("BootNotification", "chargePointSerialNumber", "maxLength", LONG_SERIAL),
        ("DataTransfer", "data", "type", '{"soc": 80, "ids": [1, 2]}'),  # a violation's value is kept as text
        ("DataTransfer", "data", "type", '[1, "x"]'),
        ("DataTransfer", "data", "type", "17"),
    ]
