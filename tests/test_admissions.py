"""Starting a flap's monitoring from theatre or recovery, at any hour: the nurse receiving it
finds the patient by MRN or registers them and puts the flap on the board; an MRN known on a
ward the nurse cannot see gives nothing of that patient away."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flapwatch.domain.vocabulary import DueState, ReconstructionStatus, Role
from flapwatch.models import AuditEvent, Patient, Reconstruction
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.admissions import find_by_mrn, start_monitoring
from flapwatch.services.compliance import compliance_report
from flapwatch.services.patients import (
    MONITORED_ELSEWHERE,
    NOT_THIS_PATIENT,
    PatientDetails,
    ReconstructionDetails,
    set_reconstruction_status,
)
from flapwatch.services.ward import ward_board

NIGHT = datetime(2026, 12, 3, 2, 10, tzinfo=UTC)  # 02:10 on the ward clock (London, winter)


def flap(**values) -> ReconstructionDetails:
    fields = {"procedure": "DIEP free flap", "flap_kind": "free", "site": "left breast",
              "side": "left", "surgery_end_at": NIGHT - timedelta(minutes=40),
              "surgeon": "Miss E. Hartley", "buried": False}  # fmt: skip
    return ReconstructionDetails(**{**fields, **values})


def new_patient(mrn: str = "RX-1001", name: str = "Nadia Petrova", bed: str | None = "4"):
    return PatientDetails(mrn=mrn, name=name, date_of_birth=date(1971, 3, 9), bed=bed)


def test_a_nurse_puts_a_new_patient_s_flap_on_the_board_at_night(make, session):
    nurse = make.actor(make.user(Role.NURSE))

    started = start_monitoring(session, nurse, unit_code="PLAST-W3", flap=flap(),
                               patient=new_patient(), now=NIGHT)  # fmt: skip

    board = ward_board(session, nurse, "PLAST-W3", NIGHT)
    (card,) = [f for f in board.flaps if f.reconstruction.id == started.reconstruction.id]
    # Time zero is the end of surgery: the first band's first check falls due from it.
    assert card.patient.bed == "4" and card.due_state == DueState.NOT_DUE
    assert card.next_due_at == flap().surgery_end_at + timedelta(hours=1)
    actions = {
        e.action: e.actor_username
        for e in session.scalars(select(AuditEvent).where(AuditEvent.action.like("%.add%")))
    } | {
        e.action: e.actor_username
        for e in session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.admit"))
    }
    assert actions == {"reconstruction.add": nurse.username, "patient.admit": nurse.username}


def test_a_flap_of_a_patient_found_on_the_ward_is_added_to_them(make, session):
    nurse = make.actor(make.user(Role.NURSE))
    earlier = make.reconstruction(hours_ago=24 * 20)
    set_reconstruction_status(session, SYSTEM, earlier.id, ReconstructionStatus.DISCHARGED)
    patient = find_by_mrn(session, nurse, f"  {earlier.patient.mrn} ")
    assert patient is not None and patient.id == earlier.patient_id

    started = start_monitoring(session, nurse, unit_code="PLAST-W3", flap=flap(),
                               patient_id=patient.id, bed="7", now=NIGHT)  # fmt: skip

    assert started.patient.id == patient.id and started.patient.bed == "7"
    assert not started.readmitted
    assert len(session.get(Patient, patient.id).reconstructions) == 2


def test_an_mrn_on_another_ward_is_not_found_and_its_patient_not_revealed(make, session):
    make.unit("ICU")
    elsewhere = make.reconstruction(make.patient("ICU", name="Walter Ingram"))
    nurse = make.actor(make.user(Role.NURSE, "PLAST-W3"))
    mrn = elsewhere.patient.mrn

    assert find_by_mrn(session, nurse, mrn) is None
    with pytest.raises(InvalidInput) as other_person:
        start_monitoring(session, nurse, unit_code="PLAST-W3", flap=flap(),
                         patient=new_patient(mrn=mrn), now=NIGHT)  # fmt: skip
    assert other_person.value.problems["mrn"] == NOT_THIS_PATIENT
    assert "Walter" not in str(other_person.value.problems) and "ICU" not in str(
        other_person.value.problems
    )
    # The same person, but their flap is still monitored on the other ward.
    same = PatientDetails(mrn=mrn, name="walter  ingram", date_of_birth=date(1960, 1, 1), bed=None)
    with pytest.raises(InvalidInput) as monitored:
        start_monitoring(session, nurse, unit_code="PLAST-W3", flap=flap(), patient=same,
                         now=NIGHT)  # fmt: skip
    assert monitored.value.problems["mrn"] == MONITORED_ELSEWHERE
    assert session.get(Patient, elsewhere.patient_id).unit.code == "ICU"


def test_a_known_patient_discharged_from_another_ward_is_re_admitted(make, session):
    make.unit("ICU")
    before = make.reconstruction(make.patient("ICU", name="Walter Ingram"), hours_ago=24 * 30)
    set_reconstruction_status(session, SYSTEM, before.id, ReconstructionStatus.DISCHARGED)
    nurse = make.actor(make.user(Role.NURSE, "PLAST-W3"))
    same = PatientDetails(mrn=before.patient.mrn, name="Walter Ingram",
                          date_of_birth=date(1960, 1, 1), bed="2")  # fmt: skip

    started = start_monitoring(session, nurse, unit_code="PLAST-W3", flap=flap(), patient=same,
                               now=NIGHT)  # fmt: skip

    assert started.readmitted and started.patient.id == before.patient_id
    assert started.patient.unit.code == "PLAST-W3" and started.patient.bed == "2"
    moved = session.scalars(select(AuditEvent).where(AuditEvent.action == "patient.readmit")).one()
    assert (moved.before["unit"], moved.after["unit"]) == ("ICU", "PLAST-W3")
    # The earlier flap stays in ICU's report: its checks and its outcome were ICU's.
    later, since = NIGHT + timedelta(hours=1), (NIGHT - timedelta(days=60)).date()
    icu = compliance_report(session, SYSTEM, "ICU", since, NIGHT.date(), later)
    ward = compliance_report(session, SYSTEM, "PLAST-W3", since, NIGHT.date(), later)
    assert icu.flaps_operated == 1 and ward.flaps_operated == 1  # the new flap is the ward's


def test_a_refusal_names_each_field_and_changes_nothing(make, session):
    nurse = make.actor(make.user(Role.NURSE))
    with pytest.raises(InvalidInput) as refused:
        start_monitoring(
            session, nurse, unit_code="PLAST-W3",
            flap=flap(surgery_end_at=NIGHT + timedelta(hours=1), procedure=" "),
            patient=new_patient(name=" "), now=NIGHT,
        )  # fmt: skip
    assert {"surgery_end_at", "procedure", "name"} <= set(refused.value.problems)
    assert session.scalars(select(Reconstruction)).all() == []
    assert session.scalars(select(Patient).where(Patient.mrn == "RX-1001")).all() == []


# --- the tablet's two screens and the API ----------------------------------------------------


def test_the_two_screens_register_a_patient_and_keep_what_was_typed(logged_in, make, session):
    browser, _ = logged_in(Role.NURSE)
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "/units/PLAST-W3/start" in board
    second = browser.get("/units/PLAST-W3/start/flap?mrn=RX-2002").get_data(as_text=True)
    assert "No patient with MRN <strong>RX-2002</strong>" in second

    fields = {"mrn": "RX-2002", "name": "Nadia Petrova", "date_of_birth": "1971-03-09",
              "bed": "4", "procedure": "DIEP free flap", "flap_kind": "free",
              "site": "left breast", "side": "left", "surgery_end_at": "2099-01-01T01:00",
              "surgeon": "Miss E. Hartley"}  # fmt: skip
    refused = browser.post("/units/PLAST-W3/start/flap", fields)
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    assert "End of surgery cannot be in the future" in text and "Nadia Petrova" in text

    london = ZoneInfo("Europe/London")
    hour_ago = (
        (datetime.now(UTC) - timedelta(hours=1)).astimezone(london).strftime("%Y-%m-%dT%H:%M")
    )
    saved = browser.post("/units/PLAST-W3/start/flap", {**fields, "surgery_end_at": hour_ago})
    assert saved.status_code == 302
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "Nadia Petrova" in board


def test_the_api_finds_by_mrn_only_on_the_nurse_s_wards_and_starts_monitoring(api, make):
    make.unit("ICU")
    elsewhere = make.patient("ICU")
    nurse = api(Role.NURSE)
    assert nurse.get(f"/patients?mrn={elsewhere.mrn}").json["items"] == []
    body = {
        "unit": "PLAST-W3",
        "patient": {"mrn": "RX-3003", "name": "Ada Brook", "date_of_birth": "1980-05-05"},
        "bed": "9",
        "reconstruction": {"procedure": "ALT free flap", "flap_kind": "free", "site": "thigh",
                           "side": "right", "surgeon": "Mr A. Ferreira",
                           "surgery_end_at": (datetime.now(UTC) - timedelta(minutes=30))
                           .isoformat()},
    }  # fmt: skip
    made = nurse.post("/admissions", body)
    assert made.status_code == 201, made.json
    assert made.json["patient"]["bed"] == "9" and made.json["readmitted"] is False
    assert made.json["reconstruction"]["status"] == "monitoring"
    found = nurse.get("/patients?mrn=RX-3003").json["items"]
    assert [p["id"] for p in found] == [made.json["patient"]["id"]]
    both = nurse.post("/admissions", {**body, "patient_id": made.json["patient"]["id"]})
    assert both.status_code == 422 and "patient" in both.json["error"]["fields"]
    assert api(Role.AUDITOR).post("/admissions", body).status_code == 403


def test_the_api_answers_another_unit_as_if_it_did_not_exist(api, make):
    make.unit("ICU")
    nurse = api(Role.NURSE, "PLAST-W3")
    body = {
        "unit": "ICU",
        "patient": {"mrn": "RX-5005", "name": "Ada Brook", "date_of_birth": "1980-05-05"},
        "reconstruction": {"procedure": "ALT free flap", "flap_kind": "free", "site": "thigh",
                           "side": "right", "surgeon": "Mr A. Ferreira",
                           "surgery_end_at": "2026-12-01T10:00:00+00:00"},
    }  # fmt: skip
    assert nurse.post("/admissions", body).status_code == 404
