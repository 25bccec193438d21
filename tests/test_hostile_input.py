"""Arbitrary and malicious values thrown at every form and every API write: never a server
error, never shown back unescaped, and a refusal always names the field."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from flapwatch.models import Escalation, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.monitoring import set_override
from flapwatch.services.outcomes import return_to_theatre
from flapwatch.services.patients import set_reconstruction_status
from tests.conftest import Browser

PAYLOADS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' OR '1'='1' --",
    "'; DROP TABLE checks; --",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e309",
    "-0",
    "99999999999999999999999999",
    "0001-01-01T00:00",
    "9999-12-31T23:59",
    "2026-02-30T25:61",
    "1969-12-31",
    "\x00",
    "nul\x00inside",
    "\x1b[31mred\x07",
    "\u202eevil\u200b\ufeff",
    "𝔣𝔩𝔞𝔭 🩸 ñ 漢字",
    "A" * 20_000,
    " ",
    "",
    "{{7*7}}",
    "${7*7}",
    "%s%s%n",
    "../../etc/passwd",
]
HOSTILE = st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=200))
UNESCAPED = ("<script>alert(1)", "<img src=x onerror")
FORM_FIELD = re.compile(r'<(?:input|select|textarea)\b[^>]*\bname="([^"]+)"', re.IGNORECASE)
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.DOTALL | re.IGNORECASE)
ACTION = re.compile(r'\baction="([^"]*)"')
NOT_FILLED = {"csrf_token", "idempotency_key", "next"}
# A hypothesis run makes many requests per example: few examples, no deadline.
HOSTILE_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def ward(make, session) -> dict[str, Any]:
    unit = make.unit("PLAST-W3")
    patient = make.patient("PLAST-W3")
    flap = make.reconstruction(patient, hours_ago=6)
    colleague = make.user("nurse", "PLAST-W3")
    check = make.check(flap, colour="dusky")  # flagged: an escalation to acknowledge
    escalation_id = session.scalar(select(Escalation.id))
    override = set_override(
        session, make.actor(make.user("surgeon", "PLAST-W3")), flap.id, kind="interval",
        interval_minutes=15, starts_at=None, ends_at=utcnow() + timedelta(hours=2),
        reason="Congested",
    )  # fmt: skip
    theatre = return_to_theatre(session, make.actor(make.user("surgeon", "PLAST-W3")), flap.id)
    set_reconstruction_status(session, SYSTEM, flap.id, "monitoring", time_zero="continue")
    return {
        "override_id": override.id,
        "theatre_return_id": theatre.id,
        "unit_id": unit.id,
        "unit_code": unit.code,
        "patient_id": patient.id,
        "reconstruction_id": flap.id,
        "check_id": check.id,
        "escalation_id": escalation_id,
        "user_id": colleague.id,
    }


def _forms(w: dict[str, Any]) -> list[tuple[str, str]]:
    """(page showing the form, the form's action) for every HTML form that changes data."""
    r, u, p, s = w["reconstruction_id"], w["unit_id"], w["patient_id"], w["user_id"]
    e, c = w["escalation_id"], w["check_id"]
    same = [
        f"/reconstructions/{r}/checks/new",
        f"/checks/{c}/amend",
        f"/admin/units/{u}/rules/edit",
        "/admin/units/new",
        f"/admin/units/{u}/edit",
        f"/admin/units/{u}/schedule",
        "/admin/staff/new",
        f"/admin/staff/{s}/edit",
        f"/admin/staff/{s}/password",
        "/admin/patients/new",
        f"/admin/patients/{p}/edit",
        f"/admin/patients/{p}/reconstructions/new",
        f"/admin/reconstructions/{r}/edit",
    ]
    return [(url, url) for url in same] + [
        (f"/escalations/{e}", f"/escalations/{e}/acknowledge"),
        (f"/admin/units/{u}/rules/edit", f"/admin/units/{u}/rules/import"),
        (f"/admin/reconstructions/{r}/edit", f"/admin/reconstructions/{r}/status"),
        *(
            (url, url)
            for url in (
                f"/reconstructions/{r}/theatre-returns/{w['theatre_return_id']}",
                f"/reconstructions/{r}/final-outcome",
            )
        ),
        ("/units/PLAST-W3/start/flap?mrn=NEW-1", "/units/PLAST-W3/start/flap"),
        (f"/patients/{p}/transfer", f"/patients/{p}/transfer"),
    ]


def _fields(page: str, page_url: str, action: str) -> list[str] | None:
    for attributes, body in FORM.findall(page):
        found = ACTION.search(attributes)
        target = html.unescape(found.group(1)) if found and found.group(1) else page_url
        if target.split("?")[0] == action and 'method="post"' in attributes.lower():
            return sorted(set(FORM_FIELD.findall(body)) - NOT_FILLED)
    return None


def _assert_safe(answer: Any, where: str, value: str) -> None:
    assert answer.status_code < 500, f"{where}: {answer.status_code} for {value[:80]!r}"
    if answer.mimetype == "text/html":
        page = answer.get_data(as_text=True)
        for raw in UNESCAPED:
            assert raw not in page, f"{where}: {raw!r} shown unescaped"


@HOSTILE_SETTINGS
@given(value=HOSTILE)
def test_every_form_refuses_or_stores_hostile_values_without_a_server_error(
    app, logged_in, ward, value
):
    browser, _ = logged_in("admin")
    for page_url, action in _forms(ward):
        page = browser.client.get(page_url, follow_redirects=True)
        assert page.status_code == 200, page_url
        if action == page_url:  # a corrected check's form moves to its newest version
            action = page_url = page.request.path
        fields = _fields(page.get_data(as_text=True), page_url, action)
        if fields is None:
            # Only a check withdrawn, or an escalation acknowledged, by an earlier example.
            assert action.endswith(("/amend", "/acknowledge")), f"no form posting to {action}"
            continue
        token = browser.csrf_token(page_url)
        form = dict.fromkeys(fields, value)
        answer = browser.client.post(action, data={**form, "csrf_token": token})
        _assert_safe(answer, action, value)
        if answer.status_code in (200, 400, 422) and answer.mimetype == "text/html":
            # Refused: the form again, with what is wrong said on its fields. A digit in every
            # field is a valid dry run of the rule editor (every rule ticked for removal, the
            # last N days): its answer is the result, shown above the form.
            text = answer.get_data(as_text=True)
            refused = 'class="field-error"' in text or 'class="form-errors"' in text
            dry_run = answer.status_code == 200 and 'id="dry-run"' in text
            assert refused or dry_run, (action, answer.status_code, value)


@HOSTILE_SETTINGS
@given(value=HOSTILE)
def test_the_surgeon_s_schedule_form_refuses_hostile_values_naming_the_field(
    logged_in, ward, value
):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    url = f"/reconstructions/{ward['reconstruction_id']}/schedule"
    fields = _fields(browser.get(url).get_data(as_text=True), url, url)
    assert fields is not None
    answer = browser.post(url, data=dict.fromkeys(fields, value))
    _assert_safe(answer, url, value)
    if answer.status_code != 302:
        text = answer.get_data(as_text=True)
        assert answer.status_code == 400 and 'class="form-errors"' in text, value


def test_the_log_in_form_takes_hostile_credentials_as_a_failed_log_in(client):
    browser = Browser(client)
    for value in PAYLOADS:
        answer = browser.login(value or "x", value or "x")
        _assert_safe(answer, "/login", value)
        assert answer.status_code in (200, 429)


@pytest.fixture
def token(make, session) -> str:
    from flapwatch.services import SYSTEM
    from flapwatch.services.tokens import create_token

    admin = make.user("admin")
    _, plain = create_token(session, SYSTEM, admin.username, name="hostile")
    session.commit()
    return plain


def _api_writes(app, w: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(method, path, the body's property names) of every API write, from the served
    OpenAPI document."""
    document = app.test_client().get("/api/v1/openapi.json").json
    schemas = document["components"]["schemas"]
    values = {
        "code": w["unit_code"],
        "reconstruction_id": w["reconstruction_id"],
        "check_id": w["check_id"],
        "escalation_id": w["escalation_id"],
        "override_id": w["override_id"],
        "theatre_return_id": w["theatre_return_id"],
        "patient_id": w["patient_id"],
    }
    writes = []
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch"):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            if "$ref" in schema:
                schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
            path = "/api/v1" + re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]), template)
            writes.append((method.upper(), path, sorted(schema.get("properties", {}))))
    assert len(writes) >= 9
    return writes


@HOSTILE_SETTINGS
@given(value=st.one_of(HOSTILE, st.sampled_from([float("nan"), float("inf"), -1e308, 10**30])))
def test_every_api_write_answers_hostile_values_with_a_field_error(app, ward, token, value):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    for method, path, properties in _api_writes(app, ward):
        body = json.dumps(dict.fromkeys(properties, value))  # NaN and Infinity as JS writes them
        answer = client.open(
            path, method=method, data=body, headers={**headers, "Idempotency-Key": "h"}
        )
        assert answer.status_code < 500, f"{method} {path}: {answer.status_code} for {value!r}"
        assert answer.is_json, path
        error = answer.json.get("error") if answer.status_code >= 400 else None
        if error and error["code"] == "invalid_request":
            # The body refused: each problem on its field.
            assert error["fields"], f"{method} {path}: no field named"
        elif error and error["code"] == "unprocessable":
            # Refused by the ward's rules: on its field, or said of the whole request.
            assert error["fields"] or error["message"], f"{method} {path}"


def test_a_rule_set_nested_beyond_reason_is_refused_quickly_not_run(app, ward, token):
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    path = f"/api/v1/units/{ward['unit_code']}/rule-set"
    deep = "[" * 100_000 + "]" * 100_000
    answer = client.put(path, data=deep, headers=headers)
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_json"
    condition = {"field": "flap_temperature_c", "op": "drop_within", "value": 1, "minutes": 60}
    many = {
        "rules": [
            {
                "id": f"rule-{n}",
                "name": "x",
                "severity": "red",
                "action": "x",
                "conditions": [condition] * 60,
            }
            for n in range(150)
        ]
    }
    answer = client.put(path, json={**many, "note": "many"}, headers=headers)
    assert answer.status_code == 400
    assert "at most 100" in answer.json["error"]["fields"]["rules"]  # the limit, named
    trick = {"field": "__class__", "op": "eval", "value": 1}
    code = {
        "rules": [
            {
                "id": "x",
                "name": "__import__('os').system('true')",
                "severity": "red",
                "action": "{{ config }}",
                "conditions": [trick],
            }
        ]
    }
    answer = client.put(path, json={**code, "note": "code"}, headers=headers)
    assert answer.status_code in (400, 422)
    assert answer.json["error"]["fields"]


def test_a_control_character_in_the_address_is_refused_before_any_query(app, logged_in, ward):
    browser, _ = logged_in("admin")
    for url in (
        "/compliance?unit=PLAST%00W3",
        "/units/PLAST%00-W3/board",
        "/api/v1/patients?unit=PLAST-W3%1b",
    ):
        answer = browser.get(url)
        assert answer.status_code == 400, url
    assert browser.get("/compliance?unit=PLAST-W3").status_code == 200


def test_hostile_text_that_was_stored_is_shown_escaped_everywhere(app, logged_in, make):
    script = "<script>alert(1)</script>"
    image = '"><img src=x onerror=alert(1)>'
    patient = make.patient(name=f"Ada {script}", bed=image[:10])
    flap = make.reconstruction(patient, hours_ago=6)
    make.check(flap, colour="dusky", notes=f"Looks {image} and {script}")
    browser, _ = logged_in("admin")
    for url in (
        "/units/PLAST-W3/board",
        f"/reconstructions/{flap.id}",
        "/units/PLAST-W3/review",
        "/escalations",
        f"/admin/patients/{patient.id}/edit",
    ):
        page = browser.get(url)
        assert page.status_code == 200, url
        text = page.get_data(as_text=True)
        for raw in UNESCAPED:
            assert raw not in text, f"{url}: {raw!r} unescaped"
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
