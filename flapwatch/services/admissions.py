"""Starting a flap's monitoring from theatre or recovery, at any hour: the nurse or surgeon
receiving the flap finds the patient by MRN (or registers them) and adds the flap, in one
transaction; the coordinator corrects either later from the admin pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.models import Patient, Reconstruction, Unit, utcnow
from flapwatch.services import CLINICAL_ROLES, Actor, InvalidInput, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.live import publish
from flapwatch.services.patients import (
    PatientDetails,
    ReconstructionDetails,
    bed_problem,
    get_patient,
    new_reconstruction,
    reconstruction_problems,
    register_patient,
    unit_for,
)

ADMITTING_ROLES = CLINICAL_ROLES


def find_by_mrn(session: Session, actor: Actor, mrn: str) -> Patient | None:
    """The patient with this MRN if they are on one of the actor's wards; else None, the
    same answer whether the hospital knows the MRN or not."""
    require_role(actor, *ADMITTING_ROLES, "auditor")
    patient = session.scalars(select(Patient).where(Patient.mrn == mrn.strip())).first()
    if patient is None or not actor.works_in(patient.unit.code):
        return None
    return patient


@dataclass(frozen=True)
class Started:
    patient: Patient
    reconstruction: Reconstruction
    readmitted: bool  # a patient the hospital knew, admitted here again


def start_monitoring(
    session: Session,
    actor: Actor,
    *,
    unit_code: str,
    flap: ReconstructionDetails,
    patient_id: int | None = None,
    patient: PatientDetails | None = None,
    bed: str | None = None,
    now: datetime | None = None,
) -> Started:
    """Put a flap on the board: of a patient found on the ward (`patient_id`, with `bed` if
    it changes), or one registered now (`patient`: new, or re-admitted). All or nothing,
    every problem named on its field."""
    require_role(actor, *ADMITTING_ROLES)
    now = now or utcnow()
    if (patient_id is None) == (patient is None):
        raise ValueError("give a patient found by MRN or the details of one to register")
    flap_problems = reconstruction_problems(flap, now)
    with write_transaction(session):
        unit = unit_for(session, actor, unit_code, {})
        problems: dict[str, str] = {}
        readmitted = False
        if patient_id is not None:
            found = get_patient(session, actor, patient_id)
            if found.unit_id != unit.id:
                problems[""] = (
                    f"{found.name} is on {found.unit.code}: start their flap from that ward."
                )
            bed = (bed or "").strip() or None
            if bed and bed != found.bed and (taken := bed_problem(session, unit, bed, found.id)):
                problems["bed"] = taken
            if problems or flap_problems:
                raise InvalidInput("Monitoring was not started.", {**problems, **flap_problems})
            if bed and bed != found.bed:
                record_event(session, actor, "patient.update", "patient", found.id,
                             before={"bed": found.bed}, after={"bed": bed})  # fmt: skip
                found.bed = bed
            admitted = found
        else:
            assert patient is not None
            known_before = _known_ids(session, patient.mrn)
            try:
                # A re-admitted patient has been this ward's since their flap left theatre.
                arrived = min(now, flap.surgery_end_at)
                admitted = register_patient(session, actor, unit, patient, arrived)
            except InvalidInput as refused:
                raise InvalidInput(
                    "Monitoring was not started.", {**refused.problems, **flap_problems}
                ) from None
            if flap_problems:
                raise InvalidInput("Monitoring was not started.", flap_problems)
            readmitted = admitted.id in known_before
        reconstruction = new_reconstruction(session, actor, admitted, flap)
        _tell_the_ward(session, unit, reconstruction)
    return Started(admitted, reconstruction, readmitted)


def _known_ids(session: Session, mrn: str) -> set[int]:
    return set(session.scalars(select(Patient.id).where(Patient.mrn == mrn.strip())))


def _tell_the_ward(session: Session, unit: Unit, reconstruction: Reconstruction) -> None:
    publish(session, unit.id, "flap.updated", reconstruction_id=reconstruction.id)
