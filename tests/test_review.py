"""The surgeon's review: each flap's trend chart (PNG, SVG, cached until its data changes),
its printable PDF report, and the unit's review page of small charts, most worrying first."""

from __future__ import annotations

import html
import io
import re
import struct
import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch import create_app
from flapwatch.charts.spec import PHONE, image_size
from flapwatch.db import engine_of
from flapwatch.domain.rules import parse_rule_set, rule_set_to_json
from flapwatch.domain.vocabulary import ReconstructionStatus
from flapwatch.models import AuditEvent, Escalation, Reconstruction, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.accounts import update_user
from flapwatch.services.escalations import (
    acknowledge_escalation,
    close_escalation,
    current_rule_set,
    publish_rule_set,
)
from flapwatch.services.patients import PatientDetails, set_reconstruction_status, update_patient
from flapwatch.services.review import CLOCK_STEP
from flapwatch.services.tokens import create_token
from flapwatch.services.units import publish_schedule_policy
from tests.conftest import TEST_SETTINGS, Browser, count_queries

A, B = "PLAST-W3", "ORTHO-W1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_ROOT = "{http://www.w3.org/2000/svg}svg"
RED = {"colour": "dusky"}  # venous congestion: a red escalation
AMBER = {"flap_temperature_c": 33.0, "control_temperature_c": 35.0}  # ΔT 2.0 °C
NORMAL = {
    "colour": "pink",
    "flap_temperature_c": 34.2,
    "control_temperature_c": 35.0,
    "capillary_refill": "normal",
    "doppler_arterial": "present",
    "doppler_venous": "present",
    "turgor": "soft",
    "pinprick": "bright_red",
}


# --- helpers -----------------------------------------------------------------------------------


class Clock:
    """The clock every request reads (g.now), held still so a chart's version is steady.

    Set one minute into a step of the chart clock, so moving it on by less than four minutes
    stays within the step and moving it by a whole step always leaves it.
    """

    def __init__(self) -> None:
        step = int(CLOCK_STEP.total_seconds())
        seconds = int(utcnow().timestamp())
        self.at = datetime.fromtimestamp(seconds - seconds % step + 60, UTC)

    def advance(self, by: timedelta) -> None:
        self.at += by


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    held = Clock()
    monkeypatch.setattr("flapwatch.http.requests.utcnow", lambda: held.at)
    return held


def chart_url(flap_id: int, fmt: str = "png", size: str | None = None) -> str:
    return f"/reconstructions/{flap_id}/chart.{fmt}" + (f"?size={size}" if size else "")


def cache_of(response: Any) -> str:
    return response.headers.get("X-Chart-Cache", "")


def served(browser: Any, url: str) -> Any:
    response = browser.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return response


def cache_dir(app: Flask) -> Path:
    return Path(app.instance_path) / "chart-cache"


def cached_files(app: Flask) -> list[str]:
    directory = cache_dir(app)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def escalation_of(session: Session, flap: Reconstruction) -> Escalation:
    session.rollback()  # a fresh read: requests and services committed in their own sessions
    escalation = session.scalars(
        select(Escalation)
        .where(Escalation.reconstruction_id == flap.id)
        .order_by(Escalation.id.desc())
    ).first()
    assert escalation is not None, f"flap {flap.id} has no escalation"
    return escalation


def surgeon(make: Any, unit: str = A) -> Any:
    return make.actor(make.user("surgeon", unit))


def coordinator(make: Any, unit: str = A) -> Any:
    return make.actor(make.user("unit_admin", unit))


def flap_with(make: Any, name: str, unit: str = A, *, hours_ago: float = 3, **values: Any):
    """A flap of a patient called `name`, with one check (by default a normal one, now)."""
    flap = make.reconstruction(make.patient(unit, name=name), hours_ago=hours_ago, unit=unit)
    minutes_ago = values.pop("minutes_ago", 0)
    make.check(flap, minutes_ago=minutes_ago, **(values or NORMAL))
    return flap


def report_events(session: Session) -> list[AuditEvent]:
    session.rollback()
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.action == "reconstruction.report"))
    )


def pdf_text(data: bytes) -> tuple[str, int]:
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


def api_get(app: Flask, token: str, path: str) -> Any:
    return app.test_client().get(f"/api/v1{path}", headers={"Authorization": f"Bearer {token}"})


def token_for(session: Session, make: Any, role: str = "nurse", *units: str) -> str:
    user = make.user(role, *units)
    _, plain = create_token(session, SYSTEM, user.username, name=f"tests {user.username}")
    return plain


# --- the chart cache -----------------------------------------------------------------------------


def test_the_same_chart_asked_twice_is_drawn_once_then_served_from_the_cache(
    logged_in, make, clock
):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Ada Cached")

    first = served(browser, chart_url(flap.id))
    second = served(browser, chart_url(flap.id))

    assert (cache_of(first), cache_of(second)) == ("miss", "hit")
    assert second.data == first.data


def test_a_new_check_redraws_the_chart(logged_in, make, clock):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Ben Newcheck", minutes_ago=30)
    before = served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    make.check(flap, **RED)

    after = served(browser, chart_url(flap.id))
    assert cache_of(after) == "miss"
    assert after.data != before.data
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"


def test_acknowledging_the_escalation_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Cal Acked", **RED)
    before = served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    acknowledge_escalation(
        session, surgeon(make), escalation_of(session, flap).id, outcome="observe"
    )

    after = served(browser, chart_url(flap.id))
    assert cache_of(after) == "miss"
    assert after.data != before.data  # the acknowledgement is drawn


def test_closing_the_escalation_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Dot Closed", **RED)
    reviewer = surgeon(make)
    escalation = escalation_of(session, flap)
    acknowledge_escalation(session, reviewer, escalation.id, outcome="false_alarm")
    served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    close_escalation(session, reviewer, escalation.id, note="Settled")

    assert cache_of(served(browser, chart_url(flap.id))) == "miss"


def test_publishing_a_new_rule_set_for_the_unit_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Eve Rules", **NORMAL)
    before = served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    unit = flap.patient.unit
    definition = rule_set_to_json(parse_rule_set(current_rule_set(session, unit.id).definition))
    changed = 0
    for rule in definition["rules"]:
        if rule["id"] == "temperature":
            for condition in rule["conditions"]:
                if condition["field"] == "temperature_difference_c":
                    condition["value"] = 2.5
                    changed += 1
    assert changed == 1
    publish_rule_set(session, coordinator(make), unit.id, definition, "ΔT 1.8 °C is too noisy")

    after = served(browser, chart_url(flap.id))
    assert cache_of(after) == "miss"
    assert after.data != before.data  # the threshold line has moved


def test_publishing_a_new_schedule_for_the_unit_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Fay Schedule")
    served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    publish_schedule_policy(
        session,
        coordinator(make),
        flap.patient.unit.id,
        bands=((12, 30), (48, 120)),
        grace_minutes=10,
        after_last_band_minutes=480,
        note="Half-hourly at first",
    )

    assert cache_of(served(browser, chart_url(flap.id))) == "miss"


def test_changing_the_flaps_status_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Gus Stopped")
    before = served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    set_reconstruction_status(
        session, coordinator(make), flap.id, ReconstructionStatus.STOPPED, note="Day 5"
    )

    after = served(browser, chart_url(flap.id))
    assert cache_of(after) == "miss"
    assert after.data != before.data


def test_correcting_the_patients_details_redraws_the_chart(logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Hal Misspelt")
    served(browser, chart_url(flap.id))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    patient = flap.patient
    update_patient(
        session,
        coordinator(make),
        patient.id,
        unit_code=A,
        details=PatientDetails(
            mrn=patient.mrn, name="Hal Corrected", date_of_birth=date(1960, 1, 1), bed=patient.bed
        ),
    )

    assert cache_of(served(browser, chart_url(flap.id))) == "miss"


def test_a_cached_chart_names_no_one_so_a_renamed_surgeon_cannot_leave_it_stale(
    logged_in, make, session, clock
):
    """Names live on the page and in the report; the cached picture says what was decided."""
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Cy Renamed", **RED)
    account = make.user("surgeon", A)
    acknowledge_escalation(
        session, make.actor(account), escalation_of(session, flap).id, outcome="observe"
    )
    svg = served(browser, chart_url(flap.id, fmt="svg"))
    update_user(
        session,
        coordinator(make),
        account.id,
        display_name="Ms Corrected Name",
        role="surgeon",
        active=True,
        unit_codes=[A],
    )
    again = served(browser, chart_url(flap.id, fmt="svg"))
    assert cache_of(again) == "hit"
    assert again.data == svg.data


def test_a_monitored_flaps_chart_is_redrawn_as_the_clock_moves_on(logged_in, make, clock):
    """Its right-hand edge is "now": an overdue stretch grows even when nothing is recorded."""
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Ida Waiting", minutes_ago=50)
    served(browser, chart_url(flap.id))

    clock.advance(timedelta(minutes=3))
    assert cache_of(served(browser, chart_url(flap.id))) == "hit"

    clock.advance(CLOCK_STEP)
    assert cache_of(served(browser, chart_url(flap.id))) == "miss"


def test_a_finished_flaps_chart_does_not_expire_with_the_clock(logged_in, make, session, clock):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Jo Discharged")
    set_reconstruction_status(session, coordinator(make), flap.id, ReconstructionStatus.DISCHARGED)
    served(browser, chart_url(flap.id))

    clock.advance(timedelta(days=2))

    assert cache_of(served(browser, chart_url(flap.id))) == "hit"


def test_each_size_and_format_is_cached_on_its_own(app, logged_in, make, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Kit Sizes")
    urls = [
        chart_url(flap.id, "png"),
        chart_url(flap.id, "png", "small"),
        chart_url(flap.id, "svg"),
        chart_url(flap.id, "svg", "small"),
    ]

    first = [served(browser, url) for url in urls]
    again = [served(browser, url) for url in urls]

    assert [cache_of(r) for r in first] == ["miss"] * 4
    assert [cache_of(r) for r in again] == ["hit"] * 4
    assert len({r.data for r in first}) == 4
    assert [r.data for r in again] == [r.data for r in first]
    # size=full is the default size, and the same chart
    full = served(browser, chart_url(flap.id, "png", "full"))
    assert cache_of(full) == "hit" and full.data == first[0].data
    names = cached_files(app)
    assert len(names) == 4
    for prefix, suffix in [("full", "png"), ("small", "png"), ("full", "svg"), ("small", "svg")]:
        assert sum(n.startswith(f"{flap.id}-{prefix}-") and n.endswith(suffix) for n in names) == 1


def test_only_the_newest_chart_of_each_flap_size_and_format_stays_on_disk(
    app, logged_in, make, clock
):
    browser, _ = logged_in("nurse", A)
    flaps = [flap_with(make, f"Lee Disk {n}", minutes_ago=40) for n in range(12)]
    flap, neighbour = flaps[0], flaps[-1]  # ids such as 1 and 12: one is not the other's prefix
    for url in (chart_url(flap.id), chart_url(flap.id, "png", "small"), chart_url(flap.id, "svg")):
        served(browser, url)
    served(browser, chart_url(neighbour.id))
    kept = set(cached_files(app))
    assert len(kept) == 4

    for minutes_ago in (20, 10, 0):
        make.check(flap, minutes_ago=minutes_ago)
        assert cache_of(served(browser, chart_url(flap.id))) == "miss"

    names = cached_files(app)
    assert len(names) == 4, names
    full_png = [n for n in names if n.startswith(f"{flap.id}-full-") and n.endswith(".png")]
    assert len(full_png) == 1 and full_png[0] not in kept  # the newest version only
    others = kept - {n for n in kept if n.startswith(f"{flap.id}-full-") and n.endswith(".png")}
    assert others <= set(names)  # small PNG, SVG and the other flap's chart untouched
    assert not [n for n in names if n.startswith(".tmp")]  # nothing half-written left behind
    # The file on disk is the chart served.
    assert (cache_dir(app) / full_png[0]).read_bytes() == served(browser, chart_url(flap.id)).data


def test_a_second_app_process_shares_the_cache_and_never_serves_a_stale_chart(
    app, database_url, tmp_path, logged_in, make, session, clock
):
    browser, user = logged_in("surgeon", A)
    flap = flap_with(make, "Mo Processes", minutes_ago=30)
    url = chart_url(flap.id)
    drawn = served(browser, url)
    assert cache_of(drawn) == "miss"

    other = create_app(
        {**TEST_SETTINGS, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path)}
    )
    try:
        assert cache_dir(other) == cache_dir(app)
        second = Browser(other.test_client())
        assert second.login(user.username).status_code == 302

        shared = served(second, url)
        assert cache_of(shared) == "hit" and shared.data == drawn.data

        # A nurse's tablet records a check through the first process's API.
        token = token_for(session, make, "nurse", A)
        recorded = app.test_client().post(
            f"/api/v1/reconstructions/{flap.id}/checks",
            json={"taken_at": utcnow().isoformat(), **RED},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert recorded.status_code == 201, recorded.get_data(as_text=True)

        fresh = served(second, url)
        assert cache_of(fresh) == "miss" and fresh.data != drawn.data
        back = served(browser, url)
        assert cache_of(back) == "hit" and back.data == fresh.data
    finally:
        engine_of(other).dispose()


# --- valid images ------------------------------------------------------------------------------


def test_png_chart_is_a_png_image(logged_in, make):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Ned Png")

    response = served(browser, chart_url(flap.id))

    assert response.mimetype == "image/png"
    assert response.data.startswith(PNG_SIGNATURE)
    width, height = png_size(response.data)
    assert width > 0 and height > 0


def test_svg_chart_is_an_svg_document_that_cannot_run_anything(logged_in, make):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Ola Svg", **RED)

    response = served(browser, chart_url(flap.id, "svg"))

    assert response.mimetype == "image/svg+xml"
    root = ET.fromstring(response.data)
    assert root.tag == SVG_ROOT
    assert not list(root.iter("{http://www.w3.org/2000/svg}script"))
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    small = served(browser, chart_url(flap.id, "svg", "small"))
    assert ET.fromstring(small.data).tag == SVG_ROOT
    assert "Content-Security-Policy" in small.headers


def test_small_chart_is_narrower_than_the_full_one(logged_in, make):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Pam Sizes")

    full = png_size(served(browser, chart_url(flap.id)).data)
    small = png_size(served(browser, chart_url(flap.id, "png", "small")).data)

    assert small[0] < full[0]
    assert small[1] < full[1]


def test_an_unknown_size_is_404_on_the_web_and_400_json_on_the_api(app, logged_in, make, session):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Quin Huge")
    token = token_for(session, make, "nurse", A)

    for fmt in ("png", "svg"):
        assert browser.get(chart_url(flap.id, fmt, "huge")).status_code == 404
        response = api_get(app, token, chart_url(flap.id, fmt, "huge"))
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        error = response.get_json()["error"]
        assert error["code"] == "invalid_request" and "size" in error["fields"]
    assert browser.get(f"/reconstructions/{flap.id}/chart.gif").status_code == 404
    assert cached_files(app) == []


def test_an_unknown_query_parameter_is_400_json_on_the_api(app, make, session):
    flap = flap_with(make, "Rae Typo")
    token = token_for(session, make, "nurse", A)

    response = api_get(app, token, f"/reconstructions/{flap.id}/chart.png?colour=red")

    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and "colour" in error["fields"]


# --- who may see a chart ------------------------------------------------------------------------


def test_a_nurse_of_another_unit_gets_404_for_the_chart_svg_and_report(
    app, logged_in, make, session
):
    flap = flap_with(make, "Sam Plastics", A)
    browser, _ = logged_in("nurse", B)
    token = token_for(session, make, "nurse", B)
    paths = [
        chart_url(flap.id),
        chart_url(flap.id, "png", "small"),
        chart_url(flap.id, "svg"),
        f"/reconstructions/{flap.id}/report.pdf",
    ]

    for path in paths:
        assert browser.get(path).status_code == 404, path
        response = api_get(app, token, path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
        assert "Sam Plastics" not in response.get_data(as_text=True)
    assert report_events(session) == []  # nothing left the system
    assert cached_files(app) == []


def test_a_flap_that_does_not_exist_is_404(logged_in):
    browser, _ = logged_in("admin")
    for path in (chart_url(999), chart_url(999, "svg"), "/reconstructions/999/report.pdf"):
        assert browser.get(path).status_code == 404, path


def test_every_role_on_the_unit_can_read_the_chart_and_report(logged_in, make, clock):
    flap = flap_with(make, "Tia Everyone")
    for role, units in [
        ("nurse", (A,)),
        ("surgeon", (A,)),
        ("unit_admin", (A,)),
        ("admin", ()),
        ("auditor", ()),
    ]:
        browser, _ = logged_in(role, *units)
        assert served(browser, chart_url(flap.id)).mimetype == "image/png", role
        assert served(browser, chart_url(flap.id, "svg")).mimetype == "image/svg+xml", role
        assert served(browser, f"/reconstructions/{flap.id}/report.pdf").data[:4] == b"%PDF"


def test_an_anonymous_browser_is_sent_to_log_in(client, make):
    flap = flap_with(make, "Uma Anonymous")
    for path in (
        chart_url(flap.id),
        chart_url(flap.id, "svg"),
        f"/reconstructions/{flap.id}/report.pdf",
        f"/units/{A}/review",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login" in response.headers["Location"], path


def test_an_anonymous_api_request_is_401_json(client, make, session):
    flap = flap_with(make, "Vic Anonymous")
    for path in (
        chart_url(flap.id),
        chart_url(flap.id, "svg"),
        f"/reconstructions/{flap.id}/report.pdf",
    ):
        response = client.get(f"/api/v1{path}")
        assert response.status_code == 401, path
        assert response.mimetype == "application/json"
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert report_events(session) == []


# --- the printable report ------------------------------------------------------------------------


def test_the_report_is_a_pdf_and_the_audit_trail_says_who_printed_it(logged_in, make, session):
    browser, user = logged_in("surgeon", A)
    flap = flap_with(make, "Wyn Printed")

    response = served(browser, f"/reconstructions/{flap.id}/report.pdf")

    assert response.mimetype == "application/pdf"
    assert response.data.startswith(b"%PDF")
    [event] = report_events(session)
    assert event.actor_username == user.username and event.actor_id == user.id
    assert (event.object_type, event.object_id) == ("reconstruction", str(flap.id))
    # Printed twice, recorded twice: each copy that leaves the system is accounted for.
    served(browser, f"/reconstructions/{flap.id}/report.pdf")
    assert len(report_events(session)) == 2


def test_the_report_names_the_patient_every_check_the_outcome_and_the_notes(
    logged_in, make, session
):
    browser, user = logged_in("surgeon", A)
    patient = make.patient(A, name="Xena Reported")
    flap = make.reconstruction(patient, hours_ago=4)
    make.check(flap, minutes_ago=90, notes="Dressing loosened, drain working", **NORMAL)
    make.check(flap, minutes_ago=5, **RED)
    acknowledge_escalation(
        session, surgeon(make), escalation_of(session, flap).id, outcome="return_to_theatre"
    )

    response = served(browser, f"/reconstructions/{flap.id}/report.pdf")

    text, pages = pdf_text(response.data)
    assert "Xena Reported" in text and patient.mrn in text
    assert "DIEP free flap" in text
    assert "Page 1 of" in text and f"Page {pages} of {pages}" in text
    assert "Pink" in text and "Dusky" in text
    assert "Return to theatre" in text
    assert "Dressing loosened, drain working" in text
    assert user.username in text  # printed by


def test_a_long_report_names_the_patient_and_numbers_every_page(logged_in, make):
    browser, _ = logged_in("surgeon", A)
    patient = make.patient(A, name="Yves Longstay")
    flap = make.reconstruction(patient, hours_ago=30)
    for n in range(70):
        make.check(flap, minutes_ago=(70 - n) * 25, notes=f"Round {n}: flap warm, soft", **NORMAL)

    response = served(browser, f"/reconstructions/{flap.id}/report.pdf")

    pypdf = pytest.importorskip("pypdf")
    pages = [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(response.data)).pages]
    assert len(pages) >= 4  # the chart, several pages of checks, the escalations
    for number, text in enumerate(pages, start=1):
        assert "Yves Longstay" in text and patient.mrn in text, number
        assert f"Page {number} of {len(pages)}" in text, number
    assert "Round 0: flap warm, soft" in pages[1] and "Round 69: flap warm, soft" in "".join(pages)


def test_dollar_signs_in_a_note_are_printed_as_typed(logged_in, make):
    """Free text is not TeX: two dollar signs must not turn the words between into maths."""
    browser, _ = logged_in("surgeon", A)
    flap = make.reconstruction(make.patient(A, name="Zac Dollars"))
    note = "Son paid $12 for parking, $3 coffee; anxious"
    make.check(flap, notes=note, **NORMAL)

    response = served(browser, f"/reconstructions/{flap.id}/report.pdf")

    text, _ = pdf_text(response.data)
    assert note in text


def test_a_note_that_looks_like_tex_does_not_break_the_report(logged_in, make):
    browser, _ = logged_in("surgeon", A)
    flap = make.reconstruction(make.patient(A, name="Ama Caret"))
    make.check(flap, notes="Typo in handover: was $^$ meant to be 5", **NORMAL)

    response = browser.get(f"/reconstructions/{flap.id}/report.pdf")

    assert response.status_code == 200
    text, _ = pdf_text(response.data)
    assert "was $^$ meant to be 5" in text


def test_a_patient_name_that_looks_like_tex_does_not_break_the_chart(logged_in, make):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Bea $_$ Underscore")

    for url in (chart_url(flap.id), chart_url(flap.id, "png", "small"), chart_url(flap.id, "svg")):
        assert browser.get(url).status_code == 200, url


# --- the review page --------------------------------------------------------------------------


def test_the_review_page_lists_the_escalated_flap_then_the_overdue_then_the_fine_one(
    logged_in, make
):
    browser, _ = logged_in("surgeon", A)
    fine = flap_with(make, "Fiona Fine", hours_ago=1)
    overdue = flap_with(make, "Otto Overdue", hours_ago=5, minutes_ago=180)
    red = flap_with(make, "Rita Red", hours_ago=8, **RED)

    response = browser.get(f"/units/{A}/review")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    positions = [page.index(name) for name in ("Rita Red", "Otto Overdue", "Fiona Fine")]
    assert positions == sorted(positions), positions
    for flap in (red, overdue, fine):
        assert f'href="/reconstructions/{flap.id}"' in page
        assert f'src="/reconstructions/{flap.id}/chart.png?size=small&amp;v=' in page


def test_the_review_page_orders_every_kind_of_concern(logged_in, make, session):
    """Unacknowledged red, unacknowledged amber, acknowledged but open, a flagged last check,
    overdue, due, then the freshest surgery first; each earlier flap has the older surgery,
    so no rank is met by the hours since surgery alone."""
    browser, _ = logged_in("surgeon", A)
    reviewer = surgeon(make)
    flap_with(make, "Flap One Red", hours_ago=30, **RED)
    flap_with(make, "Flap Two Amber", hours_ago=20, **AMBER)
    seen = flap_with(make, "Flap Three Seen", hours_ago=15, **RED)
    acknowledge_escalation(session, reviewer, escalation_of(session, seen).id, outcome="observe")
    flagged = flap_with(make, "Flap Four Flagged", hours_ago=10, **RED)
    closed = escalation_of(session, flagged)
    acknowledge_escalation(session, reviewer, closed.id, outcome="false_alarm")
    close_escalation(session, reviewer, closed.id)
    flap_with(make, "Flap Five Overdue", hours_ago=6, minutes_ago=180)
    flap_with(make, "Flap Six Due", hours_ago=5, minutes_ago=65)
    flap_with(make, "Flap Eight Older", hours_ago=2)
    flap_with(make, "Flap Seven Fresher", hours_ago=1)

    page = browser.get(f"/units/{A}/review").get_data(as_text=True)

    order = [
        "Flap One Red",
        "Flap Two Amber",
        "Flap Three Seen",
        "Flap Four Flagged",
        "Flap Five Overdue",
        "Flap Six Due",
        "Flap Seven Fresher",
        "Flap Eight Older",
    ]
    positions = [page.index(name) for name in order]
    shown = [name for _, name in sorted(zip(positions, order, strict=True))]
    assert positions == sorted(positions), shown


def test_the_review_page_small_charts_are_the_size_the_page_reserves(logged_in, make):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Gil Thumbnail", **AMBER)
    page = browser.get(f"/units/{A}/review").get_data(as_text=True)
    start = page.index(f'src="/reconstructions/{flap.id}/chart.png?size=small&amp;v=')
    tag = page[page.rindex("<img", 0, start) : page.index(">", start)]

    width, height = png_size(served(browser, chart_url(flap.id, "png", "small")).data)

    assert f'width="{width}"' in tag and f'height="{height}"' in tag
    assert "Gil Thumbnail" in tag  # its alternative text names the patient


def test_a_flap_no_longer_monitored_is_not_on_the_review_page(logged_in, make, session):
    browser, _ = logged_in("surgeon", A)
    flap_with(make, "Hana Monitored")
    gone = flap_with(make, "Ivo Stopped")
    set_reconstruction_status(session, coordinator(make), gone.id, ReconstructionStatus.STOPPED)
    flap_with(make, "Jan Other Ward", B)

    page = browser.get(f"/units/{A}/review").get_data(as_text=True)

    assert "Hana Monitored" in page
    assert "Ivo Stopped" not in page and f"/reconstructions/{gone.id}/" not in page
    assert "Jan Other Ward" not in page


def test_another_units_review_page_is_404(logged_in, make):
    flap_with(make, "Kai Ortho", B)
    browser, _ = logged_in("surgeon", A)

    assert browser.get(f"/units/{B}/review").status_code == 404
    assert browser.get("/units/NOPE-W9/review").status_code == 404
    assert browser.get(f"/units/{A}/review").status_code == 200


def test_the_review_page_needs_as_many_queries_for_six_flaps_as_for_two(
    app, logged_in, make, session
):
    browser, _ = logged_in("surgeon", A)
    reviewer = surgeon(make)

    def add_flaps(count: int, start: int) -> None:
        for n in range(start, start + count):
            if n % 2:
                flap = flap_with(make, f"Queried {n}", **RED)
                if n % 4 == 1:
                    escalation = escalation_of(session, flap)
                    acknowledge_escalation(session, reviewer, escalation.id, outcome="observe")
            else:
                flap_with(make, f"Queried {n}", minutes_ago=n * 40)

    add_flaps(2, 0)
    browser.get(f"/units/{A}/review")  # warm up: the first request may read more
    with count_queries(app) as two:
        page = browser.get(f"/units/{A}/review").get_data(as_text=True)
    assert page.count('class="review-card') == 2

    add_flaps(4, 2)
    with count_queries(app) as six:
        page = browser.get(f"/units/{A}/review").get_data(as_text=True)
    assert page.count('class="review-card') == 6

    assert len(six) == len(two), "\n\n".join(six)


def test_the_ward_board_links_to_the_review_page(logged_in, make):
    browser, _ = logged_in("nurse", A)
    flap_with(make, "Lia Board")

    page = browser.get(f"/units/{A}/board").get_data(as_text=True)

    assert f'href="/units/{A}/review"' in page and "Review charts" in page


# --- the chart on the flap and escalation pages -----------------------------------------------


def assert_shows_chart(page: str, flap_id: int) -> None:
    assert f'<img src="/reconstructions/{flap_id}/chart.png?v=' in page
    assert f'href="/reconstructions/{flap_id}/chart.svg?v=' in page
    assert f'href="/reconstructions/{flap_id}/report.pdf"' in page


def test_the_flap_page_shows_its_chart_with_svg_and_report_links(logged_in, make):
    browser, _ = logged_in("nurse", A)
    flap = flap_with(make, "Max Flappage")

    response = browser.get(f"/reconstructions/{flap.id}")

    assert response.status_code == 200
    assert_shows_chart(response.get_data(as_text=True), flap.id)


def test_the_escalation_page_shows_the_flaps_chart(logged_in, make, session):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Nia Escalated", **RED)
    escalation = escalation_of(session, flap)

    response = browser.get(f"/escalations/{escalation.id}")

    assert response.status_code == 200
    assert_shows_chart(response.get_data(as_text=True), flap.id)


def _img_tag(page: str, src: str, tag: str = "<img") -> str:
    start = page.index(src)
    return page[page.rindex(tag, 0, start + len(tag)) : page.index(">", start)]


@pytest.mark.parametrize("sto2", [False, True], ids=["without-sto2", "with-sto2"])
def test_a_phone_is_offered_its_own_chart_at_the_size_it_is_drawn(logged_in, make, session, sto2):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(
        make, "Pia Phone", **({"colour": "dusky", "sto2_percent": 61.0} if sto2 else RED)
    )
    escalation = escalation_of(session, flap)

    for url in (f"/reconstructions/{flap.id}", f"/escalations/{escalation.id}"):
        page = browser.get(url).get_data(as_text=True)
        source = _img_tag(
            page, f'srcset="/reconstructions/{flap.id}/chart.png?size=phone&amp;v=', "<source"
        )
        image = _img_tag(page, f'<img src="/reconstructions/{flap.id}/chart.png?v=')
        assert 'media="(max-width: 600px)"' in source
        phone = png_size(served(browser, chart_url(flap.id, "png", "phone")).data)
        full = png_size(served(browser, chart_url(flap.id)).data)
        assert f'width="{phone[0]}" height="{phone[1]}"' in source, url
        assert f'width="{full[0]}" height="{full[1]}"' in image, url

    assert phone[0] < full[0] and phone[1] > full[1]  # narrow, and taller for its lanes
    svg = served(browser, chart_url(flap.id, "svg", "phone"))
    assert ET.fromstring(svg.data).tag == SVG_ROOT
    assert "Content-Security-Policy" in svg.headers
    assert cache_of(served(browser, chart_url(flap.id, "png", "phone"))) == "hit"


# --- the API -----------------------------------------------------------------------------------


def test_a_token_reads_the_chart_as_png_and_svg_and_the_report_as_pdf(app, make, session, clock):
    flap = flap_with(make, "Oz Device", **AMBER)
    user = make.user("surgeon", A)
    _, token = create_token(session, SYSTEM, user.username, name="reporting system")

    png = api_get(app, token, chart_url(flap.id))
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.data.startswith(PNG_SIGNATURE) and cache_of(png) == "miss"
    assert cache_of(api_get(app, token, chart_url(flap.id))) == "hit"

    small = api_get(app, token, chart_url(flap.id, "png", "small"))
    assert small.status_code == 200 and png_size(small.data)[0] < png_size(png.data)[0]
    phone = api_get(app, token, chart_url(flap.id, "png", "phone"))
    assert phone.status_code == 200 and png_size(phone.data) == image_size(PHONE)

    svg = api_get(app, token, chart_url(flap.id, "svg"))
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert ET.fromstring(svg.data).tag == SVG_ROOT
    assert cache_of(svg) == "miss"

    report = api_get(app, token, f"/reconstructions/{flap.id}/report.pdf")
    assert report.status_code == 200, report.get_data(as_text=True)[:300]
    assert report.mimetype == "application/pdf" and report.data.startswith(b"%PDF")
    [event] = report_events(session)
    assert event.actor_username == user.username
    assert event.object_id == str(flap.id)


def test_the_api_and_the_pages_share_the_cache(app, logged_in, make, session, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Pip Shared")
    token = token_for(session, make, "nurse", A)

    drawn = served(browser, chart_url(flap.id))
    by_api = api_get(app, token, chart_url(flap.id))

    assert (cache_of(drawn), cache_of(by_api)) == ("miss", "hit")
    assert by_api.data == drawn.data


# --- signed chart links: what the pages link to, served from the cache without the database ----

_LINK = re.compile(r'<img src="(/reconstructions/\d+/chart\.png\?[^"]+)"')


def page_chart_link(browser: Any, flap_id: int) -> str:
    page = browser.get(f"/reconstructions/{flap_id}").get_data(as_text=True)
    found = _LINK.search(page)
    assert found is not None, "no chart on the flap page"
    return html.unescape(found.group(1))


def test_a_pages_chart_link_is_served_from_the_cache_without_the_database(app, logged_in, make):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Max Linked", **RED)
    link = page_chart_link(browser, flap.id)
    assert cache_of(served(browser, link)) == "miss"  # drawn the ordinary way first

    with count_queries(app) as statements:
        again = served(browser, link)

    assert cache_of(again) == "hit" and again.mimetype == "image/png"
    assert statements == []


def test_a_chart_link_is_no_use_to_another_reader_or_after_log_out(app, logged_in, make):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Nell Private", **RED)
    link = page_chart_link(browser, flap.id)
    served(browser, link)

    outsider, _ = logged_in("nurse", "ORTHO-W1")
    assert outsider.get(link).status_code == 404  # the ordinary path, and not their unit
    anonymous = app.test_client()
    assert anonymous.get(link).status_code == 302  # to log in

    browser.post("/logout")
    assert browser.get(link).status_code == 302


def test_a_tampered_or_expired_chart_link_goes_the_ordinary_way(app, logged_in, make, clock):
    browser, _ = logged_in("surgeon", A)
    flap = flap_with(make, "Olga Checked", **RED)
    link = page_chart_link(browser, flap.id)
    served(browser, link)
    tampered = re.sub(r"s=[0-9a-f]+", "s=" + "0" * 32, link)
    other_flap = flap_with(make, "Pia Other")
    moved = link.replace(f"/reconstructions/{flap.id}/", f"/reconstructions/{other_flap.id}/")

    for url in (tampered, moved):
        with count_queries(app) as statements:
            response = served(browser, url)
        assert response.status_code == 200 and statements, url  # checked against the database

    expired = re.sub(r"e=\d+", f"e={int(time.time()) - 1}", link)
    with count_queries(app) as statements:
        served(browser, expired)
    assert statements
