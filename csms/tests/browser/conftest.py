"""Fixtures for driving the admin in a real headless Chromium (Debian's ``chromium``, through
Playwright's sync API) against a real daphne on the test database, with real ``ocpp`` chargers
connected to it from background threads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from ocpp.v16 import call
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from chargepoints.services import charge_point_register
from commands.tests.conftest import V16Charger
from conftest import DaphneServer, ocpp_charger
from csms.staff_groups import OPERATOR, SUPPORT, staff_user_create

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}
PASSWORD = "browser-tests-password"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="session")
def daphne_server(daphne_factory: Callable[..., DaphneServer]) -> DaphneServer:
    """The browser tests' own daphne: the dashboard refreshes every second, so a test can watch it."""
    return daphne_factory(CSMS_ADMIN_DASHBOARD_REFRESH_SECONDS="1")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """One Chromium for the browser tests, closed when they are done.

    Playwright's sync API marks its event loop as running in the main thread while it is
    started, and Django refuses ORM calls under a running loop. The tests and their database
    fixtures are plain synchronous code, so the ORM's guard is lifted for exactly as long as
    Playwright runs; async tests elsewhere in the session never see that loop.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    expect.set_options(timeout=TIMEOUT_MS)
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser, daphne: DaphneServer) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server, 1366x768, 10 s timeouts."""
    context = browser.new_context(viewport=VIEWPORT, base_url=daphne.http_url)
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    yield context.new_page()
    context.close()


@pytest.fixture
def operator(daphne: DaphneServer) -> User:
    return staff_user_create(username="olivia", password=PASSWORD, group=OPERATOR)


@pytest.fixture
def support(daphne: DaphneServer) -> User:
    return staff_user_create(username="sam", password=PASSWORD, group=SUPPORT)


def login(page: Page, user: User) -> None:
    """Sign in through the admin's login form, as a person would."""
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def assert_styled(page: Page) -> None:
    """The admin's stylesheets were served (by whitenoise): the header has its colour."""
    background = page.locator("#header").evaluate("header => getComputedStyle(header).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)", "transparent"), background


# Boxes whose content is cut at their right edge (a changelist's results, a dashboard panel) and
# boxes that end past the window's right edge. Screen-reader-only text, ellipsis truncation (with
# the whole text in a title) and text fields (which scroll what is typed) are cut on purpose.
CUT_OFF_JS = """() => {
  const name = (el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + [...el.classList].map((c) => "." + c).join("");
  const found = [];
  for (const el of document.body.querySelectorAll("*")) {
    if (el.closest(".visually-hidden") || el.matches("input, textarea, select")) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    const clips = ["auto", "scroll", "hidden", "clip"].includes(style.overflowX);
    if (clips && style.textOverflow !== "ellipsis" && el.scrollWidth > el.clientWidth + 1)
      found.push(`${name(el)} shows ${el.clientWidth}px of ${el.scrollWidth}px`);
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > window.innerWidth + 1)
      found.push(`${name(el)} ends at ${Math.round(box.right)}px`);
  }
  return found;
}"""


def assert_fits(page: Page) -> None:
    """The page is laid out for the window: it does not scroll sideways, no box in it hides
    columns behind a horizontal scroll bar, and nothing ends past the right edge."""
    page_width = page.evaluate("document.documentElement.scrollWidth")
    assert page_width <= VIEWPORT["width"], f"{page.url} is {page_width}px wide: something sticks out"
    cut_off = page.evaluate(CUT_OFF_JS)
    assert not cut_off, f"{page.url} at {VIEWPORT['width']}px: {cut_off[:10]}"


@pytest.fixture
def screenshot(tmp_path: Path) -> Callable[..., Path]:
    """Save a full-page PNG to the test's tmp dir; with ``publish``, also to ``CSMS_SCREENSHOTS_DIR``
    when it is set (``docs/screenshots`` regenerates the README's pictures). A page that does not
    fit the viewport's width fails (``assert_fits``): the admin is laid out for a laptop screen."""

    def save(page: Page, name: str, *, publish: bool = False) -> Path:
        assert_fits(page)
        path = tmp_path / name
        page.screenshot(path=str(path), full_page=True)
        published = os.environ.get("CSMS_SCREENSHOTS_DIR")
        if publish and published:
            Path(published).mkdir(parents=True, exist_ok=True)
            (Path(published) / name).write_bytes(path.read_bytes())
        return path

    return save


def wait_until(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """Poll a check from synchronous test code until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)
    return result


class BackgroundCharger:
    """A 1.6 ``ocpp`` ChargePoint kept connected from a thread with its own event loop, so that
    synchronous browser tests can click while it answers the CSMS."""

    def __init__(self, server: DaphneServer, charge_point_id: str, client_class: type = V16Charger) -> None:
        self.charge_point_id = charge_point_id
        self._server = server
        self._client_class = client_class
        self._exit_stack = contextlib.AsyncExitStack()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=charge_point_id, daemon=True)
        self._thread.start()
        try:
            self.client: Any = self.run(self._connect())
        except BaseException:
            self._stop_loop()
            raise

    async def _connect(self) -> Any:
        return await self._exit_stack.enter_async_context(
            ocpp_charger(self._server, "1.6", self.charge_point_id, client_class=self._client_class)
        )

    def run(self, coroutine: Any, timeout: float = 15) -> Any:
        """Run a coroutine on the charger's loop (e.g. ``charger.client.call(...)``) and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def call(self, request: Any) -> Any:
        return self.run(self.client.call(request))

    @property
    def received(self) -> list[tuple[str, dict[str, Any]]]:
        """The CSMS's requests the charger answered, as (action, payload)."""
        return list(self.client.received)

    def disconnect(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self.run(self._exit_stack.aclose())
        finally:
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def connect_charger(daphne: DaphneServer) -> Iterator[Callable[..., BackgroundCharger]]:
    """Register a 1.6 charger, connect it and boot it; every charger disconnects after the test."""
    chargers: list[BackgroundCharger] = []

    def connect(
        charge_point_id: str,
        *,
        vendor: str = "Dynamo",
        model: str = "DC-50",
        client_class: type = V16Charger,
        **boot: Any,
    ) -> BackgroundCharger:
        charge_point_register(charge_point_id=charge_point_id, heartbeat_interval=300)
        charger = BackgroundCharger(daphne, charge_point_id, client_class)
        chargers.append(charger)
        answer = charger.call(call.BootNotification(charge_point_vendor=vendor, charge_point_model=model, **boot))
        assert answer.status == "Accepted", answer
        return charger

    yield connect
    for charger in chargers:
        charger.disconnect()
