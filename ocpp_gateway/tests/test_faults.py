"""Fault tests: a daphne process killed under its chargers, Redis (the channel layer) restarted,
and PostgreSQL stopped and restarted.

Each test starts the processes it breaks (its own daphne processes, its own redis-server or
PostgreSQL cluster on a free loopback port), so nothing else in the suite is disturbed.
Bounded: every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from ocpp.v16 import ChargePoint as V16Client
from ocpp.v16 import call as call16
from websockets.asyncio.client import ClientConnection

from chargepoints.models import ChargePoint
from commands.tests.conftest import V16_ANSWERS, answering_charger
from conftest import ahttp, ocpp_charger, raw_socket, start_daphne, stop_daphne
from ocpp_gateway.tests.conftest import manage

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


def retry_after_of_reset(server, api_key: str, charge_point_id: str) -> str | None:
    """The Retry-After header of a refused Reset (blocking)."""
    request = urllib.request.Request(
        f"{server.http_url}/api/v1/ocpp16/{charge_point_id}/reset",
        data=json.dumps({"type": "Soft"}).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=40)
    return refused.value.headers.get("Retry-After")


async def test_commands_queued_when_the_charger_reconnects_elsewhere_reach_its_new_connection(
    daphne, daphne_factory, api_key
):
    """Three commands wait on a charger's socket behind a CALL it does not answer; the charger opens a
    new socket on another process, which replaces the old one. The CALL sent on the old socket is a
    504 (the charger may have acted on it); the two never sent were answered 503 NotConnected
    although the charger was connected: now they go to the new connection and its answers come back."""
    await ChargePoint.objects.acreate(charge_point_id="CP-HOP", heartbeat_interval=60)
    first, second = daphne_factory(), daphne_factory()
    boot = ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "A1"})
    async with raw_socket(first, "1.6", "CP-HOP") as old:
        await exchanges(old, boot)
        posted = [asyncio.create_task(reset(daphne, api_key, "CP-HOP")) for _ in range(3)]
        held = json.loads(await asyncio.wait_for(old.recv(), 10))  # the first Reset, never answered
        assert held[2] == "Reset"
        await asyncio.sleep(1.0)  # the other two wait behind it, acknowledged
        async with raw_socket(second, "1.6", "CP-HOP") as new:
            await new.send(json.dumps([2, "boot-2", *boot]))
            booted, resets = False, 0
            while not booted or resets < 2:  # the handed-over Resets may come before the Boot's answer
                frame = json.loads(await asyncio.wait_for(new.recv(), 10))
                if frame[0] == 3 and frame[1] == "boot-2":
                    booted = True
                else:
                    assert frame[0] == 2 and frame[2] == "Reset", frame
                    resets += 1
                    await new.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            answers = await asyncio.wait_for(asyncio.gather(*posted), 40)
    assert sorted(status for status, _ in answers) == [200, 200, 504], answers
    assert [body for status, body in answers if status == 200] == [{"status": "Accepted"}] * 2


async def test_a_command_left_when_the_charger_reconnects_between_two_calls_reaches_its_new_connection(
    daphne, daphne_factory, api_key
):
    """The first Reset is answered; the worker goes on to the second just as the charger's newer
    socket replaced this one, whose close the charger has not answered yet: the second was sent on
    the closing socket (a 503, or a 504 once the close timed out), now it goes to the new one."""
    await ChargePoint.objects.acreate(charge_point_id="CP-BETWEEN", heartbeat_interval=60)
    server = await asyncio.to_thread(
        daphne_factory, application="ocpp_gateway.tests.answer_held_until_replaced_app:application"
    )
    boot = ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "A1"})
    async with raw_socket(server, "1.6", "CP-BETWEEN") as old:
        await exchanges(old, boot)
        posted = [asyncio.create_task(reset(daphne, api_key, "CP-BETWEEN"))]
        first = json.loads(await asyncio.wait_for(old.recv(), 10))
        posted.append(asyncio.create_task(reset(daphne, api_key, "CP-BETWEEN")))
        await asyncio.sleep(1.0)  # the second waits behind the first, acknowledged
        await old.send(json.dumps([3, first[1], {"status": "Accepted"}]))
        old.transport.pause_reading()  # the close to come is left unanswered: the socket stays closing
        async with raw_socket(server, "1.6", "CP-BETWEEN") as new:
            frame = json.loads(await asyncio.wait_for(new.recv(), 10))
            assert frame[0] == 2 and frame[2] == "Reset", frame
            await new.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
            answers = await asyncio.wait_for(asyncio.gather(*posted), 40)
        old.transport.resume_reading()
    assert [status for status, _ in answers] == [200, 200], answers


async def test_commands_fail_cleanly_while_redis_is_down_and_reach_the_same_socket_after(
    daphne, daphne_factory, api_key, private_redis
):
    redis = private_redis()
    redis_url = redis.url
    gateway = daphne_factory(REDIS_URL=redis_url, CELERY_BROKER_URL="memory://", CSMS_LAST_SEEN_WRITE_SECONDS="0")
    api = daphne_factory(REDIS_URL=redis_url, CELERY_BROKER_URL="memory://")
    await ChargePoint.objects.acreate(charge_point_id="CP-REDIS", heartbeat_interval=60)
    async with ocpp_charger(gateway, "1.6", "CP-REDIS", client_class=ResetAnswering) as charger:
        await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert (await reset(api, api_key, "CP-REDIS"))[0] == 200

        redis.stop()
        started = time.monotonic()
        status, body = await reset(api, api_key, "CP-REDIS")
        # Redis is down, not the charger: a 503 saying so (it was NotConnected, as for a charger offline).
        assert (status, body["error"]) == (503, "GatewayUnreachable"), body
        assert "Redis" in body["message"]
        assert (await asyncio.to_thread(retry_after_of_reset, api, api_key, "CP-REDIS")) == "5"
        assert time.monotonic() - started < 40
        assert (await ChargePoint.objects.aget(charge_point_id="CP-REDIS")).connected
        heartbeat = await asyncio.wait_for(charger.call(call16.Heartbeat()), 10)  # OCPP goes on without Redis
        assert heartbeat.current_time

        redis.start()
        # The same socket: its consumer kept serving the charger and listens on the channel layer again;
        # the charger's next message restores a presence an unanswered command may have cleared.
        await charger.call(call16.Heartbeat())
        deadline = time.monotonic() + 20
        while (answer := await reset(api, api_key, "CP-REDIS"))[0] != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert answer == (200, {"status": "Accepted"})
        assert [action for action, _ in charger.received] == ["Reset", "Reset"]


async def ocpp_exchange(websocket: ClientConnection, action: str, payload: dict) -> tuple[list, float]:
    """Send one CALL, return the answer frame and how long it took (bounded: silence fails)."""
    unique_id = str(uuid.uuid4())
    started = time.monotonic()
    await websocket.send(json.dumps([2, unique_id, action, payload]))
    answer = json.loads(await asyncio.wait_for(websocket.recv(), 40))
    assert answer[1] == unique_id
    return answer, time.monotonic() - started


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


def meter_values() -> dict:
    sample = {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {"connectorId": 1, "meterValue": [{"timestamp": _now(), "sampledValue": [sample]}]}


POOL_TIMEOUT = 3  # CSMS_DB_POOL_TIMEOUT for the gateway: how long a database call waits for a connection
OUTAGE_SECONDS = 20  # longer than psycopg's reconnect backoff would let the pool notice the return in time


async def exchanges(websocket: ClientConnection, *calls: tuple[str, dict]) -> list[tuple[list, float]]:
    return [await ocpp_exchange(websocket, action, payload) for action, payload in calls]


async def test_calls_during_a_postgres_outage_get_an_internal_error_and_work_after(private_postgres, tmp_path):
    """PostgreSQL stops under a live charger. What needs the database is answered with an
    InternalError CALLERROR once the pool gives up (never silence, the socket stays), a Heartbeat
    from the clock (its row is write-behind), the API with a 503. Once PostgreSQL is back the
    same socket's very next CALLs succeed, also after a restart too quick for the pool to notice."""
    cluster = private_postgres
    api_key = manage(
        cluster,
        "shell",
        "-c",
        "from chargepoints.services import charge_point_register; from kernel.api_keys import api_key_create;"
        " charge_point_register(charge_point_id='CP-PG', heartbeat_interval=60);"
        " print(api_key_create(name='faults')[1])",
    ).split()[-1]
    gateway = start_daphne(
        tmp_path, DATABASE_URL=cluster.url, CELERY_BROKER_URL="memory://", CSMS_DB_POOL_TIMEOUT=str(POOL_TIMEOUT)
    )
    charge_point_url = f"{gateway.http_url}/api/v1/chargepoints/CP-PG"
    stored = (("StatusNotification", STATUS), ("MeterValues", meter_values()), ("StatusNotification", STATUS))
    try:
        async with raw_socket(gateway, "1.6", "CP-PG") as websocket:
            [(boot, _)] = await exchanges(
                websocket, ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "A1"})
            )
            assert boot[0] == 3 and boot[2]["status"] == "Accepted"

            cluster.stop()
            cluster.start()  # the pool's idle connections are dead now, unknown to it
            assert [answer[0] for answer, _ in await exchanges(websocket, *stored)] == [3, 3, 3]

            cluster.stop()
            outage_started = time.monotonic()
            status, body = await ahttp(charge_point_url, api_key=api_key)
            assert (status, body["error"]) == (503, "DatabaseUnavailable")
            assert time.monotonic() - outage_started < POOL_TIMEOUT + 5
            [(heartbeat, _)] = await exchanges(websocket, ("Heartbeat", {}))
            assert heartbeat[0] == 3 and heartbeat[2]["currentTime"]
            for answer, took in await exchanges(websocket, *stored):
                assert answer[0] == 4 and answer[2] == "InternalError"
                assert "database" in answer[3]
                assert took < 2 * POOL_TIMEOUT + 5  # at most a last_seen write and the handler's own call
            # One line per refused CALL, no traceback each: an outage under 10,000 chargers is no storm.
            refused = [
                line for line in gateway.log().splitlines() if "CP-PG: " in line and "failed on the database" in line
            ]
            assert len(refused) == len(stored), refused
            assert "Error while handling request" not in gateway.log()
            await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
            cluster.start()

            for answer, took in await exchanges(websocket, ("Heartbeat", {}), *stored):
                assert answer[0] == 3
                assert took < POOL_TIMEOUT
            assert (await ahttp(charge_point_url, api_key=api_key))[0] == 200
        assert "Traceback" not in gateway.log()  # the outage in one line per failure (kernel.log_format)
    finally:
        stop_daphne(gateway)


def _connected(cluster, charge_point_id: str) -> bool | None:
    """The charger's ``connected`` in the private cluster (None while it does not answer)."""
    try:
        with psycopg.connect(cluster.url, connect_timeout=2) as connection:
            row = connection.execute(
                "SELECT connected FROM chargepoints_chargepoint WHERE charge_point_id = %s", (charge_point_id,)
            ).fetchone()
    except psycopg.OperationalError:
        return None
    assert row is not None
    return bool(row[0])


async def test_a_socket_closed_while_postgres_is_down_goes_offline_once_it_is_back(private_postgres, tmp_path):
    """A charger's socket closes while PostgreSQL is down. Clearing its presence waits the pool's
    timeout, longer than daphne's ``application_close_timeout`` (10 s), which cancelled the consumer:
    nothing was tried again and the charger stayed connected until the offline sweep (a heartbeat
    interval or more). Now the clearing is written once PostgreSQL is back, within the retries."""
    cluster = private_postgres
    manage(
        cluster,
        "shell",
        "-c",
        "from chargepoints.services import charge_point_register;"
        " charge_point_register(charge_point_id='CP-GONE', heartbeat_interval=3600)",
    )
    gateway = start_daphne(tmp_path, DATABASE_URL=cluster.url, CELERY_BROKER_URL="memory://", CSMS_DB_POOL_TIMEOUT="12")
    try:
        async with raw_socket(gateway, "1.6", "CP-GONE") as websocket:
            [(boot, _)] = await exchanges(
                websocket, ("BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "A1"})
            )
            assert boot[0] == 3 and boot[2]["status"] == "Accepted"
            assert _connected(cluster, "CP-GONE") is True
            cluster.stop()
        await asyncio.sleep(14)  # past application_close_timeout and the pool's timeout
        cluster.start()
        deadline = time.monotonic() + 45
        while _connected(cluster, "CP-GONE") is not False:
            assert time.monotonic() < deadline, "still connected after PostgreSQL came back"
            await asyncio.sleep(1)
        assert "Traceback" not in gateway.log()  # the outage in one line per failure (kernel.log_format)
    finally:
        stop_daphne(gateway)
