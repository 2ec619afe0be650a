"""A charger's identity is OCPP's identifierString (issue 13 C): what registration accepts (API
and admin), a charger can connect with (percent-encoded, with or without a password), and the API
reaches; anything else is refused cleanly."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import quote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chargepoints.identity import IDENTITY_CHARACTERS
from chargepoints.models import ChargePoint
from conftest import ahttp, ocpp_charger

pytestmark = pytest.mark.django_db(transaction=True)

EVERY_SPECIAL_CHARACTER = "a*-_=:+|@.Z9"
PASSWORD = "sixteen-chars-pw:with-colon"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def register(daphne, api_key: str, charge_point_id: str, **fields: object) -> tuple[int, dict]:
    return await ahttp(
        f"{daphne.http_url}/api/v1/chargepoints",
        method="POST",
        api_key=api_key,
        body={"charge_point_id": charge_point_id, **fields},
    )


async def refused_status(url: str, **kwargs: Any) -> int:
    with pytest.raises(InvalidStatus) as refusal:
        async with connect(url, subprotocols=[Subprotocol("ocpp1.6")], compression=None, **kwargs):
            pass
    return refusal.value.response.status_code


@pytest.mark.parametrize("charge_point_id", ["RDAM|123", "A=B1", EVERY_SPECIAL_CHARACTER, "x" * 48, "..."])
async def test_an_identifier_string_registers_through_the_api_and_connects_percent_encoded(
    daphne, api_key, charge_point_id
):
    status, body = await register(daphne, api_key, charge_point_id)
    assert status == 201 and body["charge_point_id"] == charge_point_id
    async with ocpp_charger(daphne, "2.0.1", quote(charge_point_id, safe="")) as charger:
        boot = await charger.call(
            call201.BootNotification(charging_station={"vendor_name": "V", "model": "M"}, reason="PowerUp")
        )
    assert boot.status == "Accepted"
    assert (await ChargePoint.objects.aget(charge_point_id=charge_point_id)).vendor == "V"


@pytest.mark.parametrize("charge_point_id", [".", "..", "a b", "x" * 49, "a/b", "é", "a\u0000b", ""])
async def test_registration_refuses_what_is_not_an_identifier_string(daphne, api_key, charge_point_id):
    status, body = await register(daphne, api_key, charge_point_id)
    assert status == 400 and "charge_point_id" in body["details"]
    assert not await ChargePoint.objects.aexists()


async def test_an_identity_with_a_colon_connects_with_its_password_under_security_profile_1(daphne, api_key):
    charge_point_id = "DE:RDAM|123"
    status, _ = await register(daphne, api_key, charge_point_id, password=PASSWORD)
    assert status == 201
    url_id = quote(charge_point_id, safe="")
    async with ocpp_charger(daphne, "1.6", url_id, additional_headers=basic(charge_point_id, PASSWORD)) as charger:
        assert (await charger.call(call16.Heartbeat())).current_time
    assert await refused_status(daphne.ws_url("1.6", url_id), additional_headers=basic("DE", PASSWORD)) == 403
    assert await refused_status(daphne.ws_url("1.6", url_id), additional_headers=basic(charge_point_id, "wrong")) == 403


@pytest.mark.parametrize("path", ["a%00b", "%2E", "%2E%2E", "a%20b", "%ED%A0%80", "x" * 49])
async def test_a_path_that_is_no_identity_is_refused_at_the_handshake_not_a_500(daphne, path):
    await ChargePoint.objects.acreate(charge_point_id="..", heartbeat_interval=60)  # a legacy row: still unreachable
    assert await refused_status(f"ws://127.0.0.1:{daphne.port}/ocpp/1.6/{path}") == 403


async def test_the_api_reaches_a_charger_whose_id_needs_percent_encoding(daphne, api_key):
    await register(daphne, api_key, "RDAM|123")
    base = f"{daphne.http_url}/api/v1"
    status, body = await ahttp(f"{base}/chargepoints/RDAM%7C123/", api_key=api_key)
    assert status == 200 and body["charge_point_id"] == "RDAM|123"
    status, body = await ahttp(f"{base}/chargepoints/RDAM%7C123/connectors", api_key=api_key)
    assert status == 200 and body == []
    status, body = await ahttp(f"{base}/installer/charge-points/RDAM%7C123/connection-status", api_key=api_key)
    assert status == 200 and body["connected"] is False
    status, body = await ahttp(f"{base}/ocpp16/RDAM%7C123/reset", method="POST", api_key=api_key, body={"type": "Soft"})
    assert status == 503 and body["error"] == "NotConnected"


@pytest.mark.parametrize("path", ["chargepoints/a%00b/", "ocpp16/a%00b/reset"])
async def test_an_api_path_with_a_nul_is_refused_not_a_500(daphne, api_key, path):
    method = "POST" if path.endswith("reset") else "GET"
    status, _ = await ahttp(f"{daphne.http_url}/api/v1/{path}", method=method, api_key=api_key, body={"type": "Soft"})
    assert status in (400, 404)


def test_the_admin_registers_an_identifier_string_and_refuses_dot_segments(db):
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", password="pw"))
    form = {
        "heartbeat_interval": 60,
        "lifecycle_state": "commissioned",
        "tariff": "",
        "connectors-TOTAL_FORMS": "0",
        "connectors-INITIAL_FORMS": "0",
        "connectors-MIN_NUM_FORMS": "0",
        "connectors-MAX_NUM_FORMS": "1000",
    }
    add = "/admin/chargepoints/chargepoint/add/"
    assert admin.post(add, {**form, "charge_point_id": "RDAM|123"}).status_code == 302
    assert admin.post(add, {**form, "charge_point_id": "A=B1"}).status_code == 302
    for refused in (".", "..", "a b"):
        assert admin.post(add, {**form, "charge_point_id": refused}).status_code == 200
    assert sorted(ChargePoint.objects.values_list("charge_point_id", flat=True)) == ["A=B1", "RDAM|123"]


def test_every_identity_registration_accepts_connects_with_its_password(daphne, api_key):
    """Property: whatever id the API registers, that charger connects (percent-encoded URL, HTTP
    Basic with the id as user) and is reached by the API."""

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(charge_point_id=st.from_regex(rf"\A{IDENTITY_CHARACTERS}{{1,48}}\Z"))
    def check(charge_point_id: str) -> None:
        asyncio.run(registered_then_connected(charge_point_id))

    async def registered_then_connected(charge_point_id: str) -> None:
        await ChargePoint.objects.filter(charge_point_id=charge_point_id).adelete()
        status, body = await register(daphne, api_key, charge_point_id, password=PASSWORD)
        if charge_point_id in (".", ".."):
            assert status == 400
            return
        assert status == 201, body
        url_id = quote(charge_point_id, safe="")
        async with ocpp_charger(daphne, "1.6", url_id, additional_headers=basic(charge_point_id, PASSWORD)) as charger:
            await charger.call(call16.BootNotification(charge_point_vendor="V", charge_point_model="M"))
            status, body = await ahttp(f"{daphne.http_url}/api/v1/chargepoints/{url_id}", api_key=api_key)
            assert status == 200 and body["connected"] is True and body["vendor"] == "V"

    check()
