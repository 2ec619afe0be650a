"""Screenshots of the back office with a fleet that looks like a working day: the README's
pictures come from here (``CSMS_SCREENSHOTS_DIR=docs/screenshots``). Every row is made by real
chargers talking OCPP to daphne, the API and a real webhook receiver."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone
from ocpp.v16 import call
from ocpp.v16 import call_result as result16
from playwright.sync_api import Page, expect

from billing.services import tariff_save
from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from charging.services.authorization import id_tag_save
from commands.models import Command, CommandState
from commands.tests.conftest import V16Charger, answering_charger
from conftest import http_request
from csms.tests.browser.conftest import VIEWPORT, BackgroundCharger, assert_styled, login, wait_until
from webhooks.delivery import webhook_deliveries_send
from webhooks.models import DeliveryState, EventType, WebhookDelivery
from webhooks.services import webhook_subscription_create

FLEET_CARD = "04A2B3C4D5E6F7"
# A charger whose faulted connector will not let go of the cable.
StuckLatchCharger = answering_charger(V16Charger, {"UnlockConnector": result16.UnlockConnector(status="UnlockFailed")})


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def status(charger: BackgroundCharger, connector_id: int, state: str, error_code: str = "NoError") -> None:
    charger.call(call.StatusNotification(connector_id=connector_id, error_code=error_code, status=state))


def meter_value(at: datetime, register_wh: float, power_w: float) -> dict:
    return {
        "timestamp": iso(at),
        "sampled_value": [
            {"value": f"{register_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": f"{power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
        ],
    }


def charge(
    charger: BackgroundCharger, connector_id: int, started_at: datetime, minutes: int, meter_start_wh: int
) -> tuple[int, float]:
    """Start a session at ``started_at`` and report the meter every five minutes for ``minutes``,
    with the power tapering like a real battery's; returns (transaction id, last register)."""
    status(charger, connector_id, "Preparing")
    started = charger.call(
        call.StartTransaction(
            connector_id=connector_id, id_tag=FLEET_CARD, meter_start=meter_start_wh, timestamp=iso(started_at)
        )
    )
    status(charger, connector_id, "Charging")
    register = float(meter_start_wh)
    for step in range(1, minutes // 5 + 1):
        power_w = 22_000 * (1 - step / (minutes / 5 + 4)) + 600 * (step % 3)
        register += power_w * 5 / 60
        charger.call(
            call.MeterValues(
                connector_id=connector_id,
                transaction_id=started.transaction_id,
                meter_value=[meter_value(started_at + timedelta(minutes=5 * step), register, power_w)],
            )
        )
    return started.transaction_id, register


def build_fleet(connect_charger, webhook_receiver, api_key, daphne, settings) -> int:
    """Five chargers (three online, one just gone offline, one never seen), a finished session
    with its bill, one in progress, a faulted connector, a command that failed and a webhook
    delivery the receiver refused; returns the finished session's id."""
    now = timezone.now()
    tariff_save(
        name="Standard AC", currency="EUR", price_per_kwh=Decimal("0.39"), session_fee=Decimal("0.50"), is_default=True
    )
    id_tag_save(id_tag=FLEET_CARD, description="Fleet card, van 12")
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    webhook_receiver.status = 410
    webhook_subscription_create(
        url=webhook_receiver.url, events=[EventType.CHARGE_POINT_OFFLINE], description="Billing system"
    )

    main_square = connect_charger(
        "DYN-BER-0001",
        vendor="Dynamo",
        model="AC-22 Duo",
        charge_point_serial_number="D22-0012931",
        firmware_version="3.4.1",
    )
    status(main_square, 1, "Available")
    status(main_square, 2, "Available")
    finished_id, register = charge(main_square, 1, now - timedelta(minutes=100), 60, meter_start_wh=1_204_330)
    main_square.call(
        call.StopTransaction(
            transaction_id=finished_id,
            meter_stop=round(register),
            timestamp=iso(now - timedelta(minutes=40)),
            id_tag=FLEET_CARD,
            reason="EVDisconnected",
        )
    )
    status(main_square, 1, "Finishing")
    status(main_square, 1, "Available")
    charge(main_square, 2, now - timedelta(minutes=25), 20, meter_start_wh=round(register))
    main_square.call(call.Heartbeat())

    depot = connect_charger(
        "DYN-BER-0002", vendor="Dynamo", model="DC-50", firmware_version="2.9.0", client_class=StuckLatchCharger
    )
    status(depot, 1, "Faulted", error_code="GroundFailure")
    status(depot, 2, "Available")
    http_request(
        f"{daphne.http_url}/api/v1/ocpp16/DYN-BER-0002/unlock_connector",
        method="POST",
        api_key=api_key,
        body={"connector_id": 1},
    )
    assert Command.objects.get(action="UnlockConnector").state == CommandState.REJECTED

    harbour = connect_charger("DYN-HAM-0003", vendor="Voltaro", model="Wallbox 11", firmware_version="1.0.7")
    status(harbour, 1, "Available")
    harbour.disconnect()
    charge_point_register(charge_point_id="DYN-MUC-0004", heartbeat_interval=300)
    office = connect_charger("DYN-MUC-0005", vendor="Voltaro", model="Wallbox 22", firmware_version="1.1.0")
    status(office, 1, "Available")

    wait_until(WebhookDelivery.objects.exists)
    webhook_deliveries_send()
    assert WebhookDelivery.objects.filter(state=DeliveryState.FAILED).exists()
    return finished_id


# How Django writes dates in English ("Nov. 30, 2026, 2:05 p.m.", "March 1"): never in the admin.
LOCALE_DATE = re.compile(r"\b(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}\b|\b[ap]\.m\.")
ADMIN_DATETIME = re.compile(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC\b")


def assert_dates_in_one_format(page: Page) -> None:
    text = page.locator("#content").inner_text()
    assert not LOCALE_DATE.search(text), f"{page.url}: {LOCALE_DATE.search(text)}"
    assert ADMIN_DATETIME.search(text), f"{page.url} shows no date and time"


def assert_last_column_visible(page: Page, table: str) -> None:
    """The table's last column is inside the window and inside the box that holds the table."""
    last = page.locator(f"{table} thead th:last-child").bounding_box()
    holder = page.locator(table).evaluate_handle("table => table.parentElement").as_element().bounding_box()  # type: ignore[union-attr]  # a table has a parent
    assert last and holder
    assert last["x"] + last["width"] <= min(VIEWPORT["width"], holder["x"] + holder["width"]) + 1, (last, holder)


def test_screenshots_of_the_back_office_with_a_busy_fleet(
    page, operator, connect_charger, webhook_receiver, api_key, daphne, settings, screenshot
):
    finished_session = build_fleet(connect_charger, webhook_receiver, api_key, daphne, settings)
    login(page, operator)
    assert_styled(page)
    expect(page.locator('#fleet-dashboard [data-metric="online"] .metric-value')).to_have_text("3")
    expect(page.locator("#failed-deliveries")).to_contain_text("charge_point.offline")
    for panel in ("#command-failures", "#failed-deliveries", "#active-transactions", "#recently-offline"):
        assert_last_column_visible(page, f"{panel} table")
    assert_dates_in_one_format(page)
    screenshot(page, "dashboard.png", publish=True)

    # The navigation sidebar is open, as a new user finds it.
    page.goto(reverse("admin:chargepoints_chargepoint_changelist"))
    expect(page.locator("#nav-sidebar")).to_be_visible()
    expect(page.locator("#result_list tbody tr")).to_have_count(5)
    assert_last_column_visible(page, "#result_list")
    assert_dates_in_one_format(page)
    screenshot(page, "charge-points.png", publish=True)

    charge_point = ChargePoint.objects.get(charge_point_id="DYN-BER-0001")
    page.goto(reverse("admin:chargepoints_chargepoint_change", args=[charge_point.pk]))
    trigger = page.locator('#command-panel form.command-form[data-command="trigger_message"]')
    trigger.locator('select[name="requested_message"]').select_option("StatusNotification")
    trigger.locator('button[type="submit"]').click()
    expect(page.locator("ul.messagelist li.success")).to_contain_text("Accepted")
    expect(page.locator("span.cp-status-badge.online")).to_have_text("Online")
    assert_dates_in_one_format(page)
    screenshot(page, "charge-point.png", publish=True)

    page.goto(reverse("admin:charging_transaction_change", args=[finished_session]))
    expect(page.locator("svg.meter-chart")).to_be_visible()
    time_labels = page.locator("svg.meter-chart text.meter-time").all_text_contents()
    assert len(time_labels) >= 2 and len(set(time_labels)) == len(time_labels), time_labels
    assert_dates_in_one_format(page)
    screenshot(page, "transaction.png", publish=True)

    # The message log is wide: the README's picture has the navigation closed, as a user would.
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    calls_of_the_charger = f"?charge_point__id__exact={charge_point.pk}&message_type__exact=2"
    page.goto(reverse("admin:chargepoints_ocppmessage_changelist") + calls_of_the_charger)
    expect(page.locator("#result_list")).to_contain_text("StartTransaction")
    assert_dates_in_one_format(page)
    screenshot(page, "message-log.png", publish=True)
