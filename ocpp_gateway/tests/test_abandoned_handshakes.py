"""A handshake the charger gave up on (its socket closed before the answer) is not attached when
its batch had not started: a late attach from an abandoned socket never takes over presence. One
the gateway could not finish in time is answered 503 with a Retry-After, as a busy gateway's.
A real daphne process on the test database; the test holds a charger's row to stall a batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import psycopg
import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargepoints.models import ChargePoint
from conftest import SUBPROTOCOL, _test_database_url, eventually, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)


async def _a_batch_waits_for_a_lock(monitor: psycopg.AsyncConnection) -> bool:
    cursor = await monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    row = await cursor.fetchone()
    return bool(row and row[0])


@contextlib.asynccontextmanager
async def _charger_row_held(
    charge_point_id: str,
) -> AsyncIterator[tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]]:
    """The charger's row locked by another transaction: yields (wait until a batch waits for a
    lock, release the row)."""
    url = _test_database_url()
    async with (
        await psycopg.AsyncConnection.connect(url, autocommit=True) as monitor,
        await psycopg.AsyncConnection.connect(url) as locker,
    ):
        await locker.execute(
            "SELECT 1 FROM chargepoints_chargepoint WHERE charge_point_id = %s FOR UPDATE", [charge_point_id]
        )

        async def a_batch_waits() -> None:
            await eventually(lambda: _a_batch_waits_for_a_lock(monitor), timeout=10)

        yield a_batch_waits, locker.rollback


@pytest.fixture(scope="module")
def one_lane_daphne(daphne_factory):
    """One batch at a time: an attach queues behind a stalled batch (with two lanes, a second
    batch would take it at once)."""
    return daphne_factory(CSMS_GROUP_COMMIT_LANES="1")


async def test_a_handshake_abandoned_while_its_attach_waits_is_not_attached(one_lane_daphne):
    daphne = one_lane_daphne
    for charge_point_id in ("CP-STALL", "CP-GONE", "CP-AFTER"):
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    async with _charger_row_held("CP-STALL") as (a_batch_waits, release):
        stalled = asyncio.ensure_future(
            connect(daphne.ws_url("1.6", "CP-STALL"), subprotocols=[SUBPROTOCOL["1.6"]], open_timeout=30)
        )
        await a_batch_waits()
        # CP-GONE's attach queues behind the stalled batch; the charger gives up and closes its socket.
        with pytest.raises(TimeoutError):
            await connect(daphne.ws_url("1.6", "CP-GONE"), subprotocols=[SUBPROTOCOL["1.6"]], open_timeout=0.5)
        await asyncio.sleep(0.5)  # daphne reads the close (the batch waits up to its 5 s lock timeout)
        await release()
        async with await stalled:
            pass
    # CP-AFTER's attach queued after CP-GONE's: once it is answered, CP-GONE's was decided.
    async with ocpp_charger(daphne, "1.6", "CP-AFTER"):
        pass
    gone = await ChargePoint.objects.aget(charge_point_id="CP-GONE")
    assert (gone.ocpp_version, gone.last_seen, gone.connection_channel) == ("", None, "")


@pytest.fixture(scope="module")
def impatient_daphne(daphne_factory):
    return daphne_factory(CSMS_HANDSHAKE_TIMEOUT="1")


async def test_a_handshake_past_the_handshake_timeout_is_answered_503_with_retry_after(daphne, impatient_daphne):
    """A handshake whose attach waits past CSMS_HANDSHAKE_TIMEOUT (its charger's row held) is
    answered as a busy gateway's refusal, 503 with a Retry-After, not daphne's 403 ("Access denied":
    refused credentials, to a charger) nor autobahn's drop without an answer. The consumer meets the
    close as any abandoned handshake's; the charger is admitted again once the row is free."""
    await ChargePoint.objects.acreate(charge_point_id="CP-LATE", heartbeat_interval=60)
    async with _charger_row_held("CP-LATE") as (a_batch_waits, release):
        late = asyncio.ensure_future(
            connect(impatient_daphne.ws_url("1.6", "CP-LATE"), subprotocols=[SUBPROTOCOL["1.6"]], open_timeout=20)
        )
        await a_batch_waits()
        with pytest.raises(InvalidStatus) as refused:
            await asyncio.wait_for(late, 15)
        await release()
    assert refused.value.response.status_code == 503
    assert 5 <= int(refused.value.response.headers["Retry-After"]) <= 15  # CSMS_HANDSHAKE_RETRY_AFTER, jittered
    async with ocpp_charger(impatient_daphne, "1.6", "CP-LATE"):
        pass


async def test_a_charger_connects_and_boots_while_another_charger_s_batch_waits_for_a_lock(daphne):
    """With two lanes (PostgreSQL's default) a batch stalled on one charger's row holds up only
    that charger: another's handshake and boot go in a batch beside it (with one lane they would
    wait up to the stalled batch's 5 s lock timeout)."""
    for charge_point_id in ("CP-STALL-2", "CP-BESIDE"):
        await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60)
    async with _charger_row_held("CP-STALL-2") as (a_batch_waits, release):
        stalled = asyncio.ensure_future(
            connect(daphne.ws_url("1.6", "CP-STALL-2"), subprotocols=[SUBPROTOCOL["1.6"]], open_timeout=30)
        )
        await a_batch_waits()
        async with asyncio.timeout(3), ocpp_charger(daphne, "1.6", "CP-BESIDE") as charger:
            booted = await charger.call(call.BootNotification(charge_point_model="M", charge_point_vendor="V"))
        assert booted.status == "Accepted"
        assert not stalled.done()  # its attach still waits for the row
        await release()
        async with await stalled:
            pass
