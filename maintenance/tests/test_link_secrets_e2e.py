"""The secrets of the links the CSMS sends chargers (round 46's probe: a firmware campaign's signed
download link and a diagnostics request's single-use upload token were kept whole in the command's
recorded request and in the message log: a read-only API key, or support staff in the admin, could
download the image or upload diagnostics in the charger's place). The charger gets the real link;
what is kept holds ``[redacted]``. Real daphne, chargers of the ``ocpp`` package, PostgreSQL."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile

from chargepoints.models import ChargePoint, OcppMessage
from commands.models import Command
from conftest import ahttp, eventually, ocpp_charger
from kernel.api_keys import api_key_create
from kernel.models import ApiKeyScope
from maintenance.models import LogUpload
from maintenance.services import diagnostics, firmware
from maintenance.tests.conftest import DiagnosticsCharger16, FirmwareCharger16, FirmwareCharger201, LogCharger201

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = bytes(range(256)) * 40
UPDATING = {"1.6": FirmwareCharger16, "2.0.1": FirmwareCharger201}
UPLOADING = {"1.6": DiagnosticsCharger16, "2.0.1": LogCharger201}


def _token(location: str) -> str:
    """The secret path segment of a CSMS link (``/firmware/download/<token>``, ``/diagnostics/upload/<token>``)."""
    return urllib.parse.urlsplit(location).path.split("/")[3]


async def _kept_nowhere_readable(daphne, charge_point_id: str, action: str, token: str) -> None:
    """Neither the command's recorded request (the database, the API to a read-only key) nor the
    message log holds ``token``; both hold ``[redacted]`` where it was."""
    command = await Command.objects.aget(charge_point_identity=charge_point_id, action=action)
    recorded = json.dumps(command.request)
    assert token not in recorded and "[redacted]" in recorded, recorded
    read_only = (await sync_to_async(api_key_create)(name="dashboard", scope=ApiKeyScope.READ_ONLY))[1]
    status, listed = await ahttp(f"{daphne.http_url}/api/v1/commands/?action={action}", api_key=read_only)
    assert status == 200 and listed["count"] == 1 and token not in json.dumps(listed)
    status, one = await ahttp(f"{daphne.http_url}/api/v1/commands/{command.pk}", api_key=read_only)
    assert status == 200 and token not in json.dumps(one) and "[redacted]" in json.dumps(one["request"])
    frames = [
        frame
        async for frame in OcppMessage.objects.filter(
            charge_point__charge_point_id=charge_point_id, action=action
        ).values_list("frame", flat=True)
    ]
    assert len(frames) == 2 and not any(token in frame for frame in frames), frames  # the CALL and its answer
    assert any("[redacted]" in frame for frame in frames)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_firmware_link_reaches_the_charger_whole_and_is_kept_without_its_signature(shared_files, version):
    charge_point_id = f"FW-SECRET-{version}"
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version=version)
    image = await sync_to_async(firmware.firmware_file_create)(
        name="fw", version="2.4.0", upload=ContentFile(IMAGE, name="fw.bin")
    )
    campaign = await sync_to_async(firmware.campaign_create)(
        name="secret", firmware=image, concurrency=1, charge_point_ids=[charge_point_id]
    )
    async with ocpp_charger(shared_files, version, charge_point_id, client_class=UPDATING[version]) as charger:
        await sync_to_async(firmware.campaign_advance)(campaign_id=str(campaign.pk))
        await eventually(charger.done.is_set, timeout=15)
    assert charger.downloaded == IMAGE  # the charger's link works
    await _kept_nowhere_readable(shared_files, charge_point_id, "UpdateFirmware", _token(charger.locations[0]))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_an_upload_token_reaches_the_charger_whole_and_is_kept_nowhere_readable(shared_files, version):
    charge_point_id = f"DIAG-SECRET-{version}"
    await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version=version)
    async with ocpp_charger(shared_files, version, charge_point_id, client_class=UPLOADING[version]) as charger:
        upload = await sync_to_async(diagnostics.log_upload_request)(charge_point_id=charge_point_id)

        async def uploaded() -> bool:
            return (await LogUpload.objects.aget(pk=upload.pk)).received_at is not None

        await eventually(uploaded, timeout=15)
    assert charger.upload_statuses == [201]  # the charger's token works
    location = charger.locations[0] if version == "1.6" else charger.requests[0]["log"]["remote_location"]
    action = "GetDiagnostics" if version == "1.6" else "GetLog"
    await _kept_nowhere_readable(shared_files, charge_point_id, action, _token(location))
