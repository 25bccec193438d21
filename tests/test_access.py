"""Every route against one declared policy: who may open it, and only inside their own units."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from flapwatch.domain.vocabulary import Role
from flapwatch.models import Escalation, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.monitoring import set_override
from flapwatch.services.outcomes import return_to_theatre
from flapwatch.services.patients import set_reconstruction_status
from flapwatch.services.photos import (
    PhotoStore,
    Upload,
    attach_photos,
    prepare_uploads,
    set_photo_consent,
)
from tests.photos import plain_png

ALL_ROLES = tuple(Role.values())
READERS = ("nurse", "surgeon", "unit_admin", "admin", "auditor")
CLINICAL = ("nurse", "surgeon", "unit_admin", "admin")
MANAGERS = ("unit_admin", "admin")
ADMINS = ("admin",)
REVIEWERS = ("surgeon", "unit_admin", "admin")
SURGEONS = ("surgeon",)
PUBLIC = "public"
ANY_USER = "any logged-in user"

# The single declaration of who may open what. A route missing here fails the suite.
POLICY: dict[str, object] = {
    "static": PUBLIC,
    "auth.login": PUBLIC,
    "auth.logout": ANY_USER,
    "auth.alive": ANY_USER,
    "auth.theme": PUBLIC,
    "auth.service_worker": PUBLIC,
    "auth.offline": PUBLIC,
    "health.healthz": PUBLIC,
    "health.readyz": PUBLIC,
    "ward.home": ANY_USER,
    "ward.board": READERS,
    "checks.flap": READERS,
    "checks.new_check": CLINICAL,
    "photos.display": READERS,
    "photos.thumbnail": READERS,
    "photos.link": READERS,
    "photos.consent": CLINICAL,
    "photos.hide": CLINICAL,
    "monitoring.pause": CLINICAL,
    "monitoring.resume_monitoring": CLINICAL,
    "monitoring.not_done": CLINICAL,
    "monitoring.schedule_override": SURGEONS,
    "monitoring.withdraw_schedule_override": SURGEONS,
    "outcomes.new_theatre_return": REVIEWERS,
    "outcomes.theatre_details": REVIEWERS,
    "outcomes.final_outcome": REVIEWERS,
    "outcomes.back_on_the_ward": CLINICAL,
    "admissions.find_patient": CLINICAL,
    "ward.handover": READERS,
    "exports.research": ("auditor", "admin"),
    "ward.handover_pdf": READERS,
    "admissions.start_flap": CLINICAL,
    "admissions.transfer": CLINICAL,
    "checks.flagged": READERS,
    "checks.amend": CLINICAL,
    "checks.history": READERS,
    "escalations.queue": READERS,
    "escalations.detail": READERS,
    "escalations.acknowledge": REVIEWERS,
    "escalations.attending": REVIEWERS,
    "push.add": ANY_USER,
    "push.remove": ANY_USER,
    "escalations.close": REVIEWERS,
    "rules.current": MANAGERS,
    "rules.edit": MANAGERS,
    "rules.version": MANAGERS,
    "rules.export": MANAGERS,
    "rules.import_json": MANAGERS,
    "exports.index": ("auditor", "admin"),
    "exports.download": ("auditor", "admin"),
    "exports.workbook": ("auditor", "admin"),
    "exports.fhir": ("auditor", "admin"),
    "compliance.page": ("auditor", "admin"),
    "compliance.chart": ("auditor", "admin"),
    "compliance.download": ("auditor", "admin"),
    "review.unit_review": READERS,
    "review.chart": READERS,
    "review.report": READERS,
    "admin.index": MANAGERS,
    "admin.units": MANAGERS,
    "admin.new_unit": ADMINS,
    "admin.edit_unit": MANAGERS,
    "admin.schedule": MANAGERS,
    "chains.edit": MANAGERS,
    "admin.staff": MANAGERS,
    "admin.new_staff": MANAGERS,
    "admin.edit_staff": MANAGERS,
    "admin.staff_password": MANAGERS,
    "admin.patients": MANAGERS,
    "admin.new_patient": MANAGERS,
    "admin.edit_patient": MANAGERS,
    "admin.new_reconstruction": MANAGERS,
    "admin.edit_reconstruction": MANAGERS,
    "admin.reconstruction_status": MANAGERS,
    # The JSON API (bearer token, or the logged-in session with its CSRF token).
    "api.openapi": PUBLIC,
    "api.me": READERS,
    "api.list_units": READERS,
    "api.create_unit": ADMINS,
    "api.get_unit": READERS,
    "api.get_rule_set": READERS,
    "api.publish_rule_set": MANAGERS,
    "api.list_rule_set_versions": READERS,
    "api.list_patients": READERS,
    "api.admit_patient": MANAGERS,
    "api.get_patient": READERS,
    "api.list_reconstructions": READERS,
    "api.add_reconstruction": MANAGERS,
    "api.get_reconstruction": READERS,
    "api.change_reconstruction": CLINICAL,  # photo_consent alone; the rest MANAGERS (test_photos)
    "api.add_check_photos": CLINICAL,
    "api.list_photos": READERS,
    "api.get_photo": READERS,
    "api.get_photo_thumbnail": READERS,
    "api.reconstruction_chart_png": READERS,
    "api.reconstruction_chart_svg": READERS,
    "api.reconstruction_report": READERS,
    "api.list_checks": READERS,
    "api.record_check": CLINICAL,
    "api.record_readings": CLINICAL,
    "api.pause_monitoring": CLINICAL,
    "api.list_schedule_overrides": READERS,
    "api.create_schedule_override": SURGEONS,
    "api.withdraw_schedule_override": SURGEONS,
    "api.list_theatre_returns": READERS,
    "api.create_theatre_return": REVIEWERS,
    "api.change_theatre_return": REVIEWERS,
    "api.set_final_outcome": REVIEWERS,
    "api.resume_after_theatre": CLINICAL,
    "api.create_admission": CLINICAL,
    "api.transfer_patient": CLINICAL,
    "api.export_research": ("auditor", "admin"),
    "api.resume_monitoring": CLINICAL,
    "api.record_check_not_done": CLINICAL,
    "api.amend_check": CLINICAL,
    "api.list_escalations": READERS,
    "api.get_contacts": MANAGERS,
    "api.publish_contacts": MANAGERS,
    "api.get_escalation_chain": READERS,
    "api.publish_escalation_chain": MANAGERS,
    "api.get_escalation": READERS,
    "api.acknowledge_escalation": REVIEWERS,
    "api.attend_escalation": REVIEWERS,
    "api.unit_events": READERS,
    "api.close_escalation": REVIEWERS,
    "api.export_checks": ("auditor", "admin"),
    "api.export_amendments": ("auditor", "admin"),
    "api.export_escalations": ("auditor", "admin"),
    "api.export_not_done": ("auditor", "admin"),
    "api.export_audit": ("auditor", "admin"),
    "api.export_workbook": ("auditor", "admin"),
    "api.export_compliance": ("auditor", "admin"),
    "api.export_fhir": ("auditor", "admin"),
}


def _rules(app):
    return [rule for rule in app.url_map.iter_rules()]


def test_every_route_has_a_policy_and_enforces_it(app):
    for rule in _rules(app):
        assert rule.endpoint in POLICY, f"route {rule.rule} ({rule.endpoint}) has no policy"
        declared = POLICY[rule.endpoint]
        enforced = getattr(app.view_functions[rule.endpoint], "allowed_roles", None)
        if isinstance(declared, tuple):
            assert enforced == frozenset(declared), rule.endpoint
        else:
            assert enforced is None, rule.endpoint


@pytest.fixture
def ward(make):
    """One unit's objects, to fill in every route's parameters."""
    unit = make.unit("PLAST-W3")
    patient = make.patient("PLAST-W3")
    reconstruction = make.reconstruction(patient)
    colleague = make.user("nurse", "PLAST-W3")
    check = make.check(reconstruction, colour="dusky")  # flagged: opens an escalation
    escalation_id = make.session.scalar(select(Escalation.id))
    override = set_override(
        make.session, make.actor(make.user("surgeon", "PLAST-W3")), reconstruction.id,
        kind="interval", interval_minutes=15, starts_at=None, ends_at=utcnow() + timedelta(hours=2),
        reason="Congested",
    )  # fmt: skip
    # A return to theatre it came back from.
    theatre = return_to_theatre(
        make.session, make.actor(make.user("surgeon", "PLAST-W3")), reconstruction.id
    )
    set_reconstruction_status(make.session, SYSTEM, reconstruction.id, "monitoring",
                              time_zero="continue")  # fmt: skip
    set_photo_consent(make.session, SYSTEM, reconstruction.id, True)
    (photo,) = attach_photos(
        make.session, make.actor(colleague), PhotoStore(),
        prepare_uploads([Upload("flap.png", plain_png())]), check_id=check.id,
    )  # fmt: skip
    return {
        "photo_id": photo.id,
        "theatre_return_id": theatre.id,
        "override_id": override.id,
        "check_id": check.id,
        "escalation_id": escalation_id,
        "version": 1,
        "code": unit.code,
        "unit_id": unit.id,
        "patient_id": patient.id,
        "reconstruction_id": reconstruction.id,
        "user_id": colleague.id,
        "filename": "flapwatch.css",
        "fmt": "png",
        "kind": "checks",
    }


def _url(rule, values) -> str:
    return rule.build({name: values[name] for name in rule.arguments})[1]


def _get_routes(app):
    return [rule for rule in _rules(app) if "GET" in rule.methods]


@pytest.mark.parametrize("role", ALL_ROLES)
def test_each_role_opens_exactly_the_pages_its_policy_allows(app, logged_in, ward, role):
    browser, _ = (
        logged_in(role, "PLAST-W3") if role not in ("admin", "auditor") else logged_in(role)
    )
    refused, opened = [], []
    for rule in _get_routes(app):
        declared = POLICY[rule.endpoint]
        status = browser.get(_url(rule, ward)).status_code
        allowed = declared in (PUBLIC, ANY_USER) or role in declared
        if allowed and status in (403, 404, 500):
            refused.append((rule.rule, status))
        if not allowed and status != 403:
            opened.append((rule.rule, status))
    assert refused == [], f"{role} was refused pages it may open"
    assert opened == [], f"{role} opened pages it may not"


def test_anonymous_visitor_is_sent_to_log_in_from_every_private_page(app, client, ward):
    for rule in _get_routes(app):
        if POLICY[rule.endpoint] == PUBLIC:
            continue
        response = client.get(_url(rule, ward))
        if rule.rule.startswith("/api/"):
            # A device is told to authenticate, not sent to a log-in page.
            assert response.status_code == 401, rule.rule
            assert response.json["error"]["code"] == "unauthorized", rule.rule
            continue
        assert response.status_code == 302, rule.rule
        assert "/login" in response.headers["Location"], rule.rule


def test_posts_are_refused_to_roles_outside_the_policy(app, logged_in, ward):
    browser, _ = logged_in("auditor")
    for rule in _rules(app):
        declared = POLICY[rule.endpoint]
        if "POST" not in rule.methods or not isinstance(declared, tuple):
            continue
        if "auditor" in declared:
            continue
        response = browser.post(_url(rule, ward), {})
        assert response.status_code == 403, rule.rule


@pytest.mark.parametrize("role", ["nurse", "surgeon", "unit_admin"])
def test_objects_of_another_unit_are_not_found(app, logged_in, ward, role):
    browser, _ = logged_in(role, "ORTHO-W1")
    leaked = []
    for rule in _get_routes(app):
        declared = POLICY[rule.endpoint]
        if not rule.arguments - {"filename"} or not isinstance(declared, tuple):
            continue
        if role not in declared:
            continue
        status = browser.get(_url(rule, ward)).status_code
        if status != 404:
            leaked.append((rule.rule, status))
    assert leaked == []


@pytest.mark.parametrize("role", ["nurse", "surgeon", "unit_admin"])
def test_writes_to_objects_of_another_unit_are_not_found_and_change_nothing(
    app, logged_in, ward, role, session
):
    from flapwatch.models import AuditEvent, utcnow

    browser, _ = logged_in(role, "ORTHO-W1")
    session.rollback()
    events_before = session.scalar(select(func.count(AuditEvent.id)))
    leaked = []
    for rule in _rules(app):
        declared = POLICY[rule.endpoint]
        if "POST" not in rule.methods or not isinstance(declared, tuple):
            continue
        if role not in declared or not rule.arguments:
            continue
        if rule.rule.startswith("/api/"):
            # An empty body is refused (400) before any object is looked up: that says
            # nothing about the id; anything else must be 404.
            token = browser.csrf_token("/")
            status = browser.client.post(
                _url(rule, ward), json={}, headers={"X-CSRFToken": token}
            ).status_code
            if status not in (400, 404):
                leaked.append((rule.rule, status))
            continue
        status = browser.post(_url(rule, ward), {}).status_code
        if status != 404:
            leaked.append((rule.rule, status))
    # A complete, valid check for the other unit's flap: not found either.
    token = browser.csrf_token("/")
    answer = browser.client.post(
        f"/api/v1/reconstructions/{ward['reconstruction_id']}/checks",
        json={"taken_at": utcnow().isoformat(), "colour": "pink"},
        headers={"X-CSRFToken": token},
    )
    if role in CLINICAL and answer.status_code != 404:
        leaked.append(("record a check by API", answer.status_code))
    assert leaked == []
    session.rollback()
    # Only the log-in itself was recorded: nothing of the other unit changed.
    assert session.scalar(select(func.count(AuditEvent.id))) == events_before
