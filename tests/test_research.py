"""The de-identified export for a registry or a research team: for every kind it can make, no
MRN, name or date of birth of the demo's patients appears anywhere in the file, and one key
gives the same pseudonyms every time."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace

import openpyxl
import pytest
from sqlalchemy import select

from flapwatch.demo import PAST_PATIENTS, PATIENTS, load_demo
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Check, Reconstruction, User, utcnow
from flapwatch.services.checks import amend_check
from flapwatch.services.monitoring import record_not_done
from flapwatch.services.research import KINDS, MIN_KEY_BYTES, Pseudonymiser
from tests.test_fhir import validated


@pytest.fixture
def demo(app, session, make):
    with app.app_context():
        load_demo(session)
    # A correction, so that the corrections export has a row.
    check = session.scalars(
        select(Check)
        .join(Reconstruction)
        .where(
            Reconstruction.status == "monitoring",
            Check.notes.is_not(None),
            Check.flap_temperature_c.is_not(None),
        )
    ).first()
    nurse = make.actor(session.scalars(select(User).where(User.username == "nurse")).one())
    amend_check(session, nurse, check.id, reason="Typed the wrong temperature",
                values=replace(check.values(), flap_temperature_c=34.0))  # fmt: skip
    record_not_done(session, nurse, check.reconstruction_id, taken_at=utcnow(),
                    reason="patient_refused", note="Asleep")  # fmt: skip
    people = [*PATIENTS, *PAST_PATIENTS]
    return {
        "mrns": [p.mrn for p in people],
        "names": [part for p in people for part in p.name.split()],
        "births": [p.date_of_birth.isoformat() for p in people]
        + [p.date_of_birth.strftime("%d %b %Y") for p in people],
    }


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "research.key"
    path.write_bytes(b"k" * MIN_KEY_BYTES)
    return path


def export(runner, tmp_path, kind, key_file, *extra):
    output = tmp_path / f"{kind}.out"
    result = runner.invoke(args=["export", kind, "--pseudonymise", "--key-file", str(key_file),
                                 "--output", str(output), *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = output.read_bytes()
    if kind == "workbook":
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        return "\n".join(
            str(cell) for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row
        )
    return data.decode("utf-8")


def test_no_patient_identifier_appears_in_any_de_identified_export(
    runner, tmp_path, demo, key_file
):
    # Every kind from one loading of the demo (it takes seconds); each failure names its kind.
    for kind in KINDS:
        text = export(runner, tmp_path, kind, key_file)

        assert len(text.splitlines()) >= 2 or len(text) > 500, kind  # the records are there
        for identifier in demo["mrns"] + demo["births"]:
            assert identifier not in text, (kind, identifier)
        for name in demo["names"]:
            assert not re.search(rf"\b{re.escape(name)}\b", text, re.IGNORECASE), (kind, name)

    # The rows say the patient by pseudonym and time as hours since the end of surgery.
    rows = list(csv.DictReader(io.StringIO(export(runner, tmp_path, "checks", key_file))))
    helen = Pseudonymiser(key_file.read_bytes()).pseudonym("DEMO-251106")
    hers = [row for row in rows if row["patient"] == helen]
    assert hers and {row["age_years"] for row in hers} == {"58"}
    hours = [float(row["taken_at"]) for row in hers]
    assert 0 <= min(hours) < 1 and max(hours) < 72.5  # monitored for 72 h from surgery
    assert "notes" not in rows[0] and "recorded_by" not in rows[0]
    told = list(csv.DictReader(io.StringIO(export(runner, tmp_path, "checks", key_file,
                                                  "--with-notes"))))  # fmt: skip
    assert any(row["notes"] for row in told)


@pytest.fixture
def patients(make):
    """Three patients, each with a flap and a check: enough to compare pseudonyms."""
    for _ in range(3):
        make.check(make.reconstruction(hours_ago=5), minutes_ago=20)


def test_one_key_gives_the_same_pseudonyms_and_another_key_others(runner, tmp_path, patients):
    first, second = tmp_path / "a.key", tmp_path / "b.key"
    first.write_bytes(b"a" * 40)
    second.write_bytes(b"b" * 40)

    def pseudonyms(key):
        text = export(runner, tmp_path, "fhir", key)
        bundle = validated(text.encode())  # still a valid FHIR R4 Bundle
        return sorted(
            entry["resource"]["identifier"][0]["value"]
            for entry in bundle["entry"]
            if entry["resource"]["resourceType"] == "Patient"
        )

    assert len(pseudonyms(first)) == 3 and len(set(pseudonyms(first))) == 3
    assert pseudonyms(first) == pseudonyms(first)
    assert set(pseudonyms(first)).isdisjoint(pseudonyms(second))


def test_the_audit_trail_is_never_de_identified_and_a_short_key_is_refused(
    runner, tmp_path, patients, key_file, session
):
    refused = runner.invoke(args=["export", "audit", "--pseudonymise", "--key-file",
                                  str(key_file), "--output", str(tmp_path / "a.csv")])  # fmt: skip
    assert refused.exit_code != 0 and "cannot be de-identified" in refused.output
    short = tmp_path / "short.key"
    short.write_bytes(b"x" * 8)
    weak = runner.invoke(args=["export", "checks", "--pseudonymise", "--key-file", str(short),
                               "--output", str(tmp_path / "c.csv")])  # fmt: skip
    assert weak.exit_code != 0 and "at least 32 bytes" in weak.output

    export(runner, tmp_path, "checks", key_file)
    event = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.checks")).one()
    assert event.after["pseudonymised"] is True and event.after["with_notes"] is False


def test_the_exports_page_and_the_api_give_it_with_the_server_s_key(
    app, logged_in, api, make, key_file
):
    flap = make.reconstruction(make.patient(name="Rita Research"), hours_ago=10)
    make.check(flap, minutes_ago=30, colour="pink", notes="Seen by Rita's daughter")
    browser, _ = logged_in(Role.AUDITOR)
    assert "Off on this server" in browser.get("/exports").get_data(as_text=True)
    off = browser.get("/exports/research?kind=checks")
    assert off.status_code in (400, 422) and "FLAPWATCH_RESEARCH_KEY_FILE" in off.get_data(
        as_text=True
    )

    app.config["RESEARCH_KEY_FILE"] = str(key_file)
    page = browser.get("/exports/research?kind=fhir")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert flap.patient.mrn not in text and "Rita" not in text and "1960-01-01" not in text
    auditor = api(Role.AUDITOR)
    csv_text = auditor.get("/exports/research/checks?notes=true").get_data(as_text=True)
    assert "Seen by Rita's daughter" in csv_text and flap.patient.mrn not in csv_text
    assert auditor.get("/exports/research/audit").status_code == 422
    assert api(Role.NURSE).get("/exports/research/checks").status_code == 403
