"""Reconnect storm: a fleet loses its daphne process and all of it reconnects to a new one at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from chargepoints.models import ChargePoint
from conftest import SUBPROTOCOL, DaphneServer, stop_daphne

pytestmark = pytest.mark.django_db(transaction=True)

CHARGERS = 300
BOOT = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "Storm"},
    "2.0.1": {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "Storm"}},
}


def fleet() -> list[tuple[str, str, str]]:
    """(OCPP version, charge point id, source address): half 1.6, half 2.0.1, each from its own address
    like a real fleet (127.1.0.1, 127.1.0.2, ...: all of 127/8 is loopback)."""
    return [
        ("1.6" if n % 2 else "2.0.1", f"CP-STORM-{n:03}", f"127.1.{n // 250}.{n % 250 + 1}") for n in range(CHARGERS)
    ]


async def connect_and_boot(
    server: DaphneServer, version: str, charge_point_id: str, source: str
) -> tuple[ClientConnection, str]:
    """Open the socket (raw websockets, no compression) and send BootNotification; the socket and Boot's status."""
    websocket = await connect(
        server.ws_url(version, charge_point_id),
        subprotocols=[SUBPROTOCOL[version]],
        compression=None,
        local_addr=(source, 0),
        open_timeout=60,  # daphne's listen backlog is 50: a dropped SYN is retried by the kernel after 1 s, 3 s, ...
    )
    await websocket.send(json.dumps([2, "boot-1", "BootNotification", BOOT[version]]))
    message_type, message_id, payload = json.loads(await asyncio.wait_for(websocket.recv(), 60))
    assert (message_type, message_id) == (3, "boot-1")
    return websocket, payload["status"]


async def connect_fleet(
    server: DaphneServer, *, concurrency: int
) -> list[tuple[ClientConnection, str] | BaseException]:
    """Every charger connects and boots, at most ``concurrency`` at a time; failures are returned, not raised."""
    gate = asyncio.Semaphore(concurrency)

    async def one(version: str, charge_point_id: str, source: str) -> tuple[ClientConnection, str]:
        async with gate:
            return await connect_and_boot(server, version, charge_point_id, source)

    return await asyncio.gather(*(one(*charger) for charger in fleet()), return_exceptions=True)


async def close_all(results: list[tuple[ClientConnection, str] | Exception]) -> None:
    sockets = [result[0] for result in results if not isinstance(result, BaseException)]
    await asyncio.gather(*(websocket.close() for websocket in sockets), return_exceptions=True)


def failures(results: list[tuple[ClientConnection, str] | Exception]) -> Counter[str]:
    return Counter(repr(result) for result in results if isinstance(result, BaseException))


async def presences() -> Counter[str]:
    """Connected chargers per channel-layer client prefix: one prefix per daphne process."""
    return Counter(
        [
            channel.split("!")[0]
            async for channel in ChargePoint.objects.filter(connected=True).values_list("connection_channel", flat=True)
        ]
    )


async def test_a_fleet_whose_process_stops_reconnects_to_a_new_process_all_at_once(daphne_factory, transactional_db):
    await ChargePoint.objects.abulk_create(
        ChargePoint(charge_point_id=charge_point_id, heartbeat_interval=300) for _, charge_point_id, _ in fleet()
    )
    first = daphne_factory()
    connected = await connect_fleet(first, concurrency=50)
    assert not failures(connected)
    before = await presences()
    assert sum(before.values()) == CHARGERS and len(before) == 1

    stop_daphne(first)  # SIGTERM, then wait for the exit
    await close_all(connected)
    # Default settings: CSMS_MAX_HANDSHAKES_PER_IP (200 in progress) counts per address, one charger each
    # here. From one address (127.0.0.1, or a proxy hiding them), 100 of the 300 got a 503 when tried.
    second = daphne_factory()
    try:
        started = time.monotonic()
        reconnected = await asyncio.wait_for(connect_fleet(second, concurrency=CHARGERS), 120)
        print(f"\n{CHARGERS} chargers reconnected and booted at once in {time.monotonic() - started:.2f} s")
        try:
            assert not failures(reconnected)
            assert Counter(status for _, status in reconnected) == {"Accepted": CHARGERS}
            after = await presences()
            assert sum(after.values()) == CHARGERS
            assert len(after) == 1 and not after.keys() & before.keys()  # all held by the new process
            assert "refused" not in second.log()
        finally:
            await close_all(reconnected)
    finally:
        stop_daphne(second)


async def test_a_site_behind_one_address_reconnects_told_to_retry_never_forbidden(daphne_factory, transactional_db):
    """A site's 200 chargers behind one NAT (or a VPN concentrator: every handshake from one address)
    reconnect at once past CSMS_MAX_HANDSHAKES_PER_IP (20 here): those beyond it are told to retry
    (503 with a Retry-After), never 403 Forbidden (read as refused credentials: some chargers back
    off for long or stop), and every one that honours the Retry-After gets in and boots."""
    site = [(("1.6" if n % 2 else "2.0.1"), f"CP-NAT-{n:03}") for n in range(200)]
    await ChargePoint.objects.abulk_create(
        ChargePoint(charge_point_id=charge_point_id, heartbeat_interval=300) for _, charge_point_id in site
    )
    server = daphne_factory(CSMS_MAX_HANDSHAKES_PER_IP="20", CSMS_HANDSHAKE_RETRY_AFTER="1")
    refusals: Counter[tuple[int, bool]] = Counter()  # (status, with a Retry-After)

    async def until_in(version: str, charge_point_id: str) -> tuple[ClientConnection, str]:
        for _ in range(60):
            try:
                return await connect_and_boot(server, version, charge_point_id, "127.3.0.1")
            except InvalidStatus as refused:
                retry_after = refused.response.headers.get("Retry-After")
                refusals[refused.response.status_code, retry_after is not None] += 1
                if refused.response.status_code != 503 or retry_after is None:
                    raise
                await asyncio.sleep(int(retry_after))
        raise AssertionError(f"{charge_point_id} still refused after 60 tries")

    results = await asyncio.gather(*(until_in(*charger) for charger in site), return_exceptions=True)
    try:
        print(f"\nrefusals of the site's 200 handshakes: {dict(refusals)}")
        assert not failures(results)
        assert Counter(status for _, status in results) == {"Accepted": 200}
        assert set(refusals) <= {(503, True)}
    finally:
        await close_all(results)
