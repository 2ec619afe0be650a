"""The back office in a real headless Chromium: an operator watches the fleet and resets a real
``ocpp`` charger from its page; a support user sees everything and can send nothing."""

from __future__ import annotations

from django.urls import reverse
from playwright.sync_api import Page, expect

from chargepoints.models import ChargePoint
from commands.models import Command
from csms.tests.browser.conftest import assert_styled, login

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
