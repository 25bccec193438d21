"""The nurse's path in a real browser (Debian's Chromium through Playwright), tablet-sized."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

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


SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def _shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _documented(page, name: str, element=None) -> None:
    """A screenshot shown in the README (docs/screenshots), as the device shows the page (or
    just `element` of it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function(
        """() => [...document.images]
            .filter(image => image.getBoundingClientRect().top < innerHeight)
            .every(image => image.complete && image.naturalWidth > 0)"""
    )
    (element or page).screenshot(path=str(SCREENSHOTS / f"{name}.png"))


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
    page.get_by_role("button", name="Log in").click()

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


def _logged_in_page(
    chromium, live_server, username, viewport=(768, 1024), clock=True, password=PASSWORD
):
    width, height = viewport
    context = chromium.new_context(viewport={"width": width, "height": height}, has_touch=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    if clock:
        page.clock.install()
    page.goto(f"{live_server}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.get_by_role("button", name="Log in").click()
    # Logged in once the answer has set the session cookie: a page opened before then (a busy
    # machine) would be sent back to the log-in.
    page.wait_for_url(lambda url: "/login" not in url, wait_until="commit", timeout=30_000)
    return context, page


def test_an_unused_tablet_warns_then_logs_off_and_keeps_nothing_on_screen(
    chromium, live_server, make
):
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="4", name="Dana Private"), hours_ago=6)
    context, page = _logged_in_page(chromium, live_server, nurse.username)
    page.wait_for_url("**/units/PLAST-W3/board")
    page.goto(f"{live_server}/reconstructions/{flap.id}")  # left open on a flap's record

    page.clock.fast_forward("08:30")  # 8 min 30 s without a tap
    assert not page.locator("#idle-warning").is_visible()
    page.clock.fast_forward("01:00")
    warning = page.get_by_role("dialog", name="Still there?")
    assert warning.is_visible()
    assert "logged off in" in warning.inner_text()
    _shot(page, "idle-warning")
    warning.get_by_role("button", name="Stay logged in").click()
    assert not warning.is_visible()

    page.clock.fast_forward("10:05")
    page.wait_for_url("**/login")
    assert "logged off after 10 minutes without use" in page.locator(".flash").inner_text()
    assert "Dana Private" not in page.content()
    page.go_back()
    page.wait_for_load_state()
    assert "Dana Private" not in page.content()  # not from the browser's cache either
    context.close()


def test_answers_that_differ_from_the_previous_check_are_marked_as_they_are_tapped(
    chromium, live_server, make
):
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="2"), hours_ago=4)
    make.check(flap, minutes_ago=55, colour="pink", flap_temperature_c=34.5)
    context, page = _logged_in_page(chromium, live_server, nurse.username)
    page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")

    colour = page.get_by_role("group", name="Colour")
    assert not colour.get_by_label("Pink", exact=True).is_checked()  # never copied forward
    colour.get_by_label("Pink", exact=True).tap()
    assert "is-changed" not in (colour.get_attribute("class") or "")
    colour.get_by_label("Dusky", exact=True).tap()
    assert "is-changed" in colour.get_attribute("class")
    assert "last: Pink" in colour.inner_text() and "changed" in colour.inner_text()
    page.fill("#flap_temperature_c", "34.5")
    assert page.locator("#flap_temperature_c-error").count() == 0
    temperature = page.locator(".number-field", has=page.locator("#flap_temperature_c"))
    assert "is-changed" not in temperature.get_attribute("class")
    page.fill("#flap_temperature_c", "32.9")
    assert "is-changed" in temperature.get_attribute("class")
    _shot(page, "check-form-changes")
    context.close()


def _axe_problems(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{page.url}: {violation['id']} ({violation['impact']}) at "
        f"{[node['target'] for node in violation['nodes']][:3]}"
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("theme", ["day", "night"])
def test_every_main_page_passes_axe_without_serious_or_critical_violations(
    chromium, live_server, make, session, theme
):
    from flapwatch.models import Escalation

    flap = make.reconstruction(make.patient(bed="3", name="Ada Axe"), hours_ago=6)
    make.check(flap, minutes_ago=90, colour="pink", flap_temperature_c=34.2)
    flagged = make.check(flap, minutes_ago=10, colour="dusky", capillary_refill="brisk")
    escalation = session.scalar(select(Escalation.id))
    unit = make.unit()
    pages = {
        "nurse": [
            "/units/PLAST-W3/board",
            f"/reconstructions/{flap.id}",
            f"/reconstructions/{flap.id}/checks/new",
            f"/checks/{flagged.id}/flagged",
            f"/checks/{flagged.id}/history",
            "/escalations",
            f"/escalations/{escalation}",
            "/units/PLAST-W3/review",
        ],
        "unit_admin": [
            f"/admin/units/{unit.id}/rules/",
            f"/admin/units/{unit.id}/rules/edit",
            "/admin",
            "/admin/units",
            f"/admin/units/{unit.id}/edit",
            "/admin/staff",
            "/admin/patients",
        ],
        "auditor": ["/exports", "/compliance"],
    }
    problems: list[str] = []
    for role, urls in pages.items():
        user = make.user(role, *([] if role == "auditor" else ["PLAST-W3"]))
        context = chromium.new_context(viewport={"width": 1024, "height": 768})
        context.add_cookies([{"name": "theme", "value": theme, "url": live_server}])
        page = context.new_page()
        page.goto(f"{live_server}/login")
        problems += _axe_problems(page)
        page.fill("#username", user.username)
        page.fill("#password", PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_load_state()
        for url in urls:
            response = page.goto(live_server + url)
            assert response.status == 200, url
            problems += _axe_problems(page)
        context.close()
    assert problems == []


NORMAL_ANSWERS = {
    "Colour": "Pink",
    "Capillary refill": "Normal (1–3 s)",
    "Doppler arterial": "Present",
    "Doppler venous": "Present",
    "Turgor": "Soft",
    "Pinprick": "Bright red",
}
TYPED = {"#flap_temperature_c": "34.7", "#control_temperature_c": "35.4"}
COUNT_TAPS = """() => {
    window.__taps = 0;
    document.addEventListener("touchstart", () => { window.__taps += 1; }, true);
}"""


@pytest.mark.parametrize("viewport", [(768, 1024), (1024, 768)], ids=["portrait", "landscape"])
def test_the_ward_path_from_a_normal_check_to_a_published_rule(
    chromium, live_server, make, session, viewport
):
    from flapwatch.models import Escalation, RuleSetVersion

    nurse = make.user("nurse", "PLAST-W3", username="g.mensah")
    surgeon = make.user("surgeon", "PLAST-W3", username="r.okafor")
    coordinator = make.user("unit_admin", "PLAST-W3", username="coordinator")
    flap = make.reconstruction(make.patient(bed="5", name="Mary Path"), hours_ago=8)
    for hour, warmth in enumerate((33.4, 33.6, 33.9, 34.1, 34.2, 34.4), start=1):
        make.check(flap, taken_at=flap.surgery_end_at + timedelta(hours=hour), colour="pink",
                   flap_temperature_c=warmth, control_temperature_c=35.3,
                   capillary_refill="normal", doppler_arterial="present",
                   doppler_venous="present")  # fmt: skip
    make.check(flap, minutes_ago=62, colour="pink", flap_temperature_c=34.6,
               control_temperature_c=35.4, capillary_refill="normal", doppler_arterial="present",
               doppler_venous="present", turgor="soft", pinprick="bright_red")  # fmt: skip
    other = make.reconstruction(make.patient(bed="9", name="Noel Steady"), hours_ago=30)
    make.check(other, minutes_ago=20, colour="pink", doppler_arterial="present")

    # Screenshots for the README in portrait, as a tablet on its stand shows the pages.
    documented = _documented if viewport == (768, 1024) else (lambda page, name: None)

    # The nurse: the board, then a normal check, one tap per assessment and Save.
    context, page = _logged_in_page(chromium, live_server, nurse.username, viewport, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")
    documented(page, "board")
    page.locator(".flap-card", has_text="Mary Path").get_by_role("link", name="Record check").tap()
    page.wait_for_url(f"**/reconstructions/{flap.id}/checks/new")
    page.evaluate(COUNT_TAPS)
    for group, answer in NORMAL_ANSWERS.items():
        page.get_by_role("group", name=group).get_by_label(answer, exact=True).tap()
    for field, value in TYPED.items():
        page.locator(field).tap()
        page.keyboard.type(value)
    taps = page.evaluate("window.__taps")
    documented(page, "check-form")
    page.get_by_role("button", name="Save check").tap()
    taps += 1
    assert taps == len(NORMAL_ANSWERS) + len(TYPED) + 1  # one per assessment, and Save
    page.wait_for_url("**/units/PLAST-W3/board")

    # A deteriorating check: the nurse is told at once what to do.
    page.locator(".flap-card", has_text="Mary Path").get_by_role("link", name="Record check").tap()
    page.get_by_role("group", name="Colour").get_by_label("Dusky", exact=True).tap()
    page.get_by_role("group", name="Capillary refill").get_by_label("Brisk (<1 s)").tap()
    page.get_by_role("button", name="Save check").tap()
    page.wait_for_url("**/checks/*/flagged")
    alert = page.get_by_role("alert")
    assert "Call the on-call plastic surgery registrar now" in alert.inner_text()
    documented(page, "escalation-instruction")
    context.close()

    # The surgeon acknowledges the escalation with a decision.
    escalation = session.scalars(select(Escalation)).one()
    context, page = _logged_in_page(chromium, live_server, surgeon.username, viewport, clock=False)
    page.goto(f"{live_server}/escalations/{escalation.id}")
    page.get_by_role("group", name="Outcome").get_by_label("Observe", exact=True).tap()
    page.get_by_text("Add a note").tap()
    page.fill("textarea", "Seen: venous congestion improving on elevation. Recheck in 30 min.")
    documented(page, "escalation")
    with page.expect_navigation():
        page.get_by_role("button", name="Acknowledge").tap()
    session.rollback()  # end the test's own read, to see what the app wrote since
    assert session.get(Escalation, escalation.id).acknowledged_by_id == surgeon.id
    page.goto(f"{live_server}/reconstructions/{flap.id}")
    page.locator("figure.trend-chart img").scroll_into_view_if_needed()
    documented(page, "chart")
    page.goto(f"{live_server}/units/PLAST-W3/review")
    documented(page, "review")
    context.close()

    # The coordinator edits a rule's instruction and publishes the new version.
    unit = make.unit()
    context, page = _logged_in_page(
        chromium, live_server, coordinator.username, viewport, clock=False
    )
    page.goto(f"{live_server}/admin/units/{unit.id}/rules/edit")
    action = page.locator("textarea[name$='-action']").first
    action.fill("Call the on-call plastic surgery registrar now (bleep 4321) and stay.")
    page.fill("textarea[name='note']", "Registrar bleep number changed")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish version 2").tap()
    context.close()
    session.rollback()
    published = session.scalars(
        select(RuleSetVersion).where(RuleSetVersion.unit_id == unit.id, RuleSetVersion.version == 2)
    ).one()
    assert "bleep 4321" in published.definition["rules"][0]["action"]


def _board_kept_by_the_service_worker(chromium, live_server, username):
    """A nurse's tablet at the board, once its service worker looks after the pages."""
    context, page = _logged_in_page(chromium, live_server, username, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")
    # Once the worker is active, a page loaded through it is its for sure (a page that loaded
    # while it was still installing is left to its claim, which a busy machine can lose).
    page.evaluate("() => navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # the board, now kept by the service worker for opening offline
    page.wait_for_function("() => navigator.serviceWorker.controller !== null")
    return context, page


def test_a_check_saved_without_network_is_kept_then_sent_exactly_once(
    chromium, live_server, make, session
):
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="6", name="Olive Offline"), hours_ago=5)
    make.check(flap, minutes_ago=70)
    context, page = _board_kept_by_the_service_worker(chromium, live_server, nurse.username)
    page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")
    page.get_by_role("group", name="Colour").get_by_label("Pink", exact=True).tap()
    page.get_by_role("group", name="Doppler arterial").get_by_label("Present").tap()

    context.set_offline(True)
    page.get_by_role("button", name="Save check").tap()
    page.wait_for_url("**/units/PLAST-W3/board?kept=1")
    banner = page.locator("#unsent-checks")
    banner.wait_for(state="visible")
    assert "saved on this tablet — not yet sent" in banner.inner_text()
    assert "Olive Offline" in banner.inner_text()
    _documented(page, "offline-kept")
    session.rollback()
    assert (
        session.scalars(select(Check).where(Check.reconstruction_id == flap.id)).all().__len__()
        == 1
    )

    context.set_offline(False)
    page.wait_for_function(  # on the browser's "online" event; a busy machine is slow to fire it
        "() => document.querySelector('#unsent-checks').textContent.includes('was sent')",
        timeout=60_000,  # the suite runs a file on each core: Chromium shares them with tests
    )
    page.reload()
    page.wait_for_load_state()
    context.close()
    session.rollback()
    checks = session.scalars(select(Check).where(Check.reconstruction_id == flap.id)).all()
    assert len(checks) == 2


def test_a_check_the_server_cannot_store_yet_is_kept_on_the_tablet_until_it_can(
    chromium, live_server, make, session
):
    # The server answers but cannot save (its database down: 503): the check must stay on
    # the tablet through every retry that meets the same answer, then be stored once.
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="7", name="Una Unavailable"), hours_ago=5)
    make.check(flap, minutes_ago=70)
    context, page = _board_kept_by_the_service_worker(chromium, live_server, nurse.username)

    def unavailable(route):
        if route.request.method == "POST":
            route.fulfill(status=503, body="database unavailable", headers={"Retry-After": "30"})
        else:
            route.continue_()

    context.route("**/checks/new", unavailable)
    page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")
    page.get_by_role("group", name="Colour").get_by_label("Pink", exact=True).tap()
    page.get_by_role("group", name="Doppler arterial").get_by_label("Present").tap()
    page.get_by_role("button", name="Save check").tap()
    page.wait_for_url("**/units/PLAST-W3/board?kept=1")
    banner = page.locator("#unsent-checks")
    banner.wait_for(state="visible")
    assert "Una Unavailable" in banner.inner_text()

    page.goto(f"{live_server}/units/PLAST-W3/board")  # a retry, still answered 503
    page.wait_for_timeout(1500)
    assert "Una Unavailable" in page.locator("#unsent-checks").inner_text()
    session.rollback()
    assert len(session.scalars(select(Check).where(Check.reconstruction_id == flap.id)).all()) == 1

    context.unroute("**/checks/new", unavailable)
    page.goto(f"{live_server}/units/PLAST-W3/board")
    page.wait_for_function(
        "() => document.querySelector('#unsent-checks').textContent.includes('was sent')"
    )
    context.close()
    session.rollback()
    assert len(session.scalars(select(Check).where(Check.reconstruction_id == flap.id)).all()) == 2


PHONE = (390, 844)
TAPPABLE = "a, button, input, select, summary, [role=button]"


def _demo_ward(app, session, chromium, live_server, username, viewport):
    """The demo ward (`flapwatch demo`), a user of it logged in on a device of that size."""
    from flapwatch.demo import DEMO_PASSWORD, load_demo

    with app.app_context():  # password hashing reads the app's argon2 settings
        load_demo(session)
    session.commit()
    return _logged_in_page(
        chromium, live_server, username, viewport, clock=False, password=DEMO_PASSWORD
    )


def test_a_surgeons_phone_opens_an_escalation_with_all_it_takes_to_answer_it(
    app, chromium, live_server, session
):
    from flapwatch.models import Escalation, Patient, Reconstruction

    context, page = _demo_ward(app, session, chromium, live_server, "surgeon", PHONE)
    page.wait_for_load_state()
    red = session.scalars(
        select(Escalation)
        .where(Escalation.severity == "red", Escalation.closed_at.is_(None))
        .order_by(Escalation.id)
    ).first()
    patient = session.get(Reconstruction, red.reconstruction_id).patient
    assert isinstance(patient, Patient)
    page.goto(f"{live_server}/escalations/{red.id}")

    head = page.locator(".escalation-head")
    first_screen = {
        "patient": head.get_by_role("heading", name=patient.name),
        "bed": head.get_by_text(f"bed {patient.bed}"),
        "severity": head.locator(".severity"),
        "reasons": head.locator(".escalation-reasons"),
        "paged": head.locator(".paged-list"),
        "coming": head.locator(".attend-answer").get_by_role("button", name="10 min"),
        "acknowledge": head.locator(".answer-actions").get_by_role("button", name="Acknowledge"),
    }
    _documented(page, "phone-escalation")
    below = {}
    for what, locator in first_screen.items():
        box = locator.first.bounding_box()
        assert locator.first.is_visible(), what
        if box["y"] + box["height"] > PHONE[1]:
            below[what] = round(box["y"] + box["height"])
    assert below == {}, f"below the fold of a {PHONE[0]}×{PHONE[1]} phone: {below}"
    assert "Registrar on call" in first_screen["paged"].inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]  # no sideways

    chart = page.locator("figure.trend-chart img")
    chart.scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('figure.trend-chart img').complete")
    assert "size=phone" in chart.evaluate("image => image.currentSrc")
    assert chart.evaluate("image => image.naturalWidth") == 800
    _documented(page, "phone-chart", chart)
    assert _axe_problems(page) == []
    context.close()


def test_the_flap_page_on_a_phone_loads_the_phone_chart_and_a_desk_the_full_one(
    chromium, live_server, make
):
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="6", name="Wyn Width"), hours_ago=5)
    make.check(flap, minutes_ago=30, colour="pink", flap_temperature_c=34.1)
    for viewport, size in ((PHONE, "size=phone"), ((1366, 768), "chart.png?v=")):
        context, page = _logged_in_page(chromium, live_server, nurse.username, viewport)
        page.wait_for_url("**/units/PLAST-W3/board")
        page.goto(f"{live_server}/reconstructions/{flap.id}")
        chart = page.locator("figure.trend-chart img")
        chart.scroll_into_view_if_needed()
        page.wait_for_function("() => document.querySelector('figure.trend-chart img').complete")
        assert size in chart.evaluate("image => image.currentSrc"), viewport
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport[0]
        context.close()


def test_every_tappable_thing_on_the_ward_board_takes_a_finger_on_a_portrait_tablet(
    app, chromium, live_server, session
):
    context, page = _demo_ward(app, session, chromium, live_server, "nurse", (768, 1024))
    page.wait_for_url("**/units/DEMO/board")
    assert page.locator(".flap-card.escalated").count() >= 1  # escalation links on cards too

    # The skip link stands off-screen until a keyboard focuses it: no finger reaches it.
    small = page.evaluate(
        """selector => [...document.querySelectorAll(selector)]
            .filter(el => el.checkVisibility())
            .map(el => [el, el.getBoundingClientRect()])
            .filter(([_, box]) => box.right > 0 && box.bottom > 0)
            .filter(([_, box]) => box.width < 44 || box.height < 44)
            .map(([el, box]) => el.tagName.toLowerCase()
                + ` "${el.textContent.trim().replace(/\\s+/g, " ")}"`
                + ` ${Math.round(box.width)}×${Math.round(box.height)}`)""",
        TAPPABLE,
    )
    assert small == [], "smaller than 44×44 px: " + "; ".join(small)
    context.close()


def test_a_push_to_the_phone_shows_a_notification_that_opens_the_escalation(
    app, chromium, live_server, make
):
    """The service worker's side of Web Push: Chromium's own push message (as its push service
    would deliver one) is shown as a notification, and the queue page offers the switch."""
    import json

    from flapwatch.services.channels import make_vapid_keys

    public, private = make_vapid_keys()
    app.config.update(VAPID_PUBLIC_KEY=public, VAPID_PRIVATE_KEY=private)
    surgeon = make.user("surgeon", "PLAST-W3")
    context, page = _logged_in_page(chromium, live_server, surgeon.username, PHONE, clock=False)
    context.grant_permissions(["notifications"], origin=live_server)
    cdp = context.new_cdp_session(page)
    registrations: list[str] = []
    cdp.on(
        "ServiceWorker.workerRegistrationUpdated",
        lambda event: registrations.extend(r["registrationId"] for r in event["registrations"]),
    )
    cdp.send("ServiceWorker.enable")
    page.goto(f"{live_server}/escalations")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    switch = page.locator("[data-push-key]")
    switch.wait_for(state="visible")
    assert switch.get_attribute("data-push-key") == public
    assert registrations, "the service worker never registered"

    notification = {
        "title": "RED escalation · PLAST-W3 bed 12",
        "body": "Level 2: Registrar on call paged.",
        "url": "/escalations/17",
        "tag": "escalation-17",
    }
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {
            "origin": live_server,
            "registrationId": registrations[-1],
            "data": json.dumps(notification),
        },
    )
    page.wait_for_function(
        "() => navigator.serviceWorker.ready.then(r => r.getNotifications())"
        ".then(shown => shown.length > 0)"
    )
    shown = page.evaluate(
        "navigator.serviceWorker.ready.then(r => r.getNotifications())"
        ".then(all => all.map(n => [n.title, n.body, n.tag, n.data.url]))"
    )
    assert shown == [
        [notification["title"], notification["body"], "escalation-17", "/escalations/17"]
    ]
    context.close()


def test_a_nurses_red_check_reaches_the_registrars_mail_and_phone_and_she_says_she_is_coming(
    app, chromium, live_server, make, session
):
    """The loop on real servers: the nurse saves a worrying check on the tablet; the chain's
    first step mails the registrar (aiosmtpd) and notifies her phone (a push service that
    checks the VAPID signature and decrypts); the link opens the escalation on her phone, she
    taps "20 min", and the nurse's board says she is coming."""
    from flapwatch.db import EXTENSION_KEY
    from flapwatch.services import SYSTEM
    from flapwatch.services.chains import publish_chains, publish_contacts
    from flapwatch.services.channels import MailSettings, PushSettings, make_vapid_keys
    from flapwatch.services.notifications import DeliveryPolicy, deliver_due
    from flapwatch.services.push import subscribe
    from tests.servers import MailServer, PushService

    public, private = make_vapid_keys()
    vapid = PushSettings(public, private, "mailto:it@hospital.example.org")
    relay, push_service = MailServer(), PushService(public)
    try:
        nurse = make.user("nurse", "PLAST-W3")
        registrar = make.user("surgeon", "PLAST-W3")
        phone = push_service.new_phone()
        subscribe(session, make.actor(registrar), phone.endpoint, **phone.keys, allow_http=True)
        channels = [
            {"kind": "email", "address": "registrar@hospital.example.org"},
            {"kind": "push", "user": registrar.username},
        ]
        publish_contacts(
            session,
            SYSTEM,
            "PLAST-W3",
            [
                {"name": "Registrar on call", "channels": channels},
                {"name": "Consultant on call"},
                {"name": "Nurse in charge"},
            ],
            "Mail and phone",
        )
        step = {"after_minutes": 0, "notify": "Registrar on call"}
        publish_chains(session, SYSTEM, "PLAST-W3", {"red": [step], "amber": [step]}, "At once")
        flap = make.reconstruction(make.patient(bed="9", name="Rhian Loop"), hours_ago=6)
        session.commit()

        context, page = _logged_in_page(chromium, live_server, nurse.username, clock=False)
        page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")
        page.get_by_role("group", name="Colour").get_by_label("Dusky", exact=True).tap()
        page.get_by_role("group", name="Capillary refill").get_by_label("Brisk (<1 s)").tap()
        page.get_by_role("button", name="Save check").click()
        page.wait_for_load_state()
        assert "RED" in page.locator("body").inner_text()

        sent = deliver_due(
            app.extensions[EXTENSION_KEY],
            policy=DeliveryPolicy(timeout_s=5.0),
            mail=MailSettings("127.0.0.1", relay.port, base_url=live_server),
            push=vapid,
        )
        assert sent == 2
        (mail,) = relay.mails
        assert "Rhian" not in mail.message["Subject"] + mail.message.get_content()
        (pushed,) = push_service.pushed
        link = pushed.notification["url"]
        assert f"{live_server}{link}" in mail.message.get_content()

        phone_context, phone_page = _logged_in_page(
            chromium, live_server, registrar.username, PHONE, clock=False
        )
        phone_page.goto(f"{live_server}{link}")
        assert "Rhian Loop" in phone_page.locator("h1").inner_text()
        phone_page.get_by_role("button", name="20 min").tap()
        phone_page.wait_for_load_state()
        assert "The ward is told you are coming" in phone_page.locator(".flash").inner_text()
        phone_context.close()

        page.goto(f"{live_server}/units/PLAST-W3/board")
        card = page.locator(".flap-card", has_text="Rhian Loop")
        assert f"Coming: {registrar.display_name}, expected" in card.inner_text()
        context.close()
    finally:
        relay.close()
        push_service.close()


def test_a_nurse_pauses_a_flap_for_imaging_resumes_it_and_records_a_check_not_done(
    chromium, live_server, make, session
):
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="5", name="Fay Imaging"), hours_ago=6)
    make.check(flap, minutes_ago=20)
    context, page = _logged_in_page(chromium, live_server, nurse.username, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")
    card = page.locator(".flap-card", has_text="Fay Imaging")

    card.get_by_role("link", name="Fay Imaging", exact=True).click()
    page.get_by_role("link", name="Pause monitoring").click()
    page.wait_for_url(f"**/reconstructions/{flap.id}/pause")
    page.wait_for_load_state()
    page.get_by_role("group", name="Why is monitoring paused?").get_by_label("Imaging").tap()
    page.get_by_role("group", name="Expected back in").get_by_label("1 h").tap()
    _assert_touch_targets(page)
    _shot(page, "pause-form-768")
    page.get_by_role("button", name="Pause monitoring").click()
    page.wait_for_url("**/units/PLAST-W3/board")
    assert "state-paused" in (card.get_attribute("class") or "")
    assert "Paused — imaging since" in card.inner_text()
    assert "expected back" in card.inner_text()
    _assert_touch_targets(page)
    _shot(page, "board-paused-768")

    card.get_by_role("button", name="Resume").click()
    page.wait_for_url("**/units/PLAST-W3/board")
    assert "resumed: the next check is due now" in page.inner_text("body")
    assert "Paused" not in card.inner_text()
    assert "state-due" in (card.get_attribute("class") or "")

    card.get_by_role("link", name="Not done").click()  # one tap
    page.wait_for_url(f"**/reconstructions/{flap.id}/not-done")
    page.wait_for_load_state()
    _assert_touch_targets(page)
    _shot(page, "not-done-768")
    page.get_by_role("button", name="Patient refused").click()  # and the reason
    page.wait_for_url("**/units/PLAST-W3/board")
    assert "Not done" in card.inner_text() and "patient refused" in card.inner_text()
    assert "The next check is due in 30 min" in page.inner_text("body")
    context.close()


def test_a_surgeon_on_a_phone_sets_a_flap_s_schedule_and_the_nurse_s_board_shows_it(
    chromium, live_server, make, session
):
    surgeon = make.user("surgeon", "PLAST-W3")
    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="2", name="Gil Congested"), hours_ago=6)
    make.check(flap, minutes_ago=20)
    context, page = _logged_in_page(chromium, live_server, surgeon.username, PHONE, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")
    page.goto(f"{live_server}/reconstructions/{flap.id}")
    page.get_by_role("link", name="Set this flap's schedule").click()
    page.wait_for_url(f"**/reconstructions/{flap.id}/schedule")
    page.wait_for_load_state()
    page.get_by_role("group", name="Checks every").get_by_label("15 min").tap()
    hours = page.get_by_role("group", name="For", exact=True)
    assert hours.get_by_label("2 h", exact=True).is_checked()  # two hours unless changed
    page.fill("#reason", "Venous congestion settling after leech: every 15 min")
    _assert_touch_targets(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    _documented(page, "phone-flap-schedule")
    page.get_by_role("button", name="Set the schedule").click()
    page.wait_for_url(f"**/reconstructions/{flap.id}")
    override = page.locator(".flap-override").first
    assert "Per-flap schedule: checks every 15 min until" in override.inner_text()
    assert "Version 1" in page.inner_text("#schedule-title + .ward-day")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    _assert_touch_targets(page)
    _shot(page, "flap-schedule-390")
    assert _axe_problems(page) == []
    context.close()

    context, page = _logged_in_page(chromium, live_server, nurse.username, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")
    card = page.locator(".flap-card", has_text="Gil Congested")
    assert "Per-flap schedule: checks every 15 min until" in card.inner_text()
    # The last check was 20 minutes ago: under a 15-minute schedule it is due now.
    assert "state-due" in (card.get_attribute("class") or "")
    _shot(page, "board-schedule-768")
    context.close()


def test_a_night_nurse_starts_monitoring_a_flap_from_recovery_on_the_tablet(
    chromium, live_server, make, session
):
    nurse = make.user("nurse", "PLAST-W3")
    context, page = _logged_in_page(chromium, live_server, nurse.username, clock=False)
    page.wait_for_url("**/units/PLAST-W3/board")

    page.get_by_role("link", name="Start monitoring").tap()
    page.wait_for_url("**/units/PLAST-W3/start")
    page.get_by_label("MRN").fill("RX-4711")
    _assert_touch_targets(page)
    page.get_by_role("button", name="Find the patient").tap()
    page.wait_for_url("**/units/PLAST-W3/start/flap?mrn=RX-4711")
    assert "No patient with MRN RX-4711 on your wards" in page.inner_text("body")
    page.get_by_label("Name").fill("Nadia Petrova")
    page.get_by_label("Date of birth").fill("1971-03-09")
    page.get_by_label("Bed").fill("6")
    page.get_by_label("Procedure").fill("DIEP free flap")
    page.get_by_role("group", name="Flap kind").get_by_label("Free").tap()
    page.get_by_label("Site").fill("left breast")
    page.get_by_role("group", name="Side").get_by_label("Left").tap()
    ended = datetime.now(ZoneInfo("Europe/London")) - timedelta(minutes=45)
    page.get_by_label("End of surgery").fill(ended.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_label("Surgeon").fill("Miss E. Hartley")
    _assert_touch_targets(page)
    page.evaluate("window.scrollTo(0, 0)")
    _documented(page, "tablet-start-monitoring")
    page.get_by_role("button", name="Put on the board").tap()

    page.wait_for_url("**/units/PLAST-W3/board")
    assert "Nadia Petrova, bed 6: DIEP free flap is on the board" in page.inner_text("body")
    card = page.locator(".flap-card", has_text="Nadia Petrova")
    assert card.count() == 1 and "6" in card.locator(".flap-bed").inner_text()
    context.close()


def test_a_nurse_photographs_the_flap_and_the_surgeon_s_phone_shows_it_beside_the_baseline(
    chromium, live_server, make, session
):
    """At 768×1024 the nurse takes a photo with a dusky check (a file chooser stands in for
    the camera); the surgeon's phone opens the escalation and sees it beside the first photo
    after surgery."""
    from flapwatch.models import Escalation, Photo
    from flapwatch.services import SYSTEM
    from flapwatch.services.photos import (
        PhotoStore,
        Upload,
        attach_photos,
        prepare_uploads,
        set_photo_consent,
    )
    from tests.photos import camera_jpeg

    nurse = make.user("nurse", "PLAST-W3")
    surgeon = make.user("surgeon", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="3", name="Petra Photo"), hours_ago=8)
    set_photo_consent(session, SYSTEM, flap.id, True)
    first = make.check(flap, minutes_ago=400, colour="pink")
    attach_photos(session, make.actor(nurse), PhotoStore(),
                  prepare_uploads([Upload("baseline.jpg", camera_jpeg(colour=(214, 150, 140)))]),
                  check_id=first.id)  # fmt: skip
    make.check(flap, minutes_ago=70, colour="pink")
    session.commit()

    context, page = _logged_in_page(chromium, live_server, nurse.username, clock=False)
    page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")
    assert "whole flap" in page.locator(".framing-guide").inner_text()
    page.get_by_role("group", name="Colour").get_by_label("Dusky", exact=True).tap()
    page.get_by_role("group", name="Capillary refill").get_by_label("Brisk (<1 s)").tap()
    page.set_input_files("#photos", files=[{
        "name": "IMG_0412.JPG", "mimeType": "image/jpeg",
        "buffer": camera_jpeg(1200, 900, colour=(120, 70, 110)),
    }])  # fmt: skip
    _documented(page, "tablet-check-photo", page.locator("#photos-field"))
    page.get_by_role("button", name="Save check").click()
    page.wait_for_url("**/checks/*/flagged")
    assert (
        "RED" in page.locator("body").inner_text() or "AMBER" in page.locator("body").inner_text()
    )
    context.close()
    session.rollback()
    photos = session.scalars(select(Photo).order_by(Photo.id)).all()
    assert len(photos) == 2 and (photos[1].width, photos[1].height) == (900, 1200)  # upright

    escalation = session.scalars(select(Escalation)).one()
    phone_context, phone = _logged_in_page(chromium, live_server, surgeon.username, PHONE,
                                           clock=False)  # fmt: skip
    phone.goto(f"{live_server}/escalations/{escalation.id}#photos")
    pair = phone.locator(".photo-pair")
    captions = pair.locator("figcaption").all_inner_texts()
    assert captions[0].startswith("Baseline") and captions[1].startswith("Newest")
    boxes = [figure.bounding_box() for figure in pair.locator("figure").all()]
    assert abs(boxes[0]["y"] - boxes[1]["y"]) < 2 and boxes[0]["x"] < boxes[1]["x"]  # beside
    pair.scroll_into_view_if_needed()
    _documented(phone, "phone-escalation-photos", phone.locator("#photos"))
    phone_context.close()


def test_a_check_with_a_photo_saved_without_network_is_kept_then_stored_once(
    chromium, live_server, make, session
):
    from flapwatch.models import Photo
    from flapwatch.services import SYSTEM
    from flapwatch.services.photos import set_photo_consent
    from tests.photos import camera_jpeg

    nurse = make.user("nurse", "PLAST-W3")
    flap = make.reconstruction(make.patient(bed="8", name="Pia Offline"), hours_ago=5)
    set_photo_consent(session, SYSTEM, flap.id, True)
    make.check(flap, minutes_ago=70)
    session.commit()
    context, page = _board_kept_by_the_service_worker(chromium, live_server, nurse.username)
    page.goto(f"{live_server}/reconstructions/{flap.id}/checks/new")
    page.get_by_role("group", name="Colour").get_by_label("Pink", exact=True).tap()
    page.get_by_role("group", name="Doppler arterial").get_by_label("Present").tap()
    page.set_input_files("#photos", files=[{
        "name": "IMG_0500.JPG", "mimeType": "image/jpeg", "buffer": camera_jpeg(800, 600),
    }])  # fmt: skip

    context.set_offline(True)
    page.get_by_role("button", name="Save check").tap()
    page.wait_for_url("**/units/PLAST-W3/board?kept=1")
    page.locator("#unsent-checks").wait_for(state="visible")
    assert "Pia Offline" in page.locator("#unsent-checks").inner_text()
    session.rollback()
    assert session.scalars(select(Photo)).all() == []

    context.set_offline(False)
    page.wait_for_function(
        "() => document.querySelector('#unsent-checks').textContent.includes('was sent')",
        timeout=60_000,
    )
    page.reload()  # sends nothing again: the tablet's copy is gone
    page.wait_for_load_state()
    page.goto(f"{live_server}/reconstructions/{flap.id}#photos")  # the photo on screen
    page.locator(".photo img").first.wait_for()
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login**")
    kept = page.evaluate("""async () => {
        const urls = [];
        for (const name of await caches.keys()) {
            for (const request of await (await caches.open(name)).keys()) urls.push(request.url);
        }
        return urls;
    }""")
    assert not [url for url in kept if "/photos/" in url or "/reconstructions/" in url], kept
    context.close()
    session.rollback()
    (photo,) = session.scalars(select(Photo)).all()
    assert (photo.width, photo.height) == (600, 800)
    checks = session.scalars(select(Check).where(Check.reconstruction_id == flap.id)).all()
    assert len(checks) == 2 and photo.check_id == max(check.id for check in checks)
