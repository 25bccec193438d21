"""The JSON API v1 end to end: a device with a bearer token records checks, reads flags and
escalations, and is told in JSON exactly what went wrong when it is refused."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from flapwatch.domain.vocabulary import ReconstructionStatus
from flapwatch.models import (
    ApiToken,
    Check,
    Escalation,
    IdempotencyRecord,
    Patient,
    Reconstruction,
    RuleSetVersion,
    User,
    utcnow,
)
from flapwatch.services import SYSTEM, records
from flapwatch.services.accounts import update_user
from flapwatch.services.escalations import (
    acknowledge_escalation,
    close_escalation,
    sweep_overdue,
)
from flapwatch.services.patients import set_reconstruction_status
from flapwatch.services.tokens import create_token, revoke_token
from tests.conftest import API, Api, bearer, count_queries

A, B = "PLAST-W3", "ORTHO-W1"
MAX_ID = 2**31 - 1

NORMAL = {
    "colour": "pink",
    "flap_temperature_c": 34.2,
    "control_temperature_c": 35.0,
    "capillary_refill": "normal",
    "doppler_arterial": "present",
    "doppler_venous": "present",
    "turgor": "soft",
    "pinprick": "bright_red",
    "sto2_percent": 70,
}
# DESIGN.md §3: the rule set every new unit starts with.
DEFAULT_RULE_IDS = {
    "arterial",
    "venous",
    "necrosis",
    "temperature",
    "doppler-change",
    "sto2",
    "overdue",
}


def check_body(minutes_ago: float = 2, **changes: Any) -> dict[str, Any]:
    taken = utcnow() - timedelta(minutes=minutes_ago)
    return {"taken_at": taken.isoformat(), **NORMAL, **changes}


def at(text_value: str) -> datetime:
    moment = datetime.fromisoformat(text_value)
    assert moment.tzinfo is not None, f"{text_value} has no UTC offset"
    return moment


def error_of(response, status: int, code: str | None = None) -> dict[str, Any]:
    """The documented error body, checked for shape: {"error": {code, message, fields, id}}."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    body = response.get_json()
    assert list(body) == ["error"]
    error = body["error"]
    assert set(error) == {"code", "message", "fields", "request_id"}
    assert isinstance(error["message"], str) and error["message"].strip()
    assert isinstance(error["fields"], dict)
    assert error["request_id"] and error["request_id"] == response.headers["X-Request-ID"]
    if code is not None:
        assert error["code"] == code
    return error


def count(session: Session, model: Any) -> int:
    session.rollback()  # a fresh snapshot: see what the requests committed
    return session.scalar(select(func.count()).select_from(model))


def walk(api: Api, path: str, limit: int) -> list[list[dict[str, Any]]]:
    """Every page of a list, following next_cursor until it is null."""
    pages: list[list[dict[str, Any]]] = []
    cursor = None
    separator = "&" if "?" in path else "?"
    for _ in range(50):
        url = f"{path}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = api.get(url)
        assert response.status_code == 200, response.get_data(as_text=True)
        page = response.get_json()
        assert set(page) == {"items", "next_cursor"}
        pages.append(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError(f"{path} never reached its last page")


@dataclass
class Ward:
    """A unit with a patient, a flap, a normal check and a dusky check's open escalation."""

    unit: str
    patient_id: int
    reconstruction_id: int
    check_id: int
    escalation_id: int


def build_ward(make, unit: str) -> Ward:
    flap = make.reconstruction(unit=unit, hours_ago=5)
    make.check(flap, minutes_ago=30, **NORMAL)
    dusky = make.check(flap, minutes_ago=10, colour="dusky")
    make.session.rollback()
    escalation_id = make.session.scalar(
        select(Escalation.id).where(Escalation.reconstruction_id == flap.id)
    )
    assert escalation_id is not None
    return Ward(unit, flap.patient_id, flap.id, dusky.id, escalation_id)


@pytest.fixture
def flap(make):
    return make.reconstruction(unit=A, hours_ago=3)


@pytest.fixture
def wards(make) -> tuple[Ward, Ward]:
    return build_ward(make, A), build_ward(make, B)


# --- who is calling --------------------------------------------------------------------------


def test_me_says_which_account_role_and_units_the_token_acts_as(api):
    nurse = api("nurse", A, B)
    response = nurse.get("/me")
    assert response.status_code == 200
    me = response.get_json()
    assert sorted(me.pop("units")) == sorted([A, B])
    assert me == {
        "username": nurse.user.username,
        "display_name": "Test nurse",
        "role": "nurse",
        "all_units": False,
    }


def test_an_auditor_token_sees_every_unit(api, make):
    make.unit(A)
    make.unit(B)
    auditor = api("auditor")
    me = auditor.get("/me").get_json()
    assert (me["role"], me["units"], me["all_units"]) == ("auditor", [], True)
    codes = [unit["code"] for unit in auditor.get("/units").get_json()["items"]]
    assert codes == sorted([A, B])


def test_the_openapi_document_is_public_and_describes_every_operation(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    paths = response.get_json()["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    for expected in [
        ("GET", "/me"),
        ("GET", "/units"),
        ("POST", "/units"),
        ("GET", "/units/{code}"),
        ("GET", "/units/{code}/rule-set"),
        ("PUT", "/units/{code}/rule-set"),
        ("GET", "/units/{code}/rule-set/versions"),
        ("GET", "/patients"),
        ("POST", "/patients"),
        ("GET", "/patients/{patient_id}"),
        ("GET", "/reconstructions"),
        ("POST", "/reconstructions"),
        ("GET", "/reconstructions/{reconstruction_id}"),
        ("PATCH", "/reconstructions/{reconstruction_id}"),
        ("GET", "/reconstructions/{reconstruction_id}/checks"),
        ("POST", "/reconstructions/{reconstruction_id}/checks"),
        ("POST", "/checks/{check_id}/amendments"),
        ("GET", "/escalations"),
        ("GET", "/escalations/{escalation_id}"),
        ("POST", "/escalations/{escalation_id}/acknowledge"),
        ("POST", "/escalations/{escalation_id}/close"),
    ]:
        assert expected in documented, expected
    assert response.get_json()["servers"] == [{"url": API}]


# --- units -----------------------------------------------------------------------------------


def test_unit_list_shows_the_callers_units_with_schedule_and_rule_set_in_force(api, make):
    make.unit("ZZ-OTHER")
    nurse = api("nurse", A, B)
    response = nurse.get("/units")
    assert response.status_code == 200
    page = response.get_json()
    assert page["next_cursor"] is None
    assert [unit["code"] for unit in page["items"]] == sorted([A, B])
    unit = next(item for item in page["items"] if item["code"] == A)
    assert unit == {
        "code": A,
        "name": f"Ward {A}",
        "timezone": "Europe/London",
        "schedule": {
            "version": 1,
            "bands": [
                {"until_hour": 24, "interval_minutes": 60},
                {"until_hour": 48, "interval_minutes": 120},
                {"until_hour": 120, "interval_minutes": 240},
            ],
            "grace_minutes": 15,
            "after_last_band_minutes": 480,
            "not_done_minutes": 30,
        },
        "rule_set_version": 1,
    }


def test_admin_creates_a_unit_ready_with_default_schedule_and_rules(api):
    admin = api("admin")
    response = admin.post(
        "/units", {"code": "MAXFAX-2", "name": "Maxillofacial 2", "timezone": "Europe/Dublin"}
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    created = response.get_json()
    assert (created["code"], created["name"], created["timezone"]) == (
        "MAXFAX-2",
        "Maxillofacial 2",
        "Europe/Dublin",
    )
    assert created["rule_set_version"] == 1 and created["schedule"]["version"] == 1
    assert response.headers["Location"].endswith(f"{API}/units/MAXFAX-2")
    assert admin.client.get(response.headers["Location"], headers=bearer(admin)).get_json() == (
        created
    )
    rules = admin.get("/units/MAXFAX-2/rule-set").get_json()["rules"]
    assert {rule["id"] for rule in rules} >= DEFAULT_RULE_IDS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": A, "name": "Again", "timezone": "Europe/London"}, "code"),
        ({"code": "NEW-1", "name": "New", "timezone": "Mars/Olympus_Mons"}, "timezone"),
    ],
)
def test_a_unit_the_ward_cannot_have_is_refused_naming_the_field(api, make, session, body, field):
    make.unit(A)
    admin = api("admin")
    before = count(session, RuleSetVersion)
    error = error_of(admin.post("/units", body), 422, "unprocessable")
    assert field in error["fields"]
    assert count(session, RuleSetVersion) == before


def test_a_unit_is_read_by_its_code_in_any_case(api):
    nurse = api("nurse", A)
    upper = nurse.get(f"/units/{A}")
    lower = nurse.get(f"/units/{A.lower()}")
    assert upper.status_code == lower.status_code == 200
    assert upper.get_json() == lower.get_json()
    assert upper.get_json()["code"] == A


# --- rule sets -------------------------------------------------------------------------------


def test_the_rule_set_in_force_lists_each_rule_with_what_to_do(api):
    nurse = api("nurse", A)
    response = nurse.get(f"/units/{A}/rule-set")
    assert response.status_code == 200
    rule_set = response.get_json()
    assert (rule_set["unit"], rule_set["version"]) == (A, 1)
    assert set(rule_set) == {"unit", "version", "note", "created_at", "created_by", "rules"}
    at(rule_set["created_at"])
    by_id = {rule["id"]: rule for rule in rule_set["rules"]}
    assert set(by_id) >= DEFAULT_RULE_IDS
    assert by_id["venous"]["severity"] == "red" and by_id["temperature"]["severity"] == "amber"
    assert all(rule["action"].strip() for rule in rule_set["rules"] if rule["conditions"])
    colour = next(c for c in by_id["venous"]["conditions"] if c["field"] == "colour")
    assert colour["op"] == "in" and {"dusky", "blue", "purple"} <= set(colour["value"])


def _without_defaults(rule: dict[str, Any]) -> dict[str, Any]:
    defaults = {"match": "any", "enabled": True, "action": "", "conditions": []}
    return {k: v for k, v in rule.items() if defaults.get(k, object()) != v}


@pytest.mark.parametrize("written", ["as read", "defaults left out, keys reordered"])
def test_sending_the_rule_set_in_force_again_publishes_nothing(api, session, written):
    coordinator = api("unit_admin", A)
    current = coordinator.get(f"/units/{A}/rule-set").get_json()
    before = count(session, RuleSetVersion)
    rules = current["rules"]
    if written != "as read":
        rules = [dict(reversed(list(_without_defaults(rule).items()))) for rule in rules]
        assert rules != current["rules"]

    response = coordinator.put(f"/units/{A}/rule-set", {"note": current["note"], "rules": rules})

    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == current
    assert count(session, RuleSetVersion) == before
    versions = coordinator.get(f"/units/{A}/rule-set/versions").get_json()["items"]
    assert [v["version"] for v in versions] == [1]


def test_a_changed_rule_set_becomes_the_next_version_and_judges_new_checks(api, make):
    coordinator = api("unit_admin", A)
    current = coordinator.get(f"/units/{A}/rule-set").get_json()
    rules = [
        {**rule, "enabled": False} if rule["id"] == "temperature" else rule
        for rule in current["rules"]
    ]

    response = coordinator.put(
        f"/units/{A}/rule-set", {"rules": rules, "note": "Too many amber alerts from draughts"}
    )

    assert response.status_code == 201, response.get_data(as_text=True)
    published = response.get_json()
    assert published["version"] == current["version"] + 1
    assert published["created_by"] == coordinator.user.username
    assert published["note"] == "Too many amber alerts from draughts"
    assert response.headers["Location"].endswith(f"{API}/units/{A}/rule-set")
    in_force = coordinator.get(f"/units/{A}/rule-set").get_json()
    assert in_force["version"] == 2
    assert next(r for r in in_force["rules"] if r["id"] == "temperature")["enabled"] is False
    assert coordinator.get(f"/units/{A}").get_json()["rule_set_version"] == 2
    versions = coordinator.get(f"/units/{A}/rule-set/versions").get_json()
    assert [(v["version"], v["created_by"]) for v in versions["items"]] == [
        (2, coordinator.user.username),
        (1, None),
    ]
    assert versions["next_cursor"] is None

    # A cold flap (control 2 °C warmer) is no longer flagged, and says which version judged it.
    flap = make.reconstruction(unit=A)
    nurse = api("nurse", A)
    check = nurse.post(
        f"/reconstructions/{flap.id}/checks",
        check_body(flap_temperature_c=33.0, control_temperature_c=35.0),
    ).get_json()
    assert (check["flags"], check["rule_set_version"]) == ([], 2)


def test_a_rule_set_the_ward_cannot_use_is_refused_with_its_problems(api, session):
    coordinator = api("unit_admin", A)
    current = coordinator.get(f"/units/{A}/rule-set").get_json()
    broken = current["rules"] + [
        {
            "id": "smell",
            "name": "Smells wrong",
            "severity": "red",
            "action": "Call someone",
            "conditions": [{"field": "smell", "op": "in", "value": ["foul"]}],
        }
    ]
    before = count(session, RuleSetVersion)

    error = error_of(
        coordinator.put(f"/units/{A}/rule-set", {"rules": broken, "note": "Add smell"}),
        422,
        "unprocessable",
    )

    assert error["fields"] and any("smell" in text for text in error["fields"].values())
    assert count(session, RuleSetVersion) == before
    assert coordinator.get(f"/units/{A}/rule-set").get_json()["version"] == 1


# --- patients and reconstructions ------------------------------------------------------------

PATIENT = {"mrn": "H123456", "name": "Ada Lovelace", "date_of_birth": "1961-12-10", "bed": "7"}


def test_coordinator_admits_a_patient_and_reads_them_back(api, session):
    coordinator = api("unit_admin", A)
    response = coordinator.post("/patients", {**PATIENT, "unit": A})
    assert response.status_code == 201, response.get_data(as_text=True)
    patient = response.get_json()
    assert patient == {**PATIENT, "unit": A, "id": patient["id"]}
    assert response.headers["Location"].endswith(f"{API}/patients/{patient['id']}")
    assert coordinator.get(f"/patients/{patient['id']}").get_json() == patient
    assert coordinator.get(f"/patients?unit={A}").get_json()["items"] == [patient]
    assert coordinator.get("/patients").get_json()["items"] == [patient]

    again = error_of(coordinator.post("/patients", {**PATIENT, "unit": A}), 422)
    assert "mrn" in again["fields"]
    assert count(session, Patient) == 1


def test_coordinator_adds_a_flap_that_falls_due_on_the_units_schedule(api, make):
    patient = make.patient(A)
    coordinator = api("unit_admin", A)
    surgery_end = (utcnow() - timedelta(hours=2)).replace(microsecond=0)
    body = {
        "patient_id": patient.id,
        "procedure": "ALT free flap",
        "flap_kind": "free",
        "site": "lower leg",
        "side": "right",
        "surgery_end_at": surgery_end.isoformat(),
        "surgeon": "Mr Registrar",
        "buried": False,
    }

    response = coordinator.post("/reconstructions", body)

    assert response.status_code == 201, response.get_data(as_text=True)
    flap = response.get_json()
    assert {name: flap[name] for name in body if name != "surgery_end_at"} == {
        name: value for name, value in body.items() if name != "surgery_end_at"
    }
    assert at(flap["surgery_end_at"]) == surgery_end
    assert (flap["unit"], flap["status"]) == (A, "monitoring")
    # Hourly for the first 24 h: the first check was due an hour after surgery, and is late.
    assert at(flap["next_due_at"]) == surgery_end + timedelta(hours=1)
    assert flap["due_state"] == "overdue"
    assert (flap["last_check_at"], flap["open_escalation_id"]) == (None, None)
    location = response.headers["Location"]
    assert location.endswith(f"{API}/reconstructions/{flap['id']}")
    read = coordinator.get(f"/reconstructions/{flap['id']}").get_json()
    assert read == flap


def test_reconstruction_list_filters_by_unit_and_status(api, make, session):
    in_a = make.reconstruction(unit=A)
    stopped_in_a = make.reconstruction(unit=A)
    in_b = make.reconstruction(unit=B)
    set_reconstruction_status(session, SYSTEM, stopped_in_a.id, ReconstructionStatus.STOPPED)
    auditor = api("auditor")

    def ids(query: str) -> list[int]:
        response = auditor.get(f"/reconstructions{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["id"] for item in response.get_json()["items"]]

    assert ids("") == [in_a.id, stopped_in_a.id, in_b.id]
    assert ids(f"?unit={A}") == [in_a.id, stopped_in_a.id]
    assert ids(f"?unit={B}") == [in_b.id]
    assert ids("?status=stopped") == [stopped_in_a.id]
    assert ids(f"?unit={A}&status=monitoring") == [in_a.id]
    assert ids(f"?unit={B}&status=stopped") == []
    stopped = auditor.get(f"/reconstructions/{stopped_in_a.id}").get_json()
    assert (stopped["next_due_at"], stopped["due_state"]) == (None, None)


def test_one_patch_corrects_details_and_ends_monitoring_together(api, make):
    flap = make.reconstruction(unit=A)
    coordinator = api("unit_admin", A)

    response = coordinator.patch(
        f"/reconstructions/{flap.id}",
        {
            "site": "left breast",
            "surgeon": "Ms Consultant",
            "status": "stopped",
            "status_note": "Flap settled, monitoring complete",
        },
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    changed = response.get_json()
    assert (changed["site"], changed["surgeon"], changed["status"]) == (
        "left breast",
        "Ms Consultant",
        "stopped",
    )
    assert (changed["procedure"], changed["side"]) == ("DIEP free flap", "left")  # untouched
    assert (changed["next_due_at"], changed["due_state"]) == (None, None)
    assert coordinator.get(f"/reconstructions/{flap.id}").get_json() == changed
    nurse = api("nurse", A)
    refused = error_of(nurse.post(f"/reconstructions/{flap.id}/checks", check_body()), 422)
    assert "ended" in refused["message"]


def test_a_refused_patch_changes_nothing_at_all(api, make):
    flap = make.reconstruction(unit=A, hours_ago=3)
    coordinator = api("unit_admin", A)
    before = coordinator.get(f"/reconstructions/{flap.id}").get_json()
    future = (utcnow() + timedelta(hours=2)).isoformat()

    error = error_of(
        coordinator.patch(
            f"/reconstructions/{flap.id}",
            {"site": "right thigh", "surgery_end_at": future, "status": "stopped"},
        ),
        422,
    )

    assert "surgery_end_at" in error["fields"]
    assert coordinator.get(f"/reconstructions/{flap.id}").get_json() == before


# --- checks ----------------------------------------------------------------------------------


def test_a_normal_check_is_stored_with_no_flags_and_says_when_the_next_is_due(api, make):
    flap = make.reconstruction(unit=A, hours_ago=3)
    nurse = api("nurse", A)
    body = check_body(minutes_ago=2, notes="Warm, soft, pink")

    response = nurse.post(f"/reconstructions/{flap.id}/checks", body)

    assert response.status_code == 201, response.get_data(as_text=True)
    check = response.get_json()
    for name, value in body.items():
        if name != "taken_at":
            assert check[name] == value, name
    assert at(check["taken_at"]) == at(body["taken_at"])
    assert check["reconstruction_id"] == flap.id
    assert check["recorded_by"] == nurse.user.username
    assert abs(at(check["recorded_at"]) - utcnow()) < timedelta(minutes=1)
    assert check["late_entry"] is False
    assert check["temperature_difference_c"] == pytest.approx(0.8)
    assert (check["flags"], check["severity"], check["escalation_id"]) == ([], None, None)
    assert check["rule_set_version"] == 1
    # Hourly in the first 24 h after surgery.
    assert at(check["next_due_at"]) == at(body["taken_at"]) + timedelta(hours=1)
    assert response.headers["Location"]

    listed = nurse.get(f"/reconstructions/{flap.id}/checks").get_json()["items"]
    expected = {k: v for k, v in check.items() if k not in ("escalation_id", "next_due_at")}
    assert listed == [expected]
    flap_now = nurse.get(f"/reconstructions/{flap.id}").get_json()
    assert at(flap_now["last_check_at"]) == at(body["taken_at"])
    assert flap_now["due_state"] == "not_due"


def test_a_dusky_flap_opens_a_red_escalation_and_says_what_to_do(api, make):
    flap = make.reconstruction(unit=A)
    nurse = api("nurse", A)

    response = nurse.post(f"/reconstructions/{flap.id}/checks", check_body(colour="dusky"))

    assert response.status_code == 201, response.get_data(as_text=True)
    check = response.get_json()
    assert check["severity"] == "red"
    venous = next(flag for flag in check["flags"] if flag["rule_id"] == "venous")
    assert set(venous) == {"rule_id", "name", "severity", "action", "reasons"}
    assert venous["severity"] == "red" and venous["name"].strip() and venous["action"].strip()
    assert venous["reasons"] and all(isinstance(r, str) and r for r in venous["reasons"])
    assert isinstance(check["escalation_id"], int)

    escalation = nurse.get(f"/escalations/{check['escalation_id']}").get_json()
    assert escalation["status"] == "open" and escalation["severity"] == "red"
    assert (escalation["reconstruction_id"], escalation["patient_id"], escalation["unit"]) == (
        flap.id,
        flap.patient_id,
        A,
    )
    assert escalation["opened_by_check_id"] == check["id"]
    assert escalation["reasons"]
    # Opened, and its chain's first step (the registrar) paged at once.
    assert [event["kind"] for event in escalation["events"]] == ["opened", "paged"]
    assert escalation["events"][0]["check_id"] == check["id"]
    assert (escalation["acknowledged_at"], escalation["outcome"], escalation["closed_at"]) == (
        None,
        None,
        None,
    )
    flap_now = nurse.get(f"/reconstructions/{flap.id}").get_json()
    assert flap_now["open_escalation_id"] == check["escalation_id"]
    open_ids = [e["id"] for e in nurse.get("/escalations?status=open").get_json()["items"]]
    assert open_ids == [check["escalation_id"]]


def test_odd_but_well_formed_values_are_refused_never_a_server_error(api, flap, session):
    nurse = api("nurse", A)
    answers = {}
    for name, changes in {
        "year 1": {"taken_at": "0001-01-01T00:00:00+01:00"},
        "year 9999": {"taken_at": "9999-12-31T23:59:59-01:00"},
        "lone surrogate": {"notes": "\ud800 lone surrogate"},
        "NUL": {"notes": "NUL \u0000 inside"},
    }.items():
        raw = json.dumps(check_body(**changes))  # ASCII escapes, as a device would send them
        response = nurse.post(
            f"/reconstructions/{flap.id}/checks", data=raw, content_type="application/json"
        )
        error = error_of(response, response.status_code)
        answers[name] = response.status_code in (400, 422) and bool(error["fields"])
    assert answers == dict.fromkeys(answers, True)
    assert count(session, Check) == 0


def test_a_not_a_number_temperature_is_refused_on_its_field(api, flap, session):
    nurse = api("nurse", A)
    raw = json.dumps(check_body(flap_temperature_c=float("nan")))
    assert "NaN" in raw
    response = nurse.post(
        f"/reconstructions/{flap.id}/checks", data=raw, content_type="application/json"
    )
    error = error_of(response, 400)
    assert "flap_temperature_c" in error["fields"]
    assert count(session, Check) == 0


def test_a_time_sent_with_another_utc_offset_is_the_same_instant(api, make):
    flap = make.reconstruction(unit=A)
    nurse = api("nurse", A)
    taken = (utcnow() - timedelta(minutes=3)).replace(microsecond=0)
    local = taken.astimezone(timezone(timedelta(hours=5, minutes=30)))

    check = nurse.post(
        f"/reconstructions/{flap.id}/checks", {"taken_at": local.isoformat(), "colour": "pink"}
    ).get_json()

    assert at(check["taken_at"]) == taken


def test_a_check_entered_more_than_an_hour_after_it_was_taken_is_a_late_entry(api, make):
    flap = make.reconstruction(unit=A, hours_ago=5)
    nurse = api("nurse", A)
    check = nurse.post(f"/reconstructions/{flap.id}/checks", check_body(minutes_ago=90))
    assert check.status_code == 201
    assert check.get_json()["late_entry"] is True


def test_correcting_a_check_makes_its_next_version_and_judges_it_again(api, make):
    flap = make.reconstruction(unit=A)
    check = make.check(flap, minutes_ago=20, colour="pink")
    nurse = api("nurse", A)
    values = check_body(colour="dusky")
    values["taken_at"] = check.taken_at.isoformat()
    response = nurse.post(
        f"/checks/{check.id}/amendments", {"reason": "It was dusky", "values": values}
    )
    assert response.status_code == 201, response.get_json()
    amended = response.get_json()
    assert (amended["version"], amended["amends_id"]) == (2, check.id)
    assert amended["colour"] == "dusky" and amended["amendment_reason"] == "It was dusky"
    assert amended["flags_before"] == [] and [f["rule_id"] for f in amended["flags"]] == ["venous"]
    assert amended["escalation_id"] is not None
    listed = nurse.get(f"/reconstructions/{flap.id}/checks").get_json()["items"]
    assert [item["id"] for item in listed] == [amended["id"]]

    again = nurse.post(f"/checks/{check.id}/amendments", {"reason": "x", "entered_in_error": True})
    error = error_of(again, 422, "unprocessable")
    assert "already been corrected" in error["message"]
    withdrawn = nurse.post(
        f"/checks/{amended['id']}/amendments", {"reason": "Wrong patient", "entered_in_error": True}
    )
    assert withdrawn.status_code == 201 and withdrawn.get_json()["entered_in_error"] is True


def test_a_correction_needs_a_reason_and_either_values_or_a_withdrawal(api, make):
    flap = make.reconstruction(unit=A)
    check = make.check(flap)
    nurse = api("nurse", A)
    error = error_of(nurse.post(f"/checks/{check.id}/amendments", {"reason": ""}), 400)
    assert set(error["fields"]) >= {"reason"}
    both = {"reason": "x", "entered_in_error": True, "values": check_body()}
    error_of(nurse.post(f"/checks/{check.id}/amendments", both), 400)


# --- escalations -----------------------------------------------------------------------------


def test_escalation_list_filters_by_status_and_unit(api, make, session):
    surgeon = make.actor(make.user("surgeon", A, B))
    flaps = [make.reconstruction(unit=A) for _ in range(3)] + [make.reconstruction(unit=B)]
    for flap in flaps:
        make.check(flap, colour="dusky")
    session.rollback()
    opened = [
        session.scalar(select(Escalation.id).where(Escalation.reconstruction_id == f.id))
        for f in flaps
    ]
    acknowledge_escalation(session, surgeon, opened[1], outcome="observe")
    acknowledge_escalation(session, surgeon, opened[2], outcome="false_alarm")
    close_escalation(session, surgeon, opened[2])
    auditor = api("auditor")

    def ids(query: str) -> list[int]:
        response = auditor.get(f"/escalations{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return [item["id"] for item in response.get_json()["items"]]

    assert ids("") == opened  # oldest first
    assert ids("?status=open") == [opened[0], opened[3]]
    assert ids("?status=acknowledged") == [opened[1]]
    assert ids("?status=closed") == [opened[2]]
    assert ids(f"?status=open&unit={A}") == [opened[0]]
    assert ids(f"?unit={B}") == [opened[3]]
    closed = auditor.get("/escalations?status=closed").get_json()["items"][0]
    assert closed["status"] == "closed" and closed["outcome"] == "false_alarm"
    assert closed["closed_at"] is not None and "events" not in closed


def test_an_overdue_flaps_escalation_is_read_with_no_check_behind_it(api, make, session):
    flap = make.reconstruction(unit=A, hours_ago=6)  # hourly, and never checked
    sweep_overdue(session)
    nurse = api("nurse", A)

    (listed,) = nurse.get("/escalations?status=open").get_json()["items"]
    escalation = nurse.get(f"/escalations/{listed['id']}").get_json()

    assert escalation["reconstruction_id"] == flap.id
    assert (escalation["severity"], escalation["opened_by_check_id"]) == ("amber", None)
    assert escalation["reasons"]
    # Opened by the sweep, and the amber chain's first step paged with it.
    opening, paged = escalation["events"]
    assert (opening["kind"], opening["check_id"], opening["by"]) == ("opened", None, None)
    assert (paged["kind"], paged["by"]) == ("paged", None)
    assert opening["reasons"] == escalation["reasons"]
    flap_now = nurse.get(f"/reconstructions/{flap.id}").get_json()
    assert flap_now["open_escalation_id"] == listed["id"]


def test_surgeon_acknowledges_with_an_outcome_then_closes_the_escalation(api, wards):
    ward, _ = wards
    surgeon = api("surgeon", A)

    response = surgeon.post(
        f"/escalations/{ward.escalation_id}/acknowledge",
        {"outcome": "observe", "note": "Reviewed at the bedside, hourly checks"},
    )

    assert response.status_code == 200, response.get_data(as_text=True)
    acknowledged = response.get_json()
    assert acknowledged["status"] == "acknowledged"
    assert acknowledged["outcome"] == "observe"
    assert acknowledged["note"] == "Reviewed at the bedside, hourly checks"
    assert acknowledged["acknowledged_by"] == surgeon.user.username
    assert abs(at(acknowledged["acknowledged_at"]) - utcnow()) < timedelta(minutes=1)
    assert acknowledged["events"][-1]["kind"] == "acknowledged"
    assert acknowledged["events"][-1]["by"] == surgeon.user.username
    flap = surgeon.get(f"/reconstructions/{ward.reconstruction_id}").get_json()
    assert flap["status"] == "monitoring"

    closed = surgeon.post(f"/escalations/{ward.escalation_id}/close", {"note": "Settled"})

    assert closed.status_code == 200, closed.get_data(as_text=True)
    body = closed.get_json()
    assert body["status"] == "closed" and body["closed_at"] is not None
    assert body["events"][-1]["kind"] == "closed"
    assert surgeon.get(f"/escalations/{ward.escalation_id}").get_json() == body
    assert surgeon.get("/escalations?status=open").get_json()["items"] == []


def test_return_to_theatre_takes_the_flap_off_the_monitoring_schedule(api, wards):
    ward, _ = wards
    surgeon = api("surgeon", A)
    response = surgeon.post(
        f"/escalations/{ward.escalation_id}/acknowledge", {"outcome": "return_to_theatre"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    flap = surgeon.get(f"/reconstructions/{ward.reconstruction_id}").get_json()
    assert flap["status"] == "returned_to_theatre"
    assert flap["next_due_at"] is None
    listed = surgeon.get("/reconstructions?status=returned_to_theatre").get_json()["items"]
    assert [item["id"] for item in listed] == [ward.reconstruction_id]


def test_acknowledging_after_a_new_sign_the_surgeon_has_not_seen_is_refused(api, make, wards):
    ward, _ = wards
    surgeon = api("surgeon", A)
    seen = surgeon.get(f"/escalations/{ward.escalation_id}").get_json()["events"][-1]["id"]
    nurse = api("nurse", A)
    sign = nurse.post(
        f"/reconstructions/{ward.reconstruction_id}/checks", check_body(colour="black")
    )
    assert sign.status_code == 201 and sign.get_json()["escalation_id"] == ward.escalation_id

    error = error_of(
        surgeon.post(
            f"/escalations/{ward.escalation_id}/acknowledge",
            {"outcome": "observe", "seen_event_id": seen},
        ),
        422,
    )

    assert "new sign" in error["message"]
    assert surgeon.get(f"/escalations/{ward.escalation_id}").get_json()["status"] == "open"


def test_closing_an_escalation_nobody_acknowledged_is_refused(api, wards):
    ward, _ = wards
    surgeon = api("surgeon", A)
    error = error_of(surgeon.post(f"/escalations/{ward.escalation_id}/close", {}), 422)
    assert "Acknowledge" in error["message"]
    assert surgeon.get(f"/escalations/{ward.escalation_id}").get_json()["status"] == "open"


# --- 400: the request does not match the document ---------------------------------------------


def test_a_body_that_is_not_a_json_object_is_400(api, flap, session):
    nurse = api("nurse", A)
    expected = {
        "cut off": (b'{"taken_at": "2026-01-01T10:00:00+00:00", "colour": ', "invalid_json"),
        "empty": (b"", "invalid_json"),
        "not UTF-8": (b'{"colour": "pink\xff\xfe"}', "invalid_json"),
        "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        "a list": (b"[]", "invalid_request"),
        "null": (b"null", "invalid_request"),
        "a string": (b'"pink"', "invalid_request"),
    }
    answers = {}
    for name, (raw, _) in expected.items():
        response = nurse.post(
            f"/reconstructions/{flap.id}/checks", data=raw, content_type="application/json"
        )
        answers[name] = (response.status_code, error_of(response, response.status_code)["code"])
    assert answers == {name: (400, code) for name, (_, code) in expected.items()}
    assert count(session, Check) == 0


def test_a_check_that_does_not_match_the_document_is_400_naming_the_field(api, flap, session):
    nurse = api("nurse", A)
    cases = [
        ({"temprature": 34.0}, "temprature", "not a field"),
        ({"flap_temperature_c": "34.5"}, "flap_temperature_c", "Flap temperature"),
        ({"flap_temperature_c": True}, "flap_temperature_c", "Flap temperature"),
        ({"colour": "green"}, "colour", "Colour"),
        ({"flap_temperature_c": 51}, "flap_temperature_c", "between 20.0 and 43.0 °C"),
        ({"control_temperature_c": 12.5}, "control_temperature_c", "between 20.0 and 43.0 °C"),
        ({"sto2_percent": 140}, "sto2_percent", "between 0 and 100 %"),
        ({"taken_at": "2026-01-01T10:00:00"}, "taken_at", "UTC offset"),
        ({"taken_at": "yesterday"}, "taken_at", "UTC offset"),
        ({"notes": "x" * 2001}, "notes", "Notes"),
    ]
    wrong = []
    for changes, field, words in cases:
        response = nurse.post(f"/reconstructions/{flap.id}/checks", check_body(**changes))
        error = error_of(response, response.status_code)
        if (response.status_code, error["code"]) != (400, "invalid_request") or words not in (
            error["fields"].get(field, "")
        ):
            wrong.append((changes, response.status_code, error))
    assert wrong == []
    assert count(session, Check) == 0


def test_a_missing_time_is_400_naming_it(api, flap):
    nurse = api("nurse", A)
    error = error_of(nurse.post(f"/reconstructions/{flap.id}/checks", {"colour": "pink"}), 400)
    assert "taken_at" in error["fields"]


LISTS = [
    "/units",
    "/patients",
    "/reconstructions",
    "/reconstructions/{flap}/checks",
    "/escalations",
    f"/units/{A}/rule-set/versions",
]


def _cursor_answers(nurse: Api, flap_id: int, cursor: str) -> dict[str, tuple[int, bool]]:
    """Each list's status for the cursor, and whether its error names `cursor`."""
    answers = {}
    for path in LISTS:
        response = nurse.get(path.format(flap=flap_id) + f"?cursor={cursor}")
        body = response.get_json() or {}
        fields = body.get("error", {}).get("fields", {})
        answers[path] = (response.status_code, "cursor" in fields)
    return answers


def test_a_cursor_not_from_the_list_is_400_naming_cursor(api, flap):
    nurse = api("nurse", A)
    for cursor in [
        "not-a-cursor",
        "WzEuNV0",  # [1.5]
        "WyJub3QgYSB0aW1lIiwxXQ",  # ["not a time",1]
        "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxLDJd",  # one value too many for any list
        "W10",  # []
    ]:
        assert _cursor_answers(nurse, flap.id, cursor) == dict.fromkeys(LISTS, (400, True)), cursor
    naive = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwIiwxXQ"  # a time without its offset
    response = nurse.get(f"/reconstructions/{flap.id}/checks?cursor={naive}")
    assert "cursor" in error_of(response, 400)["fields"]


def test_a_forged_cursor_is_400_never_a_server_error(api, flap):
    """A cursor is text from the client: whatever it holds must be refused, not crash a query."""
    nurse = api("nurse", A)
    forged = {
        "[true]": "W3RydWVd",
        "[time, true]": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIix0cnVlXQ",
        "[-10**23]": "Wy05OTk5OTk5OTk5OTk5OTk5OTk5OTk5OV0",
        "[time, 10**23]": "WyIyMDI2LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiw5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OV0",
    }
    # Refused naming the cursor, or (a position that fits the list) read as a position.
    acceptable = {(400, True), (200, False)}
    answers = {
        (name, path): answer
        for name, cursor in forged.items()
        for path, answer in _cursor_answers(nurse, flap.id, cursor).items()
    }
    assert {case: answer for case, answer in answers.items() if answer not in acceptable} == {}


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=201", "?limit=ten", "?status=lost", "?unit="]
)
def test_list_parameters_outside_their_range_are_400(api, query):
    nurse = api("nurse", A)
    error = error_of(nurse.get(f"/reconstructions{query}"), 400, "invalid_request")
    assert set(error["fields"]) & {"limit", "status", "unit"}


def test_a_bad_idempotency_key_is_400_and_stores_nothing(api, flap, session):
    nurse = api("nurse", A)
    for key in ["", "k" * 256, "clé-unicode"]:
        response = nurse.post(
            f"/reconstructions/{flap.id}/checks", check_body(), headers={"Idempotency-Key": key}
        )
        assert "Idempotency-Key" in error_of(response, 400, "invalid_request")["fields"], key
    assert count(session, Check) == 0


# --- 401: no valid token ---------------------------------------------------------------------


def _expired(session: Session, user: User) -> str:
    now = utcnow()
    _, plain = create_token(
        session,
        SYSTEM,
        user.username,
        name="expired",
        expires_at=now - timedelta(minutes=1),
        now=now - timedelta(hours=2),
    )
    return plain


def _revoked(session: Session, user: User) -> str:
    token, plain = create_token(session, SYSTEM, user.username, name="revoked")
    revoke_token(session, SYSTEM, token.id)
    return plain


def test_a_request_without_a_valid_token_is_401_with_a_bearer_challenge(client, make, session):
    user = make.user("nurse", A)
    _, leaver = create_token(session, SYSTEM, user.username, name="of a leaver")
    assert client.get(f"{API}/me", headers={"Authorization": f"Bearer {leaver}"}).status_code == (
        200
    )
    update_user(
        session,
        SYSTEM,
        user.id,
        display_name=user.display_name,
        role=user.role,
        active=False,
        unit_codes=[A],
    )
    colleague = make.user("nurse", A)
    headers = {
        "no header": {},
        "unknown token": {"Authorization": "Bearer fwt_this-token-was-never-issued"},
        "empty bearer": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic bnVyc2U6cGFzc3dvcmQ="},
        "revoked": {"Authorization": f"Bearer {_revoked(session, colleague)}"},
        "expired": {"Authorization": f"Bearer {_expired(session, colleague)}"},
        "deactivated account": {"Authorization": f"Bearer {leaver}"},
    }
    answers = {}
    for name, sent in headers.items():
        response = client.get(f"{API}/me", headers=sent)
        error = error_of(response, response.status_code)
        challenge = response.headers.get("WWW-Authenticate", "")
        answers[name] = (response.status_code, error["code"], challenge.startswith("Bearer "))
    assert answers == dict.fromkeys(headers, (401, "unauthorized", True))
    # The colleague's own valid token still works: only the bad ones were refused.
    _, valid = create_token(session, SYSTEM, colleague.username, name="valid")
    assert client.get(f"{API}/me", headers={"Authorization": f"Bearer {valid}"}).status_code == 200


def test_a_write_without_a_token_is_401_before_its_body_is_read(client, flap, session):
    response = client.post(f"{API}/reconstructions/{flap.id}/checks", data="not json")
    error_of(response, 401, "unauthorized")
    assert "WWW-Authenticate" in response.headers
    assert count(session, Check) == 0


# --- 403: the role may not do this -----------------------------------------------------------


def test_a_nurse_cannot_admit_a_patient(api, session):
    nurse = api("nurse", A)
    error_of(nurse.post("/patients", {**PATIENT, "unit": A}), 403, "forbidden")
    assert count(session, Patient) == 0


def test_a_nurse_cannot_acknowledge_an_escalation(api, wards):
    ward, _ = wards
    nurse = api("nurse", A)
    response = nurse.post(f"/escalations/{ward.escalation_id}/acknowledge", {"outcome": "observe"})
    error_of(response, 403, "forbidden")
    assert nurse.get(f"/escalations/{ward.escalation_id}").get_json()["status"] == "open"


def test_only_an_administrator_creates_units(api):
    body = {"code": "NEW-W1", "name": "New ward", "timezone": "Europe/London"}
    for role in ("nurse", "surgeon", "unit_admin"):
        caller = api(role, A)
        error_of(caller.post("/units", body), 403, "forbidden")
    assert api("admin").get("/units/NEW-W1").status_code == 404


# --- 404, 405, 409, 413, 415, 422 --------------------------------------------------------------


def test_an_unknown_api_path_is_a_json_404(api):
    nurse = api("nurse", A)
    for path in ["/api/v1/nothing", "/api/v2/units", "/api/", f"/api/v1/units/{A}/"]:
        error_of(nurse.client.get(path, headers=bearer(nurse)), 404, "not_found")


def test_an_unknown_or_impossible_id_is_a_json_404(api):
    nurse = api("nurse", A)
    for path in [
        "/patients/{n}",
        "/reconstructions/{n}",
        "/reconstructions/{n}/checks",
        "/escalations/{n}",
    ]:
        for number in [987654, MAX_ID, MAX_ID + 1, 2**63]:
            error_of(nurse.get(path.format(n=number)), 404, "not_found")
    for path in ["/units/NO-SUCH-WARD", "/units/NO-SUCH-WARD/rule-set", "/patients?unit=NOPE"]:
        error_of(nurse.get(path), 404, "not_found")


def test_writes_to_an_unknown_or_impossible_id_are_a_json_404(api, session):
    surgeon = api("surgeon", A)
    coordinator = api("unit_admin", A)
    for number in (987654, MAX_ID + 1):
        error_of(surgeon.post(f"/reconstructions/{number}/checks", check_body()), 404)
        error_of(surgeon.post(f"/escalations/{number}/acknowledge", {"outcome": "observe"}), 404)
        error_of(surgeon.post(f"/escalations/{number}/close", {}), 404)
        error_of(coordinator.patch(f"/reconstructions/{number}", {"site": "x"}), 404)
    reconstruction = {
        "patient_id": 987654,
        "procedure": "DIEP free flap",
        "flap_kind": "free",
        "site": "breast",
        "side": "left",
        "surgery_end_at": (utcnow() - timedelta(hours=1)).isoformat(),
        "surgeon": "Ms Surgeon",
    }
    error_of(coordinator.post("/reconstructions", reconstruction), 404, "not_found")
    # An id no database row can have is a field of the body here: refused, never a 500.
    too_big = coordinator.post("/reconstructions", {**reconstruction, "patient_id": MAX_ID + 1})
    assert "patient_id" in error_of(too_big, 400)["fields"]
    assert (count(session, Check), count(session, Reconstruction)) == (0, 0)


def test_a_method_a_path_does_not_take_is_405_listing_the_allowed_ones(api):
    nurse = api("nurse", A)
    for method, path, allowed in [
        ("DELETE", "/units", {"GET", "POST"}),
        ("PATCH", f"/units/{A}", {"GET"}),
        ("POST", f"/units/{A}/rule-set", {"GET", "PUT"}),
        ("DELETE", "/reconstructions/1", {"GET", "PATCH"}),
        ("PUT", "/escalations/1/acknowledge", {"POST"}),
    ]:
        response = nurse.open(method, path, json={})
        error_of(response, 405, "method_not_allowed")
        assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}, path


def test_a_body_over_one_mebibyte_is_413_and_stores_nothing(api, flap, session):
    nurse = api("nurse", A)
    response = nurse.post(
        f"/reconstructions/{flap.id}/checks", check_body(notes="x" * (1024 * 1024))
    )
    error_of(response, 413, "payload_too_large")
    assert count(session, Check) == 0


def test_a_body_not_sent_as_json_is_415(api, flap, session):
    nurse = api("nurse", A)
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = nurse.post(
            f"/reconstructions/{flap.id}/checks",
            data=json.dumps(check_body()),
            content_type=content_type,
        )
        error_of(response, 415, "unsupported_media_type")
    assert count(session, Check) == 0


def test_a_check_taken_in_the_future_is_422_on_taken_at(api, flap, session):
    nurse = api("nurse", A)
    error = error_of(
        nurse.post(f"/reconstructions/{flap.id}/checks", check_body(minutes_ago=-30)),
        422,
        "unprocessable",
    )
    assert "future" in error["fields"]["taken_at"]
    assert count(session, Check) == 0


def test_a_check_with_nothing_assessed_is_422(api, flap, session):
    nurse = api("nurse", A)
    taken = (utcnow() - timedelta(minutes=1)).isoformat()
    for body in (
        {},
        {"colour": "not_assessable", "doppler_arterial": "not_assessed", "notes": "Asleep"},
    ):
        error = error_of(
            nurse.post(f"/reconstructions/{flap.id}/checks", {"taken_at": taken, **body}),
            422,
            "unprocessable",
        )
        assert "at least one assessment" in error["message"], body
    assert count(session, Check) == 0


def test_acknowledging_a_closed_escalation_is_422(api, make, session, wards):
    ward, _ = wards
    surgeon = api("surgeon", A)
    acknowledge_escalation(session, make.actor(surgeon.user), ward.escalation_id, outcome="observe")
    close_escalation(session, make.actor(surgeon.user), ward.escalation_id)

    error = error_of(
        surgeon.post(f"/escalations/{ward.escalation_id}/acknowledge", {"outcome": "false_alarm"}),
        422,
        "unprocessable",
    )

    assert "closed" in error["message"]
    escalation = surgeon.get(f"/escalations/{ward.escalation_id}").get_json()
    assert (escalation["status"], escalation["outcome"]) == ("closed", "observe")


def test_an_api_failure_is_never_an_html_page(api, app, flap, monkeypatch):
    nurse = api("nurse", A)
    requests = [
        ("GET", "/api/v1/nothing/here", {}),
        ("POST", "/api/v1/nothing/here", {"json": {}}),
        ("GET", "/api/v1/units/%01", {}),
        ("GET", "/api/v1/reconstructions/-1", {}),
        ("OPTIONS", "/api/v1/nothing", {}),
        ("GET", "/api/v1/reconstructions/abc/checks", {}),
        ("POST", f"/api/v1/reconstructions/{flap.id}/checks", {"data": "<html>"}),
    ]
    for method, path, kwargs in requests:
        response = nurse.client.open(path, method=method, headers=bearer(nurse), **kwargs)
        assert response.status_code >= 400, (method, path)
        assert response.mimetype == "application/json", (method, path)
        assert "<html" not in response.get_data(as_text=True).lower(), (method, path)
        error_of(response, response.status_code)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database on fire: secret detail")

    monkeypatch.setattr(records, "units_page", broken)
    response = nurse.get("/units")
    error = error_of(response, 500, "internal_error")
    assert "secret detail" not in response.get_data(as_text=True)
    assert error["request_id"]


def test_the_callers_request_id_is_echoed_in_errors(api):
    nurse = api("nurse", A)
    response = nurse.get("/patients/987654", headers={"X-Request-ID": "tablet-7.req-42"})
    assert error_of(response, 404)["request_id"] == "tablet-7.req-42"


# --- one unit cannot see another -------------------------------------------------------------


def _reads_of(ward: Ward) -> list[str]:
    return [
        f"/units/{ward.unit}",
        f"/units/{ward.unit}/rule-set",
        f"/units/{ward.unit}/rule-set/versions",
        f"/patients/{ward.patient_id}",
        f"/reconstructions/{ward.reconstruction_id}",
        f"/reconstructions/{ward.reconstruction_id}/checks",
        f"/escalations/{ward.escalation_id}",
        f"/patients?unit={ward.unit}",
        f"/reconstructions?unit={ward.unit}",
        f"/escalations?unit={ward.unit}",
    ]


@pytest.mark.parametrize("role", ["nurse", "surgeon", "unit_admin"])
def test_another_units_records_answer_404_as_if_they_did_not_exist(api, wards, role):
    mine, theirs = wards
    caller = api(role, A)
    for path in _reads_of(mine):
        assert caller.get(path).status_code == 200, path
    for path in _reads_of(theirs):
        error_of(caller.get(path), 404, "not_found")


def test_lists_show_only_the_callers_units(api, wards):
    mine, theirs = wards
    nurse = api("nurse", A)
    assert [u["code"] for u in nurse.get("/units").get_json()["items"]] == [A]
    assert [p["id"] for p in nurse.get("/patients").get_json()["items"]] == [mine.patient_id]
    flaps = nurse.get("/reconstructions").get_json()["items"]
    assert [f["id"] for f in flaps] == [mine.reconstruction_id]
    escalations = nurse.get("/escalations").get_json()["items"]
    assert [e["id"] for e in escalations] == [mine.escalation_id]


def test_writes_into_another_unit_answer_404_and_store_nothing(api, wards, session):
    _, theirs = wards
    checks, patients = count(session, Check), count(session, Patient)
    nurse = api("nurse", A)
    surgeon = api("surgeon", A)
    coordinator = api("unit_admin", A)
    current_rules = coordinator.get(f"/units/{A}/rule-set").get_json()
    attempts = [
        nurse.post(f"/reconstructions/{theirs.reconstruction_id}/checks", check_body()),
        coordinator.post("/patients", {**PATIENT, "unit": theirs.unit}),
        coordinator.post(
            "/reconstructions",
            {
                "patient_id": theirs.patient_id,
                "procedure": "DIEP free flap",
                "flap_kind": "free",
                "site": "breast",
                "side": "left",
                "surgery_end_at": (utcnow() - timedelta(hours=1)).isoformat(),
                "surgeon": "Ms Surgeon",
            },
        ),
        coordinator.patch(f"/reconstructions/{theirs.reconstruction_id}", {"status": "stopped"}),
        coordinator.put(
            f"/units/{theirs.unit}/rule-set", {"rules": current_rules["rules"], "note": "Mine"}
        ),
        surgeon.post(f"/escalations/{theirs.escalation_id}/acknowledge", {"outcome": "observe"}),
        surgeon.post(f"/escalations/{theirs.escalation_id}/close", {}),
    ]
    for response in attempts:
        error_of(response, 404, "not_found")
    assert (count(session, Check), count(session, Patient)) == (checks, patients)
    session.rollback()
    flap = session.get(Reconstruction, theirs.reconstruction_id)
    assert flap.status == ReconstructionStatus.MONITORING
    assert session.get(Escalation, theirs.escalation_id).acknowledged_at is None
    versions = session.scalar(
        select(func.count(RuleSetVersion.id)).where(RuleSetVersion.unit_id == flap.patient.unit_id)
    )
    assert versions == 1


def test_an_auditor_reads_every_unit_but_cannot_write(api, wards, session):
    mine, theirs = wards
    auditor = api("auditor")
    for ward in wards:
        for path in _reads_of(ward):
            assert auditor.get(path).status_code == 200, path
    assert {p["unit"] for p in auditor.get("/patients").get_json()["items"]} == {A, B}
    assert {e["unit"] for e in auditor.get("/escalations").get_json()["items"]} == {A, B}
    checks = count(session, Check)
    rules = auditor.get(f"/units/{A}/rule-set").get_json()
    attempts = [
        auditor.post(f"/reconstructions/{mine.reconstruction_id}/checks", check_body()),
        auditor.post("/patients", {**PATIENT, "unit": A}),
        auditor.patch(f"/reconstructions/{theirs.reconstruction_id}", {"status": "stopped"}),
        auditor.put(f"/units/{A}/rule-set", {"rules": rules["rules"], "note": "Audit"}),
        auditor.post(f"/escalations/{mine.escalation_id}/acknowledge", {"outcome": "observe"}),
        auditor.post(f"/escalations/{mine.escalation_id}/close", {}),
        auditor.post("/units", {"code": "AUDIT-1", "name": "x", "timezone": "Europe/London"}),
        auditor.post(
            f"/checks/{mine.check_id}/amendments", {"reason": "x", "entered_in_error": True}
        ),
    ]
    for response in attempts:
        error_of(response, 403, "forbidden")
    assert count(session, Check) == checks
    assert count(session, Patient) == 2


# --- Idempotency-Key -------------------------------------------------------------------------


def test_a_retry_with_the_same_key_stores_one_check_and_replays_the_first_answer(
    api, flap, session
):
    nurse = api("nurse", A)
    body = check_body(colour="dusky")
    headers = {"Idempotency-Key": "3f2c9a4e-tablet-7-0001"}

    first = nurse.post(f"/reconstructions/{flap.id}/checks", body, headers=headers)
    second = nurse.post(f"/reconstructions/{flap.id}/checks", body, headers=headers)

    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert second.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert count(session, Check) == 1
    assert count(session, Escalation) == 1


def test_the_same_json_written_differently_is_the_same_request(api, flap, session):
    nurse = api("nurse", A)
    body = check_body()
    headers = {"Idempotency-Key": "key-spacing"}
    first = nurse.post(f"/reconstructions/{flap.id}/checks", body, headers=headers)
    respaced = json.dumps(dict(reversed(list(body.items()))), indent=2)
    second = nurse.post(
        f"/reconstructions/{flap.id}/checks",
        data=respaced,
        content_type="application/json",
        headers=headers,
    )
    assert second.status_code == 201 and second.headers.get("Idempotent-Replayed") == "true"
    assert second.get_json()["id"] == first.get_json()["id"]
    assert count(session, Check) == 1


def test_the_same_key_for_a_different_request_is_409_and_stores_nothing_more(
    api, make, flap, session
):
    other_flap = make.reconstruction(unit=A)
    nurse = api("nurse", A)
    body = check_body()
    headers = {"Idempotency-Key": "reused-key"}
    assert nurse.post(f"/reconstructions/{flap.id}/checks", body, headers=headers).status_code == (
        201
    )

    changed_body = nurse.post(
        f"/reconstructions/{flap.id}/checks", {**body, "colour": "pale"}, headers=headers
    )
    changed_flap = nurse.post(f"/reconstructions/{other_flap.id}/checks", body, headers=headers)

    for response in (changed_body, changed_flap):
        error = error_of(response, 409, "idempotency_key_reused")
        assert "Idempotency-Key" in error["fields"]
    assert count(session, Check) == 1


def test_a_refused_request_keeps_no_answer_so_its_corrected_retry_is_stored(api, flap, session):
    nurse = api("nurse", A)
    headers = {"Idempotency-Key": "correct-me"}

    refused = nurse.post(
        f"/reconstructions/{flap.id}/checks", check_body(minutes_ago=-60), headers=headers
    )
    error_of(refused, 422)
    assert (count(session, Check), count(session, IdempotencyRecord)) == (0, 0)

    corrected = nurse.post(f"/reconstructions/{flap.id}/checks", check_body(), headers=headers)
    assert corrected.status_code == 201, corrected.get_data(as_text=True)
    assert "Idempotent-Replayed" not in corrected.headers
    assert count(session, Check) == 1


def test_two_accounts_may_use_the_same_key_independently(api, flap, session):
    first_nurse, second_nurse = api("nurse", A), api("nurse", A)
    headers = {"Idempotency-Key": "bed-7"}
    one = first_nurse.post(f"/reconstructions/{flap.id}/checks", check_body(3), headers=headers)
    two = second_nurse.post(f"/reconstructions/{flap.id}/checks", check_body(1), headers=headers)
    assert one.status_code == two.status_code == 201
    assert "Idempotent-Replayed" not in two.headers
    assert one.get_json()["id"] != two.get_json()["id"]
    assert two.get_json()["recorded_by"] == second_nurse.user.username
    assert count(session, Check) == 2


def test_retrying_an_admission_with_its_key_is_not_a_duplicate_patient(api, session):
    coordinator = api("unit_admin", A)
    headers = {"Idempotency-Key": "admission-1"}
    first = coordinator.post("/patients", {**PATIENT, "unit": A}, headers=headers)
    second = coordinator.post("/patients", {**PATIENT, "unit": A}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.get_json() == first.get_json()
    assert count(session, Patient) == 1


def test_two_simultaneous_sends_with_the_same_key_store_one_check(app, api, flap, session):
    nurse = api("nurse", A)
    body = check_body(colour="dusky")
    start = threading.Barrier(2)
    responses: list[Any] = []
    errors: list[BaseException] = []

    def send() -> None:
        own = app.test_client()
        try:
            start.wait(timeout=10)
            responses.append(
                own.post(
                    f"{API}/reconstructions/{flap.id}/checks",
                    json=body,
                    headers={**bearer(nurse), "Idempotency-Key": "dropped-wifi-42"},
                )
            )
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert [r.status_code for r in responses] == [201, 201], [
        r.get_data(as_text=True) for r in responses
    ]
    assert responses[0].get_json() == responses[1].get_json()
    replayed = sorted(r.headers.get("Idempotent-Replayed", "") for r in responses)
    assert replayed == ["", "true"]
    assert count(session, Check) == 1
    assert count(session, Escalation) == 1


# --- pages -----------------------------------------------------------------------------------


def test_walking_a_flaps_checks_gives_each_once_newest_first(api, make, flap):
    base = utcnow() - timedelta(minutes=5)
    minutes = [0, 20, 20, 20, 45, 60, 90]  # three taken at the same moment
    made = [make.check(flap, taken_at=base - timedelta(minutes=m)) for m in minutes]
    nurse = api("nurse", A)

    pages = walk(nurse, f"/reconstructions/{flap.id}/checks", limit=3)

    assert [len(page) for page in pages] == [3, 3, 1]
    items = [item for page in pages for item in page]
    assert sorted(item["id"] for item in items) == sorted(check.id for check in made)
    times = [at(item["taken_at"]) for item in items]
    assert times == sorted(times, reverse=True)
    assert times[0] == base


def test_walking_patients_flaps_and_escalations_gives_each_once(api, make):
    flaps = [make.reconstruction(unit=A) for _ in range(5)]
    for flap in flaps:
        make.check(flap, colour="dusky")
    nurse = api("nurse", A)

    patients = walk(nurse, "/patients", limit=2)
    reconstructions = walk(nurse, f"/reconstructions?unit={A}", limit=2)
    escalations = walk(nurse, "/escalations?status=open", limit=2)

    for pages in (patients, reconstructions, escalations):
        assert [len(page) for page in pages] == [2, 2, 1]
    assert [p["id"] for page in patients for p in page] == sorted(f.patient_id for f in flaps)
    assert [r["id"] for page in reconstructions for r in page] == [f.id for f in flaps]
    walked = [e["reconstruction_id"] for page in escalations for e in page]
    assert walked == [f.id for f in flaps]  # oldest first


def test_walking_units_and_rule_set_versions_gives_each_once(api, make, session):
    for code in ("AA-1", "BB-2", "CC-3"):
        make.unit(code)
    admin = api("admin")
    units = walk(admin, "/units", limit=2)
    assert [[u["code"] for u in page] for page in units] == [["AA-1", "BB-2"], ["CC-3"]]

    current = admin.get("/units/AA-1/rule-set").get_json()
    for note in ("second", "third"):
        rules = [{**rule, "action": f"{rule['action']} ({note})"} for rule in current["rules"]]
        assert admin.put("/units/AA-1/rule-set", {"rules": rules, "note": note}).status_code == 201
    versions = walk(admin, "/units/AA-1/rule-set/versions", limit=2)
    assert [[v["version"] for v in page] for page in versions] == [[3, 2], [1]]
    assert [v["note"] for page in versions for v in page][:2] == ["third", "second"]


def test_a_list_page_costs_the_same_queries_for_many_items_as_for_few(api, app, make):
    def add(number: int) -> None:
        for _ in range(number):
            flap = make.reconstruction(unit=A)
            make.check(flap, minutes_ago=20, **NORMAL)
            make.check(flap, colour="dusky")

    add(2)
    first_flap = make.reconstruction(unit=A)
    nurse = api("nurse", A)
    nurse.get("/me")  # the token's first use is written down once
    paths = ["/units", "/patients", "/reconstructions", "/escalations"]

    def costs() -> dict[str, int]:
        result = {}
        for path in [*paths, f"/reconstructions/{first_flap.id}/checks"]:
            with count_queries(app) as statements:
                assert nurse.get(path).status_code == 200
            result[path] = len(statements)
        return result

    make.check(first_flap, minutes_ago=30, colour="pink")
    few = costs()
    add(6)
    for minutes in (25, 20, 15, 10):
        make.check(first_flap, minutes_ago=minutes, colour="dusky")
    many = costs()
    assert many == few


# --- a logged-in browser ---------------------------------------------------------------------


def test_a_logged_in_browser_reads_the_api_with_its_session(logged_in, flap):
    browser, nurse = logged_in("nurse", A)
    response = browser.get(f"{API}/me")
    assert response.status_code == 200
    assert response.get_json()["username"] == nurse.username
    assert browser.get(f"{API}/reconstructions/{flap.id}").get_json()["id"] == flap.id


def test_a_browser_session_writes_only_with_its_csrf_token(logged_in, flap, session):
    browser, nurse = logged_in("nurse", A)
    url = f"{API}/reconstructions/{flap.id}/checks"

    refused = browser.client.post(url, json=check_body())
    assert "CSRF" in error_of(refused, 400)["message"]
    assert count(session, Check) == 0

    token = browser.csrf_token("/")
    accepted = browser.client.post(url, json=check_body(), headers={"X-CSRFToken": token})
    assert accepted.status_code == 201, accepted.get_data(as_text=True)
    assert accepted.get_json()["recorded_by"] == nurse.username
    assert count(session, Check) == 1


# --- tokens ----------------------------------------------------------------------------------


def test_a_tokens_use_is_recorded(api, session):
    nurse = api("nurse", A)
    session.rollback()
    assert session.scalars(select(ApiToken)).one().last_used_at is None
    assert nurse.get("/me").status_code == 200
    session.rollback()
    used = session.scalars(select(ApiToken)).one().last_used_at
    assert used is not None and abs(used - utcnow()) < timedelta(minutes=1)


def test_tokens_are_stored_only_as_a_hash(api, session):
    nurse = api("nurse", A)
    assert nurse.get("/me").status_code == 200
    session.rollback()
    rows = session.execute(text("SELECT * FROM api_tokens")).all()
    assert len(rows) == 1
    stored = " ".join(str(value) for value in rows[0])
    assert nurse.token not in stored
    assert nurse.token[4:] not in stored  # not even without its marker


def test_a_revoked_token_is_refused_from_the_next_request(api, session):
    nurse = api("nurse", A)
    assert nurse.get("/me").status_code == 200
    session.rollback()
    token = session.scalars(select(ApiToken)).one()
    revoke_token(session, SYSTEM, token.id)
    response = nurse.get("/me")
    error_of(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_page_that_ends_the_list_says_so_even_when_full(api, make, flap):
    for minutes_ago in (10, 20, 30, 40, 50, 60):
        make.check(flap, minutes_ago=minutes_ago)
    nurse = api("nurse", A)

    pages = walk(nurse, f"/reconstructions/{flap.id}/checks", limit=3)

    assert [len(page) for page in pages] == [3, 3]  # no empty third page to fetch


def test_a_request_without_a_token_is_401_whatever_id_it_names(client):
    for path in ("/patients/99999999999", "/reconstructions/3000000000/checks"):
        response = client.get(API + path)
        assert response.status_code == 401, path
        assert response.json["error"]["code"] == "unauthorized"


def test_amending_another_units_check_is_not_found(api, wards):
    ours, theirs = wards
    nurse = api("nurse", A)
    withdraw = {"reason": "Wrong patient", "entered_in_error": True}
    error_of(nurse.post(f"/checks/{theirs.check_id}/amendments", withdraw), 404, "not_found")
    assert nurse.post(f"/checks/{ours.check_id}/amendments", withdraw).status_code == 201
