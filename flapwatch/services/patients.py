"""Patients, beds and their reconstructions (flaps)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.vocabulary import FlapKind, ReconstructionStatus, Side
from flapwatch.models import AuditEvent, Patient, PatientStay, Reconstruction, Unit, utcnow
from flapwatch.services import (
    CLINICAL_ROLES,
    MANAGING_ROLES,
    Actor,
    Forbidden,
    InvalidInput,
    NotFound,
    require_role,
)
from flapwatch.services.audit import changes, record_event

# A flap on the ward or in theatre: still monitored (a patient has one ward at a time).
STILL_MONITORED = (ReconstructionStatus.MONITORING, ReconstructionStatus.RETURNED_TO_THEATRE)
# Surgery cannot end in the future; a little slack covers a tablet clock running slow.
SURGERY_FUTURE_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True)
class PatientDetails:
    mrn: str
    name: str
    date_of_birth: date
    bed: str | None


@dataclass(frozen=True)
class ReconstructionDetails:
    procedure: str
    flap_kind: FlapKind
    site: str
    side: Side
    surgery_end_at: datetime
    surgeon: str
    buried: bool


def _patient_problems(details: PatientDetails, today: date) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not details.mrn.strip():
        problems["mrn"] = "MRN is required."
    if not details.name.strip():
        problems["name"] = "Name is required."
    if details.date_of_birth > today:
        problems["date_of_birth"] = "Date of birth cannot be in the future."
    elif details.date_of_birth.year < 1900:
        problems["date_of_birth"] = "Date of birth must be in 1900 or later."
    return problems


def _patient_record(patient: Patient) -> dict[str, object]:
    return {
        "mrn": patient.mrn,
        "name": patient.name,
        "date_of_birth": patient.date_of_birth,
        "unit": patient.unit.code,
        "bed": patient.bed,
    }


def unit_for(session: Session, actor: Actor, unit_code: str, problems: dict[str, str]) -> Unit:
    unit = session.scalars(select(Unit).where(Unit.code == unit_code)).first()
    if unit is None:
        problems["unit"] = f"No such unit: {unit_code}."
        raise InvalidInput("Unknown unit.", problems)
    if not actor.works_in(unit.code):
        raise Forbidden(f"You do not work in unit {unit.code}.")
    return unit


def bed_problem(
    session: Session, unit: Unit, bed: str | None, patient_id: int | None
) -> str | None:
    """A bed holds one patient whose flap is still being monitored."""
    if not bed:
        return None
    occupant = session.scalars(
        select(Patient)
        .join(Reconstruction)
        .where(
            Patient.unit_id == unit.id,
            Patient.bed == bed,
            Reconstruction.status == ReconstructionStatus.MONITORING,
        )
        .limit(1)
    ).first()
    if occupant is not None and occupant.id != patient_id:
        return f"Bed {bed} is taken by {occupant.name} ({occupant.mrn})."
    return None


# The MRN is the hospital's: one patient each. Registering one already known on a ward the
# user cannot see must say no more than that the three identifiers do not go together.
NOT_THIS_PATIENT = (
    "This MRN does not go with this name and date of birth: check all three against the "
    "wristband. If they are right, the unit coordinator can resolve it."
)
MONITORED_ELSEWHERE = (
    "This patient's flap is being monitored on another ward: that ward moves them to yours."
)


def _normalised(details: PatientDetails) -> PatientDetails:
    return PatientDetails(
        mrn=details.mrn.strip(),
        name=" ".join(details.name.split()),
        date_of_birth=details.date_of_birth,
        bed=(details.bed or "").strip() or None,
    )


def _known_patient(
    session: Session, actor: Actor, details: PatientDetails, problems: dict[str, str]
) -> Patient | None:
    """The patient the hospital already holds under this MRN, when this admission is a
    re-admission of theirs (same name and date of birth, no flap monitored elsewhere); None
    for a new MRN. Anything else is a problem on `mrn`, worded so as to reveal nothing of a
    patient on a ward the actor cannot see."""
    known = session.scalars(select(Patient).where(Patient.mrn == details.mrn)).first()
    if known is None:
        return None
    if actor.works_in(known.unit.code):
        problems["mrn"] = (
            f"{known.name} (MRN {known.mrn}) is already registered on {known.unit.code}: "
            "find them by MRN."
        )
        return None
    same = (
        known.name.casefold() == details.name.casefold()
        and known.date_of_birth == details.date_of_birth
    )
    if not same:
        problems["mrn"] = NOT_THIS_PATIENT
        return None
    if any(r.status in STILL_MONITORED for r in known.reconstructions):
        problems["mrn"] = MONITORED_ELSEWHERE
        return None
    return known


def _open_stay(session: Session, patient_id: int) -> PatientStay | None:
    """The stay the patient is on now (None for one from before stays were kept)."""
    return session.scalars(
        select(PatientStay).where(
            PatientStay.patient_id == patient_id, PatientStay.ended_at.is_(None)
        )
    ).first()


def _move(
    session: Session, actor: Actor, patient: Patient, unit: Unit, at: datetime, note: str
) -> None:
    """Inside the caller's transaction: the patient's stay on their ward ends at `at` and one
    on `unit` begins; what came before stays the old ward's."""
    current = _open_stay(session, patient.id)
    if current is None:  # a patient from before stays were kept
        current = PatientStay(patient_id=patient.id, unit_id=patient.unit_id, note="")
        session.add(current)
    if current.started_at is not None:
        at = max(at, current.started_at)  # a stay never ends before it began
    current.ended_at = at
    session.add(
        PatientStay(
            patient_id=patient.id, unit_id=unit.id, started_at=at, moved_by_id=actor.user_id,
            note=note,
        )
    )  # fmt: skip
    patient.unit = unit


def register_patient(
    session: Session, actor: Actor, unit: Unit, details: PatientDetails, at: datetime
) -> Patient:
    """Inside the caller's transaction: a new patient on `unit`, or the re-admission of one
    the hospital knows (moved to `unit`, audited with where they were). Raises InvalidInput
    with every problem on its field."""
    details = _normalised(details)
    problems = _patient_problems(details, at.date())
    known = _known_patient(session, actor, details, problems) if "mrn" not in problems else None
    if (taken := bed_problem(session, unit, details.bed, None)) is not None:
        problems["bed"] = taken
    if problems:
        raise InvalidInput("The patient could not be admitted.", problems)
    if known is not None:
        before = {"unit": known.unit.code, "bed": known.bed}
        _move(session, actor, known, unit, at, "Re-admitted")
        known.bed = details.bed
        record_event(session, actor, "patient.readmit", "patient", known.id, before=before,
                     after={"unit": unit.code, "bed": known.bed, "at": at})  # fmt: skip
        return known
    patient = Patient(
        mrn=details.mrn,
        name=details.name,
        date_of_birth=details.date_of_birth,
        bed=details.bed,
        unit=unit,
    )
    session.add(patient)
    session.flush()
    session.add(PatientStay(patient_id=patient.id, unit_id=unit.id, note=""))
    record_event(
        session, actor, "patient.admit", "patient", patient.id, after=_patient_record(patient)
    )
    return patient


def admit_patient(
    session: Session, actor: Actor, *, unit_code: str, details: PatientDetails
) -> Patient:
    """A coordinator's admission from the patients page: a new patient, or a re-admission."""
    require_role(actor, *MANAGING_ROLES)
    with write_transaction(session):
        unit = unit_for(session, actor, unit_code, {})
        return register_patient(session, actor, unit, details, utcnow())


def update_patient(
    session: Session, actor: Actor, patient_id: int, *, unit_code: str, details: PatientDetails
) -> Patient:
    require_role(actor, *MANAGING_ROLES)
    bed = (details.bed or "").strip() or None
    problems = _patient_problems(details, utcnow().date())
    with write_transaction(session):
        patient = get_patient(session, actor, patient_id)
        unit = unit_for(session, actor, unit_code, problems)
        if details.mrn.strip() != patient.mrn:
            clash = session.scalars(
                select(Patient).where(Patient.mrn == details.mrn.strip())
            ).first()
            if clash is not None:
                problems["mrn"] = (
                    f"MRN {clash.mrn} is {clash.name}'s."
                    if actor.works_in(clash.unit.code)
                    else "This MRN is another patient's: check it against the wristband."
                )
        if (taken := bed_problem(session, unit, bed, patient.id)) is not None:
            problems["bed"] = taken
        if problems:
            raise InvalidInput("The patient could not be saved.", problems)
        before = _patient_record(patient)
        patient.mrn = details.mrn.strip()
        patient.name = details.name.strip()
        patient.date_of_birth = details.date_of_birth
        patient.bed = bed
        if unit.id != patient.unit_id:
            _move(session, actor, patient, unit, utcnow(), "Moved on the patient's record")
        old, new = changes(before, _patient_record(patient))
        if new:
            record_event(
                session, actor, "patient.update", "patient", patient.id, before=old, after=new
            )
    return patient


def get_patient(session: Session, actor: Actor, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None or not actor.works_in(patient.unit.code):
        raise NotFound(f"No patient {patient_id}.")
    return patient


def reconstruction_problems(details: ReconstructionDetails, now: datetime) -> dict[str, str]:
    problems: dict[str, str] = {}
    if not details.procedure.strip():
        problems["procedure"] = "Procedure is required, e.g. DIEP free flap."
    if not details.site.strip():
        problems["site"] = "Site is required, e.g. left breast."
    if not details.surgeon.strip():
        problems["surgeon"] = "Surgeon is required."
    if details.surgery_end_at > now + SURGERY_FUTURE_TOLERANCE:
        problems["surgery_end_at"] = "End of surgery cannot be in the future."
    elif details.surgery_end_at < now - timedelta(days=365):
        problems["surgery_end_at"] = "End of surgery must be within the last year."
    return problems


def _reconstruction_record(reconstruction: Reconstruction) -> dict[str, object]:
    return {
        "patient_id": reconstruction.patient_id,
        "procedure": reconstruction.procedure,
        "flap_kind": reconstruction.flap_kind,
        "site": reconstruction.site,
        "side": reconstruction.side,
        "surgery_end_at": reconstruction.surgery_end_at,
        "surgeon": reconstruction.surgeon,
        "buried": reconstruction.buried,
        "status": reconstruction.status,
    }


def add_reconstruction(
    session: Session,
    actor: Actor,
    patient_id: int,
    details: ReconstructionDetails,
    *,
    now: datetime | None = None,
) -> Reconstruction:
    require_role(actor, *MANAGING_ROLES)
    problems = reconstruction_problems(details, now or utcnow())
    with write_transaction(session):
        patient = get_patient(session, actor, patient_id)
        if problems:
            raise InvalidInput("The reconstruction could not be added.", problems)
        return new_reconstruction(session, actor, patient, details)


def new_reconstruction(
    session: Session, actor: Actor, patient: Patient, details: ReconstructionDetails
) -> Reconstruction:
    """Inside the caller's transaction, the details already checked: the flap, monitored
    from now (its first check due at once), audited."""
    reconstruction = Reconstruction(
        patient=patient,
        procedure=details.procedure.strip(),
        flap_kind=details.flap_kind,
        site=details.site.strip(),
        side=details.side,
        surgery_end_at=details.surgery_end_at,
        surgeon=details.surgeon.strip(),
        buried=details.buried,
        status=ReconstructionStatus.MONITORING,
    )
    session.add(reconstruction)
    session.flush()
    record_event(
        session,
        actor,
        "reconstruction.add",
        "reconstruction",
        reconstruction.id,
        after=_reconstruction_record(reconstruction),
    )
    return reconstruction


def update_reconstruction(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    details: ReconstructionDetails,
    *,
    now: datetime | None = None,
) -> Reconstruction:
    require_role(actor, *MANAGING_ROLES)
    problems = reconstruction_problems(details, now or utcnow())
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        first_check = min((c.taken_at for c in reconstruction.checks), default=None)
        if first_check is not None and details.surgery_end_at > first_check + timedelta(hours=1):
            problems.setdefault(
                "surgery_end_at",
                "End of surgery cannot be more than 1 hour after the first recorded check.",
            )
        if problems:
            raise InvalidInput("The reconstruction could not be saved.", problems)
        before = _reconstruction_record(reconstruction)
        reconstruction.procedure = details.procedure.strip()
        reconstruction.flap_kind = details.flap_kind
        reconstruction.site = details.site.strip()
        reconstruction.side = details.side
        reconstruction.surgery_end_at = details.surgery_end_at
        reconstruction.surgeon = details.surgeon.strip()
        reconstruction.buried = details.buried
        old, new = changes(before, _reconstruction_record(reconstruction))
        if new:
            record_event(
                session,
                actor,
                "reconstruction.update",
                "reconstruction",
                reconstruction.id,
                before=old,
                after=new,
            )
    return reconstruction


TIME_ZERO_CHOICES = ("restart", "continue")


def set_reconstruction_status(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    status: ReconstructionStatus,
    *,
    note: str = "",
    time_zero: str | None = None,
    now: datetime | None = None,
) -> Reconstruction:
    """Stop monitoring, discharge, or send the flap back to theatre (a return to theatre's
    record, `services.outcomes`); setting `monitoring` again resumes it, and the next check is
    due at once. Back from a return to theatre, the person resuming says
    whether the schedule's time zero restarts (`restart`: the first band's frequency again,
    counted from now) or `continue`s from the end of the first surgery; the choice is
    recorded."""
    require_role(actor, *MANAGING_ROLES)
    return _set_status(session, actor, reconstruction_id, status, note, time_zero, now)


def back_from_theatre(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    time_zero: str,
    note: str = "",
    now: datetime | None = None,
) -> Reconstruction:
    """The flap is back on the ward after a return to theatre, at any hour: whoever receives
    it (a nurse, a surgeon) resumes its monitoring, saying whether the schedule restarts."""
    require_role(actor, *CLINICAL_ROLES)
    return _set_status(
        session, actor, reconstruction_id, ReconstructionStatus.MONITORING, note, time_zero, now,
        only_from=ReconstructionStatus.RETURNED_TO_THEATRE,
    )  # fmt: skip


def _set_status(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    status: ReconstructionStatus,
    note: str,
    time_zero: str | None,
    now: datetime | None,
    only_from: ReconstructionStatus | None = None,
) -> Reconstruction:
    now = now or utcnow()
    if status not in ReconstructionStatus.values():
        raise InvalidInput(
            "Unknown status.",
            {"status": f"Status must be one of: {', '.join(ReconstructionStatus.values())}."},
        )
    if time_zero is not None and time_zero not in TIME_ZERO_CHOICES:
        raise InvalidInput(
            "Monitoring was not resumed.",
            {"time_zero": "Time zero must be 'restart' or 'continue'."},
        )
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if only_from is not None and reconstruction.status != only_from:
            raise InvalidInput(
                "Monitoring was not resumed.",
                {"": f"This flap is not {only_from.label.lower()} (it is "
                     f"{reconstruction.status.label.lower()})."},
            )  # fmt: skip
        returning = (
            status == ReconstructionStatus.MONITORING
            and reconstruction.status == ReconstructionStatus.RETURNED_TO_THEATRE
        )
        if returning and time_zero is None:
            raise InvalidInput(
                "Monitoring was not resumed.",
                {
                    "time_zero": "Back from theatre: say whether the schedule starts again "
                    "from now (restart: the first band's checks) or continues from the first "
                    "surgery."
                },
            )
        if not returning:
            time_zero = None
        before_zero = reconstruction.time_zero_at
        if status == ReconstructionStatus.RETURNED_TO_THEATRE:
            # Deferred: the outcomes service reads flaps through this module.
            from flapwatch.services.outcomes import begin_theatre_return

            begin_theatre_return(session, actor, reconstruction, now, note)
        else:
            change_status(session, actor, reconstruction, ReconstructionStatus(status), note, now)
        if time_zero == "restart":
            reconstruction.time_zero_at = now
        if time_zero is not None:
            record_event(
                session,
                actor,
                "reconstruction.time_zero",
                "reconstruction",
                reconstruction.id,
                before={"time_zero_at": before_zero},
                after={"choice": time_zero, "time_zero_at": reconstruction.time_zero_at},
            )
    return reconstruction


def change_status(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    status: ReconstructionStatus,
    note: str,
    at: datetime,
) -> None:
    """Inside the caller's transaction (flap locked): set the status, audited; no-op if same.

    A pause of monitoring still open ends with it: monitoring that comes back is due at once,
    never left paused by a pause nobody can see any more."""
    before = reconstruction.status
    if before == status:
        return
    reconstruction.status = status
    reconstruction.status_changed_at = at
    record_event(
        session,
        actor,
        "reconstruction.status",
        "reconstruction",
        reconstruction.id,
        before={"status": before},
        # `changed_at`: the clinical time of the change, which the event's own time (when it
        # was written) may trail.
        after={"status": status, "note": note.strip(), "changed_at": at},
    )
    # Deferred: the monitoring service reads flaps through this module.
    from flapwatch.services.monitoring import end_pause, open_pause

    paused = open_pause(session, reconstruction.id)
    if paused is not None:
        end_pause(
            session,
            actor,
            reconstruction,
            paused,
            at,
            f"Ended with the flap's status: {status.label}.",
        )


def get_reconstruction(
    session: Session, actor: Actor, reconstruction_id: int, *, for_update: bool = False
) -> Reconstruction:
    """A flap in the actor's units.

    `for_update` takes the flap's row lock first. Every write that touches a flap's checks or
    escalations takes it before anything else, so concurrent writers queue in one order
    instead of deadlocking (a check's foreign key also locks the flap row, in share mode).
    """
    reconstruction = session.get(Reconstruction, reconstruction_id, with_for_update=for_update)
    if reconstruction is None or not actor.works_in(reconstruction.patient.unit.code):
        raise NotFound(f"No reconstruction {reconstruction_id}.")
    return reconstruction


IN_CHUNKS = 500  # ids per IN (...) list: well under every database's parameter limit


def status_history(session: Session, flap_ids: list[int]) -> dict[int, list[tuple[datetime, str]]]:
    """Each flap's status changes (time, the status after), oldest first, from the audit
    trail (the record of who changed what)."""
    history: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for offset in range(0, len(flap_ids), IN_CHUNKS):
        ids = flap_ids[offset : offset + IN_CHUNKS]
        query = (
            select(AuditEvent.object_id, AuditEvent.at, AuditEvent.after)
            .where(
                AuditEvent.object_type == "reconstruction",
                AuditEvent.action == "reconstruction.status",
                AuditEvent.object_id.in_([str(i) for i in ids]),
            )
            .order_by(AuditEvent.id)
        )
        for object_id, written_at, after in session.execute(query):
            after = after or {}
            changed = after.get("changed_at")
            at = datetime.fromisoformat(changed) if isinstance(changed, str) else written_at
            history[int(object_id)].append((at, after.get("status", "")))
    for flap_changes in history.values():
        flap_changes.sort(key=lambda change: change[0])
    return history


def transfer_patient(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    to_unit: str,
    at: datetime | None = None,
    bed: str | None = None,
    note: str = "",
    now: datetime | None = None,
) -> Patient:
    """Move a patient, with their flaps, to another ward (ICU → ward 3) at a moment: checks,
    misses, pauses and escalations before it stay the old ward's in its reports, those after
    it are the new ward's; the schedule is the ward's at each moment and time zero does not
    restart. Any clinical role of the ward the patient is on."""
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    at = at or now
    note = (note or "").strip()
    bed = (bed or "").strip() or None
    problems: dict[str, str] = {}
    with write_transaction(session):
        patient = get_patient(session, actor, patient_id)
        for reconstruction in patient.reconstructions:
            get_reconstruction(session, actor, reconstruction.id, for_update=True)
        target = session.scalars(select(Unit).where(Unit.code == to_unit.strip().upper())).first()
        if target is None:
            problems["to_unit"] = f"No such unit: {to_unit}."
        elif target.id == patient.unit_id:
            problems["to_unit"] = f"{patient.name} is on {target.code} already."
        current = _open_stay(session, patient.id)
        if at.tzinfo is None:
            raise ValueError("at must carry a time zone")
        if at > now + SURGERY_FUTURE_TOLERANCE:
            problems["at"] = "The time of the transfer is in the future."
        elif current is not None and current.started_at is not None and at <= current.started_at:
            problems["at"] = "The transfer must come after the patient arrived on this ward."
        taken = bed_problem(session, target, bed, patient.id) if target is not None else None
        if taken is not None and "to_unit" not in problems:
            problems["bed"] = taken
        if len(note) > 2000:
            problems["note"] = "Note can be at most 2000 characters."
        if problems:
            raise InvalidInput("The patient was not transferred.", problems)
        assert target is not None
        source = patient.unit
        _move(session, actor, patient, target, at, note)
        before_bed, patient.bed = patient.bed, bed
        record_event(session, actor, "patient.transfer", "patient", patient.id,
                     before={"unit": source.code, "bed": before_bed},
                     after={"unit": target.code, "bed": bed, "at": at, "note": note})  # fmt: skip
        from flapwatch.services.live import publish  # deferred, as for the status change

        for unit in (source, target):
            for reconstruction in patient.reconstructions:
                publish(session, unit.id, "flap.updated", reconstruction_id=reconstruction.id)
    return patient


def stays_of(session: Session, patient_ids: list[int]) -> dict[int, list[PatientStay]]:
    """Each patient's stays on each ward, oldest first."""
    found: dict[int, list[PatientStay]] = defaultdict(list)
    for offset in range(0, len(patient_ids), IN_CHUNKS):
        ids = patient_ids[offset : offset + IN_CHUNKS]
        for stay in session.scalars(
            select(PatientStay)
            .where(PatientStay.patient_id.in_(ids))
            .order_by(PatientStay.patient_id, PatientStay.id)
        ):
            found[stay.patient_id].append(stay)
    return found


def transfers_of_flap(session: Session, reconstruction_id: int) -> list[tuple[datetime, str, str]]:
    """The moves of the flap's patient between wards: (when, from ward's code, to ward's code),
    oldest first."""
    patient_id = (
        select(Reconstruction.patient_id)
        .where(Reconstruction.id == reconstruction_id)
        .scalar_subquery()
    )
    stays = list(
        session.scalars(
            select(PatientStay)
            .where(PatientStay.patient_id == patient_id)
            .options(selectinload(PatientStay.unit))
            .order_by(PatientStay.id)
        )
    )
    return [
        (after.started_at, before.unit.code, after.unit.code)
        for before, after in pairwise(stays)
        if after.started_at is not None
    ]
