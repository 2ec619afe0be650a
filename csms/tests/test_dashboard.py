"""The operator dashboard on the admin index: what the fleet is doing now, from real rows."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chargepoints.models import ChargePoint, LifecycleState
from chargepoints.selectors import fleet_summary
from chargepoints.services import (
    charge_point_connect,
    charge_point_disconnect,
    connector_status_set,
)
from charging.selectors import transaction_active_count
from charging.services.meter_ledger import SampledValue, meter_values_record
from charging.services.transaction_start import StartRequest, transaction_start
from commands.models import Command, CommandState
from csms.admin_site import CsmsAdminSite
from webhooks.models import DeliveryState, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/dashboard/"


@pytest.fixture
def ops(client: Client) -> Client:
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def _online(register_charge_point, charge_point_id: str) -> ChargePoint:
    register_charge_point(charge_point_id, ocpp_version="1.6")
    charge_point_connect(charge_point_id=charge_point_id, ocpp_version="1.6", channel_name=f"chan-{charge_point_id}")
    return ChargePoint.objects.get(charge_point_id=charge_point_id)


def _gone_offline(register_charge_point, charge_point_id: str, ago: timedelta = timedelta(0)) -> ChargePoint:
    _online(register_charge_point, charge_point_id)
    charge_point_disconnect(charge_point_id=charge_point_id, channel_name=f"chan-{charge_point_id}")
    ChargePoint.objects.filter(charge_point_id=charge_point_id).update(offline_since=timezone.now() - ago)
    return ChargePoint.objects.get(charge_point_id=charge_point_id)


def _session(charge_point_id: str, *, connector_id: int, id_tag: str, meter_start: int, register: str):
    session = transaction_start(
        StartRequest(
            charge_point_id=charge_point_id,
            ocpp_version="1.6",
            start_key=f"{charge_point_id}-{connector_id}",
            started_at=timezone.now() - timedelta(minutes=25),
            connector_id=connector_id,
            id_tag=id_tag,
            authorize=False,
            meter_start_wh=Decimal(meter_start),
        )
    ).transaction
    meter_values_record(
        charge_point_id=charge_point_id,
        connector_id=connector_id,
        ocpp_transaction_id=str(session.pk),
        samples=[SampledValue(timestamp=timezone.now(), raw_value=register)],
    )
    return session


def _failed_delivery(subscription: WebhookSubscription, event_type: str) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        event_id=uuid.uuid4(),
        event_type=event_type,
        subscription=subscription,
        body="{}",
        state=DeliveryState.FAILED,
        attempts=8,
        last_status_code=500,
        next_attempt_at=timezone.now(),
    )


def _command(
    charge_point: ChargePoint | None, identity: str, action: str, state: str, user: User | None = None
) -> Command:
    return Command.objects.create(
        user=user,
        charge_point=charge_point,
        charge_point_identity=identity,
        ocpp_version="1.6",
        command=action.lower(),
        action=action,
        state=state,
        error_code="InternalError" if state == CommandState.CALL_ERROR else "",
    )


@pytest.fixture
def fleet(register_charge_point) -> dict[str, object]:
    """Two chargers online (one faulted, one charging), three offline, one retired; webhook and command failures."""
    faulted = _online(register_charge_point, "CP-FAULTED")
    connector_status_set(charge_point_id="CP-FAULTED", connector_id=1, status="Faulted", error_code="GroundFailure")
    connector_status_set(charge_point_id="CP-FAULTED", connector_id=2, status="Available", error_code="HighTemperature")
    connector_status_set(charge_point_id="CP-FAULTED", connector_id=3, status="Available", error_code="NoError")
    charging = _online(register_charge_point, "CP-CHARGING")
    connector_status_set(charge_point_id="CP-CHARGING", connector_id=1, status="Charging", error_code="NoError")
    session = _session("CP-CHARGING", connector_id=1, id_tag="TAG-42", meter_start=1000, register="13345.6")
    just_gone = _gone_offline(register_charge_point, "CP-JUST-GONE", ago=timedelta(minutes=5))
    _gone_offline(register_charge_point, "CP-LONG-GONE", ago=timedelta(hours=2))
    register_charge_point("CP-NEVER-SEEN")
    _gone_offline(register_charge_point, "CP-RETIRED", ago=timedelta(minutes=1))
    ChargePoint.objects.filter(charge_point_id="CP-RETIRED").update(lifecycle_state=LifecycleState.DECOMMISSIONED)
    subscription = WebhookSubscription.objects.create(url="https://hooks.example.com/csms", events=["*"], secret="s")
    delivery = _failed_delivery(subscription, "transaction.ended")
    WebhookDelivery.objects.create(
        event_id=uuid.uuid4(), event_type="charge_point.online", subscription=subscription, body="{}",
        state=DeliveryState.DELIVERED, next_attempt_at=timezone.now(),
    )  # fmt: skip
    rejected = _command(faulted, "CP-FAULTED", "Reset", CommandState.REJECTED)
    _command(charging, "CP-CHARGING", "UnlockConnector", CommandState.CALL_ERROR)
    _command(None, "CP-DELETED", "ClearCache", CommandState.NOT_CONNECTED)
    _command(charging, "CP-CHARGING", "TriggerMessage", CommandState.ACCEPTED)
    _command(charging, "CP-CHARGING", "ChangeAvailability", CommandState.PENDING)
    return {
        "session": session,
        "just_gone": just_gone,
        "delivery": delivery,
        "rejected": rejected,
        "charging": charging,
    }


def _panel(html: str, panel_id: str) -> str:
    match = re.search(rf'<div class="panel" id="{panel_id}">(.*?)</div>', html, re.S)
    assert match, panel_id
    return match.group(1)


def _metric(name: str, value: int, label: str) -> str:
    return (
        f'<div class="metric" data-metric="{name}"><span class="metric-value">{value}</span> '
        f'<span class="metric-label">{label}</span></div>'
    )


def test_the_fleet_summary_counts_chargers_in_service_faulted_connectors_and_open_sessions(fleet):
    summary = fleet_summary()

    assert (summary.online, summary.offline) == (2, 3)  # the retired charger is neither
    assert summary.faulted_connectors == 2  # status Faulted, or an error code other than NoError
    assert transaction_active_count() == 1


def test_the_admin_index_shows_the_four_metrics(ops, fleet):
    html = ops.get("/admin/").content.decode()

    assert _metric("online", 2, "online") in html
    assert _metric("offline", 3, "offline") in html
    assert _metric("faulted_connectors", 2, "faulted connectors") in html
    assert _metric("charging_now", 1, "charging now") in html


def test_the_dashboard_lists_chargers_offline_within_the_hour_with_links(ops, fleet):
    panel = _panel(ops.get(DASHBOARD).content.decode(), "recently-offline")

    just_gone = fleet["just_gone"]
    assert f'<a href="/admin/chargepoints/chargepoint/{just_gone.pk}/change/">CP-JUST-GONE</a>' in panel
    assert f'datetime="{just_gone.offline_since.isoformat()}"' in panel
    assert "5\xa0minutes ago" in panel
    for absent in ("CP-LONG-GONE", "CP-NEVER-SEEN", "CP-RETIRED", "CP-CHARGING"):
        assert absent not in panel


def test_the_dashboard_lists_open_sessions_with_energy_so_far(ops, fleet):
    panel = _panel(ops.get(DASHBOARD).content.decode(), "active-transactions")

    session, charging = fleet["session"], fleet["charging"]
    assert f'<a href="/admin/charging/transaction/{session.pk}/change/">#{session.pk}</a>' in panel
    assert f'<a href="/admin/chargepoints/chargepoint/{charging.pk}/change/">CP-CHARGING</a>' in panel
    assert "TAG-42" in panel
    assert "12.35 kWh" in panel  # 13345.6 Wh read, 1000 Wh at the start


def test_the_dashboard_lists_failed_webhook_deliveries_only(ops, fleet):
    panel = _panel(ops.get(DASHBOARD).content.decode(), "failed-deliveries")

    assert f'<a href="/admin/webhooks/webhookdelivery/{fleet["delivery"].pk}/change/">transaction.ended</a>' in panel
    assert "HTTP 500" in panel
    assert "charge_point.online" not in panel


def test_the_dashboard_lists_refused_failed_and_undelivered_commands_latest_first(ops, fleet):
    panel = _panel(ops.get(DASHBOARD).content.decode(), "command-failures")

    rejected = fleet["rejected"]
    assert f'<a href="/admin/commands/command/{rejected.pk}/change/">Reset</a>' in panel
    assert f'<a href="/admin/chargepoints/chargepoint/{rejected.charge_point_id}/change/">CP-FAULTED</a>' in panel
    assert "InternalError" in panel
    assert panel.index("ClearCache") < panel.index("UnlockConnector") < panel.index("Reset")
    assert "CP-DELETED" in panel  # a charger deleted since is named, not linked
    assert "TriggerMessage" not in panel and "ChangeAvailability" not in panel


def test_an_empty_fleet_says_so(ops):
    html = ops.get(DASHBOARD).content.decode()

    assert _metric("online", 0, "online") in html
    assert "No charger went offline in the last hour." in _panel(html, "recently-offline")
    assert "No session is open." in _panel(html, "active-transactions")


def test_the_dashboard_takes_the_same_queries_however_many_rows(ops, fleet, register_charge_point):
    with CaptureQueriesContext(connection) as few:
        assert ops.get(DASHBOARD).status_code == 200
    for n in range(5):
        cp = _gone_offline(register_charge_point, f"CP-MORE-{n}", ago=timedelta(minutes=n))
        _online(register_charge_point, f"CP-BUSY-{n}")
        _session(f"CP-BUSY-{n}", connector_id=1, id_tag=f"T{n}", meter_start=0, register="500")
        _failed_delivery(WebhookSubscription.objects.get(), "charge_point.offline")
        _command(cp, cp.charge_point_id, "Reset", CommandState.TIMEOUT, user=User.objects.get(username="ops"))
    with CaptureQueriesContext(connection) as many:
        assert ops.get(DASHBOARD).status_code == 200

    assert len(many) == len(few) <= 12  # two of them for the webhook backlog panel


def test_the_index_wraps_the_dashboard_in_a_section_that_refreshes_from_the_fragment_url(ops, settings):
    html = ops.get("/admin/").content.decode()
    assert '<section id="fleet-dashboard" data-refresh-seconds="10">' in html
    assert 'const url = "/admin/dashboard/";' in html
    assert '<div id="site-name"><a href="/admin/">Dynamo CSMS</a></div>' in html

    settings.CSMS_ADMIN_DASHBOARD_REFRESH_SECONDS = 3
    assert '<section id="fleet-dashboard" data-refresh-seconds="3">' in ops.get("/admin/").content.decode()


def test_the_fragment_is_the_dashboard_alone(ops):
    response = ops.get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-metric="online"' in html
    assert "<html" not in html and "fleet-dashboard" not in html
    assert "no-cache" in response["Cache-Control"]


def test_the_fragment_needs_a_staff_login(client):
    response = client.get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={DASHBOARD}"

    client.force_login(User.objects.create_user("visitor", password="pw"))  # not staff
    assert client.get(DASHBOARD).status_code == 302


def test_the_admin_site_is_the_csms_site_and_keeps_every_registration():
    assert isinstance(admin.site, CsmsAdminSite)
    assert admin.site.site_header == "Dynamo CSMS"
    assert {"chargepoints", "charging", "commands", "webhooks", "billing", "kernel"} <= {
        model._meta.app_label for model in admin.site._registry
    }


def test_the_dashboard_shows_a_staff_user_only_what_they_may_see(client, fleet):
    """A login that may view chargers only (round 41's probe: open sessions with their id tags, command
    failures with API key names and webhook receivers' URLs, to a user refused those pages)."""
    user = User.objects.create_user("lim", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_chargepoint"))
    client.force_login(user)
    page = client.get("/admin/dashboard/").content.decode()
    assert 'id="recently-offline"' in page and 'data-metric="online"' in page
    for hidden in ('id="active-transactions"', 'id="command-failures"', 'id="failed-deliveries"', "webhook-backlog"):
        assert hidden not in page
    assert 'data-metric="charging_now"' not in page
