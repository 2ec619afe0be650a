"""A charge point's id is its identity: fixed once registered, in the admin as in the API."""

from __future__ import annotations

import asyncio

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16

from chargepoints.models import ChargePoint, Connector
from conftest import eventually, ocpp_charger

CHANGELIST = "/admin/chargepoints/chargepoint/"
INLINE_MANAGEMENT = {
    "connectors-TOTAL_FORMS": "0",
    "connectors-INITIAL_FORMS": "0",
    "connectors-MIN_NUM_FORMS": "0",
    "connectors-MAX_NUM_FORMS": "1000",
}


@pytest.fixture
def operator(db: None) -> Client:
    user = User.objects.create_user("operator", password="pw", is_staff=True)
    for codename in ("view_chargepoint", "change_chargepoint", "add_chargepoint"):
        user.user_permissions.add(Permission.objects.get(content_type__app_label="chargepoints", codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["put", "patch"])
def test_the_api_refuses_another_id_with_a_400_naming_it(api_client, register_charge_point, method):
    register_charge_point("CP-1", heartbeat_interval=60)
    response = getattr(api_client, method)(
        "/api/v1/chargepoints/CP-1", {"charge_point_id": "CP-RENAMED", "heartbeat_interval": 30}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == "ValidationError"
    assert list(response.json()["details"]) == ["charge_point_id"]
    charge_point = ChargePoint.objects.get()
    assert (charge_point.charge_point_id, charge_point.heartbeat_interval) == ("CP-1", 60)


@pytest.mark.django_db
def test_the_api_accepts_the_same_id_sent_back(api_client, register_charge_point):
    register_charge_point("CP-1", heartbeat_interval=60)
    response = api_client.put(
        "/api/v1/chargepoints/CP-1", {"charge_point_id": "CP-1", "heartbeat_interval": 30}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["charge_point_id"] == "CP-1"
    assert ChargePoint.objects.get().heartbeat_interval == 30


@pytest.mark.django_db
def test_the_admin_change_form_shows_the_id_read_only_and_ignores_a_posted_one(operator, register_charge_point):
    charge_point = register_charge_point("CP-1", heartbeat_interval=60)
    url = f"{CHANGELIST}{charge_point.pk}/change/"
    page = operator.get(url)
    assert "charge_point_id" not in page.context["adminform"].form.fields
    assert "CP-1" in page.content.decode()
    form = {"charge_point_id": "CP-RENAMED", "heartbeat_interval": 45, "tariff": "", **INLINE_MANAGEMENT}
    assert operator.post(url, form).status_code == 302
    charge_point.refresh_from_db()
    assert (charge_point.charge_point_id, charge_point.heartbeat_interval) == ("CP-1", 45)


@pytest.mark.django_db
def test_the_admin_add_form_still_takes_the_id(operator):
    assert "charge_point_id" in operator.get(f"{CHANGELIST}add/").context["adminform"].form.fields


@pytest.mark.django_db(transaction=True)
async def test_renaming_a_connected_charger_in_the_admin_leaves_it_working(daphne, operator):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-LIVE", heartbeat_interval=60)
    url = f"{CHANGELIST}{charge_point.pk}/change/"
    form = {"charge_point_id": "CP-RENAMED", "heartbeat_interval": 60, "tariff": "", **INLINE_MANAGEMENT}
    async with ocpp_charger(daphne, "1.6", "CP-LIVE") as charger:
        await eventually(lambda: ChargePoint.objects.filter(charge_point_id="CP-LIVE", connected=True).aexists())
        assert (await asyncio.to_thread(operator.post, url, form)).status_code == 302
        answer = await charger.call(call16.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
        assert answer == result16.StatusNotification()
        start = await charger.call(
            call16.StartTransaction(connector_id=1, id_tag="RFID-1", meter_start=0, timestamp="2026-05-01T10:00:00Z")
        )
        assert start.transaction_id > 0
    assert [cp.charge_point_id async for cp in ChargePoint.objects.all()] == ["CP-LIVE"]
    connector = await Connector.objects.aget(charge_point__charge_point_id="CP-LIVE", connector_id=1)
    assert connector.status == "Available"
