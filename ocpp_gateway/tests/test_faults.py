"""Fault tests: a daphne process killed under its chargers, and Redis (the channel layer) restarted.

Each test starts the processes it breaks (its own daphne processes, its own redis-server on a
free loopback port), so nothing else in the suite is disturbed. Bounded: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16

from chargepoints.models import ChargePoint
from commands.tests.conftest import V16_ANSWERS, answering_charger
from conftest import ahttp, free_port, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)

ResetAnswering = answering_charger(V16Client, {"Reset": V16_ANSWERS["Reset"]})


async def reset(server, api_key: str, charge_point_id: str) -> tuple[int, dict]:
    return await ahttp(
        f"{server.http_url}/api/v1/ocpp16/{charge_point_id}/reset",
        method="POST",
        api_key=api_key,
        body={"type": "Soft"},
    )


async def test_a_killed_process_s_chargers_reconnect_elsewhere_and_commands_reach_them(daphne, daphne_factory, api_key):
    """The process holding the socket dies (SIGKILL: no clean-up runs). A command meanwhile is a
    clean 503 and clears the dead presence; once the charger reconnects to another process, a
    command posted to any process reaches it."""
    await ChargePoint.objects.acreate(charge_point_id="CP-MOVE", heartbeat_interval=60)
    doomed, survivor = daphne_factory(), daphne_factory()
    async with ocpp_charger(doomed, "1.6", "CP-MOVE", client_class=ResetAnswering) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)

    started = time.monotonic()
    status, body = await reset(survivor, api_key, "CP-MOVE")
    assert (status, body["error"]) == (503, "NotConnected")
    assert time.monotonic() - started < 10
    assert not (await ChargePoint.objects.aget(charge_point_id="CP-MOVE")).connected  # the dead presence is gone

    async with ocpp_charger(survivor, "1.6", "CP-MOVE", client_class=ResetAnswering) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        for api_process in (survivor, daphne):
            status, body = await reset(api_process, api_key, "CP-MOVE")
            assert (status, body) == (200, {"status": "Accepted"})
        assert [action for action, _ in charger.received] == ["Reset", "Reset"]


@pytest.fixture
def private_redis() -> Iterator[tuple[int, callable]]:
    """A redis-server of this test's own on a free port, and a function that restarts it."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        processes.append(process)
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)

    def stop() -> None:
        processes[-1].terminate()
        processes[-1].wait(timeout=10)

    start()
    yield port, start, stop
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_commands_fail_cleanly_while_redis_is_down_and_reach_the_same_socket_after(
    daphne, daphne_factory, api_key, private_redis
):
    port, start_redis, stop_redis = private_redis
    redis_url = f"redis://127.0.0.1:{port}/0"
    gateway = daphne_factory(REDIS_URL=redis_url, CELERY_BROKER_URL="memory://", CSMS_LAST_SEEN_WRITE_SECONDS="0")
    api = daphne_factory(REDIS_URL=redis_url, CELERY_BROKER_URL="memory://")
    await ChargePoint.objects.acreate(charge_point_id="CP-REDIS", heartbeat_interval=60)
    async with ocpp_charger(gateway, "1.6", "CP-REDIS", client_class=ResetAnswering) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert (await reset(api, api_key, "CP-REDIS"))[0] == 200

        stop_redis()
        started = time.monotonic()
        status, body = await reset(api, api_key, "CP-REDIS")
        assert status in (503, 504) and body["error"] in ("NotConnected", "Timeout")
        assert time.monotonic() - started < 40
        heartbeat = await asyncio.wait_for(charger.call(call16.Heartbeat()), 10)  # OCPP goes on without Redis
        assert heartbeat.current_time

        start_redis()
        # The same socket: its consumer kept serving the charger and listens on the channel layer again;
        # the charger's next message restores a presence an unanswered command may have cleared.
        await charger.call(call16.Heartbeat())
        deadline = time.monotonic() + 20
        while (answer := await reset(api, api_key, "CP-REDIS"))[0] != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert answer == (200, {"status": "Accepted"})
        assert [action for action, _ in charger.received] == ["Reset", "Reset"]
