"""Firmware campaigns over real chargers: UpdateFirmware in waves, downloads over real HTTP from
signed URLs, progress from FirmwareStatusNotification (1.6 and 2.0.1 with requestId)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile
from django.utils import timezone
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201

from chargepoints.models import ChargePoint
from commands.models import Command
from conftest import ahttp, eventually, ocpp_charger, raw_socket
from maintenance.links import firmware_download_url
from maintenance.models import Campaign, CampaignState, CampaignTarget, FirmwareFile, TargetState
from maintenance.services import firmware
from maintenance.tests.conftest import FailingCharger16, FirmwareCharger16, FirmwareCharger201, http_get

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = bytes(range(256)) * 400  # 100 KiB


async def _register(ids: list[str], version: str) -> None:
    for charge_point_id in ids:
        await ChargePoint.objects.acreate(
            charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version=version, model="Wallbox-X"
        )


async def _in_flight(campaign: Campaign) -> int:
    return await CampaignTarget.objects.filter(campaign=campaign, state__in=firmware.IN_FLIGHT).acount()


async def _sent(campaign: Campaign) -> int:
    return (
        await CampaignTarget.objects.filter(campaign=campaign)
        .exclude(state__in=[TargetState.PENDING, TargetState.SKIPPED])
        .acount()
    )


advance = sync_to_async(firmware.campaign_advance)


async def test_campaign_over_20_chargers_in_waves_of_5_installs_19_and_fails_1(shared_files, api_client):
    ids16 = [f"FW16-{n:02d}" for n in range(15)]
    ids201 = [f"FW201-{n:02d}" for n in range(5)]
    await _register(ids16, "1.6")
    await _register(ids201, "2.0.1")
    upload = ContentFile(IMAGE, name="wallbox-x-2.4.0.bin")
    reply = await sync_to_async(api_client.post)(
        "/api/v1/firmware", {"file": upload, "version": "2.4.0"}, format="multipart"
    )
    assert reply.status_code == 201, reply.content
    assert reply.json()["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert reply.json()["size"] == len(IMAGE)
    reply = await sync_to_async(api_client.post)(
        "/api/v1/campaigns",
        {"name": "2.4.0 rollout", "firmware_id": reply.json()["id"], "model": "wallbox-x", "concurrency": 5},
        format="json",
    )
    assert reply.status_code == 201, reply.content
    campaign = await Campaign.objects.aget(pk=reply.json()["id"])

    async with contextlib.AsyncExitStack() as stack:
        chargers = {}
        for charge_point_id in ids16:
            client = FailingCharger16 if charge_point_id == "FW16-07" else FirmwareCharger16
            chargers[charge_point_id] = await stack.enter_async_context(
                ocpp_charger(shared_files, "1.6", charge_point_id, client_class=client)
            )
        for charge_point_id in ids201:
            chargers[charge_point_id] = await stack.enter_async_context(
                ocpp_charger(shared_files, "2.0.1", charge_point_id, client_class=FirmwareCharger201)
            )
        for wave in range(1, 5):
            await advance(campaign_id=str(campaign.pk))
            assert await _sent(campaign) == 5 * wave
            assert await _in_flight(campaign) <= 5

            async def wave_done() -> bool:
                return await _in_flight(campaign) == 0

            await eventually(wave_done, timeout=30)
        await advance(campaign_id=str(campaign.pk))

    for charger in chargers.values():
        assert charger.downloaded == IMAGE
        assert len(charger.locations) == 1
        assert charger.reported[0] == "Downloading"
    assert chargers["FW16-07"].reported[-1] == "InstallationFailed"
    assert {c.reported[-1] for i, c in chargers.items() if i != "FW16-07"} == {"Installed"}
    for charge_point_id in ids201:
        target = await CampaignTarget.objects.aget(campaign=campaign, charge_point__charge_point_id=charge_point_id)
        assert target.state == TargetState.INSTALLED

    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert campaign.state == CampaignState.COMPLETED and campaign.finished_at is not None
    progress = await sync_to_async(firmware.campaign_progress)(campaign)
    assert (progress["installed"], progress["failed"]) == (19, 1)
    failed = await CampaignTarget.objects.select_related("charge_point").aget(campaign=campaign, state="failed")
    assert (failed.charge_point.charge_point_id, failed.failure) == ("FW16-07", "InstallationFailed")
    assert await Command.objects.filter(action="UpdateFirmware", state="accepted").acount() == 20

    reply = await sync_to_async(api_client.get)(f"/api/v1/campaigns/{campaign.pk}")
    assert reply.json()["progress"]["installed"] == 19
    assert reply.json()["progress"]["failed"] == 1
    assert len(reply.json()["targets"]) == 20


async def test_cancelling_a_campaign_stops_new_waves(shared_files):
    ids = [f"FWC-{n}" for n in range(6)]
    await _register(ids, "1.6")
    file = await sync_to_async(firmware.firmware_file_create)(
        name="image", version="1", upload=ContentFile(IMAGE, name="image.bin")
    )
    campaign = await sync_to_async(firmware.campaign_create)(
        name="cancel me", firmware=file, concurrency=2, charge_point_ids=ids
    )
    async with contextlib.AsyncExitStack() as stack:
        chargers = [
            await stack.enter_async_context(ocpp_charger(shared_files, "1.6", i, client_class=FirmwareCharger16))
            for i in ids
        ]
        await advance(campaign_id=str(campaign.pk))
        assert await _sent(campaign) == 2

        async def wave_done() -> bool:
            return await _in_flight(campaign) == 0

        await eventually(wave_done, timeout=30)
        await sync_to_async(firmware.campaign_cancel)(campaign_id=str(campaign.pk))
        await advance(campaign_id=str(campaign.pk))
        assert await _sent(campaign) == 2
        assert sum(len(c.locations) for c in chargers) == 2
    assert await CampaignTarget.objects.filter(campaign=campaign, state=TargetState.SKIPPED).acount() == 4
    assert await Command.objects.filter(action="UpdateFirmware").acount() == 2
    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert campaign.state == CampaignState.CANCELLED and campaign.finished_at is not None


async def test_a_paused_campaign_sends_no_wave_until_resumed(shared_files):
    ids = ["FWP-1", "FWP-2"]
    await _register(ids, "1.6")
    file = await sync_to_async(firmware.firmware_file_create)(name="image", upload=ContentFile(IMAGE, name="image.bin"))
    campaign = await sync_to_async(firmware.campaign_create)(
        name="pause me", firmware=file, concurrency=1, charge_point_ids=ids
    )
    await sync_to_async(firmware.campaign_pause)(campaign_id=str(campaign.pk))
    async with contextlib.AsyncExitStack() as stack:
        for i in ids:
            await stack.enter_async_context(ocpp_charger(shared_files, "1.6", i, client_class=FirmwareCharger16))
        await advance(campaign_id=str(campaign.pk))
        assert await _sent(campaign) == 0
        await sync_to_async(firmware.campaign_resume)(campaign_id=str(campaign.pk))
        await advance(campaign_id=str(campaign.pk))
        assert await _sent(campaign) == 1


async def test_offline_chargers_fail_and_give_their_place_to_the_next_at_once(shared_files):
    await _register(["FWO-1", "FWO-2"], "1.6")
    file = await sync_to_async(firmware.firmware_file_create)(name="i", upload=ContentFile(b"x", name="i.bin"))
    campaign = await sync_to_async(firmware.campaign_create)(
        name="offline", firmware=file, concurrency=1, charge_point_ids=["FWO-1", "FWO-2"]
    )
    await advance(campaign_id=str(campaign.pk))
    failures = [(t.state, t.failure) async for t in CampaignTarget.objects.filter(campaign=campaign)]
    assert failures == [(TargetState.FAILED, "NotConnected")] * 2
    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert campaign.state == CampaignState.COMPLETED


class SlowToAnswerCharger16(V16Client):
    """Accepts UpdateFirmware after ANSWER_SECONDS (and updates nothing)."""

    ANSWER_SECONDS = 2.0

    @on("UpdateFirmware")
    async def on_update_firmware(self, **_: Any) -> Any:
        await asyncio.sleep(self.ANSWER_SECONDS)
        return result16.UpdateFirmware()


async def test_a_wave_waits_for_its_chargers_answers_at_once_not_one_after_the_other(shared_files):
    """Probe: a wave's UpdateFirmware were sent one after the other, each awaited up to
    CSMS_OCPP_CALL_TIMEOUT: a wave of 4 chargers that did not answer held the Celery worker (whose
    beat tasks include the offline sweep) for 2 minutes, and a charger silent past twice its
    heartbeat interval stayed online meanwhile. A wave's chargers are now awaited together."""
    ids = [f"FWS-{n}" for n in range(4)]
    await _register(ids, "1.6")
    file = await sync_to_async(firmware.firmware_file_create)(
        name="image", version="1", upload=ContentFile(IMAGE, name="image.bin")
    )
    campaign = await sync_to_async(firmware.campaign_create)(
        name="slow answers", firmware=file, concurrency=4, charge_point_ids=ids
    )
    async with contextlib.AsyncExitStack() as stack:
        for charge_point_id in ids:
            await stack.enter_async_context(
                ocpp_charger(shared_files, "1.6", charge_point_id, client_class=SlowToAnswerCharger16)
            )
        started = time.monotonic()
        await advance(campaign_id=str(campaign.pk))
        took = time.monotonic() - started
    assert await Command.objects.filter(action="UpdateFirmware", state="accepted").acount() == 4
    assert took < 2 * SlowToAnswerCharger16.ANSWER_SECONDS, took


class CancelingCharger201(FirmwareCharger201):
    """Takes the first update and stays silent about it; a later one cancels it (AcceptedCanceled)."""

    @on("UpdateFirmware")
    async def on_update_firmware(self, request_id: int, firmware: dict, **_) -> result201.UpdateFirmware:
        self.locations.append(firmware["location"])
        return result201.UpdateFirmware(status="AcceptedCanceled" if len(self.locations) > 1 else "Accepted")


async def test_an_update_that_cancels_the_one_under_way_fails_that_one_at_once(shared_files, api_client):
    await _register(["FWX-1"], "2.0.1")
    file = await sync_to_async(firmware.firmware_file_create)(name="i", upload=ContentFile(b"x", name="i.bin"))
    first = await sync_to_async(firmware.campaign_create)(
        name="first", firmware=file, concurrency=1, charge_point_ids=["FWX-1"]
    )
    second = await sync_to_async(firmware.campaign_create)(
        name="second", firmware=file, concurrency=1, charge_point_ids=["FWX-1"]
    )
    async with ocpp_charger(shared_files, "2.0.1", "FWX-1", client_class=CancelingCharger201):
        await advance(campaign_id=str(first.pk))
        await advance(campaign_id=str(second.pk))
    canceled = await CampaignTarget.objects.aget(campaign=first)
    taken = await CampaignTarget.objects.aget(campaign=second)
    assert (canceled.state, canceled.failure) == (TargetState.FAILED, "AcceptedCanceled")
    assert taken.state == TargetState.SENT
    await advance(campaign_id=str(first.pk))  # the next wave's tick (also asked for at once, of Celery)
    first = await Campaign.objects.aget(pk=first.pk)
    assert first.state == CampaignState.COMPLETED  # its only charger is done with it, not in flight for an hour


class RebootsWithoutInstalled16(FirmwareCharger16):
    """Downloads, reports Installing and reboots into the new image: its Installed is lost with the
    reboot (1.6 queues only transaction messages while offline); the BootNotification that follows
    names the new firmware version."""

    async def _update(self, location: str, request_id: int | None) -> None:
        await self._report("Downloading", request_id)
        self.downloaded = await asyncio.to_thread(http_get, location)
        await self._report("Downloaded", request_id)
        await self._report("Installing", request_id)
        self.done.set()


class RebootsWithoutInstalled201(FirmwareCharger201):
    async def _update(self, location: str, request_id: int | None) -> None:
        await self._report("Downloading", request_id)
        self.downloaded = await asyncio.to_thread(http_get, location)
        await self._report("Downloaded", request_id)
        await self._report("InstallRebooting", request_id)
        self.done.set()


async def _campaign_of_the_new_image(charger_ids: list[str]) -> Campaign:
    """A campaign of the Wallbox-X image 2.4.0 to ``charger_ids``, one charger at a time."""
    image = await sync_to_async(firmware.firmware_file_create)(
        name="wallbox-x-2.4.0.bin", version="2.4.0", upload=ContentFile(IMAGE, name="wallbox-x-2.4.0.bin")
    )
    return await sync_to_async(firmware.campaign_create)(
        name="2.4.0", firmware=image, concurrency=1, charge_point_ids=charger_ids
    )


async def _wallbox_on_the_old_image(charger_id: str, version: str) -> None:
    """A registered Wallbox-X of ``version`` whose last boot named the image 2.3.9."""
    await ChargePoint.objects.acreate(
        charge_point_id=charger_id,
        heartbeat_interval=60,
        ocpp_version=version,
        vendor="Acme",
        model="Wallbox-X",
        firmware_version="2.3.9",
    )


async def _boot(charger: Any, version: str, firmware_version: str) -> None:
    if version == "1.6":
        await charger.call(
            call16.BootNotification(
                charge_point_vendor="Acme", charge_point_model="Wallbox-X", firmware_version=firmware_version
            )
        )
    else:
        station = {"vendor_name": "Acme", "model": "Wallbox-X", "firmware_version": firmware_version}
        await charger.call(call201.BootNotification(charging_station=station, reason="FirmwareUpdate"))


@pytest.mark.parametrize(
    ("version", "client_class"), [("1.6", RebootsWithoutInstalled16), ("2.0.1", RebootsWithoutInstalled201)]
)
async def test_a_charger_booting_with_the_campaigns_version_after_installing_is_installed(
    shared_files, version, client_class
):
    """A charger that reboots into the new image may never report Installed (lost with the reboot):
    its BootNotification naming the campaign image's version says it is installed (it stayed
    installing until CSMS_FIRMWARE_STATUS_TIMEOUT failed it as Timeout, and held its place of the
    campaign's concurrency meanwhile). A boot still on the old version changes nothing."""
    charger_id = f"FWBOOT{version.replace('.', '')}"
    await _register([charger_id], version)
    campaign = await _campaign_of_the_new_image([charger_id])
    async with ocpp_charger(shared_files, version, charger_id, client_class=client_class) as charger:
        await _boot(charger, version, "2.3.9")
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)
    target = await CampaignTarget.objects.aget(campaign=campaign)
    assert target.state == TargetState.INSTALLING

    async with ocpp_charger(shared_files, version, charger_id) as charger:
        await _boot(charger, version, "2.3.9")  # restarted on the old image: not installed (yet)
        assert (await CampaignTarget.objects.aget(campaign=campaign)).state == TargetState.INSTALLING
        await _boot(charger, version, "2.4.0")

        async def installed() -> bool:
            return (await CampaignTarget.objects.aget(campaign=campaign)).state == TargetState.INSTALLED

        await eventually(installed, timeout=10)
    await advance(campaign_id=str(campaign.pk))
    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert campaign.state == CampaignState.COMPLETED
    assert (await ChargePoint.objects.aget(charge_point_id=charger_id)).firmware_version == "2.4.0"


class TakesTheLatestUpdate16(FirmwareCharger16):
    """Works on one update at a time, as a 1.6 charger does: the campaign's it starts (Downloading);
    a later UpdateFirmware replaces it, and what it reports then is the later one's."""

    async def _update(self, location: str, request_id: int | None) -> None:
        if len(self.locations) == 1:
            await self._report("Downloading", request_id)
        else:
            for status in ("Downloading", "Downloaded", "Installing", "Installed"):
                await self._report(status, request_id)
        self.done.set()


async def test_a_v16_update_sent_by_hand_while_a_campaign_s_is_under_way_fails_the_campaign_s(shared_files, api_key):
    """A 1.6 charger takes a later UpdateFirmware (an operator's, sent by hand) instead of the
    campaign's under way, and its FirmwareStatusNotification names no request: its reports were the
    campaign target's, which showed the campaign's image ``installed`` while the charger installed
    another. The target fails ``Superseded`` when the later one is accepted, and stays failed."""
    await _register(["FWHAND"], "1.6")
    campaign = await _campaign_of_the_new_image(["FWHAND"])
    async with ocpp_charger(shared_files, "1.6", "FWHAND", client_class=TakesTheLatestUpdate16) as charger:
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)
        assert (await CampaignTarget.objects.aget(campaign=campaign)).state == TargetState.DOWNLOADING
        charger.done.clear()
        status, _ = await ahttp(
            f"{shared_files.http_url}/api/v1/ocpp16/FWHAND/update_firmware",
            method="POST",
            api_key=api_key,
            body={"location": "https://images.example/wallbox-x-2.3.9.bin", "retrieve_date": "2026-12-01T00:00:00Z"},
        )
        assert status == 200
        await asyncio.wait_for(charger.done.wait(), 20)  # each report answered, so recorded
    assert charger.reported[-1] == "Installed"
    target = await CampaignTarget.objects.aget(campaign=campaign)
    assert (target.state, target.failure) == (TargetState.FAILED, "Superseded")
    await advance(campaign_id=str(campaign.pk))
    assert (await Campaign.objects.aget(pk=campaign.pk)).finished_at is not None


async def test_a_v16_update_sent_by_hand_with_the_campaign_s_own_image_leaves_the_campaign_s_tracking_it(
    shared_files, api_key
):
    """h8's probe: an operator re-sending by hand the link the charger was given by its campaign (the
    same image, its download stalled) failed the campaign's target ``Superseded``, for good, although
    the charger went on to install the campaign's image. A CSMS link to the campaign's own image
    supersedes nothing: the reports are still the target's, which is installed."""
    await _register(["FWSAME"], "1.6")
    campaign = await _campaign_of_the_new_image(["FWSAME"])
    async with ocpp_charger(shared_files, "1.6", "FWSAME", client_class=TakesTheLatestUpdate16) as charger:
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)
        assert (await CampaignTarget.objects.aget(campaign=campaign)).state == TargetState.DOWNLOADING
        charger.done.clear()
        status, _ = await ahttp(
            f"{shared_files.http_url}/api/v1/ocpp16/FWSAME/update_firmware",
            method="POST",
            api_key=api_key,
            body={"location": charger.locations[0], "retrieve_date": "2026-12-01T00:00:00Z"},
        )
        assert status == 200
        await asyncio.wait_for(charger.done.wait(), 20)  # each report answered, so recorded
    assert charger.reported[-1] == "Installed"
    target = await CampaignTarget.objects.aget(campaign=campaign)
    assert (target.state, target.status, target.failure) == (TargetState.INSTALLED, "Installed", "")
    await advance(campaign_id=str(campaign.pk))
    assert (await Campaign.objects.aget(pk=campaign.pk)).state == CampaignState.COMPLETED


async def test_a_1_6_signed_firmware_status_naming_an_update_never_sent_leaves_the_campaign_s_as_it_is(shared_files):
    """A 1.6 SignedFirmwareStatusNotification's requestId names a SignedUpdateFirmware (security whitepaper),
    which the CSMS never sends in 1.6: it was matched to the campaign target of that primary key, so a signed
    update of the charger's own failing (InvalidSignature, requestId 1) failed the campaign's UpdateFirmware
    under way. Such a status is acknowledged and changes nothing; one without a requestId (triggered, the
    charger's current update) and the core FirmwareStatusNotification are still followed."""
    await _register(["FW-SIGNED"], "1.6")
    charge_point = await ChargePoint.objects.aget(charge_point_id="FW-SIGNED")
    image = await FirmwareFile.objects.acreate(name="fw.bin", file="firmware/fw.bin", size=1, sha256="0" * 64)
    campaign = await Campaign.objects.acreate(name="c", firmware=image, start_at=timezone.now(), concurrency=1)
    target = await CampaignTarget.objects.acreate(
        campaign=campaign, charge_point=charge_point, state=TargetState.DOWNLOADING, sent_at=timezone.now()
    )
    async with raw_socket(shared_files, "1.6", "FW-SIGNED") as websocket:
        foreign = {"status": "InvalidSignature", "requestId": target.pk}
        answers = [await _exchange(websocket, "s1", "SignedFirmwareStatusNotification", foreign)]
        await target.arefresh_from_db()
        untouched = (target.state, target.status)
        answers.append(await _exchange(websocket, "s2", "SignedFirmwareStatusNotification", {"status": "Installing"}))
    assert answers == [[3, "s1", {}], [3, "s2", {}]]
    assert untouched == (TargetState.DOWNLOADING, "")
    await target.arefresh_from_db()
    assert (target.state, target.status) == (TargetState.INSTALLING, "Installing")


async def _exchange(websocket, unique_id: str, action: str, payload: dict[str, Any]) -> list[Any]:
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))


class RetriesByHandReportingFirst16(FirmwareCharger16):
    """The campaign's download fails (DownloadFailed); a later UpdateFirmware (the operator's retry)
    is installed, its Downloading and Installed sent before its answer (as a charger may: its
    reports can then be handled before the answer)."""

    async def _update(self, location: str, request_id: int | None) -> None:
        for status in ("Downloading", "DownloadFailed"):
            await self._report(status, request_id)
        self.done.set()

    @on("UpdateFirmware")
    async def on_update_firmware(self, location: str, retrieve_date: str, **_: Any) -> Any:
        if not self.locations:
            return await super().on_update_firmware(location, retrieve_date)
        self.locations.append(location)
        for number, status in enumerate(("Downloading", "Installed")):
            await self._send(json.dumps([2, f"early-{number}", "FirmwareStatusNotification", {"status": status}]))
            self.reported.append(status)
        return result16.UpdateFirmware()


async def test_a_v16_download_failed_and_re_sent_by_hand_is_back_in_flight_whatever_comes_first(shared_files, api_key):
    """A charger whose campaign download failed (DownloadFailed) is sent the campaign's link again by
    hand; its progress was taken for the hand-sent update's (1.6 names none): the target stayed
    failed and the campaign finished with it failed, though the charger installed the campaign's
    image. Putting the target back in flight on the command's answer raced the charger's reports,
    which this charger sends before its answer. The target is back in flight before the command
    leaves: installed, its finished campaign open again and completed, the target's command the
    hand-sent one."""
    await _register(["FWAGAIN"], "1.6")
    campaign = await _campaign_of_the_new_image(["FWAGAIN"])
    async with ocpp_charger(shared_files, "1.6", "FWAGAIN", client_class=RetriesByHandReportingFirst16) as charger:
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)  # each report answered, so recorded
        target = await CampaignTarget.objects.aget(campaign=campaign)
        assert (target.state, target.failure) == (TargetState.FAILED, "DownloadFailed")
        await advance(campaign_id=str(campaign.pk))
        assert (await Campaign.objects.aget(pk=campaign.pk)).finished_at is not None
        status, _ = await ahttp(
            f"{shared_files.http_url}/api/v1/ocpp16/FWAGAIN/update_firmware",
            method="POST",
            api_key=api_key,
            body={"location": charger.locations[0], "retrieve_date": "2026-12-01T00:00:00Z"},
        )
        assert status == 200

        async def installed() -> bool:
            await target.arefresh_from_db()
            return target.state == TargetState.INSTALLED

        await eventually(installed, timeout=20)
    assert (target.state, target.status, target.failure) == (TargetState.INSTALLED, "Installed", "")
    by_hand = await Command.objects.aget(charge_point_identity="FWAGAIN", api_key__isnull=False)
    assert target.command_id == by_hand.pk
    await advance(campaign_id=str(campaign.pk))
    finished = await Campaign.objects.aget(pk=campaign.pk)
    assert (finished.state, finished.finished_at is not None) == (CampaignState.COMPLETED, True)


async def test_a_v16_re_send_by_hand_that_never_reaches_the_charger_leaves_its_target_failed(shared_files, api_key):
    """The operator's retry (the campaign's link re-sent by hand) refused with a CALLERROR: the target
    it put back in flight is failed again by its download, and its campaign finishes again."""
    await _register(["FWAGAIN2"], "1.6")
    charge_point = await ChargePoint.objects.aget(charge_point_id="FWAGAIN2")
    image = await FirmwareFile.objects.acreate(name="fw.bin", file="firmware/fw.bin", size=1, sha256="0" * 64)
    campaign = await Campaign.objects.acreate(
        name="c", firmware=image, start_at=timezone.now(), concurrency=1, finished_at=timezone.now()
    )
    target = await CampaignTarget.objects.acreate(
        campaign=campaign,
        charge_point=charge_point,
        state=TargetState.FAILED,
        status="DownloadFailed",
        failure="DownloadFailed",
        sent_at=timezone.now(),
    )
    location = firmware_download_url(firmware_id=str(image.pk))
    async with raw_socket(shared_files, "1.6", "FWAGAIN2") as websocket:
        sending = asyncio.create_task(
            ahttp(
                f"{shared_files.http_url}/api/v1/ocpp16/FWAGAIN2/update_firmware",
                method="POST",
                api_key=api_key,
                body={"location": location, "retrieve_date": "2026-12-01T00:00:00Z"},
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
        assert call[2] == "UpdateFirmware"
        await target.arefresh_from_db()
        in_flight = target.state
        await websocket.send(json.dumps([4, call[1], "InternalError", "busy", {}]))
        status, _ = await sending
    assert (in_flight, status) == (TargetState.SENT, 502)
    await target.arefresh_from_db()
    assert (target.state, target.status, target.failure) == (TargetState.FAILED, "DownloadFailed", "DownloadFailed")
    await advance(campaign_id=str(campaign.pk))
    assert (await Campaign.objects.aget(pk=campaign.pk)).finished_at is not None


class RetriedByHandUnderItsRequestId201(FirmwareCharger201):
    """The campaign's download fails (DownloadFailed); the campaign's UpdateFirmware re-sent by hand
    (the same requestId and link: the operator's retry) is installed."""

    async def _update(self, location: str, request_id: int | None) -> None:
        statuses = ("Downloading", "DownloadFailed") if len(self.locations) == 1 else ("Downloading", "Installed")
        for status in statuses:
            await self._report(status, request_id)
        self.done.set()


async def test_a_v201_download_failed_and_re_sent_by_hand_under_its_request_id_is_back_in_flight(shared_files, api_key):
    """A 2.0.1 station whose campaign download failed (DownloadFailed) is sent the campaign's
    UpdateFirmware again by hand, under the target's requestId (the API shows it) and the CSMS's link
    to its image: its reports, naming the target, were refused as another update's (an UpdateFirmware
    sent by hand since), so the target stayed failed though the station installed the image. It is
    back in flight, installed, its finished campaign completed again."""
    await _register(["FWAGAIN201"], "2.0.1")
    campaign = await _campaign_of_the_new_image(["FWAGAIN201"])
    async with ocpp_charger(
        shared_files, "2.0.1", "FWAGAIN201", client_class=RetriedByHandUnderItsRequestId201
    ) as charger:
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)  # each report answered, so recorded
        target = await CampaignTarget.objects.aget(campaign=campaign)
        assert (target.state, target.failure) == (TargetState.FAILED, "DownloadFailed")
        await advance(campaign_id=str(campaign.pk))
        assert (await Campaign.objects.aget(pk=campaign.pk)).finished_at is not None
        charger.done.clear()
        firmware_body = {"location": charger.locations[0], "retrieve_date_time": "2026-12-01T00:00:00Z"}
        status, _ = await ahttp(
            f"{shared_files.http_url}/api/v1/ocpp201/FWAGAIN201/update_firmware",
            method="POST",
            api_key=api_key,
            body={"request_id": target.pk, "firmware": firmware_body},
        )
        assert status == 200
        await asyncio.wait_for(charger.done.wait(), 20)  # each report answered, so recorded
    assert charger.reported[-2:] == ["Downloading", "Installed"]
    await target.arefresh_from_db()
    assert (target.state, target.status, target.failure) == (TargetState.INSTALLED, "Installed", "")
    await advance(campaign_id=str(campaign.pk))
    finished = await Campaign.objects.aget(pk=campaign.pk)
    assert (finished.state, finished.finished_at is not None) == (CampaignState.COMPLETED, True)


@pytest.mark.parametrize("request_id_offset", [0, 1])
async def test_a_v201_re_send_by_hand_refused_or_under_another_request_id_leaves_its_target_failed(
    shared_files, api_key, request_id_offset
):
    """The campaign's link re-sent by hand under the target's requestId and refused (Rejected): the
    target it put back in flight is failed again. Under another requestId its reports are another
    request's: the target is never put back in flight."""
    await _register(["FWAGAIN201R"], "2.0.1")
    charge_point = await ChargePoint.objects.aget(charge_point_id="FWAGAIN201R")
    image = await FirmwareFile.objects.acreate(name="fw.bin", file="firmware/fw.bin", size=1, sha256="0" * 64)
    campaign = await Campaign.objects.acreate(
        name="c", firmware=image, start_at=timezone.now(), concurrency=1, finished_at=timezone.now()
    )
    target = await CampaignTarget.objects.acreate(
        campaign=campaign,
        charge_point=charge_point,
        state=TargetState.FAILED,
        status="DownloadFailed",
        failure="DownloadFailed",
        sent_at=timezone.now(),
    )
    location = firmware_download_url(firmware_id=str(image.pk))
    body = {
        "request_id": target.pk + request_id_offset,
        "firmware": {"location": location, "retrieve_date_time": "2026-12-01T00:00:00Z"},
    }
    async with raw_socket(shared_files, "2.0.1", "FWAGAIN201R") as websocket:
        sending = asyncio.create_task(
            ahttp(
                f"{shared_files.http_url}/api/v1/ocpp201/FWAGAIN201R/update_firmware",
                method="POST",
                api_key=api_key,
                body=body,
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
        assert call[2] == "UpdateFirmware"
        await target.arefresh_from_db()
        in_flight = target.state
        await websocket.send(json.dumps([3, call[1], {"status": "Rejected"}]))
        status, _ = await sending
    expected = TargetState.SENT if request_id_offset == 0 else TargetState.FAILED
    assert (in_flight, status) == (expected, 409)
    await target.arefresh_from_db()
    assert (target.state, target.status, target.failure) == (TargetState.FAILED, "DownloadFailed", "DownloadFailed")
    await advance(campaign_id=str(campaign.pk))
    assert (await Campaign.objects.aget(pk=campaign.pk)).finished_at is not None


@pytest.mark.parametrize(
    ("answer", "elsewhere", "expected"),
    [
        ("Accepted", True, (TargetState.FAILED, "Superseded")),
        ("AcceptedCanceled", True, (TargetState.FAILED, "AcceptedCanceled")),
        ("Accepted", False, (TargetState.DOWNLOADING, "")),
        ("AcceptedCanceled", False, (TargetState.DOWNLOADING, "")),
    ],
)
async def test_a_v201_update_sent_by_hand_under_a_campaign_s_request_id_for_another_image_fails_its_target(
    shared_files, api_key, answer, elsewhere, expected
):
    """An UpdateFirmware sent by hand under the requestId of a campaign's update in flight (reused) to
    another image: the station's reports naming that requestId are the other image's, yet the target
    stayed in flight (an AcceptedCanceled cancelled every other update but it), to be installed by
    them. It fails (Superseded, or AcceptedCanceled); the campaign's own link re-sent leaves it in flight."""
    await _register(["FWREUSED"], "2.0.1")
    charge_point = await ChargePoint.objects.aget(charge_point_id="FWREUSED")
    image = await FirmwareFile.objects.acreate(name="fw.bin", file="firmware/fw.bin", size=1, sha256="0" * 64)
    campaign = await Campaign.objects.acreate(name="c", firmware=image, start_at=timezone.now(), concurrency=1)
    target = await CampaignTarget.objects.acreate(
        campaign=campaign,
        charge_point=charge_point,
        state=TargetState.DOWNLOADING,
        status="Downloading",
        sent_at=timezone.now(),
    )
    location = (
        "https://vendor.example/other-3.0.0.bin" if elsewhere else firmware_download_url(firmware_id=str(image.pk))
    )
    body = {"request_id": target.pk, "firmware": {"location": location, "retrieve_date_time": "2026-12-01T00:00:00Z"}}
    async with raw_socket(shared_files, "2.0.1", "FWREUSED") as websocket:
        sending = asyncio.create_task(
            ahttp(
                f"{shared_files.http_url}/api/v1/ocpp201/FWREUSED/update_firmware",
                method="POST",
                api_key=api_key,
                body=body,
            )
        )
        call = json.loads(await asyncio.wait_for(websocket.recv(), timeout=10))
        await websocket.send(json.dumps([3, call[1], {"status": answer}]))
        status, _ = await sending
    assert status == 200
    await target.arefresh_from_db()
    assert (target.state, target.failure) == expected


async def _reported(websocket: Any, unique_id: str, payload: dict[str, Any]) -> None:
    await websocket.send(json.dumps([2, unique_id, "FirmwareStatusNotification", payload]))
    assert json.loads(await asyncio.wait_for(websocket.recv(), 10)) == [3, unique_id, {}]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("told_by", ["its reports", "its boot"])
async def test_an_update_whose_answer_was_lost_is_followed_by_what_the_charger_reports(
    shared_files, settings, version, told_by
):
    """A campaign's UpdateFirmware that reached the charger and whose answer did not come back in
    time (late over a slow cellular link, or lost on the way back) may have been taken: the charger
    downloads and installs it. It failed its target with ``Timeout`` at once, and every report the
    charger sent after it, its ``Installed`` and its boot on the new image included, was ignored:
    the campaign showed it failed for good. Such a target is now back in flight at the charger's next
    progress, as one failed by its own ``DownloadFailed`` is, its campaign reopened."""
    settings.CSMS_OCPP_CALL_TIMEOUT = 1
    charger_id = f"FWLOST{version.replace('.', '')}{told_by[4]}"
    await _wallbox_on_the_old_image(charger_id, version)
    campaign = await _campaign_of_the_new_image([charger_id])
    async with raw_socket(shared_files, version, charger_id) as websocket:
        advancing = asyncio.create_task(advance(campaign_id=str(campaign.pk)))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert call[2] == "UpdateFirmware"  # taken; its answer never arrives
        assert (await advancing).state == CampaignState.COMPLETED
        target = await CampaignTarget.objects.aget(campaign=campaign)
        assert (target.state, target.failure) == (TargetState.FAILED, "Timeout")
        request_id = {"requestId": target.pk} if version == "2.0.1" else {}
        statuses = ("Downloading", "Downloaded", "Installing") + (("Installed",) if told_by == "its reports" else ())
        for n, status in enumerate(statuses):
            await _reported(websocket, f"n{n}", {"status": status, **request_id})
        await target.arefresh_from_db()
        assert (target.state, target.status, target.failure) == (
            (TargetState.INSTALLED, "Installed", "")
            if told_by == "its reports"
            else (TargetState.INSTALLING, "Installing", "")
        )
    if told_by == "its boot":  # rebooted into the new image, its Installed lost with the reboot
        async with ocpp_charger(shared_files, version, charger_id) as charger:
            await _boot(charger, version, "2.4.0")

            async def installed() -> bool:
                return (await CampaignTarget.objects.aget(pk=target.pk)).state == TargetState.INSTALLED

            await eventually(installed, timeout=10)
    await advance(campaign_id=str(campaign.pk))
    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert (campaign.state, campaign.finished_at is not None) == (CampaignState.COMPLETED, True)
    assert (await sync_to_async(firmware.campaign_progress)(campaign))["installed"] == 1


async def test_an_update_whose_charger_reported_progress_before_its_answer_timed_out_stays_in_flight(
    shared_files, settings
):
    """Review: a charger that took the update and reported Downloading within the call's timeout,
    its answer lost, was failed Timeout all the same, and (having reported) never brought back:
    its Installed ignored. A target reported on is not failed by its command's timeout."""
    settings.CSMS_OCPP_CALL_TIMEOUT = 2
    charger_id = "FWREV2"
    version = "1.6"
    await _wallbox_on_the_old_image(charger_id, version)
    campaign = await _campaign_of_the_new_image([charger_id])
    async with raw_socket(shared_files, version, charger_id) as websocket:
        advancing = asyncio.create_task(advance(campaign_id=str(campaign.pk)))
        call = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert call[2] == "UpdateFirmware"  # taken; its answer lost
        await _reported(websocket, "d0", {"status": "Downloading"})  # before the call timeout
        await advancing
        target = await CampaignTarget.objects.aget(campaign=campaign)
        assert (target.state, target.failure) == (TargetState.DOWNLOADING, "")
        for n, status in enumerate(("Downloaded", "Installing", "Installed")):
            await _reported(websocket, f"n{n}", {"status": status})
        await target.arefresh_from_db()
        assert (target.state, target.status) == (TargetState.INSTALLED, "Installed"), (
            target.state,
            target.status,
            target.failure,
        )


@pytest.mark.parametrize(
    ("version", "client_class"), [("1.6", RebootsWithoutInstalled16), ("2.0.1", RebootsWithoutInstalled201)]
)
@pytest.mark.parametrize("told_by", ["its reports", "its boot"])
async def test_a_charger_silent_past_the_timeout_that_comes_back_installed_is_installed(
    shared_files, version, client_class, told_by
):
    """A charger that took the update, reported it installing and stayed away longer than
    CSMS_FIRMWARE_STATUS_TIMEOUT (the install's reboot slow, the site's network down overnight) is
    failed ``Timeout``, its place given to the next. Probe: when it came back on the new image,
    its boot naming the image's version and its ``Installed`` (2.0.1: naming the target's
    requestId) were ignored, and the campaign showed failed a charger running its image. Such a
    target is now installed, its campaign reopened and finished again. Progress short of it
    (``Downloading``) still leaves it failed."""
    charger_id = f"FWSIL{version.replace('.', '')}{told_by[4]}"
    await _wallbox_on_the_old_image(charger_id, version)
    campaign = await _campaign_of_the_new_image([charger_id])
    async with ocpp_charger(shared_files, version, charger_id, client_class=client_class) as charger:
        await _boot(charger, version, "2.3.9")
        await advance(campaign_id=str(campaign.pk))
        await asyncio.wait_for(charger.done.wait(), 20)
    target = await CampaignTarget.objects.aget(campaign=campaign)
    assert target.state == TargetState.INSTALLING
    two_hours_ago = timezone.now() - timedelta(hours=2)
    await CampaignTarget.objects.filter(pk=target.pk).aupdate(updated_at=two_hours_ago)
    assert (await advance(campaign_id=str(campaign.pk))).state == CampaignState.COMPLETED
    await target.arefresh_from_db()
    assert (target.state, target.failure) == (TargetState.FAILED, "Timeout")

    request_id = {"request_id": target.pk} if version == "2.0.1" else {}
    notification = call16.FirmwareStatusNotification if version == "1.6" else call201.FirmwareStatusNotification
    async with ocpp_charger(shared_files, version, charger_id) as charger:
        await charger.call(notification(status="Downloading", **request_id))
        await target.arefresh_from_db()
        assert (target.state, target.failure) == (TargetState.FAILED, "Timeout")
        if told_by == "its boot":
            await _boot(charger, version, "2.4.0")
        else:
            await charger.call(notification(status="Installed", **request_id))

        async def installed() -> bool:
            return (await CampaignTarget.objects.aget(pk=target.pk)).state == TargetState.INSTALLED

        await eventually(installed, timeout=10)
    await target.arefresh_from_db()
    assert target.failure == ""
    await advance(campaign_id=str(campaign.pk))
    campaign = await Campaign.objects.aget(pk=campaign.pk)
    assert (campaign.state, campaign.finished_at is not None) == (CampaignState.COMPLETED, True)
    assert (await sync_to_async(firmware.campaign_progress)(campaign))["installed"] == 1
