"""Faithful records in every output: a check names the nurse who took it beside whoever
corrected it, and escalations.csv times each wait for a surgeon as the compliance report
does."""

from __future__ import annotations

import csv
import io
import json
import statistics
from datetime import UTC, datetime, timedelta

import pypdf
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Escalation
from flapwatch.services.checks import amend_check, record_check
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import acknowledge_escalation

DAY = datetime(2026, 11, 20, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def parsed(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_a_corrected_check_still_names_the_nurse_who_took_it_everywhere(
    make, session, logged_in, api
):
    flap = make.reconstruction(hours_ago=6)
    ada = make.user(Role.NURSE, username="nurse.ada")
    bea = make.user(Role.NURSE, username="nurse.bea")
    now = datetime.now(UTC)
    taken = record_check(
        session, make.actor(ada), flap.id,
        CheckValues(taken_at=now - timedelta(minutes=30), colour="pink"), now=now,
    ).check  # fmt: skip
    amend_check(
        session, make.actor(bea), taken.id,
        values=CheckValues(taken_at=taken.taken_at, colour="pale"),
        reason="Pale, not pink: wrote the wrong box", now=now,
    )  # fmt: skip

    (shown,) = api(Role.AUDITOR).get(f"/reconstructions/{flap.id}/checks").json["items"]
    assert (shown["taken_by"], shown["recorded_by"]) == ("nurse.ada", "nurse.bea")

    auditor, _ = logged_in(Role.AUDITOR)
    (row,) = parsed(auditor.get("/exports/checks.csv").data)
    assert (row["taken_by"], row["recorded_by"], row["version"]) == ("nurse.ada", "nurse.bea", "2")
    bundle = json.loads(auditor.get("/exports/fhir.json").data)
    (observation,) = [
        entry["resource"] for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    ]  # fmt: skip
    assert observation["performer"] == [{"display": ada.display_name}]

    nurse, _ = logged_in(Role.NURSE)
    page = nurse.get(f"/reconstructions/{flap.id}").text
    assert ada.display_name in page and f"Corrected by {bea.display_name}" in page
    pdf = nurse.get(f"/reconstructions/{flap.id}/report.pdf").data
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert ada.display_name in text and bea.display_name in text


def test_escalations_csv_times_each_wait_for_a_surgeon_as_the_compliance_report_does(
    make, session, logged_in
):
    flap = make.reconstruction(surgery_end_at=at(4))
    nurse = make.actor(make.user(Role.NURSE))
    surgeon = make.actor(make.user(Role.SURGEON))
    dusky = {"colour": "dusky", "capillary_refill": "brisk"}
    record_check(session, nurse, flap.id, CheckValues(taken_at=at(10), **dusky), now=at(10))
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="observe", note="Elevate", now=at(10, 24)
    )
    # Worse an hour on: a new wait for the surgeon, answered 126 minutes after its flag.
    worse = {"colour": "purple", "capillary_refill": "brisk"}
    record_check(session, nurse, flap.id, CheckValues(taken_at=at(11), **worse), now=at(11))
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="return_to_theatre", now=at(13, 6)
    )

    auditor, user = logged_in(Role.AUDITOR)
    rows = parsed(auditor.get("/exports/escalations.csv?from=2026-11-20&to=2026-11-20").data)
    assert [(r["escalation_id"], r["episode"], r["minutes_to_acknowledge"]) for r in rows] == [
        (str(escalation.id), "1", "24.0"),
        (str(escalation.id), "2", "126.0"),
    ]  # not 186: from the opening to the latest acknowledgement
    assert {r["outcome"] for r in rows} == {"return_to_theatre"}
    report = compliance_report(
        session, make.actor(user), "PLAST-W3", DAY.date(), DAY.date(), at(14)
    )
    minutes = [float(r["minutes_to_acknowledge"]) for r in rows]
    assert report.wait.count == len(minutes)
    assert report.wait.median == statistics.median(minutes)
