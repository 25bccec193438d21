"""The nurse's path in a real browser (Debian's Chromium through Playwright), tablet-sized."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from flapwatch.models import Check
from tests.conftest import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# Without these Chromium keeps trying to reach Google's services on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(app) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _assert_touch_targets(page) -> None:
    """Every control a gloved finger uses is at least 44×44 CSS px (WCAG 2.5.5)."""
    small = page.evaluate(
        """() => [...document.querySelectorAll(
              'button, .button, .segment span, input[type=text], input[type=password],'
              + 'input[type=datetime-local], textarea')]
            .filter(el => el.offsetParent !== null)
            .map(el => [el.textContent.trim() || el.name || el.id, el.getBoundingClientRect()])
            .filter(([_, box]) => box.width < 44 || box.height < 44)
            .map(([name, box]) => `${name}: ${Math.round(box.width)}x${Math.round(box.height)}`)"""
    )
    assert small == []


@pytest.mark.parametrize("viewport", [(768, 1024), (1024, 768)], ids=["portrait", "landscape"])
def test_nurse_logs_in_sees_the_board_and_records_a_check_on_a_tablet(
    chromium, live_server, make, session, viewport, backend
):
    nurse = make.user("nurse", "PLAST-W3")
    overdue = make.reconstruction(make.patient(bed="4", name="Dana Overdue"), hours_ago=6)
    make.check(overdue, minutes_ago=100)
    fresh = make.reconstruction(make.patient(bed="7", name="Eli Fresh"), hours_ago=2)
    make.check(fresh, minutes_ago=5)

    width, height = viewport
    context = chromium.new_context(viewport={"width": width, "height": height}, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(f"{live_server}/login")
    page.fill("#username", nurse.username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")

    page.wait_for_url("**/units/PLAST-W3/board")
    cards = page.locator(".flap-card")
    assert cards.count() == 2
    assert "Dana Overdue" in cards.nth(0).inner_text()  # overdue first
    assert "Overdue" in cards.nth(0).locator(".badge").inner_text()
    _assert_touch_targets(page)
    _shot(page, f"board-{width}x{height}-{backend}")

    cards.nth(0).get_by_role("link", name="Record check").click()
    page.wait_for_url(f"**/reconstructions/{overdue.id}/checks/new")
    _assert_touch_targets(page)
    page.get_by_role("group", name="Colour").get_by_label("Pink", exact=True).tap()
    page.fill("#flap_temperature_c", "45")  # a slip of the finger
    page.fill("#control_temperature_c", "35.1")
    page.get_by_role("group", name="Capillary refill").get_by_label("Normal (1–3 s)").tap()
    page.get_by_role("group", name="Doppler arterial").get_by_label("Present").tap()
    page.get_by_role("button", name="Save check").click()

    error = page.locator("#flap_temperature_c-error")
    assert "between 20.0 and 43.0 °C" in error.inner_text()
    assert page.input_value("#control_temperature_c") == "35.1"
    assert page.get_by_role("group", name="Colour").get_by_label("Pink").is_checked()
    _shot(page, f"check-form-error-{width}x{height}-{backend}")

    page.fill("#flap_temperature_c", "34.4")
    page.get_by_role("button", name="Save check").click()
    page.wait_for_url("**/units/PLAST-W3/board")
    assert "Check saved for Dana Overdue" in page.locator(".flash").inner_text()
    assert "Next check due at" in page.locator(".flash").inner_text()
    _shot(page, f"board-after-save-{width}x{height}-{backend}")
    context.close()

    session.expire_all()
    saved = session.scalars(
        select(Check).where(Check.reconstruction_id == overdue.id).order_by(Check.taken_at.desc())
    ).first()
    assert (saved.colour, saved.flap_temperature_c, saved.control_temperature_c) == (
        "pink",
        34.4,
        35.1,
    )


def test_chromium_is_debians(chromium):
    assert shutil.which("chromium") == CHROMIUM
