"""The coordinators' pages: units and schedules, staff, patients and their flaps.

The test's own session reads what the pages saved only after `seen(session)`: it may still
hold an older read snapshot (SQLite) or older copies of the rows.
"""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.domain.vocabulary import ReconstructionStatus, Role
from flapwatch.http.access import MANAGERS
from flapwatch.models import AuditEvent, Patient, Reconstruction, SchedulePolicy, Unit, User, utcnow
from flapwatch.services import SYSTEM, Forbidden
from flapwatch.services.accounts import set_password
from flapwatch.services.login import authenticate
from flapwatch.services.outcomes import theatre_returns_of
from flapwatch.services.units import publish_schedule_policy
from flapwatch.web.auth import login_limits
from tests.conftest import PASSWORD, Factory, count_queries

LOCAL = "%Y-%m-%dT%H:%M"
NEW_PASSWORD = "a-much-longer-passphrase"


def field_error(page: str, field: str) -> str:
    """The error message shown under one form field (fails if there is none)."""
    found = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.S)
    assert found is not None, f"no error shown on the {field} field"
    return html.unescape(found.group(1))


def assert_kept(page: str, *values: str) -> None:
    for value in values:
        assert f'value="{html.escape(value)}"' in page, f"{value!r} was not kept in the form"


def local_input(zone: str, shift: timedelta = timedelta()) -> str:
    return (utcnow() + shift).astimezone(ZoneInfo(zone)).strftime(LOCAL)


def seen(session: Session) -> Session:
    """The test's session, its read snapshot and loaded rows given up for fresh ones."""
    session.rollback()
    session.expire_all()
    return session


def can_log_in(app: Flask, session: Session, username: str, password: str) -> bool:
    with app.app_context():  # password hashing reads the app's argon2 settings
        user = authenticate(
            seen(session), username, password, request_id=None, client=None, limits=login_limits()
        )
    return user is not None


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


# --- who may open the admin pages ------------------------------------------------------------


def test_every_admin_route_is_limited_to_coordinators_and_admins(app: Flask) -> None:
    endpoints = [r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.")]
    assert len(endpoints) == 15
    for endpoint in endpoints:
        allowed = app.view_functions[endpoint].allowed_roles
        assert allowed and allowed <= set(MANAGERS), endpoint


@pytest.mark.parametrize("role", [Role.NURSE, Role.SURGEON, Role.AUDITOR])
def test_ward_and_audit_roles_get_403_on_every_admin_route(
    app: Flask, logged_in: Any, make: Factory, role: Role
) -> None:
    browser, _ = logged_in(role, *(() if role == Role.AUDITOR else ("PLAST-W3",)))
    reconstruction = make.reconstruction()
    ids = {
        "unit_id": make.unit().id,
        "user_id": make.user(Role.NURSE).id,
        "patient_id": reconstruction.patient_id,
        "reconstruction_id": reconstruction.id,
    }
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin."):
            continue
        url = rule.rule
        for name, value in ids.items():
            url = url.replace(f"<int:{name}>", str(value))
        if "GET" in rule.methods:
            assert browser.get(url).status_code == 403, url
        if "POST" in rule.methods:
            assert browser.post(url, {"status": "stopped"}).status_code == 403, url
    assert make.session.get(Reconstruction, reconstruction.id).status == "monitoring"


def test_admin_index_links_to_units_staff_and_patients(logged_in: Any) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    page = text(browser.get("/admin/"))
    for link in ("/admin/units", "/admin/staff", "/admin/patients"):
        assert f'href="{link}"' in page
    assert "/admin/units/new" not in page


# --- units -----------------------------------------------------------------------------------


def test_admin_creates_a_unit_listed_with_the_default_schedule(
    logged_in: Any, session: Session
) -> None:
    browser, _ = logged_in(Role.ADMIN)
    response = browser.post(
        "/admin/units/new",
        {"code": "ORTHO-2", "name": "Orthoplastic Ward 2", "timezone": "Europe/Dublin"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/units")
    page = text(browser.get("/admin/units"))
    assert "ORTHO-2" in page and "Orthoplastic Ward 2" in page and "Europe/Dublin" in page
    unit = seen(session).scalars(select(Unit).where(Unit.code == "ORTHO-2")).one()
    versions = seen(session).scalars(
        select(SchedulePolicy.version).where(SchedulePolicy.unit_id == unit.id)
    )
    assert list(versions) == [1]


def test_unknown_time_zone_is_refused_on_its_field_keeping_what_was_typed(
    logged_in: Any, session: Session
) -> None:
    browser, _ = logged_in(Role.ADMIN)
    response = browser.post(
        "/admin/units/new",
        {"code": "ORTHO-2", "name": "Orthoplastic Ward 2", "timezone": "Mars/Olympus_Mons"},
    )
    assert response.status_code == 400
    page = text(response)
    assert "Time zone must be an IANA name" in field_error(page, "timezone")
    assert_kept(page, "ORTHO-2", "Orthoplastic Ward 2", "Mars/Olympus_Mons")
    assert seen(session).scalars(select(Unit).where(Unit.code == "ORTHO-2")).first() is None


def test_unit_admin_cannot_create_units(logged_in: Any, session: Session) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    assert browser.get("/admin/units/new").status_code == 403
    form = {"code": "ORTHO-2", "name": "Ortho", "timezone": "Europe/London"}
    assert browser.post("/admin/units/new", form).status_code == 403
    assert seen(session).scalars(select(Unit).where(Unit.code == "ORTHO-2")).first() is None


def test_unit_admin_renames_their_unit_and_changes_its_time_zone(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    unit = make.unit()
    assert_kept(text(browser.get(f"/admin/units/{unit.id}/edit")), unit.name, "Europe/London")
    response = browser.post(
        f"/admin/units/{unit.id}/edit",
        {"name": "Plastics Ward Three", "timezone": "Europe/Dublin"},
    )
    assert response.status_code == 302
    assert "Plastics Ward Three" in text(browser.get("/admin/units"))
    seen(session)
    assert (unit.name, unit.timezone) == ("Plastics Ward Three", "Europe/Dublin")


def test_unit_admin_cannot_see_or_change_another_units_settings(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    burns = make.unit("BURNS-1")
    assert "BURNS-1" not in text(browser.get("/admin/units"))
    assert browser.get(f"/admin/units/{burns.id}/edit").status_code == 404
    form = {"name": "Taken over", "timezone": "Europe/London"}
    assert browser.post(f"/admin/units/{burns.id}/edit", form).status_code == 404
    assert browser.get(f"/admin/units/{burns.id}/schedule").status_code == 404
    schedule = {"bands": "24:60", "grace_minutes": "15", "after_last_band_minutes": "480"}
    response = browser.post(f"/admin/units/{burns.id}/schedule", {**schedule, "note": "x"})
    assert response.status_code == 404
    seen(session)
    assert burns.name == "Ward BURNS-1"
    assert len(burns.schedule_policies) == 1


# --- monitoring schedule ---------------------------------------------------------------------


def test_publishing_a_schedule_creates_version_2_and_the_board_uses_it(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, coordinator = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    unit = make.unit()
    flap = make.reconstruction(make.patient(name="Ada Waiting"), hours_ago=2)
    # Default hourly band: due an hour after surgery, so an hour late by now.
    assert "1 overdue" in text(browser.get("/units/PLAST-W3/board"))

    response = browser.post(
        f"/admin/units/{unit.id}/schedule",
        {
            "bands": "24:180, 48:240",
            "grace_minutes": "15",
            "after_last_band_minutes": "480",
            "note": "Three-hourly checks agreed at governance",
        },
    )

    assert response.status_code == 302
    policies = (
        seen(session)
        .scalars(
            select(SchedulePolicy)
            .where(SchedulePolicy.unit_id == unit.id)
            .order_by(SchedulePolicy.version)
        )
        .all()
    )
    assert [p.version for p in policies] == [1, 2]
    assert policies[1].bands == [[24, 180], [48, 240]]
    assert policies[1].created_by_id == coordinator.id
    board = text(browser.get("/units/PLAST-W3/board"))
    assert "0 overdue" in board
    due = (flap.surgery_end_at + timedelta(minutes=180)).astimezone(ZoneInfo(unit.timezone))
    assert f"Next due <strong>{due:%H:%M}</strong>" in board
    history = text(browser.get(f"/admin/units/{unit.id}/schedule"))
    assert "Three-hourly checks agreed at governance" in history
    assert coordinator.display_name in history and "Default schedule" in history
    assert "24:60, 48:120, 120:240" in history and "24:180, 48:240" in history


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "bands",
            "24:60, 48-120",
            "Band 2 '48-120' must be written as until_hour:interval_minutes",
        ),
        ("bands", "48:60, 24:120", "Band 2: 'until hour' must be greater than 48"),
        ("bands", "24:2", "Band 1: interval must be between 5 and 1440 minutes."),
        ("grace_minutes", "200", "Grace period must be between 0 and 120 minutes."),
        ("grace_minutes", "ten", "Grace period must be a whole number of minutes"),
        ("note", "", "Change note is required"),
    ],
)
def test_bad_schedule_is_refused_on_its_field_keeping_what_was_typed(
    logged_in: Any, make: Factory, session: Session, field: str, value: str, message: str
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    unit = make.unit()
    form = {
        "bands": "24:60, 72:120",
        "grace_minutes": "20",
        "after_last_band_minutes": "360",
        "note": "Longer grace at night",
    }
    form[field] = value

    response = browser.post(f"/admin/units/{unit.id}/schedule", form)

    assert response.status_code == 400
    page = text(response)
    assert message in field_error(page, field)
    assert_kept(page, *(v for k, v in form.items() if k != "note"))
    if form["note"]:
        assert form["note"] in page
    versions = seen(session).scalars(
        select(SchedulePolicy.version).where(SchedulePolicy.unit_id == unit.id)
    )
    assert list(versions) == [1]


# --- staff -----------------------------------------------------------------------------------


def new_account(**changes: Any) -> dict[str, Any]:
    return {
        "username": "j.smith",
        "display_name": "Jo Smith",
        "role": "nurse",
        "units": ["PLAST-W3"],
        "password": NEW_PASSWORD,
        "confirm": NEW_PASSWORD,
        **changes,
    }


def test_unit_admin_creates_a_nurse_in_their_unit_who_can_log_in(
    app: Flask, logged_in: Any, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    response = browser.post("/admin/staff/new", new_account())
    assert response.status_code == 302
    page = text(browser.get("/admin/staff"))
    assert "Jo Smith" in page and "j.smith" in page
    user = seen(session).scalars(select(User).where(User.username == "j.smith")).one()
    assert user.role == Role.NURSE and [u.code for u in user.units] == ["PLAST-W3"]
    assert can_log_in(app, session, "j.smith", NEW_PASSWORD)


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"password": "Tiny9pw", "confirm": "Tiny9pw"},
            "password",
            "Password must be at least 10 characters.",
        ),
        ({"confirm": "another-long-one"}, "confirm", "the two passwords differ"),
        ({"username": "Jo Smith!"}, "username", "Username must be 2–64 lower-case letters"),
        ({"display_name": ""}, "display_name", "Full name is required."),
        ({"role": ""}, "role", "Role is required."),
    ],
)
def test_bad_account_is_refused_on_its_field_and_passwords_are_never_echoed(
    logged_in: Any, session: Session, changes: dict[str, str], field: str, message: str
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    form = new_account(**changes)

    response = browser.post("/admin/staff/new", form)

    assert response.status_code == 400
    page = text(response)
    assert message in field_error(page, field)
    assert_kept(page, *(form[k] for k in ("username", "display_name") if k != field))
    assert form["password"] not in page and form["confirm"] not in page
    assert (
        seen(session).scalars(select(User).where(User.display_name == "Jo Smith")).first() is None
    )


def test_taken_username_is_refused_on_its_field(logged_in: Any, make: Factory) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    make.user(Role.NURSE, "PLAST-W3", username="j.smith")
    response = browser.post("/admin/staff/new", new_account())
    assert response.status_code == 400
    assert "The username j.smith is taken." in field_error(text(response), "username")


def test_unit_admin_is_offered_ward_roles_only_and_cannot_create_an_admin(
    logged_in: Any, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    page = text(browser.get("/admin/staff/new"))
    for offered in ("nurse", "surgeon", "unit_admin"):
        assert f'name="role" value="{offered}"' in page
    assert 'value="admin"' not in page and 'value="auditor"' not in page

    for role in ("admin", "auditor"):
        response = browser.post("/admin/staff/new", new_account(username=f"new.{role}", role=role))
        assert response.status_code == 403
    assert seen(session).scalars(select(User).where(User.username.like("new.%"))).first() is None


def test_unit_admin_cannot_put_staff_in_another_unit(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    make.unit("BURNS-1")
    assert "BURNS-1" not in text(browser.get("/admin/staff/new"))
    response = browser.post("/admin/staff/new", new_account(units=["BURNS-1"]))
    assert response.status_code == 403
    assert seen(session).scalars(select(User).where(User.username == "j.smith")).first() is None


def test_unit_admin_sees_and_reaches_only_the_staff_of_their_units(
    app: Flask, logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    make.user(Role.NURSE, "PLAST-W3", username="ward.nurse")
    other = make.user(Role.NURSE, "BURNS-1", username="burns.nurse")

    page = text(browser.get("/admin/staff"))

    assert "ward.nurse" in page and "burns.nurse" not in page
    assert browser.get(f"/admin/staff/{other.id}/edit").status_code == 404
    edit = {"display_name": "Taken", "role": "nurse", "active": "y", "units": ["PLAST-W3"]}
    assert browser.post(f"/admin/staff/{other.id}/edit", edit).status_code == 404
    assert browser.get(f"/admin/staff/{other.id}/password").status_code == 404
    reset = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert browser.post(f"/admin/staff/{other.id}/password", reset).status_code == 404
    seen(session)
    assert other.display_name != "Taken" and [u.code for u in other.units] == ["BURNS-1"]
    assert can_log_in(app, session, "burns.nurse", PASSWORD)


def test_unit_admin_cannot_edit_or_reset_an_admin_working_on_their_unit(
    app: Flask, logged_in: Any, make: Factory, session: Session
) -> None:
    browser, coordinator = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    admin = make.user(Role.ADMIN, "PLAST-W3", username="site.admin")

    assert "site.admin" in text(browser.get("/admin/staff"))
    assert browser.get(f"/admin/staff/{admin.id}/edit").status_code == 403
    reset = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    assert browser.post(f"/admin/staff/{admin.id}/password", reset).status_code == 403
    with app.app_context(), pytest.raises(Forbidden):
        set_password(session, Factory.actor(coordinator), admin.id, NEW_PASSWORD)
    assert can_log_in(app, session, "site.admin", PASSWORD)


def test_coordinator_changes_a_nurses_name_role_and_units_and_disables_the_account(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3", "HAND-2")
    nurse = make.user(Role.NURSE, "PLAST-W3", username="ward.nurse")
    page = text(browser.get(f"/admin/staff/{nurse.id}/edit"))
    assert_kept(page, nurse.display_name)

    response = browser.post(
        f"/admin/staff/{nurse.id}/edit",
        {"display_name": "Sam Registrar", "role": "surgeon", "units": ["PLAST-W3", "HAND-2"]},
    )

    assert response.status_code == 302
    seen(session)
    assert nurse.display_name == "Sam Registrar" and nurse.role == Role.SURGEON
    assert [u.code for u in nurse.units] == ["HAND-2", "PLAST-W3"]
    assert nurse.active is False
    listing = text(browser.get("/admin/staff"))
    assert "Sam Registrar" in listing and "Disabled" in listing


def test_nobody_changes_their_own_role(logged_in: Any, session: Session) -> None:
    browser, admin = logged_in(Role.ADMIN)
    response = browser.post(
        f"/admin/staff/{admin.id}/edit",
        {"display_name": "Me", "role": "nurse", "active": "y"},
    )
    assert response.status_code == 400
    assert "cannot change your own role" in field_error(text(response), "role")
    seen(session)
    assert admin.role == Role.ADMIN


def test_setting_a_password_replaces_the_old_one(
    app: Flask, logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    nurse = make.user(Role.NURSE, "PLAST-W3", username="ward.nurse")

    too_short = {"password": "Short9pw!", "confirm": "Short9pw!"}
    short = browser.post(f"/admin/staff/{nurse.id}/password", too_short)
    assert short.status_code == 400
    assert "New password must be at least 10 characters." in field_error(text(short), "password")
    assert "Short9pw!" not in text(short)

    reset = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    response = browser.post(f"/admin/staff/{nurse.id}/password", reset)

    assert response.status_code == 302
    assert NEW_PASSWORD not in text(browser.get("/admin/staff"))
    assert can_log_in(app, session, "ward.nurse", NEW_PASSWORD)
    assert not can_log_in(app, session, "ward.nurse", PASSWORD)


# --- patients and beds -----------------------------------------------------------------------


def admission(**changes: str) -> dict[str, str]:
    return {
        "mrn": "RX1234",
        "name": "Nia Typed",
        "date_of_birth": "1971-03-04",
        "unit": "PLAST-W3",
        "bed": "7",
        **changes,
    }


def test_coordinator_admits_a_patient_who_is_listed_in_bed_order(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    make.patient(bed="10", name="Tess Ten")

    response = browser.post("/admin/patients/new", admission(bed="2"))

    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/patients?unit=PLAST-W3")
    page = text(browser.get("/admin/patients?unit=PLAST-W3"))
    assert "RX1234" in page and "1971-03-04" in page
    assert page.index("Nia Typed") < page.index("Tess Ten")
    patient = seen(session).scalars(select(Patient).where(Patient.mrn == "RX1234")).one()
    assert (patient.name, patient.bed, patient.unit.code) == ("Nia Typed", "2", "PLAST-W3")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("mrn", "<taken>", "is already registered on PLAST-W3"),
        ("bed", "1", "Bed 1 is taken by"),
        ("date_of_birth", "2090-01-01", "Date of birth cannot be in the future."),
        ("date_of_birth", "1970-02-31", "Date of birth must be a date"),
        ("name", "", "Name is required."),
        ("unit", "", "Unit is required."),
    ],
)
def test_bad_patient_is_refused_on_its_field_keeping_what_was_typed(
    logged_in: Any, make: Factory, session: Session, field: str, value: str, message: str
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    occupant = make.reconstruction(make.patient(bed="1")).patient
    form = admission(**{field: occupant.mrn if value == "<taken>" else value})

    response = browser.post("/admin/patients/new", form)

    assert response.status_code == 400
    page = text(response)
    assert message in field_error(page, field)
    assert_kept(page, *(form[k] for k in ("mrn", "name", "date_of_birth", "bed") if form[k]))
    assert seen(session).scalars(select(Patient).where(Patient.name == "Nia Typed")).first() is None


def test_coordinator_corrects_a_patients_details_and_moves_their_bed(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    patient = make.patient(bed="3", name="Ann Misspelt")
    assert_kept(text(browser.get(f"/admin/patients/{patient.id}/edit")), "Ann Misspelt", "3")

    response = browser.post(
        f"/admin/patients/{patient.id}/edit",
        admission(mrn=patient.mrn, name="Anne Spelt", date_of_birth="1960-01-02", bed="4A"),
    )

    assert response.status_code == 302
    seen(session)
    assert (patient.name, patient.bed, patient.date_of_birth.isoformat()) == (
        "Anne Spelt",
        "4A",
        "1960-01-02",
    )
    assert "Anne Spelt" in text(browser.get("/admin/patients?unit=PLAST-W3"))


def test_unit_admin_cannot_see_or_change_another_units_patients(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    make.patient(name="Own Patient")
    other = make.reconstruction(make.patient("BURNS-1", name="Burns Patient")).patient

    assert "Burns Patient" not in text(browser.get("/admin/patients"))
    assert browser.get("/admin/patients?unit=BURNS-1").status_code == 404
    assert browser.get(f"/admin/patients/{other.id}/edit").status_code == 404
    form = admission(mrn=other.mrn, name="Renamed", unit="BURNS-1")
    assert browser.post(f"/admin/patients/{other.id}/edit", form).status_code == 404
    new_flap = f"/admin/patients/{other.id}/reconstructions/new"
    assert browser.get(new_flap).status_code == 404
    assert browser.post("/admin/patients/new", admission(unit="BURNS-1")).status_code == 403
    seen(session)
    assert other.name == "Burns Patient"
    assert seen(session).scalars(select(Patient).where(Patient.mrn == "RX1234")).first() is None


# --- reconstructions (flaps) -----------------------------------------------------------------


def flap_form(zone: str, **changes: str) -> dict[str, str]:
    return {
        "procedure": "ALT free flap",
        "flap_kind": "free",
        "site": "lower leg",
        "side": "right",
        "surgery_end_at": local_input(zone, -timedelta(hours=3)),
        "surgeon": "Mr Vessel",
        **changes,
    }


def test_flap_added_on_the_units_clock_goes_on_the_board(
    logged_in: Any, make: Factory, session: Session
) -> None:
    make.unit("NY-1", timezone="America/New_York")
    browser, _ = logged_in(Role.UNIT_ADMIN, "NY-1")
    patient = make.patient("NY-1", name="Nora York")
    form = flap_form("America/New_York", buried="y")

    response = browser.post(f"/admin/patients/{patient.id}/reconstructions/new", form)

    assert response.status_code == 302
    flap = (
        seen(session)
        .scalars(select(Reconstruction).where(Reconstruction.patient_id == patient.id))
        .one()
    )
    assert abs(flap.surgery_end_at - (utcnow() - timedelta(hours=3))) < timedelta(minutes=2)
    assert (flap.procedure, flap.side, flap.buried, flap.status) == (
        "ALT free flap",
        "right",
        True,
        ReconstructionStatus.MONITORING,
    )
    assert "Nora York" in text(browser.get("/units/NY-1/board"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("surgery_end_at", "<future>", "End of surgery cannot be in the future."),
        ("surgery_end_at", "yesterday", "End of surgery must be a date and time"),
        ("flap_kind", "", "Flap kind must be one of: Free flap, Pedicled flap"),
        ("procedure", "", "Procedure is required."),
    ],
)
def test_bad_flap_is_refused_on_its_field_keeping_what_was_typed(
    logged_in: Any, make: Factory, session: Session, field: str, value: str, message: str
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    patient = make.patient()
    future = local_input("Europe/London", timedelta(hours=2))
    form = flap_form("Europe/London", **{field: future if value == "<future>" else value})

    response = browser.post(f"/admin/patients/{patient.id}/reconstructions/new", form)

    assert response.status_code == 400
    page = text(response)
    assert message in field_error(page, field)
    typed = ("procedure", "site", "surgeon", "surgery_end_at")
    assert_kept(page, *(form[k] for k in typed if form[k]))
    assert seen(session).scalars(select(Reconstruction)).first() is None


def test_coordinator_corrects_a_flaps_details(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction(hours_ago=5)
    shown = flap.surgery_end_at.astimezone(ZoneInfo("Europe/London")).strftime(LOCAL)
    assert_kept(text(browser.get(f"/admin/reconstructions/{flap.id}/edit")), shown, "breast")
    earlier = (flap.surgery_end_at - timedelta(minutes=30)).astimezone(ZoneInfo("Europe/London"))

    response = browser.post(
        f"/admin/reconstructions/{flap.id}/edit",
        flap_form("Europe/London", site="right breast", surgery_end_at=f"{earlier:{LOCAL}}"),
    )

    assert response.status_code == 302
    seen(session)
    assert (flap.site, flap.surgeon, flap.buried) == ("right breast", "Mr Vessel", False)
    assert flap.surgery_end_at == earlier.replace(second=0, microsecond=0)


def test_stopping_monitoring_takes_the_flap_off_the_board_and_resuming_puts_it_back(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction(make.patient(name="Sam Stopped"))
    assert "Sam Stopped" in text(browser.get("/units/PLAST-W3/board"))
    status_url = f"/admin/reconstructions/{flap.id}/status"

    response = browser.post(status_url, {"status": "stopped", "note": "Day 5, flap healthy"})

    assert response.status_code == 302
    board = text(browser.get("/units/PLAST-W3/board"))
    assert "0 flaps monitored" in board and f"/reconstructions/{flap.id}/checks/new" not in board
    assert "Monitoring stopped" in text(browser.get("/admin/patients?unit=PLAST-W3"))
    seen(session)
    assert flap.status == ReconstructionStatus.STOPPED
    event = (
        seen(session)
        .scalars(select(AuditEvent).where(AuditEvent.action == "reconstruction.status"))
        .one()
    )
    assert event.after == {
        "status": "stopped",
        "note": "Day 5, flap healthy",
        "changed_at": flap.status_changed_at.isoformat(),
    }

    assert browser.post(status_url, {"status": "monitoring"}).status_code == 302
    assert "Sam Stopped" in text(browser.get("/units/PLAST-W3/board"))


def test_sending_a_flap_back_to_theatre_sets_its_status_and_opens_a_return(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction()
    page = text(browser.get(f"/admin/reconstructions/{flap.id}/edit"))
    assert 'value="stopped">Stop monitoring' in page and 'value="returned_to_theatre"' in page

    response = browser.post(
        f"/admin/reconstructions/{flap.id}/status",
        {"status": "returned_to_theatre", "note": "Venous congestion at 14 h"},
    )

    assert response.status_code == 302
    seen(session)
    assert flap.status == ReconstructionStatus.RETURNED_TO_THEATRE
    assert "In theatre" in text(browser.get("/admin/patients?unit=PLAST-W3"))
    (theatre,) = theatre_returns_of(session, [flap.id])[flap.id]
    assert theatre.number == 1 and theatre.escalation_id is None


def test_back_from_theatre_the_coordinator_chooses_whether_the_schedule_restarts(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction(make.patient(name="Theo Theatre"))
    status_url = f"/admin/reconstructions/{flap.id}/status"
    browser.post(status_url, {"status": "returned_to_theatre", "note": "Venous thrombosis"})
    page = text(browser.get(f"/admin/reconstructions/{flap.id}/edit"))
    assert (
        'name="time_zero" value="restart"' in page and 'name="time_zero" value="continue"' in page
    )

    unsaid = browser.post(status_url, {"status": "monitoring", "note": "Back, anastomosis redone"})
    assert unsaid.status_code == 400
    assert "say whether the schedule starts again" in text(unsaid)
    assert "Back, anastomosis redone" in text(unsaid)  # what was typed is kept
    resumed = browser.post(
        status_url, {"status": "monitoring", "time_zero": "restart", "note": "Back"}
    )

    assert resumed.status_code == 302
    seen(session)
    assert flap.status == ReconstructionStatus.MONITORING and flap.time_zero_at is not None
    assert "Theo Theatre" in text(browser.get("/units/PLAST-W3/board"))


def test_unknown_status_is_refused_on_the_status_field(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction()
    response = browser.post(
        f"/admin/reconstructions/{flap.id}/status", {"status": "lost", "note": "Kept note"}
    )
    assert response.status_code == 400
    page = text(response)
    assert "Status must be one of:" in field_error(page, "status")
    assert "Kept note" in page
    seen(session)
    assert flap.status == ReconstructionStatus.MONITORING


def test_unit_admin_cannot_change_another_units_flap(
    logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    flap = make.reconstruction(unit="BURNS-1")
    assert browser.get(f"/admin/reconstructions/{flap.id}/edit").status_code == 404
    form = flap_form("Europe/London")
    assert browser.post(f"/admin/reconstructions/{flap.id}/edit", form).status_code == 404
    stop = {"status": "stopped"}
    assert browser.post(f"/admin/reconstructions/{flap.id}/status", stop).status_code == 404
    seen(session)
    assert flap.status == ReconstructionStatus.MONITORING and flap.site == "breast"


# --- query counts ----------------------------------------------------------------------------


def test_list_pages_load_in_a_constant_number_of_queries(
    app: Flask, logged_in: Any, make: Factory, session: Session
) -> None:
    browser, _ = logged_in(Role.ADMIN)
    unit = make.unit()
    make.reconstruction()
    pages = [
        "/admin/units",
        "/admin/staff",
        "/admin/patients?unit=PLAST-W3",
        f"/admin/units/{unit.id}/schedule",
    ]

    def queries_per_page() -> dict[str, int]:
        counts = {}
        for page in pages:
            session.expire_all()  # nothing served from objects the test already loaded
            with count_queries(app) as statements:
                assert browser.get(page).status_code == 200, page
            counts[page] = len(statements)
        return counts

    few = queries_per_page()
    for number in range(4):
        code = f"WARD-{number}"
        make.unit(code)
        make.user(Role.NURSE, code, "PLAST-W3")
        patient = make.patient()
        make.reconstruction(patient)
        make.reconstruction(patient)
        publish_schedule_policy(
            session,
            SYSTEM,
            unit.id,
            bands=((24, 60 + number),),
            grace_minutes=15,
            after_last_band_minutes=480,
            note=f"Version {number + 2}",
        )
    assert queries_per_page() == few
