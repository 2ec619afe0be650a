"""Honest presence after a crash (issue 19, item 7): a killed gateway process's chargers show
offline within 30 s, with one ``charge_point.offline`` event each, while a live or merely slow
process keeps its chargers. Real daphne processes on the test database and Redis."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from ocpp.v16 import call as call16

from chargepoints import services
from chargepoints.models import ChargePoint
from conftest import _test_database_url, ahttp, eventually, ocpp_charger, raw_socket, stop_daphne
from ocpp_gateway.gateway_processes import (
    KNOWN_KEY,
    LIVENESS_FILE,
    SINCE_KEY,
    SWEPT_KEY,
    _key,
    _redis,
    dead_gateway_presence_release,
    gateway_process_announce,
    stale_presence_release,
)
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_subscription_create

pytestmark = pytest.mark.django_db(transaction=True)

requires_redis = pytest.mark.skipif(not settings.REDIS_URL, reason="one process only without Redis")


@pytest.fixture
def gateways(daphne_factory) -> Iterator[Callable[[], object]]:
    """Daphne processes of this test's own, stopped when it ends (not at the end of the session)."""
    _redis().set(SINCE_KEY, _redis().time()[0] - 3600)  # Redis has kept its data for an hour
    _redis().delete(SWEPT_KEY)  # and no sweep's silence is taken for an outage (a run's left long ago)
    servers = []

    def start() -> object:
        servers.append(daphne_factory())
        return servers[-1]

    yield start
    for server in servers:
        if server.process.poll() is None:
            stop_daphne(server)


MADE_UP_PROCESSES = ("specific.dead!", "specific.dead1!", "specific.alive1!")


@pytest.fixture
def judged_here_only(settings) -> Iterator[None]:
    """A Redis database of this test's own for the announcements: the session's daphne processes
    sweep every few seconds, in the test database and the test Redis, and would release a dead
    process this test made up (and its chargers) before the test's own sweep does. Those made up
    here are forgotten in the test Redis too, where a run stopped halfway may have left them.

    The database is the test Redis's pair (0 and 1, 2 and 3, ..., 14 and 15: its number with the
    lowest bit flipped): never the test's own, always one of Redis's 16 (``(n + 1) % 16`` took
    15 to 0). Only the gateway announcements' keys are written and deleted there."""
    _redis().srem(KNOWN_KEY, *MADE_UP_PROCESSES)
    url = urlsplit(settings.REDIS_URL)
    database = int(url.path.strip("/") or 0) ^ 1
    settings.REDIS_URL = urlunsplit(url._replace(path=f"/{database}"))
    _forget_every_gateway()
    yield
    _forget_every_gateway()


def _forget_every_gateway() -> None:
    _redis().delete(KNOWN_KEY, SINCE_KEY, SWEPT_KEY, *_redis().keys(_key("*")))


@pytest.fixture
def offline_subscription(settings) -> None:
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["charge_point.offline"])


async def offline_events() -> list[dict]:
    bodies = [
        json.loads(body)
        async for body in WebhookDelivery.objects.filter(event_type="charge_point.offline").values_list(
            "body", flat=True
        )
    ]
    return [body["data"] for body in bodies]


async def connected(server, api_key: str, charge_point_id: str) -> bool:
    status, body = await ahttp(f"{server.http_url}/api/v1/chargepoints/{charge_point_id}", api_key=api_key)
    assert status == 200
    return body["connected"]


async def boot(charger) -> None:
    await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))


@requires_redis
async def test_a_killed_process_s_chargers_show_offline_within_30_s_and_a_live_one_s_stay(
    daphne, gateways, api_key, offline_subscription
):
    for charge_point_id in ("CP-DOOMED-1", "CP-DOOMED-2", "CP-LIVE"):
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=3600)
    doomed, survivor = gateways(), gateways()
    async with ocpp_charger(survivor, "1.6", "CP-LIVE") as live:
        await boot(live)
        async with ocpp_charger(doomed, "1.6", "CP-DOOMED-1") as one, ocpp_charger(doomed, "1.6", "CP-DOOMED-2") as two:
            await boot(one)
            await boot(two)
            assert await connected(daphne, api_key, "CP-DOOMED-1")
            doomed.process.send_signal(signal.SIGKILL)  # no clean-up runs: the sockets are never closed
            doomed.process.wait(timeout=10)

            async def doomed_offline() -> bool:
                return not any([await connected(daphne, api_key, cp) for cp in ("CP-DOOMED-1", "CP-DOOMED-2")])

            await eventually(doomed_offline, timeout=30, interval=0.5)  # the heartbeat sweep is an hour away
        events = await offline_events()
        assert sorted((event["charge_point_id"], event["reason"]) for event in events) == [
            ("CP-DOOMED-1", "gateway_lost"),
            ("CP-DOOMED-2", "gateway_lost"),
        ]
        assert await connected(daphne, api_key, "CP-LIVE")
        assert (await ChargePoint.objects.aget(charge_point_id="CP-DOOMED-1")).connection_channel == ""


@requires_redis
async def test_with_no_gateway_process_left_the_celery_beat_releases_the_dead_one_s_chargers(
    daphne, gateways, api_key, celery_worker, tmp_path
):
    await ChargePoint.objects.acreate(charge_point_id="CP-ALONE", heartbeat_interval=3600)
    only = gateways()
    worker = celery_worker()  # ``daphne`` serves the API only: it holds no charger, so it does not sweep
    async with ocpp_charger(only, "1.6", "CP-ALONE") as charger:
        await boot(charger)
        only.process.send_signal(signal.SIGKILL)
        only.process.wait(timeout=10)

        async def alone_offline() -> bool:
            return not await connected(daphne, api_key, "CP-ALONE")

        await eventually(alone_offline, timeout=30, interval=0.5)
    assert worker.poll() is None
    beat_log = (tmp_path / "celery-0.log").read_text(errors="replace")
    assert "Sending due task release-dead-gateway-presence" in beat_log


@requires_redis
async def test_a_process_that_stalls_for_less_than_the_ttl_keeps_its_chargers(
    daphne, gateways, api_key, offline_subscription
):
    await ChargePoint.objects.acreate(charge_point_id="CP-SLOW", heartbeat_interval=3600)
    await ChargePoint.objects.acreate(charge_point_id="CP-PEER", heartbeat_interval=3600)
    slow, peer = gateways(), gateways()
    async with ocpp_charger(peer, "1.6", "CP-PEER") as peer_charger, ocpp_charger(slow, "1.6", "CP-SLOW") as charger:
        await boot(peer_charger)  # the peer sweeps every renewal interval while the slow one is stopped
        await boot(charger)
        slow.process.send_signal(signal.SIGSTOP)
        try:
            stall = settings.CSMS_GATEWAY_PRESENCE_TTL - 2 * settings.CSMS_GATEWAY_PRESENCE_RENEW + 2
            await asyncio.sleep(stall)  # at least two missed renewals, less than the TTL after the last
        finally:
            slow.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(settings.CSMS_GATEWAY_PRESENCE_RENEW + 1)  # one more sweep round
        assert await connected(daphne, api_key, "CP-SLOW")
        assert await offline_events() == []
        await boot(charger)  # the stalled process serves its charger again


@requires_redis
async def test_a_command_its_caller_gave_up_on_while_the_process_stalled_is_not_sent_after_all(
    daphne, gateways, api_key, offline_subscription
):
    """Round 40's probe: a Reset to a process paused 4.5 s was answered 503 NotConnected, then sent
    and accepted once the process resumed. The caller's report stands: the CALL is dropped unsent.
    The charger goes offline as a dead process's do, ``gateway_lost`` (round 41's probe: ``disconnected``)."""
    await ChargePoint.objects.acreate(charge_point_id="CP-PAUSED", heartbeat_interval=3600)
    slow = gateways()
    async with raw_socket(slow, "1.6", "CP-PAUSED") as websocket:
        await websocket.send(
            json.dumps([2, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}])
        )
        await asyncio.wait_for(websocket.recv(), 5)
        slow.process.send_signal(signal.SIGSTOP)
        try:
            url = f"{daphne.http_url}/api/v1/ocpp16/CP-PAUSED/reset"
            status, body = await ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"})
        finally:
            slow.process.send_signal(signal.SIGCONT)
        assert (status, body["error"]) == (503, "NotConnected")
        assert [(event["charge_point_id"], event["reason"]) for event in await offline_events()] == [
            ("CP-PAUSED", "gateway_lost")
        ]
        with pytest.raises(TimeoutError):
            frame = await asyncio.wait_for(websocket.recv(), 3)
            pytest.fail(f"the CSMS sent {frame}")


@requires_redis
def test_only_presence_of_expired_processes_is_released(register_charge_point, judged_here_only):
    charge_points = (("CP-A", "specific.dead1!a"), ("CP-B", "specific.alive1!b"), ("CP-C", "specific.elsewhere!c"))
    for charge_point_id, channel_name in charge_points:
        register_charge_point(charge_point_id)
        services.charge_point_connect(charge_point_id=charge_point_id, ocpp_version="1.6", channel_name=channel_name)
    register_charge_point("CP-IDLE")
    assert sorted(services.gateway_processes_holding_presence()) == [
        "specific.alive1!",
        "specific.dead1!",
        "specific.elsewhere!",
    ]
    gateway_process_announce(process="specific.alive1!")
    gateway_process_announce(process="specific.dead1!")
    _redis().delete(_key("specific.dead1!"))  # its announcement expired; "elsewhere" never announced here
    _redis().delete(SINCE_KEY)  # as after a Redis restart: announcements may not be back yet
    assert dead_gateway_presence_release() == []
    _redis().set(SINCE_KEY, _redis().time()[0] - 60)  # a minute later
    assert dead_gateway_presence_release() == ["CP-A"]
    assert dead_gateway_presence_release() == []  # released once
    states = dict(ChargePoint.objects.values_list("charge_point_id", "connected"))
    assert states == {"CP-A": False, "CP-B": True, "CP-C": True, "CP-IDLE": False}


@requires_redis
def test_after_a_silence_no_sweep_could_break_nobody_is_judged_dead_for_ttl_and_renew(
    register_charge_point, judged_here_only
):
    """Redis kept its data (``csms:gateways:since`` a minute old) but no sweep reached it for longer
    than the TTL: an expired announcement may be a live process's that could not renew it."""
    register_charge_point("CP-A")
    services.charge_point_connect(charge_point_id="CP-A", ocpp_version="1.6", channel_name="specific.dead1!a")
    gateway_process_announce(process="specific.dead1!")
    _redis().delete(_key("specific.dead1!"))
    now = _redis().time()[0]
    _redis().set(SINCE_KEY, now - 60)
    _redis().set(SWEPT_KEY, now - settings.CSMS_GATEWAY_PRESENCE_TTL - 1)  # the last sweep before the outage
    assert dead_gateway_presence_release() == []
    assert int(_redis().get(SINCE_KEY)) >= now  # the grace starts again, as after a loss of data
    _redis().set(SINCE_KEY, now - 60)  # TTL + RENEW later, sweeps every RENEW s meanwhile
    _redis().set(SWEPT_KEY, now - settings.CSMS_GATEWAY_PRESENCE_RENEW)
    assert dead_gateway_presence_release() == ["CP-A"]


def test_a_dead_process_s_chargers_are_released_together_with_one_offline_event_each(
    register_charge_point, offline_subscription
):
    """``charge_points_release_process``: every charger the process held loses its presence; those
    still marked connected go offline with one event each; a charger held elsewhere is left alone."""
    for n in range(5):
        register_charge_point(f"CP-HELD-{n}")
        services.charge_point_connect(
            charge_point_id=f"CP-HELD-{n}", ocpp_version="1.6", channel_name=f"specific.d!{n}"
        )
    register_charge_point("CP-ELSEWHERE")
    services.charge_point_connect(charge_point_id="CP-ELSEWHERE", ocpp_version="1.6", channel_name="specific.live!x")
    ChargePoint.objects.filter(charge_point_id="CP-HELD-4").update(connected=False)  # the sweep got there first

    released = services.charge_points_release_process(process="specific.d!")

    assert released == [f"CP-HELD-{n}" for n in range(5)]
    rows = {
        cp_id: (channel, up)
        for cp_id, channel, up in ChargePoint.objects.values_list("charge_point_id", "connection_channel", "connected")
    }
    assert rows == {**{f"CP-HELD-{n}": ("", False) for n in range(5)}, "CP-ELSEWHERE": ("specific.live!x", True)}
    events = asyncio.run(offline_events())
    assert sorted((event["charge_point_id"], event["reason"]) for event in events) == [
        (f"CP-HELD-{n}", "gateway_lost") for n in range(4)
    ]
    assert services.charge_points_release_process(process="specific.d!") == []


def _dead_process_holding(count: int) -> list[str]:
    """``count`` chargers held by the dead process ``specific.dead!`` (ids in pk order)."""
    ids = [f"CP-SWEPT-{n:04}" for n in range(count)]
    ChargePoint.objects.bulk_create(
        ChargePoint(charge_point_id=cp, heartbeat_interval=60, connected=True, connection_channel=f"specific.dead!{cp}")
        for cp in ids
    )
    return ids


def _waiting_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


@requires_redis
def test_a_row_another_transaction_holds_is_skipped_and_the_process_kept_for_the_next_round(
    register_charge_point, judged_here_only
):
    """The release never waits for a row lock: the rows a handshake holds are left to it, and
    the dead process is still known (judged again next round) while it holds presence."""
    ids = _dead_process_holding(3)
    gateway_process_announce(process="specific.dead!")
    _redis().delete(_key("specific.dead!"))
    _redis().set(SINCE_KEY, _redis().time()[0] - 60)
    with psycopg.connect(_test_database_url(), autocommit=False) as handshake:
        handshake.execute("SELECT 1 FROM chargepoints_chargepoint WHERE charge_point_id = %s FOR UPDATE", [ids[1]])
        assert dead_gateway_presence_release() == [ids[0], ids[2]]  # would wait for the handshake's commit
        assert _redis().sismember(KNOWN_KEY, "specific.dead!")
    assert dead_gateway_presence_release() == [ids[1]]  # the handshake ended without taking it over
    assert not _redis().sismember(KNOWN_KEY, "specific.dead!")


@requires_redis
def test_two_sweeps_and_a_handshake_at_once_release_every_dead_charger_once_without_deadlock(
    register_charge_point, offline_subscription, judged_here_only
):
    """A handshake batch locks chargers in arrival order, not id order: it holds a charger past
    the sweeps' first rows and then asks for one of them, while two sweeps release the dead
    process's chargers at the same time. No deadlock, no lock wait that could close one; the
    charger the handshake took over is not released; every other one is released by exactly one
    sweep, with one offline event."""
    ids = _dead_process_holding(1200)
    late, early = ids[400], ids[5]  # the batch's arrival order: a later id first, both in the first chunk
    errors: list[BaseException] = []
    released: list[list[str]] = []
    late_held, sweeps_started = threading.Event(), threading.Event()

    def handshake_batch() -> None:
        try:
            with transaction.atomic():
                services.charge_point_connect(charge_point_id=late, ocpp_version="1.6", channel_name="specific.live!a")
                late_held.set()
                sweeps_started.wait(10)
                for _ in range(1500):  # until a sweep waits for the late row, or both are done (bounded)
                    if _waiting_for_a_lock() or len(released) == 2:
                        break
                    time.sleep(0.02)
                services.charge_point_connect(charge_point_id=early, ocpp_version="1.6", channel_name="specific.live!b")
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    def sweep() -> None:
        try:
            late_held.wait(10)
            sweeps_started.set()
            released.append(services.charge_points_release_process(process="specific.dead!"))
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=handshake_batch), threading.Thread(target=sweep), threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(released) == 2
    every_release = released[0] + released[1]
    assert sorted(every_release) == sorted(cp for cp in ids if cp != late)  # each once; the taken-over one never
    holders = dict(ChargePoint.objects.values_list("charge_point_id", "connection_channel"))
    assert holders[late] == "specific.live!a" and holders[early] == "specific.live!b"
    assert not services.gateway_process_holds_presence(process="specific.dead!")
    events = asyncio.run(offline_events())
    assert sorted(event["charge_point_id"] for event in events) == sorted(every_release)


def test_without_redis_the_starting_gateway_releases_all_presence_as_a_lost_process_s(
    register_charge_point, offline_subscription, settings, tmp_path
):
    """One gateway process without Redis: what is held when it starts is a dead one's."""
    settings.VAR_DIR = tmp_path
    for charge_point_id in ("CP-A", "CP-B"):
        register_charge_point(charge_point_id)
        services.charge_point_connect(
            charge_point_id=charge_point_id, ocpp_version="1.6", channel_name=f"specific..inmemory!{charge_point_id}"
        )
    settings.REDIS_URL = "redis://127.0.0.1:6379/7"
    assert stale_presence_release() == []  # other live processes may hold them: their announcements decide
    settings.REDIS_URL = ""
    assert sorted(stale_presence_release()) == ["CP-A", "CP-B"]
    assert not ChargePoint.objects.filter(connected=True).exists()
    events = asyncio.run(offline_events())
    assert sorted((event["charge_point_id"], event["reason"]) for event in events) == [
        ("CP-A", "gateway_lost"),
        ("CP-B", "gateway_lost"),
    ]


def test_without_redis_a_gateway_starting_beside_a_live_one_releases_nothing(register_charge_point, settings, tmp_path):
    """A second `make run` on the same VAR_DIR marked the first one's chargers offline, sockets open."""
    settings.VAR_DIR, settings.REDIS_URL = tmp_path, ""
    register_charge_point("CP-LIVE")
    services.charge_point_connect(
        charge_point_id="CP-LIVE", ocpp_version="1.6", channel_name="specific..inmemory!CP-LIVE"
    )
    live = os.open(tmp_path / LIVENESS_FILE, os.O_RDWR | os.O_CREAT)  # as the first gateway process holds it
    fcntl.flock(live, fcntl.LOCK_SH)
    try:
        assert stale_presence_release() == []
    finally:
        os.close(live)
    assert ChargePoint.objects.get(charge_point_id="CP-LIVE").connected


@requires_redis
async def test_a_charger_whose_stalled_process_a_command_gave_up_on_is_back_online_once_it_resumes(
    daphne, gateways, api_key, offline_subscription
):
    """Fails before the change: a command to a process paused 4.5 s (its announcement alive) cleared
    the presence of an idle charger on an open socket, which then stayed offline, every command
    answered 503 NotConnected, until its next message (a heartbeat interval away). Now, once the
    process serves it again, the connection claims its presence back: online (``gateway_back``),
    and the next command reaches the charger."""
    await sync_to_async(webhook_subscription_create)(url="http://127.0.0.1:9/hooks", events=["charge_point.online"])
    await ChargePoint.objects.acreate(charge_point_id="CP-RESUMED", heartbeat_interval=3600)
    slow = gateways()
    async with raw_socket(slow, "1.6", "CP-RESUMED") as websocket:
        await websocket.send(
            json.dumps([2, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}])
        )
        await asyncio.wait_for(websocket.recv(), 5)
        slow.process.send_signal(signal.SIGSTOP)
        try:
            url = f"{daphne.http_url}/api/v1/ocpp16/CP-RESUMED/reset"
            status, body = await ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"})
        finally:
            slow.process.send_signal(signal.SIGCONT)
        assert (status, body["error"]) == (503, "NotConnected")
        assert [event["reason"] for event in await offline_events()] == ["gateway_lost"]
        await eventually(lambda: connected(daphne, api_key, "CP-RESUMED"), timeout=15, interval=0.25)
        online = [
            json.loads(body)["data"]["reason"]
            async for body in WebhookDelivery.objects.filter(event_type="charge_point.online")
            .order_by("created_at")
            .values_list("body", flat=True)
        ]
        assert online == ["connected", "gateway_back"]
        answered = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"}))
        frame = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert frame[2:] == ["Reset", {"type": "Soft"}]  # not the dropped one: sent after the claim
        await websocket.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
        status, body = await answered
        assert (status, body["status"]) == (200, "Accepted")


async def test_a_live_process_s_chargers_stay_when_redis_comes_back_with_its_data_after_the_ttl(
    daphne, daphne_factory, api_key, offline_subscription, private_redis, settings
):
    """Fails before the change: Redis restarted with its data (persistence) after an outage longer
    than the TTL came back with every live process's announcement expired and
    ``csms:gateways:since`` an hour old, so the first sweep after it (beat's here) judged the live
    gateway dead before it announced again: its charger offline (``gateway_lost``) on an open
    socket, commands 503 NotConnected until its next message. An outage nobody could sweep through
    now counts as a loss of data: nobody is judged dead for TTL + RENEW after it."""
    redis = private_redis(keeps_data=True)
    redis_url = redis.url
    ttl, renew = 6, 2
    settings.REDIS_URL, settings.CSMS_GATEWAY_PRESENCE_TTL, settings.CSMS_GATEWAY_PRESENCE_RENEW = redis_url, ttl, renew
    gateway = daphne_factory(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL="memory://",
        CSMS_GATEWAY_PRESENCE_TTL=str(ttl),
        CSMS_GATEWAY_PRESENCE_RENEW=str(renew),
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-KEPT", heartbeat_interval=3600)
    release = sync_to_async(dead_gateway_presence_release)  # as Celery beat runs it, every RENEW s
    async with ocpp_charger(gateway, "1.6", "CP-KEPT") as charger:
        await boot(charger)
        _redis().set(SINCE_KEY, _redis().time()[0] - 3600)  # Redis has kept its data for an hour
        assert await release() == []  # the gateway announced itself: alive
        redis.stop()
        await asyncio.sleep(ttl + 2)  # the gateway's announcement expires meanwhile
        gateway.process.send_signal(signal.SIGSTOP)  # beat's sweep comes first after the restart
        try:
            redis.start()
            assert await release() == []
        finally:
            gateway.process.send_signal(signal.SIGCONT)
        await asyncio.sleep(ttl + 2 * renew)  # it announces again; sweeps after the grace judge it alive
        assert await release() == []
        assert await connected(daphne, api_key, "CP-KEPT")
        assert await offline_events() == []
        await boot(charger)


@requires_redis
def test_a_dead_process_whose_release_raises_does_not_keep_the_other_dead_processes_chargers_online(
    register_charge_point, judged_here_only, caplog
):
    """A dead process whose chargers' release raised (a fault in one's offline event, say) ended the
    sweep: every dead process after it kept its chargers online (commands to them waiting for a
    process that is gone), at every sweep, the same process failing first again. It is logged and
    passed over (known still: tried again next sweep); the others are released."""
    for charge_point_id, process in (("CP-A", "specific.dead!"), ("CP-B", "specific.dead1!")):
        register_charge_point(charge_point_id)
        services.charge_point_connect(charge_point_id=charge_point_id, ocpp_version="1.6", channel_name=f"{process}x")
        gateway_process_announce(process=process)
        _redis().delete(_key(process))
    _redis().set(SINCE_KEY, _redis().time()[0] - 60)
    release = services.charge_points_release_process

    def failing_for_one(*, process):  # a fault injected into the one process's release
        if process == "specific.dead!":
            raise RuntimeError("its offline event could not be written")
        return release(process=process)

    with mock.patch("chargepoints.services.charge_points_release_process", side_effect=failing_for_one):
        assert dead_gateway_presence_release() == ["CP-B"]
    assert dict(ChargePoint.objects.values_list("charge_point_id", "connected")) == {"CP-A": True, "CP-B": False}
    assert _redis().sismember(KNOWN_KEY, "specific.dead!")
    assert "could not release the chargers of gateway process specific.dead!" in caplog.text
    assert dead_gateway_presence_release() == ["CP-A"]  # the fault gone: released at the next sweep


async def test_a_process_stalled_past_the_ttl_claims_its_released_chargers_back_once_it_resumes(
    daphne, daphne_factory, api_key, private_redis, settings
):
    """Fails before the change: a gateway process paused longer than the TTL (a VM or container
    paused, its event loop starved, Redis out of its reach alone) had its idle charger released by
    a peer's sweep (``gateway_lost``), rightly while it was silent; once it served the open socket
    again, the charger stayed offline, every command answered 503 NotConnected, until its next
    message (a heartbeat interval away, a day for a charger kept by pings). Now the process, finding
    its announcement had lapsed, claims its connections' presence back (``gateway_back``)."""
    redis_url = private_redis().url  # no other process sweeps here
    ttl, renew = 6, 2
    settings.REDIS_URL, settings.CSMS_GATEWAY_PRESENCE_TTL, settings.CSMS_GATEWAY_PRESENCE_RENEW = redis_url, ttl, renew
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    await sync_to_async(webhook_subscription_create)(
        url="http://127.0.0.1:9/hooks", events=["charge_point.online", "charge_point.offline"]
    )
    gateway = daphne_factory(
        REDIS_URL=redis_url,
        CELERY_BROKER_URL="memory://",
        CSMS_GATEWAY_PRESENCE_TTL=str(ttl),
        CSMS_GATEWAY_PRESENCE_RENEW=str(renew),
    )
    await ChargePoint.objects.acreate(charge_point_id="CP-STALLED", heartbeat_interval=3600)
    release = sync_to_async(dead_gateway_presence_release)  # a peer's sweep, every RENEW s
    async with raw_socket(gateway, "1.6", "CP-STALLED") as websocket:
        await websocket.send(
            json.dumps([2, "b", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}])
        )
        await asyncio.wait_for(websocket.recv(), 5)
        _redis().set(SINCE_KEY, _redis().time()[0] - 3600)  # Redis has kept its data for an hour
        assert await release() == []  # the gateway announced itself: alive
        gateway.process.send_signal(signal.SIGSTOP)
        try:
            released: list[str] = []
            for _ in range(2 * ttl // renew + 2):  # its announcement expires meanwhile
                await asyncio.sleep(renew)
                released += await release()
                if released:
                    break
        finally:
            gateway.process.send_signal(signal.SIGCONT)
        assert released == ["CP-STALLED"]
        await eventually(lambda: connected(daphne, api_key, "CP-STALLED"), timeout=15, interval=0.25)
        reasons = [
            (kind, json.loads(body)["data"]["reason"])
            async for kind, body in WebhookDelivery.objects.order_by("created_at").values_list("event_type", "body")
        ]
        assert reasons == [
            ("charge_point.online", "connected"),
            ("charge_point.offline", "gateway_lost"),
            ("charge_point.online", "gateway_back"),
        ]
        url = f"{gateway.http_url}/api/v1/ocpp16/CP-STALLED/reset"
        answered = asyncio.create_task(ahttp(url, method="POST", api_key=api_key, body={"type": "Soft"}))
        frame = json.loads(await asyncio.wait_for(websocket.recv(), 10))
        assert frame[2:] == ["Reset", {"type": "Soft"}]
        await websocket.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
        status, body = await answered
        assert (status, body["status"]) == (200, "Accepted")
