"""Without anyone driving it, a campaign runs to its end on a real Celery worker with beat."""

from __future__ import annotations

import contextlib

import pytest
from asgiref.sync import sync_to_async
from django.core.files.base import ContentFile

from chargepoints.models import ChargePoint
from conftest import eventually, ocpp_charger
from maintenance.models import Campaign, CampaignState
from maintenance.services import firmware
from maintenance.tests.conftest import FirmwareCharger16

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_worker_starts_the_campaign_and_each_finished_charger_starts_the_next(shared_files, celery_worker):
    ids = ["FWW-1", "FWW-2", "FWW-3"]
    for charge_point_id in ids:
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, ocpp_version="1.6")
    upload = ContentFile(b"fw" * 100, name="fw.bin")
    image = await sync_to_async(firmware.firmware_file_create)(name="fw", upload=upload)
    async with contextlib.AsyncExitStack() as stack:
        chargers = [
            await stack.enter_async_context(ocpp_charger(shared_files, "1.6", i, client_class=FirmwareCharger16))
            for i in ids
        ]
        campaign = await sync_to_async(firmware.campaign_create)(
            name="auto", firmware=image, concurrency=1, charge_point_ids=ids
        )
        celery_worker(CSMS_PUBLIC_URL=shared_files.http_url, CSMS_FIRMWARE_CAMPAIGN_TICK="2")

        async def finished() -> Campaign | None:
            found = await Campaign.objects.aget(pk=campaign.pk)
            return found if found.finished_at else None

        campaign = await eventually(finished, timeout=90, interval=0.2)
    assert campaign.state == CampaignState.COMPLETED
    assert [c.reported[-1] for c in chargers] == ["Installed"] * 3
    assert all(c.downloaded == b"fw" * 100 for c in chargers)
