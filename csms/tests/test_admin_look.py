"""What every admin page shares: one date and time format (2025-03-01 08:00:05 UTC) in list
columns, detail pages, the dashboard and the charger's own tables, and the CSMS's icon."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from chargepoints.models import ChargePoint, Heartbeat
from charging.models import ReconciliationItem
from charging.services.transaction_start import StartRequest, transaction_start

pytestmark = pytest.mark.django_db

HEARD_AT = datetime(2025, 3, 1, 8, 0, 5, tzinfo=UTC)
SHOWN = "2025-03-01 08:00:05 UTC"
# Django's English formats: "March 1, 2025, 8:00 a.m.", "Mar. 1, 2025".
LOCALE_DATE = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}\b|\b[ap]\.m\.")


@pytest.fixture
def ops(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


@pytest.fixture
def heard_from(register_charge_point) -> ChargePoint:
    """A charger last heard at HEARD_AT, offline since a minute ago, with a session and a heartbeat."""
    charge_point = register_charge_point("CP-DATES", ocpp_version="1.6")
    ChargePoint.objects.filter(pk=charge_point.pk).update(
        last_heartbeat=HEARD_AT, last_seen=HEARD_AT, offline_since=timezone.now() - timedelta(minutes=1)
    )
    Heartbeat.objects.create(charge_point=charge_point, received_at=HEARD_AT)
    transaction_start(
        StartRequest(
            charge_point_id="CP-DATES",
            ocpp_version="1.6",
            start_key="k1",
            started_at=HEARD_AT,
            connector_id=1,
            id_tag="TAG",
            authorize=False,
            meter_start_wh=Decimal(0),
        )
    )
    return charge_point


def shown_on(client: Client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, url
    html = page.content.decode()
    assert not LOCALE_DATE.search(html), (url, LOCALE_DATE.search(html))
    return html


@pytest.mark.parametrize(
    "url",
    [
        "/admin/chargepoints/chargepoint/",  # the last heartbeat column
        "/admin/chargepoints/chargepoint/{pk}/change/",  # read-only fields, sessions, heartbeats
        "/admin/chargepoints/heartbeat/",
        "/admin/charging/transaction/",
        "/admin/",  # the dashboard's "last seen"
    ],
)
def test_dates_and_times_are_written_one_way_on_every_page(ops, heard_from, url):
    html = shown_on(ops, url.format(pk=heard_from.pk))
    assert SHOWN in html


def test_a_chargers_page_shows_each_of_its_times_in_that_format(ops, heard_from):
    html = shown_on(ops, f"/admin/chargepoints/chargepoint/{heard_from.pk}/change/")
    assert html.count(SHOWN) >= 4  # last heartbeat, last seen, the session's start, the heartbeat row


def test_rows_named_by_their_time_use_the_format_too(heard_from):
    assert str(Heartbeat.objects.get()) == f"CP-DATES at {SHOWN}"


def test_the_date_hierarchy_names_days_by_their_date(ops, heard_from):
    ReconciliationItem.objects.create(
        charge_point=heard_from,
        reason="unknown_transaction",
        action="StopTransaction",
        payload={},
        received_at=HEARD_AT,
    )
    html = shown_on(ops, "/admin/charging/reconciliationitem/?received_at__year=2025&received_at__month=3")
    assert ">2025-03-01<" in html.replace("\n", "").replace(" ", "")


def test_admin_pages_name_the_icon_and_the_server_serves_it(client):
    html = client.get("/admin/login/").content.decode()
    hrefs = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    assert hrefs == ["/static/csms/favicon.ico", "/static/csms/favicon.svg"]
    for href, content_type in zip(hrefs, ["image/x-icon", "image/svg+xml"], strict=True):
        answer = client.get(href)
        assert (answer.status_code, answer["Content-Type"]) == (200, content_type)
        assert b"".join(answer.streaming_content)[:4] in (b"\x00\x00\x01\x00", b"<svg")

    answer = client.get("/favicon.ico", follow=True)  # what browsers ask for without a <link>
    assert answer.redirect_chain == [("/static/csms/favicon.ico", 302)]
    assert (answer.status_code, answer["Content-Type"]) == (200, "image/x-icon")
