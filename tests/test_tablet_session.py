"""A shared bedside tablet: logoff after the unit's minutes without use, switching user, the
night theme, and nothing of a patient kept by the browser."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import select

from flapwatch.http.sessions import SEEN_AT
from flapwatch.models import AuditEvent


def idle_for(browser: Any, minutes: float) -> None:
    """As if the tablet had lain unused for `minutes`."""
    with browser.client.session_transaction() as stored:
        stored[SEEN_AT] = time.time() - minutes * 60


def seen_at(browser: Any) -> float:
    with browser.client.session_transaction() as stored:
        return stored[SEEN_AT]


@pytest.fixture
def nurse(logged_in, make):
    make.reconstruction(hours_ago=3)
    browser, _ = logged_in("nurse", "PLAST-W3")
    return browser


def test_a_tablet_unused_past_the_limit_is_logged_off_with_a_message(nurse, session):
    idle_for(nurse, 11)

    response = nurse.get("/units/PLAST-W3/board")

    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    page = nurse.get("/login").get_data(as_text=True)
    assert "logged off after 10 minutes without use" in page
    assert nurse.get("/units/PLAST-W3/board").status_code == 302  # still logged off
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "logout")).one()
    assert event.after == {"reason": "idle"}


def test_a_tablet_used_within_the_limit_stays_logged_in(nurse):
    idle_for(nurse, 9)
    assert nurse.get("/units/PLAST-W3/board").status_code == 200
    assert time.time() - seen_at(nurse) < 5


def test_the_board_reloading_itself_and_images_are_not_use(nurse):
    idle_for(nurse, 9)
    before = seen_at(nurse)

    assert nurse.get("/units/PLAST-W3/board?refreshed=1").status_code == 200
    assert nurse.get("/units/PLAST-W3/board", headers={"Sec-Fetch-Dest": "image"}).status_code
    assert seen_at(nurse) == before

    idle_for(nurse, 10.5)
    assert nurse.get("/units/PLAST-W3/board?refreshed=1").status_code == 302


def test_tapping_on_an_open_page_is_reported_as_use(nurse):
    idle_for(nurse, 9)
    response = nurse.post("/session/alive", headers={"X-CSRFToken": nurse.csrf_token("/")})
    assert response.status_code == 204
    assert time.time() - seen_at(nurse) < 5


def test_a_script_calling_the_api_after_the_limit_is_told_to_authenticate(nurse):
    idle_for(nurse, 11)
    response = nurse.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"


def test_the_coordinator_sets_the_units_limit_and_the_shortest_applies(logged_in, make, session):
    coordinator, _ = logged_in("unit_admin", "PLAST-W3")
    unit = make.unit("PLAST-W3")
    make.unit("ORTHO-W1")
    form = {"name": unit.name, "timezone": unit.timezone, "idle_logoff_minutes": "1"}

    refused = coordinator.post(f"/admin/units/{unit.id}/edit", form)
    form["idle_logoff_minutes"] = "5"
    saved = coordinator.post(f"/admin/units/{unit.id}/edit", form)

    assert refused.status_code == 400
    assert "Log off after must be between 2 and 60 minutes" in refused.get_data(as_text=True)
    assert 'value="1"' in refused.get_data(as_text=True)
    assert saved.status_code == 302
    both, _ = logged_in("nurse", "PLAST-W3", "ORTHO-W1")
    idle_for(both, 4)
    assert both.get("/units/ORTHO-W1/board").status_code == 200
    idle_for(both, 6)
    assert both.get("/units/ORTHO-W1/board").headers["Location"].endswith("/login")
    change = session.scalars(select(AuditEvent).where(AuditEvent.action == "unit.update")).one()
    assert change.after == {"idle_logoff_minutes": 5}


def test_the_page_carries_the_limit_and_what_is_left_of_it_for_the_script(nurse):
    page = nurse.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert 'data-idle-seconds="600"' in page
    # All of it, less the second or so since the log-in on a busy machine.
    assert 595 <= int(re.search(r'data-idle-left="(\d+)"', page).group(1)) <= 600
    assert 'id="idle-warning"' in page and "Stay logged in" in page
    idle_for(nurse, 7)
    reloaded = nurse.get("/units/PLAST-W3/board?refreshed=1").get_data(as_text=True)
    left = int(re.search(r'data-idle-left="(\d+)"', reloaded).group(1))
    assert 170 <= left <= 180


def test_switch_user_logs_out_and_asks_for_the_next_person(nurse, session):
    response = nurse.post("/logout", {"reason": "switch"}, follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Next person: log in with your own account" in page
    assert nurse.get("/units/PLAST-W3/board").status_code == 302
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "logout")).one()
    assert event.after == {"reason": "switch"}


def test_clinical_pages_are_never_kept_by_the_browser(nurse):
    for url in ("/units/PLAST-W3/board", "/escalations", "/login"):
        assert nurse.get(url).headers["Cache-Control"] == "no-store", url


def test_night_theme_is_kept_by_the_tablet_across_log_ins(nurse, client):
    response = nurse.post("/theme", {"theme": "night", "next": "/units/PLAST-W3/board"})
    assert response.headers["Location"].endswith("/units/PLAST-W3/board")
    assert 'data-theme="night"' in nurse.get("/units/PLAST-W3/board").get_data(as_text=True)
    nurse.post("/logout", {"reason": "switch"})
    assert 'data-theme="night"' in nurse.get("/login").get_data(as_text=True)
    nurse.post("/theme", {"theme": "day"})
    assert "data-theme" not in nurse.get("/login").get_data(as_text=True)


def test_the_theme_never_redirects_off_site(nurse):
    response = nurse.post("/theme", {"theme": "night", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


# --- a check sent twice is stored once ------------------------------------------------------


def _opened_form(browser: Any, flap_id: int) -> dict[str, str]:
    page = browser.get(f"/reconstructions/{flap_id}/checks/new").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" type="hidden" value="([^"]+)"', page)
    assert key is not None, "the check form carries its key"
    taken = re.search(r'name="taken_at" value="([^"]+)"', page)
    return {"idempotency_key": key.group(1), "taken_at": taken.group(1)}


def _checks_of(session, flap_id: int) -> int:
    from flapwatch.models import Check

    session.rollback()
    return len(session.scalars(select(Check).where(Check.reconstruction_id == flap_id)).all())


def test_the_same_check_form_sent_twice_stores_one_check(logged_in, make, session):
    flap = make.reconstruction(hours_ago=3)
    nurse, _ = logged_in("nurse", "PLAST-W3")
    form = {**_opened_form(nurse, flap.id), "colour": "pink", "doppler_arterial": "present"}

    first = nurse.post(f"/reconstructions/{flap.id}/checks/new", form)
    again = nurse.post(f"/reconstructions/{flap.id}/checks/new", form, follow_redirects=True)

    assert first.status_code == 302
    assert "already saved; it is not stored twice" in again.get_data(as_text=True)
    assert _checks_of(session, flap.id) == 1


def test_a_flagged_check_sent_twice_shows_what_to_do_again(logged_in, make, session):
    flap = make.reconstruction(hours_ago=3)
    nurse, _ = logged_in("nurse", "PLAST-W3")
    form = {**_opened_form(nurse, flap.id), "colour": "dusky"}

    first = nurse.post(f"/reconstructions/{flap.id}/checks/new", form)
    again = nurse.post(f"/reconstructions/{flap.id}/checks/new", form)

    assert "/flagged" in first.headers["Location"]
    assert again.headers["Location"] == first.headers["Location"]
    assert _checks_of(session, flap.id) == 1


def test_a_form_check_sent_again_through_the_api_with_its_key_is_answered_not_stored(
    logged_in, make, session
):
    flap = make.reconstruction(hours_ago=3)
    nurse, _ = logged_in("nurse", "PLAST-W3")
    form = {**_opened_form(nurse, flap.id), "colour": "pink"}
    nurse.post(f"/reconstructions/{flap.id}/checks/new", form)

    replay = nurse.client.post(
        f"/api/v1/reconstructions/{flap.id}/checks",
        json={"taken_at": "2026-01-01T00:00:00+00:00", "colour": "pink"},
        headers={
            "Idempotency-Key": form["idempotency_key"],
            "X-CSRFToken": nurse.csrf_token("/"),
        },
    )

    assert replay.status_code == 201, replay.get_data(as_text=True)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json["colour"] == "pink"
    assert _checks_of(session, flap.id) == 1
