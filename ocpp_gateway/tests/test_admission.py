"""Who may open a socket: passwords (OCPP security profile 1), required passwords, auto-registration."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from channels.db import database_sync_to_async
from ocpp.exceptions import OCPPError
from ocpp.v16 import call as call16
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chargepoints.models import ChargePoint, LifecycleState, OcppMessage
from chargepoints.services import charge_point_update
from charging.models import Transaction
from conftest import ahttp, eventually, ocpp_charger, raw_socket

pytestmark = pytest.mark.django_db(transaction=True)


def basic(charge_point_id: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{charge_point_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def handshake(server, charge_point_id: str, headers: dict[str, str] | None = None) -> bool:
    try:
        async with connect(
            server.ws_url("1.6", charge_point_id),
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers=headers or {},
        ):
            return True
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False


async def register(charge_point_id: str, **kwargs) -> ChargePoint:
    return await ChargePoint.objects.acreate(charge_point_id=charge_point_id, heartbeat_interval=60, **kwargs)


async def test_a_charger_with_a_password_connects_only_with_it(daphne):
    charge_point = await register("CP-PW")
    await database_sync_to_async(charge_point_update)(charge_point=charge_point, password="right-password-123")
    assert not await handshake(daphne, "CP-PW")
    assert not await handshake(daphne, "CP-PW", basic("CP-PW", "wrong-password-123"))
    assert not await handshake(daphne, "CP-PW", basic("SOMEONE-ELSE", "right-password-123"))
    assert await handshake(daphne, "CP-PW", basic("CP-PW", "right-password-123"))


async def test_unknown_chargers_are_refused_and_leave_no_row(daphne):
    assert not await handshake(daphne, "CP-STRANGER")
    assert not await ChargePoint.objects.filter(charge_point_id="CP-STRANGER").aexists()
    assert not await OcppMessage.objects.aexists()


@pytest.fixture(scope="module")
def auto_registering_daphne(daphne_factory):
    return daphne_factory(CSMS_AUTO_REGISTER="1")


@pytest.fixture(scope="module")
def two_pending_daphne(daphne_factory):
    return daphne_factory(CSMS_AUTO_REGISTER="1", CSMS_AUTO_REGISTER_MAX_PENDING="2")


@pytest.fixture(scope="module")
def password_requiring_daphne(daphne_factory):
    return daphne_factory(CSMS_REQUIRE_CHARGER_PASSWORD="1")


async def test_auto_registered_chargers_wait_as_pending_until_commissioned(daphne, auto_registering_daphne):
    async with ocpp_charger(auto_registering_daphne, "1.6", "CP-NEW") as charger:
        boot = await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert boot.status == "Pending"
        # A stranger's pending charger may not authorize tags or start sessions.
        with pytest.raises(OCPPError) as refused:
            await charger.call(call16.Authorize(id_tag="SOMEONE-ELSES-TAG"), suppress=False)
        assert refused.value.code == "SecurityError"
    charge_point = await ChargePoint.objects.aget(charge_point_id="CP-NEW")
    assert charge_point.lifecycle_state == LifecycleState.PENDING and charge_point.vendor == "Acme"
    assert not await Transaction.objects.aexists()

    await database_sync_to_async(charge_point_update)(
        charge_point=charge_point, lifecycle_state=LifecycleState.COMMISSIONED
    )
    async with ocpp_charger(auto_registering_daphne, "1.6", "CP-NEW") as charger:
        boot = await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert boot.status == "Accepted"
        assert (await charger.call(call16.Authorize(id_tag="UNKNOWN-TAG"))).id_tag_info["status"] == "Invalid"


async def test_a_commissioned_charger_set_back_to_pending_is_served_as_pending(daphne):
    """Its connection served it as commissioned (kept from its handshake, whichever process holds
    it): the change closes the socket, and the next connection serves only what a pending
    charger may send."""
    await register("CP-SUSPENDED")
    async with ocpp_charger(daphne, "1.6", "CP-SUSPENDED") as charger:
        boot = await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert boot.status == "Accepted"
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-SUSPENDED")
        await database_sync_to_async(charge_point_update)(
            charge_point=charge_point, lifecycle_state=LifecycleState.PENDING
        )
        await asyncio.wait_for(charger._connection.wait_closed(), 5)
    async with ocpp_charger(daphne, "1.6", "CP-SUSPENDED") as charger:
        boot = await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert boot.status == "Pending"
        with pytest.raises(OCPPError) as refused:
            await charger.call(call16.Authorize(id_tag="ANY-TAG"), suppress=False)
        assert refused.value.code == "SecurityError"


async def test_a_pending_charger_sent_back_as_pending_keeps_its_socket(daphne):
    """A PUT of what was read sends its lifecycle state back: nothing changes, nothing is closed."""
    await register("CP-WAITING", lifecycle_state=LifecycleState.PENDING)
    async with ocpp_charger(daphne, "1.6", "CP-WAITING") as charger:
        charge_point = await ChargePoint.objects.aget(charge_point_id="CP-WAITING")
        await database_sync_to_async(charge_point_update)(
            charge_point=charge_point, lifecycle_state=LifecycleState.PENDING, heartbeat_interval=90
        )
        boot = await charger.call(call16.BootNotification(charge_point_vendor="Acme", charge_point_model="A1"))
        assert boot.status == "Pending"


async def test_auto_registration_does_not_let_a_decommissioned_charger_back(daphne, auto_registering_daphne):
    await register("CP-GONE", lifecycle_state=LifecycleState.DECOMMISSIONED)
    assert not await handshake(auto_registering_daphne, "CP-GONE")
    assert (await ChargePoint.objects.aget(charge_point_id="CP-GONE")).lifecycle_state == "decommissioned"


async def test_a_required_password_refuses_chargers_without_one(daphne, password_requiring_daphne):
    await register("CP-OPEN")
    with_password = await register("CP-LOCKED")
    await database_sync_to_async(charge_point_update)(charge_point=with_password, password="locked-password-123")
    assert not await handshake(password_requiring_daphne, "CP-OPEN")
    assert not await handshake(password_requiring_daphne, "CP-LOCKED")
    assert await handshake(password_requiring_daphne, "CP-LOCKED", basic("CP-LOCKED", "locked-password-123"))


async def _admitted(server, charge_point_id: str) -> bool:
    try:
        async with ocpp_charger(server, "1.6", charge_point_id) as charger:
            await charger.call(call16.Heartbeat())
    except InvalidStatus as refused:
        assert refused.response.status_code == 403
        return False
    return True


async def test_auto_registration_stops_while_max_pending_chargers_wait(daphne, two_pending_daphne):
    """Anyone reaching the endpoint could open handshakes with made-up ids, each registered as a
    pending charger for ever: 100 handshakes, 100 rows in the fleet. At most
    CSMS_AUTO_REGISTER_MAX_PENDING wait; commissioning one makes room, and known chargers, pending
    ones included, still connect."""
    assert [await _admitted(two_pending_daphne, name) for name in ("ANY-1", "ANY-2", "ANY-3")] == [True, True, False]
    assert not await ChargePoint.objects.filter(charge_point_id="ANY-3").aexists()
    assert await _admitted(two_pending_daphne, "ANY-1")  # pending, known: connects as before
    await ChargePoint.objects.filter(charge_point_id="ANY-2").aupdate(lifecycle_state=LifecycleState.COMMISSIONED)
    assert await _admitted(two_pending_daphne, "ANY-3")
    assert await eventually(
        lambda: _logged(two_pending_daphne, "ANY-3: refused, unknown, and not registered: 2 chargers already wait")
    )


async def _logged(server, needle: str) -> bool:
    return needle in server.log()


@pytest.mark.parametrize(("state", "reconnects"), [("pending", True), ("decommissioned", False)])
async def test_a_connected_station_set_back_to_pending_or_decommissioned_through_the_api_is_told_by_its_socket(
    daphne, api_key, state, reconnects
):
    """OCPP has no message telling an accepted station it is Pending again, or no longer known: the
    CSMS closes its socket, so that it reconnects and boots (Pending: served as pending from then on)
    or is refused at its handshake (decommissioned, 403)."""
    await register("CP-TOLD")
    boot = {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "A1"}}
    async with raw_socket(daphne, "2.0.1", "CP-TOLD") as websocket:
        await websocket.send(json.dumps([2, "b1", "BootNotification", boot]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[2]["status"] == "Accepted"
        status, _ = await ahttp(
            f"{daphne.http_url}/api/v1/chargepoints/CP-TOLD",
            method="PATCH",
            api_key=api_key,
            body={"lifecycle_state": state},
        )
        assert status == 200
        await asyncio.wait_for(websocket.wait_closed(), 5)
    if not reconnects:
        with pytest.raises(InvalidStatus):
            async with raw_socket(daphne, "2.0.1", "CP-TOLD"):
                pass
        return
    async with raw_socket(daphne, "2.0.1", "CP-TOLD") as websocket:
        await websocket.send(json.dumps([2, "b2", "BootNotification", boot]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[2]["status"] == "Pending"
        await websocket.send(json.dumps([2, "h1", "Heartbeat", {}]))
        assert json.loads(await asyncio.wait_for(websocket.recv(), 5))[:3] == [4, "h1", "SecurityError"]
