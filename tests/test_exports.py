"""CSV exports for audit: what they contain, their filters, their safety, and who may take them."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Escalation, utcnow
from flapwatch.services.checks import amend_check
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.exports import COLUMNS
from flapwatch.services.tokens import create_token
from tests.conftest import count_queries

LONDON = ZoneInfo("Europe/London")


def parsed(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert "\r\n" in text  # RFC 4180 line ends
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture
def auditor(logged_in):
    browser, _ = logged_in("auditor")
    return browser


def test_a_check_round_trips_through_the_checks_export(auditor, make):
    flap = make.reconstruction(hours_ago=5)
    check = make.check(
        flap,
        minutes_ago=90,
        colour="pale",
        flap_temperature_c=33.4,
        control_temperature_c=35.3,
        capillary_refill="sluggish",
        capillary_refill_s=3.5,
        doppler_arterial="weak",
        doppler_venous="present",
        turgor="flaccid",
        pinprick="slow_none",
        sto2_percent=48.5,
        notes='Pale, cool; "registrar" called, ok',
    )

    response = auditor.get("/exports/checks.csv")

    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    (row,) = parsed(response.data)
    assert list(row) == list(COLUMNS["checks"])
    assert datetime.fromisoformat(row["taken_at"]) == check.taken_at
    assert datetime.fromisoformat(row["taken_at"]).utcoffset() is not None
    assert row["colour"] == "pale" and row["capillary_refill"] == "sluggish"
    assert float(row["flap_temperature_c"]) == 33.4
    assert float(row["temperature_difference_c"]) == pytest.approx(1.9)
    assert float(row["capillary_refill_s"]) == 3.5 and float(row["sto2_percent"]) == 48.5
    assert (row["doppler_arterial"], row["turgor"], row["pinprick"]) == (
        "weak",
        "flaccid",
        "slow_none",
    )
    assert row["notes"] == 'Pale, cool; "registrar" called, ok'
    assert row["severity"] == "red" and set(row["flags"].split()) == {"arterial", "temperature"}
    assert (row["amended"], row["late_entry"], row["rule_set_version"]) == ("false", "true", "1")
    assert row["unit"] == "PLAST-W3" and row["patient_mrn"] == flap.patient.mrn


def test_cells_a_spreadsheet_would_run_are_neutralised_and_numbers_left_alone(auditor, make):
    flap = make.reconstruction(hours_ago=5)
    for minutes, note in ((120, '=HYPERLINK("http://x")'), (60, "-ve pinprick"), (30, "@SUM")):
        make.check(flap, minutes_ago=minutes, notes=note, flap_temperature_c=36.0,
                   control_temperature_c=35.5)  # fmt: skip
    rows = parsed(auditor.get("/exports/checks.csv").data)
    assert [row["notes"] for row in rows] == ['\'=HYPERLINK("http://x")', "'-ve pinprick", "'@SUM"]
    assert all(row["temperature_difference_c"] == "-0.5" for row in rows)


def test_unit_and_days_are_on_the_units_clock_both_ends_included(auditor, make):
    make.unit("SYD-W1", timezone="Australia/Sydney")
    flap = make.reconstruction(hours_ago=48, unit="SYD-W1")
    other = make.reconstruction(hours_ago=48, unit="PLAST-W3")
    sydney = ZoneInfo("Australia/Sydney")
    late_evening = (utcnow().astimezone(sydney) - timedelta(days=1)).replace(
        hour=23, minute=30, second=0, microsecond=0
    )
    make.check(flap, taken_at=late_evening)
    make.check(other, taken_at=late_evening)
    day = late_evening.date()

    def exported(**query: str) -> list[str]:
        url = "/exports/checks.csv?" + "&".join(f"{k}={v}" for k, v in query.items())
        return [row["unit"] for row in parsed(auditor.get(url).data)]

    assert exported(unit="SYD-W1", **{"from": str(day), "to": str(day)}) == ["SYD-W1"]
    assert exported(unit="SYD-W1", **{"from": str(day + timedelta(days=1))}) == []
    assert exported(unit="SYD-W1", to=str(day - timedelta(days=1))) == []
    assert sorted(exported()) == ["PLAST-W3", "SYD-W1"]


def test_the_corrections_export_says_what_changed_who_why_and_the_flags(auditor, make, session):
    nurse = make.actor(make.user(Role.NURSE))
    flap = make.reconstruction(hours_ago=5)
    check = make.check(flap, minutes_ago=60, colour="pink", flap_temperature_c=43.0)
    amend_check(
        session,
        nurse,
        check.id,
        reason="It was dusky, and 34.0",
        values=CheckValues(
            **{**check.values().as_dict(), "colour": "dusky", "flap_temperature_c": 34.0}
        ),
    )

    (row,) = parsed(auditor.get("/exports/amendments.csv").data)

    assert list(row) == list(COLUMNS["amendments"])
    assert row["amends_id"] == str(check.id) and row["version"] == "2"
    assert row["amended_by"] == nurse.username and row["reason"] == "It was dusky, and 34.0"
    assert "colour: pink → dusky" in row["changes"]
    assert "flap_temperature_c: 43.0 → 34.0" in row["changes"]
    assert "taken_at" not in row["changes"]
    assert (row["flags_before"], row["flags_after"]) == ("", "venous")
    checks = parsed(auditor.get("/exports/checks.csv").data)
    assert [(c["version"], c["amended"], c["colour"]) for c in checks] == [("2", "true", "dusky")]


def test_the_escalations_export_gives_the_time_to_acknowledge(auditor, make, session):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=40, colour="blue")
    escalation = session.scalars(select(Escalation)).one()
    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledge_escalation(
        session,
        surgeon,
        escalation.id,
        outcome="return_to_theatre",
        now=escalation.opened_at + timedelta(minutes=12, seconds=30),
    )

    (row,) = parsed(auditor.get("/exports/escalations.csv").data)

    assert list(row) == list(COLUMNS["escalations"])
    assert (row["severity"], row["status"], row["outcome"]) == (
        "red",
        "acknowledged",
        "return_to_theatre",
    )
    assert float(row["minutes_to_acknowledge"]) == 12.5
    assert row["acknowledged_by"] == surgeon.username
    assert "Venous congestion suspected: colour blue" in row["reasons"]


def test_the_audit_export_is_the_chain_in_order_and_itself_audited(auditor, make, session):
    make.check(make.reconstruction(hours_ago=5), minutes_ago=30)
    rows = parsed(auditor.get("/exports/audit.csv").data)
    events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    # The export's own event was written before its first row left.
    assert [row["hash"] for row in rows] == [event.hash for event in events]
    assert rows[-1]["action"] == "export.audit"
    for row, previous in zip(rows[1:], rows, strict=False):
        assert row["previous_hash"] == previous["hash"]


def test_every_export_is_an_audit_event_naming_who_and_what(auditor, make, session):
    make.reconstruction(hours_ago=5)
    auditor.get("/exports/escalations.csv?unit=PLAST-W3&from=2026-01-01&to=2026-12-31")
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "export.escalations")
    ).one()
    assert event.actor_role == "auditor"
    assert event.after == {
        "kind": "escalations",
        "format": "csv",
        "unit": "PLAST-W3",
        "from": "2026-01-01",
        "to": "2026-12-31",
    }


def test_exports_are_for_auditors_and_administrators(logged_in, make):
    for role in ("nurse", "surgeon", "unit_admin"):
        browser, _ = logged_in(role, "PLAST-W3")
        assert browser.get("/exports/checks.csv").status_code == 403
        assert browser.get("/exports").status_code == 403
    admin, _ = logged_in("admin")
    assert admin.get("/exports/checks.csv").status_code == 200
    page = admin.get("/exports").get_data(as_text=True)
    assert 'action="/exports/checks.csv"' in page and "Audit trail" in page


def test_refused_exports_say_why(auditor, make):
    make.unit()
    refused = auditor.get("/exports/audit.csv?unit=PLAST-W3")
    assert refused.status_code == 400 and "exported whole" in refused.get_data(as_text=True)
    backwards = auditor.get("/exports/checks.csv?from=2026-02-01&to=2026-01-01")
    assert backwards.status_code == 400
    assert "The last day must not be before the first." in backwards.get_data(as_text=True)
    bad_day = auditor.get("/exports/checks.csv?from=yesterday")
    assert bad_day.status_code == 400 and "YYYY-MM-DD" in bad_day.get_data(as_text=True)
    assert auditor.get("/exports/checks.csv?unit=NOWHERE").status_code == 404


def _api(app: Any, session: Any, role: str, *units: str, make: Any) -> Any:
    user = make.user(role, *units)
    _, token = create_token(
        session, make.actor(make.user(Role.ADMIN)), user.username, name="export test"
    )
    client = app.test_client()
    return lambda path: client.get("/api/v1" + path, headers={"Authorization": f"Bearer {token}"})


def test_the_api_exports_the_same_files(app, make, session):
    make.check(make.reconstruction(hours_ago=5), minutes_ago=30, colour="dusky")
    get = _api(app, session, "auditor", make=make)
    for kind in ("checks", "amendments", "escalations", "audit"):
        response = get(f"/exports/{kind}.csv?from=2020-01-01")
        assert response.status_code == 200, kind
        assert response.headers["Content-Type"].startswith("text/csv")
        header = response.data.decode().split("\r\n", 1)[0]
        assert header == ",".join(COLUMNS[kind]), kind
    refused = get("/exports/audit.csv?unit=PLAST-W3")
    assert refused.status_code == 422 and "unit" in refused.get_json()["error"]["fields"]
    assert get("/exports/checks.csv?from=31-12-2026").status_code == 400
    nurse = _api(app, session, "nurse", "PLAST-W3", make=make)
    assert nurse("/exports/checks.csv").status_code == 403
    assert app.test_client().get("/api/v1/exports/checks.csv").status_code == 401


def test_a_long_export_streams_in_chunks_with_a_fixed_number_of_queries(app, auditor, make):
    flap = make.reconstruction(hours_ago=140)
    start = flap.surgery_end_at + timedelta(minutes=5)
    for index in range(1100):
        make.check(flap, taken_at=start + timedelta(minutes=7 * index), colour="pink")
    with count_queries(app) as statements:
        response = auditor.get("/exports/checks.csv", buffered=False)
        chunks = list(response.response)
        response.close()  # as a server does when the download ends: the request's end
    assert response.is_streamed and len(chunks) > 2
    assert len(parsed(b"".join(chunks))) == 1100
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) < 10  # the rows come in one streamed query, not one per check


def test_the_command_line_writes_the_file_and_refuses_with_a_message(runner, make, tmp_path):
    make.check(make.reconstruction(hours_ago=5), minutes_ago=30, colour="pink")
    target = tmp_path / "checks.csv"
    result = runner.invoke(
        args=["export", "checks", "--unit", "PLAST-W3", "--from", "2020-01-01", "--output",
              str(target)]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Exported 1 row of checks" in result.output
    assert [row["colour"] for row in parsed(target.read_bytes())] == ["pink"]
    refused = runner.invoke(args=["export", "audit", "--unit", "PLAST-W3", "--output", "-"])
    assert refused.exit_code == 1 and "exported whole" in refused.output


def test_times_carry_the_units_offset(auditor, make):
    flap = make.reconstruction(hours_ago=5)
    check = make.check(flap, minutes_ago=30)
    (row,) = parsed(auditor.get("/exports/checks.csv").data)
    expected = check.taken_at.astimezone(LONDON).utcoffset()
    assert datetime.fromisoformat(row["taken_at"]).utcoffset() == expected
    assert datetime.fromisoformat(row["taken_at"]).astimezone(UTC) == check.taken_at


def test_the_workbook_has_a_sheet_per_export_and_keeps_text_as_text(auditor, make, session):
    openpyxl = pytest.importorskip("openpyxl")
    flap = make.reconstruction(hours_ago=5)
    check = make.check(
        flap, minutes_ago=30, colour="dusky", flap_temperature_c=33.1, notes="=1+1 typed"
    )

    response = auditor.get("/exports/workbook.xlsx")

    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    book = openpyxl.load_workbook(io.BytesIO(response.data), read_only=True)
    assert book.sheetnames == [
        "Checks",
        "Corrections",
        "Escalations",
        "Checks not done",
        "Audit trail",
    ]
    header, row = list(book["Checks"].iter_rows(values_only=True))
    values = dict(zip(header, row, strict=True))
    assert list(header) == list(COLUMNS["checks"])
    assert values["check_id"] == check.id and values["flap_temperature_c"] == 33.1
    assert values["colour"] == "dusky" and values["amended"] is False
    assert values["notes"] == "=1+1 typed"
    notes_cell = list(book["Checks"].iter_rows(min_row=2))[0][header.index("notes")]
    assert notes_cell.data_type == "s"  # a text cell, not a formula
    assert datetime.fromisoformat(values["taken_at"]) == check.taken_at
    assert len(list(book["Escalations"].iter_rows())) == 2
    by_unit = openpyxl.load_workbook(
        io.BytesIO(auditor.get("/exports/workbook.xlsx?unit=PLAST-W3").data), read_only=True
    )
    assert "Audit trail" not in by_unit.sheetnames
    assert (
        session.scalars(
            select(AuditEvent.after).where(AuditEvent.action == "export.workbook")
        ).first()["format"]
        == "xlsx"
    )


def test_the_command_line_writes_the_workbook(runner, make, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    make.check(make.reconstruction(hours_ago=5), minutes_ago=30, colour="pink")
    target = tmp_path / "all.xlsx"
    result = runner.invoke(
        args=["export", "workbook", "--unit", "PLAST-W3", "--output", str(target)]
    )
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(target, read_only=True)
    assert book.sheetnames == ["Checks", "Corrections", "Escalations", "Checks not done"]
    assert len(list(book["Checks"].iter_rows())) == 2
