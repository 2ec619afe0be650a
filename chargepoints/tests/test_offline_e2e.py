"""Offline detection with a real Celery worker and beat on Redis, and a real charger on daphne."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from conftest import ROOT, _test_database_url, ahttp, eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def celery_worker_with_beat(daphne, tmp_path: Path):
    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CSMS_VAR_DIR": str(tmp_path),
        "DJANGO_SECRET_KEY": "tests-only-secret-key",
        "CSMS_OFFLINE_CHECK_INTERVAL": "1",
    }
    log = (tmp_path / "celery.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "csms", "worker", "--beat", "--pool", "solo", "--loglevel", "INFO",
         "--schedule", str(tmp_path / "beat-schedule")],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


async def test_a_silent_charger_with_an_open_socket_is_marked_offline_by_the_sweep(
    daphne, api_key, celery_worker_with_beat
):
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
