"""Correcting a check from the flap page: the form, the struck-through withdrawal, the history."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.models import Check, utcnow
from flapwatch.services.checks import amend_check

LONDON = ZoneInfo("Europe/London")


def _form(check: Check, **changes: str) -> dict[str, str]:
    temperature = check.flap_temperature_c
    fields = {
        "taken_at": check.taken_at.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M"),
        "colour": str(check.colour or ""),
        "flap_temperature_c": "" if temperature is None else f"{temperature:g}",
    }
    return {name: value for name, value in {**fields, **changes}.items() if value != ""}


def test_the_correction_form_starts_from_the_values_recorded(logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=20, colour="pale", flap_temperature_c=43.0)

    page = browser.get(f"/checks/{check.id}/amend").get_data(as_text=True)

    assert re.search(r'name="colour" value="pale"\s+checked', page)
    assert 'name="flap_temperature_c" value="43"' in page
    assert "Reason for the correction" in page


def test_a_nurse_corrects_a_typo_and_the_flap_page_shows_the_correction(logged_in, make, session):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=20, colour="pink", flap_temperature_c=43.0)

    response = browser.post(
        f"/checks/{check.id}/amend",
        {**_form(check, flap_temperature_c="34.0"), "reason": "Typed 43.0 for 34.0"},
    )

    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/reconstructions/{flap.id}")
    page = browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)
    assert "34.0 / —" in page and "43.0 / —" not in page  # the flap / control column
    assert "Corrected (v2)" in page and "Typed 43.0 for 34.0" in page
    latest = session.scalar(select(Check).where(Check.amends_id == check.id))
    history = browser.get(f"/checks/{latest.id}/history").get_data(as_text=True)
    assert history.index("43.0 / —") < history.index("34.0 / —")  # recorded, then corrected
    assert "First recorded" in history and "Typed 43.0 for 34.0" in history


def test_a_correction_without_a_reason_is_refused_and_keeps_what_was_typed(logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=20, colour="pink", flap_temperature_c=43.0)

    response = browser.post(f"/checks/{check.id}/amend", _form(check, flap_temperature_c="34.2"))

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Say why the check is corrected." in page
    assert 'name="flap_temperature_c" value="34.2"' in page


def test_a_correction_revealing_a_sign_tells_the_nurse_what_to_do(logged_in, make, session):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=20, colour="pink")

    response = browser.post(
        f"/checks/{check.id}/amend", {**_form(check, colour="dusky"), "reason": "It was dusky"}
    )

    latest = session.scalar(select(Check.id).where(Check.amends_id == check.id))
    assert response.headers["Location"].endswith(f"/checks/{latest}/flagged")
    assert "Venous congestion suspected" in browser.get(response.headers["Location"]).get_data(
        as_text=True
    )


def test_a_check_entered_in_error_is_struck_through_and_leaves_the_board(logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    make.check(flap, minutes_ago=70, colour="pink")
    wrong = make.check(flap, minutes_ago=5, colour="pale")  # a red flag, on the wrong patient

    response = browser.post(
        f"/checks/{wrong.id}/amend",
        {**_form(wrong), "reason": "Recorded on the wrong patient", "entered_in_error": "y"},
    )

    assert response.status_code == 302
    page = browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)
    assert 'class="has-notes entered-in-error"' in page
    assert "Entered in error" in page and "Recorded on the wrong patient" in page
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "Pale" not in board  # the board's last check is the one before


def test_an_old_version_leads_to_the_latest_and_auditors_read_but_do_not_correct(
    logged_in, make, session
):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    check = make.check(flap, minutes_ago=20, colour="pink")
    browser.post(f"/checks/{check.id}/amend", {**_form(check, colour="pale"), "reason": "Pale"})
    latest = session.scalar(select(Check.id).where(Check.amends_id == check.id))

    again = browser.get(f"/checks/{check.id}/amend")
    assert again.status_code == 302 and again.headers["Location"].endswith(
        f"/checks/{latest}/amend"
    )

    auditor, _ = logged_in("auditor")
    assert auditor.get(f"/checks/{check.id}/history").status_code == 200
    assert auditor.get(f"/checks/{latest}/amend").status_code == 403
    assert "Correct<" not in auditor.get(f"/reconstructions/{flap.id}").get_data(as_text=True)
    outsider, _ = logged_in("nurse", "ORTHO-W1")
    assert outsider.get(f"/checks/{latest}/history").status_code == 404
    assert outsider.get(f"/checks/{latest}/amend").status_code == 404


def test_a_correction_made_hours_later_is_not_a_late_entry_but_a_late_entry_stays_one(
    logged_in, make, session
):
    browser, user = logged_in("nurse", "PLAST-W3")
    nurse = make.actor(user)
    flap = make.reconstruction(hours_ago=6)
    timely = make.check(flap, minutes_ago=10, colour="pink")  # written down at once
    amend_check(  # corrected two hours later
        session,
        nurse,
        timely.id,
        reason="Pale, not pink",
        values=CheckValues(**{**timely.values().as_dict(), "colour": "pale"}),
        now=utcnow() + timedelta(hours=2),
    )
    assert "Late entry" not in browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)

    late = make.check(flap, minutes_ago=200, colour="pink")  # written down 200 min after
    amend_check(session, nurse, late.id, reason="Add the note", values=late.values())
    assert "Late entry" in browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)


def test_the_report_marks_corrected_and_withdrawn_checks(logged_in, make, session):
    pypdf = pytest.importorskip("pypdf")
    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    typo = make.check(flap, minutes_ago=90, colour="pink", flap_temperature_c=43.0)
    wrong = make.check(flap, minutes_ago=30, colour="pink")
    browser.post(
        f"/checks/{typo.id}/amend",
        {**_form(typo, flap_temperature_c="34.0"), "reason": "Typed 43.0 for 34.0"},
    )
    browser.post(
        f"/checks/{wrong.id}/amend",
        {**_form(wrong), "reason": "Other patient", "entered_in_error": "y"},
    )

    pdf = browser.get(f"/reconstructions/{flap.id}/report.pdf").data
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)

    assert "Corrected, version 2" in text and "Typed 43.0 for 34.0" in text
    assert "ENTERED IN ERROR" in text and "Other patient" in text
