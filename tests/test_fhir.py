"""The FHIR R4 Bundle export: every bundle validates with fhir.resources and carries back the
values recorded; corrections keep their Observation; filters, audit, API and command line."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.models import AuditEvent, Escalation, utcnow
from flapwatch.services.checks import amend_check
from flapwatch.services.escalations import (
    acknowledge_escalation,
    close_escalation,
    sweep_overdue,
)
from flapwatch.services.tokens import create_token

LOCAL = "https://flapwatch.invalid/fhir/CodeSystem/flapwatch"
CHECKS = "https://flapwatch.invalid/fhir/check"


def validated(data: bytes) -> dict[str, Any]:
    """The bundle, after fhir.resources has validated every resource in it."""
    bundle = Bundle.model_validate_json(data)
    assert bundle.type == "collection"
    parsed = json.loads(data)
    assert len(bundle.entry) == len(parsed["entry"])
    return parsed


def resources(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def by_full_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def component(observation: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [
        c
        for c in observation["component"]
        if any(k["system"] == LOCAL and k["code"] == code for k in c["code"]["coding"])
    ]
    return found


@pytest.fixture
def auditor(logged_in):
    browser, _ = logged_in("auditor")
    return browser


def test_a_check_round_trips_through_the_bundle(auditor, make):
    flap = make.reconstruction(hours_ago=5)
    check = make.check(
        flap,
        minutes_ago=20,
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
        notes="Pale and cool; registrar bleeped",
    )

    response = auditor.get("/exports/fhir.json")

    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    bundle = validated(response.data)
    (observation,) = resources(bundle, "Observation")
    assert observation["status"] == "final"
    assert observation["identifier"] == [{"system": CHECKS, "value": str(check.id)}]
    assert observation["effectiveDateTime"] == check.taken_at.isoformat(timespec="seconds")
    colour = component(observation, "colour")
    assert colour["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "39107-8",
        "display": "Color of Skin",
    }
    assert colour["valueCodeableConcept"]["coding"][0]["code"] == "colour.pale"
    flap_temperature = component(observation, "flap_temperature_c")["valueQuantity"]
    assert (flap_temperature["value"], flap_temperature["code"]) == (33.4, "Cel")
    assert component(observation, "temperature_difference_c")["valueQuantity"][
        "value"
    ] == pytest.approx(1.9)
    assert component(observation, "capillary_refill_s")["valueQuantity"]["value"] == 3.5
    assert component(observation, "sto2_percent")["valueQuantity"]["code"] == "%"
    for field, value in {
        "capillary_refill": "sluggish",
        "doppler_arterial": "weak",
        "doppler_venous": "present",
        "turgor": "flaccid",
        "pinprick": "slow_none",
    }.items():
        answer = component(observation, field)["valueCodeableConcept"]["coding"][0]
        assert answer["code"] == f"{field}.{value}"
    assert observation["note"] == [{"text": "Pale and cool; registrar bleeped"}]
    assert observation["interpretation"][0]["coding"][0]["code"] == "AA"
    patient = by_full_url(bundle)[observation["subject"]["reference"]]
    assert patient["identifier"][0]["value"] == flap.patient.mrn
    assert patient["birthDate"] == flap.patient.date_of_birth.isoformat()
    procedure = by_full_url(bundle)[observation["focus"][0]["reference"]]
    assert procedure["code"]["text"] == "DIEP free flap"
    assert procedure["performedPeriod"]["end"] == flap.surgery_end_at.isoformat(timespec="seconds")


def test_an_escalation_is_a_flag_and_a_detected_issue_with_its_checks(auditor, make, session):
    surgeon = make.actor(make.user(Role.SURGEON))
    flap = make.reconstruction(hours_ago=5)
    first = make.check(flap, minutes_ago=40, colour="dusky")
    second = make.check(flap, minutes_ago=30, colour="dusky", turgor="tense")
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, surgeon, escalation.id, outcome="return_to_theatre")
    close_escalation(session, surgeon, escalation.id, note="Re-explored")

    bundle = validated(auditor.get("/exports/fhir.json").data)

    (flag,) = resources(bundle, "Flag")
    assert flag["status"] == "inactive" and "end" in flag["period"]
    (issue,) = resources(bundle, "DetectedIssue")
    assert issue["severity"] == "high"
    assert [i["identifier"]["value"] for i in issue["implicated"]] == [
        str(first.id),
        str(second.id),
    ]
    assert {c["code"] for c in issue["code"]["coding"]} == {"escalation", "venous"}
    (mitigation,) = issue["mitigation"]
    assert mitigation["action"]["coding"][0]["code"] == "outcome.return_to_theatre"
    assert mitigation["author"]["display"] == "Test surgeon"
    assert resources(bundle, "Procedure")[0]["outcome"]["coding"][0]["code"] == (
        "flap_status.returned_to_theatre"
    )


def test_the_procedure_s_outcome_is_the_final_outcome_once_recorded(auditor, make, session):
    from flapwatch.services import SYSTEM
    from flapwatch.services.outcomes import record_final_outcome
    from flapwatch.services.patients import set_reconstruction_status

    flap = make.reconstruction(hours_ago=50)
    make.check(flap, minutes_ago=40, colour="pink")
    set_reconstruction_status(session, SYSTEM, flap.id, "discharged")
    record_final_outcome(session, make.actor(make.user(Role.SURGEON)), flap.id,
                         outcome="total_loss", on=utcnow().date())  # fmt: skip

    bundle = validated(auditor.get("/exports/fhir.json").data)

    (procedure,) = resources(bundle, "Procedure")
    coding = procedure["outcome"]["coding"][0]
    assert (coding["code"], coding["display"]) == ("final_outcome.total_loss", "Total loss")


def test_a_missed_check_escalation_names_the_overdue_rule(auditor, make, session):
    flap = make.reconstruction(hours_ago=3)
    make.check(flap, taken_at=flap.surgery_end_at + timedelta(hours=1))
    sweep_overdue(session, utcnow())

    bundle = validated(auditor.get("/exports/fhir.json").data)

    (issue,) = resources(bundle, "DetectedIssue")
    assert [c["code"] for c in issue["code"]["coding"]] == ["escalation", "overdue"]
    assert issue["severity"] == "moderate" and "implicated" not in issue
    assert resources(bundle, "Flag")[0]["status"] == "active"


def test_a_corrected_check_keeps_its_observation_and_one_in_error_is_marked(auditor, make, session):
    flap = make.reconstruction(hours_ago=5)
    nurse = make.actor(make.user(Role.NURSE))
    kept = make.check(flap, minutes_ago=50, flap_temperature_c=35.0, control_temperature_c=35.5)
    wrong = make.check(flap, minutes_ago=40, colour="pink")
    amend_check(
        session,
        nurse,
        kept.id,
        reason="Read the wrong probe",
        values=CheckValues(
            taken_at=kept.taken_at, flap_temperature_c=34.0, control_temperature_c=35.5
        ),
    )
    amend_check(session, nurse, wrong.id, reason="Wrong patient", entered_in_error=True)

    bundle = validated(auditor.get("/exports/fhir.json").data)

    observations = {o["id"]: o for o in resources(bundle, "Observation")}
    assert set(observations) == {f"check-{kept.id}", f"check-{wrong.id}"}
    corrected = observations[f"check-{kept.id}"]
    assert (corrected["status"], corrected["meta"]["versionId"]) == ("amended", "2")
    assert component(corrected, "flap_temperature_c")["valueQuantity"]["value"] == 34.0
    assert {"text": "Corrected: Read the wrong probe"} in corrected["note"]
    assert observations[f"check-{wrong.id}"]["status"] == "entered-in-error"


def test_every_local_code_is_in_the_bundles_code_system(auditor, make, session):
    surgeon = make.actor(make.user(Role.SURGEON))
    flap = make.reconstruction(hours_ago=5)
    make.check(
        flap, minutes_ago=30, colour="mottled", doppler_arterial="absent", pinprick="not_done"
    )
    acknowledge_escalation(
        session, surgeon, session.scalars(select(Escalation.id)).one(), outcome="observe"
    )

    bundle = validated(auditor.get("/exports/fhir.json").data)

    (code_system,) = resources(bundle, "CodeSystem")
    defined = {concept["code"] for concept in code_system["concept"]}
    assert code_system["count"] == len(defined)
    used = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("system") == LOCAL:
                used.add(value["code"])
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(bundle["entry"])
    assert used and used <= defined


def test_the_bundle_is_filtered_by_unit_and_days_and_the_export_audited(auditor, make, session):
    here = make.reconstruction(hours_ago=5)
    make.check(here, minutes_ago=10)
    elsewhere = make.reconstruction(unit="ORTHO-W1", hours_ago=5)
    make.check(elsewhere, minutes_ago=10)
    tomorrow = (utcnow() + timedelta(days=2)).date().isoformat()

    one_unit = validated(auditor.get("/exports/fhir.json?unit=PLAST-W3").data)
    no_days = validated(auditor.get(f"/exports/fhir.json?from={tomorrow}").data)

    patients = [p["identifier"][0]["value"] for p in resources(one_unit, "Patient")]
    assert patients == [here.patient.mrn]
    assert len(resources(one_unit, "Observation")) == 1
    assert resources(no_days, "Observation") == resources(no_days, "Patient") == []
    events = session.scalars(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert [e.after["unit"] for e in events] == ["PLAST-W3", None]


def test_the_api_and_the_command_line_give_the_same_bundle(
    app, client, make, session, runner, tmp_path
):
    flap = make.reconstruction(hours_ago=5)
    make.check(flap, minutes_ago=10, colour="dusky")
    auditor = make.user(Role.AUDITOR)
    _, token = create_token(
        session, make.actor(make.user(Role.ADMIN)), auditor.username, name="ehr feed"
    )
    target = tmp_path / "bundle.json"

    response = client.get(
        "/api/v1/exports/fhir?unit=PLAST-W3", headers={"Authorization": f"Bearer {token}"}
    )
    result = runner.invoke(args=["export", "fhir", "--unit", "PLAST-W3", "--output", str(target)])

    assert response.status_code == 200, response.data
    assert result.exit_code == 0, result.output
    over_api, on_disk = validated(response.data), validated(target.read_bytes())
    assert [e["fullUrl"] for e in over_api["entry"]] == [e["fullUrl"] for e in on_disk["entry"]]
    assert resources(over_api, "Observation") == resources(on_disk, "Observation")


def test_nurses_cannot_export_a_bundle(logged_in, make):
    nurse, _ = logged_in("nurse")
    assert nurse.get("/exports/fhir.json").status_code == 403
