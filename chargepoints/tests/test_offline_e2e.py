"""Offline detection with a real Celery worker and beat on Redis, and a real charger on daphne."""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from conftest import ahttp, eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_silent_charger_with_an_open_socket_is_marked_offline_by_the_sweep(daphne, api_key, celery_worker):
    celery_worker(CSMS_OFFLINE_CHECK_INTERVAL="1")
    await ChargePoint.objects.acreate(charge_point_id="CP-SILENT", heartbeat_interval=2)
    url = f"{daphne.http_url}/api/v1/installer/charge-points/CP-SILENT/connection-status"

    async def connected_is(expected: bool) -> bool:
        status, body = await ahttp(url, api_key=api_key)
        return status == 200 and body["connected"] is expected

    async with ocpp_charger(daphne, "1.6", "CP-SILENT") as charger:
        await charger.call(call.BootNotification(charge_point_vendor="V", charge_point_model="M"))
        await charger.call(call.Heartbeat())
        assert await connected_is(True)
        await eventually(lambda: connected_is(False), timeout=15, interval=0.25)  # socket still open
        await charger.call(call.Heartbeat())
        assert await connected_is(True)
