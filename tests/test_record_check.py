"""A nurse records a flap check in the browser form: saved, or refused keeping every entry."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from flapwatch.models import AuditEvent, Check, utcnow

LONDON = ZoneInfo("Europe/London")


def local(moment) -> str:
    return moment.astimezone(LONDON).strftime("%Y-%m-%dT%H:%M")


def normal_check(**overrides: str) -> dict[str, str]:
    form = {
        "taken_at": local(utcnow()),
        "colour": "pink",
        "flap_temperature_c": "34.2",
        "control_temperature_c": "35.0",
        "capillary_refill": "normal",
        "doppler_arterial": "present",
        "doppler_venous": "present",
        "turgor": "soft",
        "pinprick": "bright_red",
        "sto2_percent": "68",
        "notes": "Warm, soft, pink",
    }
    form.update(overrides)
    return form


def stored_checks(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count(Check.id)))


def test_nurse_records_a_normal_check_and_sees_next_due_on_the_board(logged_in, make, session):
    browser, nurse = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=30)  # 2-hourly band

    response = browser.post(f"/reconstructions/{flap.id}/checks/new", normal_check())

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/units/PLAST-W3/board")
    board = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Check saved for" in board and "Next check due at" in board
    assert "in 1 h 59 min" in board or "in 2 h 00 min" in board
    check = session.scalars(select(Check)).one()
    assert (check.colour, check.flap_temperature_c, check.recorded_by_id) == (
        "pink",
        34.2,
        nurse.id,
    )
    assert check.temperature_difference_c == 0.8
    assert session.scalars(select(AuditEvent).where(AuditEvent.action == "check.record")).one()


def test_decimal_comma_from_a_tablet_keypad_is_read_as_a_decimal_point(logged_in, make, session):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    browser.post(f"/reconstructions/{flap.id}/checks/new", normal_check(flap_temperature_c="33,6"))
    assert session.scalars(select(Check)).one().flap_temperature_c == 33.6


@pytest.mark.parametrize(
    ("field", "typed", "message"),
    [
        ("flap_temperature_c", "51", "Flap temperature must be between 20.0 and 43.0 °C."),
        ("control_temperature_c", "12.5", "Control temperature must be between 20.0 and 43.0 °C."),
        ("sto2_percent", "140", "StO₂ must be between 0 and 100 %."),
        ("capillary_refill_s", "12", "Capillary refill time must be between 0 and 10 seconds."),
        ("flap_temperature_c", "warm", "Flap temperature must be a number, e.g. 34.5."),
        ("taken_at", "yesterday", "Time taken must be a date and time"),
        ("colour", "green", "Not a valid choice"),
        ("notes", "x" * 2001, "Notes can be at most 2000 characters."),
    ],
)
def test_bad_value_is_refused_on_its_field_and_everything_typed_is_kept(
    logged_in, make, session, field, typed, message
):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    form = normal_check(**{field: typed})

    response = browser.post(f"/reconstructions/{flap.id}/checks/new", form)

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert message in page
    assert f'id="{field}-error"' in page  # the message sits on the offending field
    assert "Not saved" in page
    for name in ("flap_temperature_c", "control_temperature_c", "sto2_percent"):
        assert f'name="{name}" value="{form[name]}"' in page
    assert 'value="pink"\n               checked' in page or field == "colour"
    assert 'value="normal"\n               checked' in page
    assert "Warm, soft, pink" in page or field == "notes"
    assert stored_checks(session) == 0


@pytest.mark.parametrize(
    ("taken", "message"),
    [
        (lambda surgery: utcnow() + timedelta(minutes=30), "Time taken is in the future"),
        (lambda surgery: surgery - timedelta(hours=2), "before this flap's surgery"),
    ],
)
def test_implausible_time_is_refused_on_the_time_field(logged_in, make, session, taken, message):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=3)
    response = browser.post(
        f"/reconstructions/{flap.id}/checks/new",
        normal_check(taken_at=local(taken(flap.surgery_end_at))),
    )
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert message in page and 'id="taken_at-error"' in page
    assert stored_checks(session) == 0


def test_check_with_no_assessment_is_refused_with_a_message_for_the_whole_check(
    logged_in, make, session
):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    response = browser.post(
        f"/reconstructions/{flap.id}/checks/new",
        {"taken_at": local(utcnow()), "notes": "asleep, not disturbed"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Record at least one assessment" in page
    assert "asleep, not disturbed" in page
    assert stored_checks(session) == 0


def test_late_entry_keeps_the_clinical_time_and_is_marked_on_the_flap_page(
    logged_in, make, session
):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=6)
    taken = utcnow() - timedelta(minutes=90)
    browser.post(f"/reconstructions/{flap.id}/checks/new", normal_check(taken_at=local(taken)))
    check = session.scalars(select(Check)).one()
    assert local(check.taken_at) == local(taken)
    page = browser.get(f"/reconstructions/{flap.id}").get_data(as_text=True)
    assert "Late entry" in page


def test_form_defaults_taken_at_to_now_on_the_unit_clock_and_prefills_no_observation(
    logged_in, make
):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    make.check(flap, minutes_ago=50, colour="pink", flap_temperature_c=34.0)
    page = browser.get(f"/reconstructions/{flap.id}/checks/new").get_data(as_text=True)
    shown = re.search(r'name="taken_at" value="([^"]+)"', page).group(1)
    assert abs(int(shown[-2:]) - int(local(utcnow())[-2:])) in (0, 1, 59)
    assert shown[:13] == local(utcnow())[:13] or shown[-2:] == "59"
    assert "checked" not in page  # a copied-forward observation would be a false record
    assert "last: Pink" in page and "last: 34.0" in page


def test_buried_flap_form_asks_only_for_doppler_and_oximetry(logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(buried=True)
    page = browser.get(f"/reconstructions/{flap.id}/checks/new").get_data(as_text=True)
    assert 'name="doppler_arterial"' in page and 'name="sto2_percent"' in page
    assert 'name="colour"' not in page and 'name="capillary_refill"' not in page


def test_check_on_a_flap_no_longer_monitored_is_refused(logged_in, make, session):
    from flapwatch.domain.vocabulary import ReconstructionStatus
    from flapwatch.services import SYSTEM
    from flapwatch.services.patients import set_reconstruction_status

    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    set_reconstruction_status(session, SYSTEM, flap.id, ReconstructionStatus.STOPPED)
    response = browser.post(f"/reconstructions/{flap.id}/checks/new", normal_check())
    assert response.status_code == 400
    assert "Monitoring of this flap has ended" in response.get_data(as_text=True)
    assert stored_checks(session) == 0


def test_form_without_csrf_token_is_refused(logged_in, make, session):
    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    response = browser.client.post(f"/reconstructions/{flap.id}/checks/new", data=normal_check())
    assert response.status_code == 400
    assert stored_checks(session) == 0


def test_nurse_of_another_unit_cannot_open_or_record_on_the_flap(logged_in, make, session):
    browser, _ = logged_in("nurse", "ORTHO-W1")
    flap = make.reconstruction(unit="PLAST-W3")
    assert browser.get(f"/reconstructions/{flap.id}").status_code == 404
    assert browser.get(f"/reconstructions/{flap.id}/checks/new").status_code == 404
    response = browser.post(
        f"/reconstructions/{flap.id}/checks/new",
        normal_check(),
    )
    assert response.status_code == 404
    assert stored_checks(session) == 0
