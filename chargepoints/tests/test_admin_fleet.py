"""The charge point admin: status badges, filters, the change page's activity, commissioning."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import Tariff
from chargepoints.models import (
    ChargePoint,
    Connector,
    Heartbeat,
    LifecycleState,
    OcppMessage,
)
from chargepoints.services import charge_point_update
from charging.services.transaction_start import StartRequest, transaction_start
from conftest import eventually, ocpp_charger
from kernel.tests.page_forms import form_as_posted
from webhooks.models import WebhookDelivery, WebhookSubscription

CHANGELIST = "/admin/chargepoints/chargepoint/"
INLINE_MANAGEMENT = {
    "connectors-TOTAL_FORMS": "0",
    "connectors-INITIAL_FORMS": "0",
    "connectors-MIN_NUM_FORMS": "0",
    "connectors-MAX_NUM_FORMS": "1000",
}
ONLINE = '<span class="cp-status-badge online">Online</span>'
OFFLINE = '<span class="cp-status-badge offline">Offline</span>'


def staff_client(username: str, *permissions: str) -> Client:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def operator(db: None) -> Client:
    return staff_client(
        "operator",
        "chargepoints.view_chargepoint",
        "chargepoints.change_chargepoint",
        "chargepoints.view_connector",
        "chargepoints.view_ocppmessage",
        "chargepoints.view_heartbeat",
        "charging.view_transaction",
        "commands.send_command",
    )


@pytest.fixture
def support(db: None) -> Client:
    return staff_client("support", "chargepoints.view_chargepoint")


@pytest.fixture
def charger(register_charge_point):
    """A registered charger with the state the gateway would have written (connected, vendor, ...)."""

    def make(
        charge_point_id: str, *, ocpp_version: str = "", lifecycle_state: str = LifecycleState.COMMISSIONED, **state
    ) -> ChargePoint:
        charge_point = register_charge_point(
            charge_point_id, ocpp_version=ocpp_version, lifecycle_state=lifecycle_state
        )
        ChargePoint.objects.filter(pk=charge_point.pk).update(**state)
        charge_point.refresh_from_db()
        return charge_point

    return make


def change_url(charge_point: ChargePoint) -> str:
    return f"{CHANGELIST}{charge_point.pk}/change/"


def messages_in(page: str) -> list[tuple[str, str]]:
    """(level, text) of each entry in the admin's message bar."""
    bar = re.search(r'<ul class="messagelist">(.*?)</ul>', page, re.S)
    return re.findall(r'<li class="(\w+)">(.*?)</li>', bar.group(1), re.S) if bar else []


def test_changelist_shows_status_badges_with_last_seen(operator, charger):
    charger("CP-ON", connected=True, last_seen=timezone.now())
    charger("CP-OFF", last_seen=timezone.now() - timedelta(hours=3))
    charger("CP-NEW")
    page = operator.get(CHANGELIST).content.decode()
    assert page.count(ONLINE) == 1
    assert page.count(OFFLINE) == 2
    assert "last seen 3\xa0hours ago" in page
    assert "never seen" in page


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"connected__exact": "1"}, {"CP-ON"}),
        ({"connected__exact": "0"}, {"CP-OFF"}),
        ({"ocpp_version__exact": "2.0.1"}, {"CP-OFF"}),
        ({"vendor": "Acme"}, {"CP-ON"}),
        ({"lifecycle_state__exact": "pending"}, {"CP-OFF"}),
        ({"q": "cp-of"}, {"CP-OFF"}),
    ],
)
def test_changelist_filters_by_online_version_vendor_and_lifecycle(operator, charger, query, expected):
    charger("CP-ON", connected=True, ocpp_version="1.6", vendor="Acme")
    charger("CP-OFF", ocpp_version="2.0.1", vendor="Other", lifecycle_state=LifecycleState.PENDING)
    response = operator.get(CHANGELIST, query)
    assert response.status_code == 200
    assert {charge_point.charge_point_id for charge_point in response.context["cl"].result_list} == expected


def test_changelist_names_the_connected_filter_online(operator, charger):
    charger("CP-1")
    assert "By online" in operator.get(CHANGELIST).content.decode()


def test_change_page_shows_connectors_in_colour_and_recent_activity(operator, charger):
    charge_point = charger("CP-1", ocpp_version="1.6", connected=True)
    for connector_id, status in enumerate(["Available", "Charging", "Faulted", "Unavailable", "Reserved"], start=1):
        Connector.objects.create(charge_point=charge_point, connector_id=connector_id, status=status)
    now = timezone.now()
    session = transaction_start(
        StartRequest(
            charge_point_id="CP-1",
            ocpp_version="1.6",
            start_key="k1",
            started_at=now - timedelta(minutes=5),
            connector_id=2,
            id_tag="TAG-1",
            meter_start_wh=Decimal(0),
        )
    ).transaction
    message = OcppMessage.objects.create(
        charge_point=charge_point,
        direction="in",
        message_type=2,
        unique_id="u-1",
        action="StatusNotification",
        frame='[2,"u-1","StatusNotification",{}]',
        created_at=now,
    )
    Heartbeat.objects.bulk_create(
        [Heartbeat(charge_point=charge_point, received_at=now - timedelta(hours=hours)) for hours in (1, 2, 30)]
    )
    page = operator.get(change_url(charge_point)).content.decode()
    assert ONLINE in page
    for css, status in [
        ("available", "Available"),
        ("busy", "Charging"),
        ("faulted", "Faulted"),
        ("unavailable", "Unavailable"),
        ("reserved", "Reserved"),
    ]:
        assert f'<span class="connector-status {css}">{status}</span>' in page
    assert f"/admin/charging/transaction/{session.pk}/change/" in page
    assert f"/admin/chargepoints/ocppmessage/{message.pk}/change/" in page
    assert f"/admin/chargepoints/ocppmessage/?charge_point__id__exact={charge_point.pk}" in page
    assert "2 in the last 24 hours" in page


def test_commissioning_asks_for_confirmation_then_commissions(operator, charger):
    charge_point = charger("CP-1", lifecycle_state=LifecycleState.PENDING)
    page = operator.get(change_url(charge_point)).content.decode()
    confirm_url = f"{CHANGELIST}{charge_point.pk}/lifecycle/commissioned/"
    assert f'<a class="lifecycle-action button" data-state="commissioned" href="{confirm_url}">' in page

    confirmation = operator.get(confirm_url)
    assert confirmation.status_code == 200
    assert "Commission CP-1?" in confirmation.content.decode()
    charge_point.refresh_from_db()
    assert charge_point.lifecycle_state == LifecycleState.PENDING

    done = operator.post(confirm_url, follow=True)
    assert done.redirect_chain[-1][0] == change_url(charge_point)
    assert ("success", "CP-1 is now commissioned.") in messages_in(done.content.decode())
    charge_point.refresh_from_db()
    assert charge_point.lifecycle_state == LifecycleState.COMMISSIONED
    assert 'data-state="decommissioned"' in done.content.decode()


def test_a_decommissioned_charger_can_be_recommissioned_but_not_decommissioned_again(operator, charger):
    charge_point = charger("CP-1", lifecycle_state=LifecycleState.DECOMMISSIONED)
    page = operator.get(change_url(charge_point)).content.decode()
    assert 'data-state="commissioned"' in page
    assert 'data-state="decommissioned"' not in page
    refused = operator.post(f"{CHANGELIST}{charge_point.pk}/lifecycle/decommissioned/", follow=True)
    assert messages_in(refused.content.decode())[0][0] == "error"
    operator.post(f"{CHANGELIST}{charge_point.pk}/lifecycle/commissioned/")
    charge_point.refresh_from_db()
    assert charge_point.lifecycle_state == LifecycleState.COMMISSIONED


def test_lifecycle_state_is_read_only_in_the_change_form(operator, charger):
    charge_point = charger("CP-1", lifecycle_state=LifecycleState.PENDING)
    form = operator.get(change_url(charge_point)).context["adminform"].form
    assert "lifecycle_state" not in form.fields


def test_a_user_without_the_views_sees_no_sessions_messages_or_heartbeats_on_a_charger(support, charger):
    """Round 41's probe: a login that may view chargers only saw their sessions (id tags) and frames."""
    page = support.get(change_url(charger("CP-1", ocpp_version="1.6"))).content.decode()
    for hidden in ('id="recent-transactions"', 'id="recent-messages"', 'id="heartbeat-history"'):
        assert hidden not in page


def test_a_user_without_change_permission_gets_no_lifecycle_buttons_and_403(support, charger):
    charge_point = charger("CP-1", lifecycle_state=LifecycleState.PENDING)
    page = support.get(change_url(charge_point)).content.decode()
    assert "data-state=" not in page
    assert 'id="command-panel"' not in page
    assert support.post(f"{CHANGELIST}{charge_point.pk}/lifecycle/commissioned/").status_code == 403
    charge_point.refresh_from_db()
    assert charge_point.lifecycle_state == LifecycleState.PENDING


async def test_badge_follows_a_real_charger_connecting_and_leaving(daphne, operator):
    charge_point = await ChargePoint.objects.acreate(charge_point_id="CP-LIVE", heartbeat_interval=60)
    url = change_url(charge_point)

    async def page() -> str:
        return (await asyncio.to_thread(operator.get, url)).content.decode()

    assert OFFLINE in await page()
    async with ocpp_charger(daphne, "1.6", "CP-LIVE"):
        await eventually(lambda: ChargePoint.objects.filter(charge_point_id="CP-LIVE", connected=True).aexists())
        assert ONLINE in await page()
    await eventually(lambda: ChargePoint.objects.filter(charge_point_id="CP-LIVE", connected=False).aexists())
    assert OFFLINE in await page()


@pytest.mark.django_db
def test_the_charger_password_is_set_rotated_and_removed_in_the_admin_and_never_shown(operator, register_charge_point):
    charge_point = register_charge_point("CP-PW-ADMIN")
    url = f"{CHANGELIST}{charge_point.pk}/change/"
    form = {"charge_point_id": "CP-PW-ADMIN", "heartbeat_interval": 60, "tariff": "", **INLINE_MANAGEMENT}

    assert operator.post(url, {**form, "new_password": "too-short"}).status_code == 200  # refused: 16-40 characters
    charge_point.refresh_from_db()
    assert charge_point.password_hash == ""

    assert operator.post(url, {**form, "new_password": "a-sixteen-char-pw!"}).status_code == 302
    charge_point.refresh_from_db()
    first = charge_point.password_hash
    assert first.startswith("pbkdf2_") and check_password("a-sixteen-char-pw!", first)
    page = operator.get(url).content.decode()
    assert "a-sixteen-char-pw!" not in page and first not in page

    operator.post(url, {**form, "new_password": "another-sixteen-pw"})
    charge_point.refresh_from_db()
    assert check_password("another-sixteen-pw", charge_point.password_hash)

    operator.post(url, {**form, "remove_password": "on"})
    charge_point.refresh_from_db()
    assert charge_point.password_hash == ""


@pytest.mark.django_db
def test_an_interval_edited_in_the_admin_keeps_the_charger_s_previous_one_until_it_boots(
    operator, register_charge_point
):
    """A charger not connected cannot be told (its next Boot answer will): the form stores the
    interval, and the offline sweep waits for the one the charger still heartbeats at meanwhile."""
    charge_point = register_charge_point("CP-HB-ADMIN", heartbeat_interval=300)
    form = {"charge_point_id": "CP-HB-ADMIN", "heartbeat_interval": 60, "tariff": "", **INLINE_MANAGEMENT}
    assert operator.post(f"{CHANGELIST}{charge_point.pk}/change/", form).status_code == 302
    charge_point.refresh_from_db()
    assert (charge_point.heartbeat_interval, charge_point.previous_heartbeat_interval) == (60, 300)


@pytest.mark.django_db
def test_a_tariff_given_a_charger_while_its_page_is_open_stays_when_the_operator_saves_its_interval(
    operator, register_charge_point
):
    """The page's form wrote back the tariff it showed: a tariff the API (or another operator) gave
    the charger while the page was open was taken off again by a change of its heartbeat interval,
    and its sessions billed at the default's prices. Only what the operator changed is written."""
    charge_point = register_charge_point("CP-TARIFF-ADMIN", heartbeat_interval=300)
    depot = Tariff.objects.create(name="Depot", currency="EUR", price_per_kwh=Decimal("0.25"))
    url = f"{CHANGELIST}{charge_point.pk}/change/"
    page = operator.get(url).content.decode()

    charge_point_update(charge_point=ChargePoint.objects.get(pk=charge_point.pk), tariff=depot)  # the API, meanwhile
    assert operator.post(url, form_as_posted(page, "chargepoint_form", heartbeat_interval="60")).status_code == 302

    charge_point.refresh_from_db()
    assert (charge_point.tariff_id, charge_point.heartbeat_interval) == (depot.pk, 60)


def test_deleting_connected_chargers_in_the_admin_takes_them_offline_for_subscribers(
    admin_client, register_charge_point
):
    """As the API's DELETE (``charge_point_delete``): their sockets' close finds no row to mark offline."""
    WebhookSubscription.objects.create(url="https://example.com/h", events=["charge_point.offline"], secret="s")
    gone = [register_charge_point(charge_point_id) for charge_point_id in ("GONE-1", "GONE-2", "GONE-3")]
    ChargePoint.objects.update(connected=True)

    admin_client.post(f"/admin/chargepoints/chargepoint/{gone[0].pk}/delete/", {"post": "yes"})
    selected = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [gone[1].pk, gone[2].pk], "post": "yes"}
    admin_client.post("/admin/chargepoints/chargepoint/", selected)

    assert not ChargePoint.objects.exists()
    told = [json.loads(delivery.body)["data"] for delivery in WebhookDelivery.objects.all()]
    assert sorted((data["charge_point_id"], data["reason"]) for data in told) == [
        ("GONE-1", "deleted"),
        ("GONE-2", "deleted"),
        ("GONE-3", "deleted"),
    ]


@pytest.mark.parametrize("bulk", [False, True])
def test_a_charger_s_first_session_started_while_its_deletion_is_confirmed_refuses_the_delete_with_a_message(
    admin_client, register_charge_point, monkeypatch, bulk
):
    """The delete page found no session of the charger, it started its first before the delete, and
    ``charge_point_delete`` refused it (its billing history is kept): a 500, and a "Delete selected"
    half done. The delete is refused with the reason, every charger kept."""
    from django.contrib import admin as django_admin
    from django.contrib.messages import get_messages

    other = register_charge_point("CP-OTHER", ocpp_version="1.6")
    charge_point = register_charge_point("CP-FIRST", ocpp_version="1.6")
    charger_admin = django_admin.site._registry[ChargePoint]
    checked = charger_admin.get_deleted_objects

    def check_then_start(objs, request):
        found = checked(objs, request)
        start = StartRequest(
            charge_point_id="CP-FIRST",
            ocpp_version="1.6",
            start_key="first",
            started_at=timezone.now(),
            connector_id=1,
            id_tag="TAG",
            meter_start_wh=Decimal(0),
        )
        transaction_start(start)
        return found

    monkeypatch.setattr(charger_admin, "get_deleted_objects", check_then_start)
    if bulk:
        data = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [other.pk, charge_point.pk], "post": "yes"}
        response = admin_client.post(CHANGELIST, data, follow=True)
    else:
        response = admin_client.post(f"{CHANGELIST}{charge_point.pk}/delete/", {"post": "yes"}, follow=True)

    assert response.status_code == 200
    assert any("decommission it instead" in str(message) for message in get_messages(response.wsgi_request))
    assert ChargePoint.objects.count() == 2


@pytest.mark.parametrize(
    ("state", "closes"),
    [
        ({"connected": False, "connection_channel": "gw!a"}, True),  # marked offline by the sweep, socket open
        ({"connected": True, "connection_channel": "gw!a"}, True),
        ({"connected": False, "connection_channel": ""}, False),
    ],
)
def test_decommissioning_says_it_closes_the_connection_whenever_a_socket_is_held(operator, charger, state, closes):
    """Fails before the change: a charger the offline sweep had marked offline while its socket
    stayed open (no message within 2x its interval) was decommissioned without the confirmation
    saying its open connection is closed, as it is (``charge_point_update`` closes what presence holds)."""
    charge_point = charger("CP-SWEPT", **state)
    page = operator.get(f"{CHANGELIST}{charge_point.pk}/lifecycle/decommissioned/").content.decode()
    assert ("its open connection is closed now" in page) is closes


def test_a_charger_s_page_asks_as_many_queries_for_many_connectors_as_for_one(operator, charger):
    """Each connector's row named its charger (``Connector.__str__``), read again per row: a
    2.0.1 station of 24 connectors took 24 more queries."""
    counts = []
    for number, connectors in enumerate((1, 8)):
        charge_point = charger(f"CP-HUB-{number}", ocpp_version="1.6")
        for connector_id in range(1, connectors + 1):
            Connector.objects.create(charge_point=charge_point, connector_id=connector_id, status="Available")
        with CaptureQueriesContext(connection) as queries:
            page = operator.get(change_url(charge_point)).content.decode()
        assert page.count('class="connector-status available"') == connectors
        counts.append(len(queries))
    assert counts[0] == counts[1]


@pytest.mark.django_db
@pytest.mark.parametrize("tariff", ["abc", "-1.5", "99999999999999999999"])
def test_a_tariff_no_tariff_can_have_is_the_tariff_s_error_not_a_500(operator, register_charge_point, tariff):
    """A tariff posted that no tariff's id can be was looked up to label the page's tariff box again:
    a 500. It is the field's error, the charger unchanged."""
    charge_point = register_charge_point("CP-TARIFF-TYPO", heartbeat_interval=300)
    url = change_url(charge_point)
    page = operator.get(url).content.decode()

    response = operator.post(url, form_as_posted(page, "chargepoint_form", tariff=tariff, heartbeat_interval="60"))

    assert response.status_code == 200
    assert "tariff" in response.context["adminform"].form.errors
    charge_point.refresh_from_db()
    assert (charge_point.tariff_id, charge_point.heartbeat_interval) == (None, 300)
