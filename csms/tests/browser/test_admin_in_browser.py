"""The back office in a real headless Chromium: an operator watches the fleet and resets a real
``ocpp`` charger from its page; a support user sees everything and can send nothing; webhook
subscriptions are made from checkboxes; a session without power readings is charted without a
power axis; every page has the CSMS's icon."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from ocpp.v16 import call
from playwright.sync_api import Page, expect

from chargepoints.models import ChargePoint
from chargepoints.services import charge_point_register
from charging.models import Transaction
from charging.services.authorization import id_tag_save
from commands.models import Command
from csms.tests.browser.conftest import PASSWORD, assert_styled, login
from sites.models import Site, SiteMember
from webhooks.models import WebhookSubscription

DASHBOARD = "#fleet-dashboard"


def online_count(page: Page):
    return page.locator(f'{DASHBOARD} [data-metric="online"] .metric-value')


def charge_point_admin_url(charge_point_id: str, view: str = "change", *args: str) -> str:
    pk = ChargePoint.objects.values_list("pk", flat=True).get(charge_point_id=charge_point_id)
    return reverse(f"admin:chargepoints_chargepoint_{view}", args=[pk, *args])


def test_an_operator_resets_a_connected_charger_from_its_page_and_sees_accepted(
    page, operator, connect_charger, screenshot
):
    charger = connect_charger("DYN-RESET-01")
    login(page, operator)
    assert_styled(page)
    expect(online_count(page)).to_have_text("1")
    screenshot(page, "operator-dashboard.png")

    page.goto("/admin/chargepoints/chargepoint/")
    page.get_by_role("link", name="DYN-RESET-01", exact=True).click()
    expect(page.locator("span.cp-status-badge.online")).to_have_text("Online")
    reset = page.locator('#command-panel form.command-form[data-command="reset"]')
    reset.locator('select[name="type"]').select_option("Soft")
    reset.locator('button[type="submit"]').click()

    expect(page.locator("ul.messagelist li.success")).to_contain_text("Accepted")
    screenshot(page, "reset-accepted.png")
    assert ("Reset", {"type": "Soft"}) in charger.received
    command = Command.objects.get(charge_point_identity="DYN-RESET-01", action="Reset")
    assert (command.state, command.user) == ("accepted", operator)


def test_the_dashboard_counts_a_charger_that_connects_while_it_is_open(page, operator, connect_charger):
    connect_charger("DYN-LIVE-01")
    login(page, operator)
    expect(online_count(page)).to_have_text("1")
    page.evaluate("window.openedOnce = true")

    connect_charger("DYN-LIVE-02")

    expect(online_count(page)).to_have_text("2")
    assert page.evaluate("window.openedOnce") is True, "the page was reloaded instead of refreshed in place"


def test_support_sees_the_fleet_but_has_no_command_panel_and_a_forced_command_is_forbidden(
    page, support, connect_charger
):
    charger = connect_charger("DYN-SUPPORT-01")
    login(page, support)
    expect(online_count(page)).to_have_text("1")

    page.goto(charge_point_admin_url("DYN-SUPPORT-01"))
    expect(page.locator("span.cp-status-badge.online")).to_have_text("Online")
    expect(page.locator("#command-panel")).to_have_count(0)
    page.goto("/admin/chargepoints/ocppmessage/")
    expect(page.locator("#result_list")).to_contain_text("BootNotification")

    csrf_token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forced = page.request.post(
        charge_point_admin_url("DYN-SUPPORT-01", "command", "reset"),
        form={"csrfmiddlewaretoken": csrf_token, "type": "Soft"},
    )
    assert forced.status == 403
    assert "CSRF" not in forced.text(), "refused for its token, not for the user's permissions"
    assert charger.received == []
    assert not Command.objects.exists()


def test_guessing_a_password_ends_on_a_page_that_says_the_sign_in_is_locked(page, operator, screenshot):
    page.goto("/admin/login/?next=/admin/")
    for _ in range(5):
        page.fill("#id_username", operator.username)
        page.fill("#id_password", "not-the-password")
        page.click("input[type=submit]")
    expect(page.locator(".login-locked-out .errornote")).to_have_text(
        f"Too many failed sign-in attempts for {operator.username} from your address."
    )
    expect(page.locator(".login-locked-out")).to_contain_text("locked for 15 minutes")
    assert_styled(page)
    screenshot(page, "admin-sign-in-locked.png")


def test_a_webhook_subscription_is_made_from_checkboxes_and_a_forged_event_name_is_refused(page, daphne, screenshot):
    admin = User.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    login(page, admin)
    page.goto(reverse("admin:webhooks_webhooksubscription_add"))
    page.fill("#id_url", "https://93.184.215.14/dynamo-hooks")
    page.get_by_label("charge_point.offline").check()
    page.get_by_label("transaction.ended").check()
    assert page.locator("textarea[name=events]").count() == 0, "no raw JSON to type"
    screenshot(page, "webhook-subscription-form.png")

    # A name the CSMS never sends, posted anyway (as a script or an old bookmark could).
    page.get_by_label("transaction.ended").evaluate("box => box.value = 'transaction.exploded'")
    page.click("input[name=_save]")
    expect(page.locator(".field-events .errorlist")).to_contain_text("Not an event type: transaction.exploded.")
    assert not WebhookSubscription.objects.exists()
    screenshot(page, "webhook-subscription-refused.png")

    page.get_by_label("transaction.ended").check()
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist li.warning")).to_contain_text("The signing secret, shown only now")
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["charge_point.offline", "transaction.ended"]
    expect(page.locator("#result_list")).to_contain_text("charge_point.offline, transaction.ended")


def test_a_session_without_power_readings_is_charted_without_a_power_axis(page, operator, connect_charger, screenshot):
    id_tag_save(id_tag="TAG-ENERGY", description="A meter that only counts energy")
    charger = connect_charger("DYN-ENERGY-01")
    started_at = timezone.now() - timedelta(minutes=30)
    started = charger.call(
        call.StartTransaction(connector_id=1, id_tag="TAG-ENERGY", meter_start=1000, timestamp=started_at.isoformat())
    )
    for minutes in (10, 20, 30):
        sample = {"value": str(1000 + 400 * minutes), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        at = (started_at + timedelta(minutes=minutes)).isoformat()
        charger.call(
            call.MeterValues(
                connector_id=1,
                transaction_id=started.transaction_id,
                meter_value=[{"timestamp": at, "sampled_value": [sample]}],
            )
        )
    login(page, operator)
    page.goto(reverse("admin:charging_transaction_change", args=[Transaction.objects.get().pk]))

    chart = page.locator("svg.meter-chart")
    expect(chart.locator(".meter-energy")).to_have_count(1)
    expect(chart.locator("text.meter-power-missing")).to_have_text("No power data")
    expect(chart.get_by_text("Power (", exact=False)).to_have_count(0)
    time_labels = chart.locator("text.meter-time").all_text_contents()
    assert len(time_labels) >= 2 and len(set(time_labels)) == len(time_labels), time_labels
    screenshot(page, "transaction-without-power.png")


def test_every_page_shows_the_csms_icon_which_the_server_serves(page, operator):
    page.goto("/admin/login/")
    icons = page.locator("link[rel=icon]")
    expect(icons).to_have_count(2)
    login(page, operator)
    expect(page.locator("link[rel=icon]")).to_have_count(2)
    for href in [*icons.evaluate_all("links => links.map(link => link.href)"), "/favicon.ico"]:
        answer = page.request.get(href)  # /favicon.ico redirects to the static file
        assert answer.status == 200, href
        assert answer.headers["content-type"].startswith("image/"), (href, answer.headers["content-type"])


@pytest.mark.parametrize("role", ["operator", "superuser"])
def test_a_site_s_page_with_its_members_fits_the_screen(page, operator, screenshot, role):
    """The members' inline ran past the window (1631 px wide at 1366: the phases and the flag were
    text boxes as wide as a name's), so the page scrolled sideways to its Delete column."""
    if role == "superuser":
        operator = User.objects.create_superuser("ada", "ada@example.com", PASSWORD)
    site = Site.objects.create(name="Depot", phases=3, capacity_a=Decimal(63))
    for number, flag in ((1, ""), (2, "SetChargingProfile rejected")):
        charge_point = charge_point_register(charge_point_id=f"DYN-SITE-0{number}", heartbeat_interval=300)
        SiteMember.objects.create(
            site=site,
            charge_point=charge_point,
            phases="L1L2L3",
            smart_charging_flag=flag,
            flagged_at=timezone.now() if flag else None,
        )
    login(page, operator)
    page.goto(reverse("admin:sites_site_change", args=[site.pk]))

    expect(page.locator(".inline-related tbody tr.has_original")).to_have_count(2)
    screenshot(page, f"site-{role}.png")
