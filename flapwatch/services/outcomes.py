"""What became of a flap, apart from where its monitoring stands: each return to theatre (the
decision, knife to skin, what was found, what came of it) and the final outcome, recorded at
discharge or later.

A return to theatre is decided on the ward (a surgeon acknowledging an escalation "return to
theatre", or recording the decision here) and takes the flap off the board; its other details
come as they are known. Each change is audited with what it replaced.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.checks import BEFORE_SURGERY_TOLERANCE, FUTURE_TOLERANCE, NOTES_MAX_LENGTH
from flapwatch.domain.vocabulary import (
    FinalOutcome,
    ReconstructionStatus,
    TheatreFinding,
    TheatreResult,
)
from flapwatch.models import Escalation, Reconstruction, TheatreReturn, utcnow
from flapwatch.services import Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import changes, record_event
from flapwatch.services.patients import IN_CHUNKS, change_status, get_reconstruction

# Surgeons decide and record; coordinators correct the record later.
OUTCOME_ROLES = ("surgeon", "unit_admin", "admin")


def _tell_the_ward(session: Session, reconstruction: Reconstruction) -> None:
    from flapwatch.services.live import publish

    publish(session, reconstruction.patient.unit_id, "flap.updated",
            reconstruction_id=reconstruction.id)  # fmt: skip


def _record(theatre_return: TheatreReturn) -> dict[str, object]:
    return {
        "number": theatre_return.number,
        "escalation_id": theatre_return.escalation_id,
        "decided_at": theatre_return.decided_at,
        "knife_to_skin_at": theatre_return.knife_to_skin_at,
        "findings": theatre_return.findings,
        "findings_note": theatre_return.findings_note,
        "result": theatre_return.result,
        "version": theatre_return.version,
    }


def _moment_problem(
    moment: datetime, reconstruction: Reconstruction, now: datetime, label: str
) -> str | None:
    if moment.tzinfo is None:
        raise ValueError(f"{label} must carry a time zone")
    if moment > now + FUTURE_TOLERANCE:
        return f"{label} is in the future."
    if moment < reconstruction.surgery_end_at - BEFORE_SURGERY_TOLERANCE:
        return f"{label} is before the end of the first surgery."
    return None


# --- a return to theatre ---------------------------------------------------------------------


def begin_theatre_return(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    decided_at: datetime,
    note: str,
    escalation: Escalation | None = None,
) -> TheatreReturn:
    """Inside the caller's transaction (flap locked): the decision to return the flap to
    theatre, and its status "in theatre". Already in theatre, the open return is the one (it
    takes the escalation if it had none)."""
    returns = list(
        session.scalars(
            select(TheatreReturn)
            .where(TheatreReturn.reconstruction_id == reconstruction.id)
            .order_by(TheatreReturn.number)
        )
    )
    in_theatre = reconstruction.status == ReconstructionStatus.RETURNED_TO_THEATRE
    if in_theatre and returns:
        current = returns[-1]
        if current.escalation_id is None and escalation is not None:
            current.escalation_id = escalation.id
            current.version += 1
        return current
    theatre_return = TheatreReturn(
        reconstruction_id=reconstruction.id,
        number=len(returns) + 1,
        escalation_id=escalation.id if escalation is not None else None,
        decided_at=decided_at,
        decided_by_id=actor.user_id,
        findings_note="",
        provenance="",
        recorded_at=utcnow(),
        recorded_by_id=actor.user_id,
        version=1,
    )
    session.add(theatre_return)
    session.flush()
    record_event(session, actor, "theatre_return.decide", "reconstruction", reconstruction.id,
                 after={"id": theatre_return.id, **_record(theatre_return)})  # fmt: skip
    change_status(
        session, actor, reconstruction, ReconstructionStatus.RETURNED_TO_THEATRE, note, decided_at
    )
    return theatre_return


def return_to_theatre(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    decided_at: datetime | None = None,
    note: str = "",
    now: datetime | None = None,
) -> TheatreReturn:
    """A surgeon's decision to take the flap back to theatre, now or a little earlier (the
    decision made on the phone before the record): the flap leaves the board until monitoring
    resumes."""
    require_role(actor, *OUTCOME_ROLES)
    now = now or utcnow()
    decided_at = decided_at or now
    note = (note or "").strip()
    problems: dict[str, str] = {}
    if len(note) > NOTES_MAX_LENGTH:
        problems["note"] = f"Note can be at most {NOTES_MAX_LENGTH} characters."
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if reconstruction.status == ReconstructionStatus.RETURNED_TO_THEATRE:
            problems[""] = "This flap is in theatre already: record what was found instead."
        elif reconstruction.status == ReconstructionStatus.DISCHARGED:
            problems[""] = "This flap was discharged: re-admit the patient to monitor it again."
        problem = _moment_problem(decided_at, reconstruction, now, "Decision time")
        if problem:
            problems["decided_at"] = problem
        if problems:
            raise InvalidInput("The return to theatre was not recorded.", problems)
        theatre_return = begin_theatre_return(
            session, actor, reconstruction, decided_at, note or "Return to theatre decided"
        )
        _tell_the_ward(session, reconstruction)
    return theatre_return


@dataclass(frozen=True)
class TheatreDetails:
    """What is known of a return to theatre; None where it is not (yet)."""

    knife_to_skin_at: datetime | None = None
    findings: str | None = None
    findings_note: str = ""
    result: str | None = None


def record_theatre_details(
    session: Session,
    actor: Actor,
    theatre_return_id: int,
    details: TheatreDetails,
    *,
    version: int,
    now: datetime | None = None,
) -> TheatreReturn:
    """Record knife to skin, the findings and the result as they become known. `version` is
    the one the person saw: a change made meanwhile by someone else is not overwritten."""
    require_role(actor, *OUTCOME_ROLES)
    now = now or utcnow()
    note = (details.findings_note or "").strip()
    problems: dict[str, str] = {}
    if details.findings is not None and details.findings not in TheatreFinding.values():
        problems["findings"] = f"Findings must be one of: {', '.join(TheatreFinding.values())}."
    if details.result is not None and details.result not in TheatreResult.values():
        problems["result"] = f"Result must be one of: {', '.join(TheatreResult.values())}."
    if details.findings == TheatreFinding.OTHER and not note:
        problems["findings_note"] = "Findings: say what 'other' was."
    if len(note) > NOTES_MAX_LENGTH:
        problems["findings_note"] = f"Findings note can be at most {NOTES_MAX_LENGTH} characters."
    with write_transaction(session):
        theatre_return = session.get(TheatreReturn, theatre_return_id)
        if theatre_return is None:
            raise NotFound("No such return to theatre.")
        reconstruction = get_reconstruction(
            session, actor, theatre_return.reconstruction_id, for_update=True
        )
        session.refresh(theatre_return)  # as it stands now the flap is locked
        knife = details.knife_to_skin_at
        if knife is not None:
            problem = _moment_problem(knife, reconstruction, now, "Knife to skin")
            decided = theatre_return.decided_at
            if problem is None and decided is not None and knife < decided:
                problem = "Knife to skin is before the decision to return to theatre."
            if problem:
                problems["knife_to_skin_at"] = problem
        if version != theatre_return.version:
            problems["version"] = (
                "Someone changed this return to theatre meanwhile: read it again and record "
                "what is still missing."
            )
        if problems:
            raise InvalidInput("The return to theatre was not changed.", problems)
        before = _record(theatre_return)
        theatre_return.knife_to_skin_at = details.knife_to_skin_at
        theatre_return.findings = TheatreFinding(details.findings) if details.findings else None
        theatre_return.findings_note = note
        theatre_return.result = TheatreResult(details.result) if details.result else None
        if before != _record(theatre_return):
            theatre_return.version += 1
            was, now_is = changes(before, _record(theatre_return))
            record_event(session, actor, "theatre_return.details", "reconstruction",
                         reconstruction.id, before={"id": theatre_return.id, **was},
                         after={"id": theatre_return.id, **now_is})  # fmt: skip
            _tell_the_ward(session, reconstruction)
    return theatre_return


def theatre_returns_of(
    session: Session, reconstruction_ids: list[int]
) -> dict[int, list[TheatreReturn]]:
    """Each flap's returns to theatre, first first (with their escalations), in one query a
    chunk of flaps."""
    found: dict[int, list[TheatreReturn]] = defaultdict(list)
    for offset in range(0, len(reconstruction_ids), IN_CHUNKS):
        ids = reconstruction_ids[offset : offset + IN_CHUNKS]
        query = (
            select(TheatreReturn)
            .options(selectinload(TheatreReturn.escalation), selectinload(TheatreReturn.decided_by))
            .where(TheatreReturn.reconstruction_id.in_(ids))
            .order_by(TheatreReturn.reconstruction_id, TheatreReturn.number)
        )
        for theatre_return in session.scalars(query):
            found[theatre_return.reconstruction_id].append(theatre_return)
    return found


# --- the final outcome -----------------------------------------------------------------------


def record_final_outcome(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    outcome: str,
    on: date | None,
    note: str = "",
    now: datetime | None = None,
) -> Reconstruction:
    """What became of the flap in the end (intact, partial loss, total loss) and the day it
    was known, once its monitoring has ended. Recorded again, it replaces the record, audited
    with what it replaced."""
    require_role(actor, *OUTCOME_ROLES)
    now = now or utcnow()
    note = (note or "").strip()
    problems: dict[str, str] = {}
    if outcome not in FinalOutcome.values():
        problems["outcome"] = f"Outcome must be one of: {', '.join(FinalOutcome.values())}."
    if len(note) > NOTES_MAX_LENGTH:
        problems["note"] = f"Note can be at most {NOTES_MAX_LENGTH} characters."
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        zone = ZoneInfo(reconstruction.patient.unit.timezone)
        if reconstruction.status in (
            ReconstructionStatus.MONITORING,
            ReconstructionStatus.RETURNED_TO_THEATRE,
        ):
            problems[""] = (
                f"This flap is {reconstruction.status.label.lower()}: its final outcome is "
                "recorded at discharge or later, once monitoring has ended."
            )
        if on is None:
            problems["on"] = "Date: say on which day the outcome was known."
        elif on > now.astimezone(zone).date():
            problems["on"] = "Date is in the future."
        elif on < reconstruction.surgery_end_at.astimezone(zone).date():
            problems["on"] = "Date is before the surgery."
        if problems:
            raise InvalidInput("The final outcome was not recorded.", problems)
        before = _final(reconstruction)
        reconstruction.final_outcome = FinalOutcome(outcome)
        reconstruction.final_outcome_on = on
        reconstruction.final_outcome_note = note
        reconstruction.final_outcome_by_id = actor.user_id
        reconstruction.final_outcome_recorded_at = now
        record_event(session, actor, "reconstruction.final_outcome", "reconstruction",
                     reconstruction.id, before=before, after=_final(reconstruction))  # fmt: skip
    return reconstruction


def _final(reconstruction: Reconstruction) -> dict[str, object]:
    return {
        "final_outcome": reconstruction.final_outcome,
        "final_outcome_on": reconstruction.final_outcome_on,
        "final_outcome_note": reconstruction.final_outcome_note,
    }
