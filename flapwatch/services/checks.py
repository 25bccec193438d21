"""Recording flap checks: a nurse's at the bedside, and a device's readings (one or a batch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.checks import (
    AMENDMENT_REASON_MAX_LENGTH,
    CheckValues,
    check_problems,
    source_problems,
    with_derived_refill,
)
from flapwatch.domain.rules import Evaluation
from flapwatch.domain.schedule import next_due
from flapwatch.domain.vocabulary import CheckSource
from flapwatch.models import Check, Escalation, Reconstruction, utcnow
from flapwatch.services import CLINICAL_ROLES, Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.escalations import evaluate_new_check, open_escalation_of
from flapwatch.services.live import publish
from flapwatch.services.monitoring import clock_of, end_pause, open_pause
from flapwatch.services.patients import get_reconstruction
from flapwatch.services.units import current_schedule_policy


@dataclass(frozen=True)
class RecordedCheck:
    check: Check
    next_due_at: datetime | None
    evaluation: Evaluation
    escalation: Escalation | None


def record_check(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    values: CheckValues,
    *,
    source: CheckSource = CheckSource.BEDSIDE,
    device: str | None = None,
    now: datetime | None = None,
) -> RecordedCheck:
    """Store one check, a nurse's at the bedside or a named device's reading, and say when
    the next bedside check falls due.

    Refused (InvalidInput, with a message per field) when any value is out of range, the time
    is implausible, nothing at all was assessed, or a device reading holds a bedside
    observation. Nothing is stored on refusal.
    """
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    values = with_derived_refill(values)
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        problems = _problems(reconstruction, values, source, device, now)
        if problems:
            raise InvalidInput("The check was not saved.", problems)
        check, evaluation = _store(session, actor, reconstruction, values, source, device, now)
        due = _next_due(session, reconstruction)
        escalation = open_escalation_of(session, reconstruction.id) if evaluation.matches else None
    return RecordedCheck(check=check, next_due_at=due, evaluation=evaluation, escalation=escalation)


def _problems(
    reconstruction: Reconstruction,
    values: CheckValues,
    source: CheckSource,
    device: str | None,
    now: datetime,
) -> dict[str, str]:
    problems = check_problems(
        values, surgery_end_at=reconstruction.surgery_end_at, now=now, buried=reconstruction.buried
    )
    problems.update(source_problems(values, source, device))
    if not reconstruction.monitoring:
        problems[""] = (
            f"Monitoring of this flap has ended ({reconstruction.status.label}): "
            "resume monitoring before recording a check."
        )
    return problems


def _store(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    values: CheckValues,
    source: CheckSource,
    device: str | None,
    now: datetime,
) -> tuple[Check, Evaluation]:
    """One new check, judged by the unit's rules, audited and told to the ward. A nurse's
    check taken during a pause ends it when the check was taken: the flap is back and looked
    at (a device's reading, an oximeter left on in theatre, does not; nor does a check from
    before the pause entered late)."""
    if source == CheckSource.BEDSIDE:
        paused = open_pause(session, reconstruction.id)
        if paused is not None and values.taken_at >= paused.started_at:
            end_pause(
                session, actor, reconstruction, paused, values.taken_at, "Resumed by a check."
            )
    check = Check(
        reconstruction=reconstruction,
        recorded_at=now,
        first_recorded_at=now,
        recorded_by_id=actor.user_id,
        taken_by_id=actor.user_id,
        source=source,
        device=device.strip() if device else None,
        **values.as_dict(),
    )
    session.add(check)
    session.flush()
    evaluation = evaluate_new_check(session, actor, check, reconstruction)
    record_event(session, actor, "check.record", "check", check.id, after=_check_record(check))
    _tell_the_ward(session, reconstruction, check)
    return check, evaluation


@dataclass(frozen=True)
class RecordedReadings:
    """A device's batch: the readings stored now, those it had sent before, when the next
    bedside check falls due, and the flap's open escalation if a reading flagged."""

    stored: list[Check]
    already: list[Check]
    next_due_at: datetime | None
    escalation: Escalation | None


def record_readings(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    device: str,
    readings: list[CheckValues],
    *,
    now: datetime | None = None,
) -> RecordedReadings:
    """Store a device's timed readings, oldest first, each judged by the unit's rules as it
    comes; all or none. Sending a batch again stores nothing twice: a reading of the same
    device at the same time with the same values is the one stored already, and one with
    other values is refused (naming the reading), never put over the first."""
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    device = (device or "").strip()
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        kept = {
            check.taken_at: check
            for check in session.scalars(
                select(Check).where(
                    Check.reconstruction_id == reconstruction.id,
                    Check.source == CheckSource.DEVICE,
                    Check.device == device,
                    Check.taken_at.in_([reading.taken_at for reading in readings]),
                    Check.in_force(),
                )
            )
        }
        problems = source_problems(CheckValues(taken_at=now), CheckSource.DEVICE, device)
        if not readings:
            problems["readings"] = "Readings: send at least one reading."
        fresh: dict[datetime, CheckValues] = {}
        for index, reading in enumerate(readings):
            field_problems = _problems(reconstruction, reading, CheckSource.DEVICE, device, now)
            field_problems.pop("device", None)  # said once, above
            for name, message in field_problems.items():
                problems[f"readings[{index}].{name}" if name else f"readings[{index}]"] = message
            stored = kept.get(reading.taken_at)
            if stored is not None and stored.values() != reading:
                problems[f"readings[{index}].taken_at"] = (
                    f"A different reading from {device} at this time is stored already "
                    f"(check {stored.id}): it is not replaced."
                )
            elif stored is None and fresh.setdefault(reading.taken_at, reading) != reading:
                problems[f"readings[{index}].taken_at"] = (
                    f"Another reading of this batch has the same time and other values: "
                    f"{device} gives one reading a moment."
                )
        if problems:
            raise InvalidInput("The readings were not saved.", problems)
        stored_now = [
            _store(session, actor, reconstruction, reading, CheckSource.DEVICE, device, now)[0]
            for reading in sorted(fresh.values(), key=lambda values: values.taken_at)
        ]
        already = [kept[r.taken_at] for r in readings if r.taken_at in kept]
        due = _next_due(session, reconstruction)
        escalation = open_escalation_of(session, reconstruction.id)
    return RecordedReadings(stored_now, already, due, escalation)


def _tell_the_ward(session: Session, reconstruction: Reconstruction, check: Check) -> None:
    """The board and the queue of the flap's unit update at once (services/live.py)."""
    publish(
        session,
        reconstruction.patient.unit_id,
        "check.recorded",
        reconstruction_id=reconstruction.id,
        check_id=check.id,
        flagged=bool(check.flags),
    )


def _next_due(session: Session, reconstruction: Reconstruction) -> datetime | None:
    """The flap's next due time as it stands in this transaction (None while paused)."""
    policy = current_schedule_policy(session, reconstruction.patient.unit_id).as_value()
    return next_due(policy, clock_of(session, reconstruction))


def _check_record(check: Check) -> dict[str, object]:
    return {
        "reconstruction_id": check.reconstruction_id,
        "recorded_at": check.recorded_at,
        **check.values().as_dict(),
        "source": check.source,
        "device": check.device,
        "rule_set_version_id": check.rule_set_version_id,
        "flags": [flag.rule_id for flag in check.flags],
        "version": check.version,
        "amends_id": check.amends_id,
        "entered_in_error": check.entered_in_error,
        "amendment_reason": check.amendment_reason,
        "first_recorded_at": check.first_recorded_at,
        "taken_by_id": check.taken_by_id,
    }


# --- amendments ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmendedCheck:
    """The check's new version, the one it replaced, and what its rules now say."""

    check: Check
    previous: Check
    next_due_at: datetime | None
    evaluation: Evaluation | None
    flags_before: list[str]
    flags_after: list[str]


def amend_check(
    session: Session,
    actor: Actor,
    check_id: int,
    *,
    reason: str,
    values: CheckValues | None = None,
    entered_in_error: bool = False,
    now: datetime | None = None,
) -> AmendedCheck:
    """Correct a check: new values with a reason, or withdraw it as entered in error (wrong
    patient). The check's row and every earlier version stay as they were; the correction is
    a new version, re-evaluated by the unit's rules, and any change of flags is recorded. A new
    sign found by the correction escalates as a new check would; a flag that disappears leaves
    the escalation to the surgeon who reviews it.
    """
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    problems: dict[str, str] = {}
    reason = reason.strip()
    if not reason:
        problems["reason"] = "Say why the check is corrected."
    elif len(reason) > AMENDMENT_REASON_MAX_LENGTH:
        problems["reason"] = f"Reason can be at most {AMENDMENT_REASON_MAX_LENGTH} characters."
    if values is None and not entered_in_error:
        problems[""] = "Give the corrected values, or mark the check entered in error."
    with write_transaction(session):
        previous = session.get(Check, check_id)
        if previous is None:
            raise NotFound(f"No check {check_id}.")
        reconstruction = get_reconstruction(
            session, actor, previous.reconstruction_id, for_update=True
        )
        session.refresh(previous)  # read again under the flap's lock
        if previous.superseded_by_id is not None:
            problems[""] = (
                "This version of the check has already been corrected: open the check again "
                "and correct its latest version."
            )
        elif previous.entered_in_error:
            problems[""] = "This check was withdrawn as entered in error; it cannot be changed."
        corrected = previous.values() if values is None else with_derived_refill(values)
        if values is not None:
            problems.update(
                check_problems(
                    corrected,
                    surgery_end_at=reconstruction.surgery_end_at,
                    now=now,
                    buried=reconstruction.buried,
                )
            )
            problems.update(source_problems(corrected, previous.source, previous.device))
        if problems:
            raise InvalidInput("The correction was not saved.", problems)
        flags_before = [flag.rule_id for flag in previous.flags]
        amended = Check(
            reconstruction_id=reconstruction.id,
            recorded_at=now,
            recorded_by_id=actor.user_id,
            version=previous.version + 1,
            amends_id=previous.id,
            first_recorded_at=previous.first_recorded_at,
            taken_by_id=previous.taken_by_id,  # still the nurse who took it
            entered_in_error=entered_in_error,
            amendment_reason=reason,
            source=previous.source,  # a correction changes values, not where they came from
            device=previous.device,
            **corrected.as_dict(),
        )
        session.add(amended)
        session.flush()
        previous.superseded_by_id = amended.id
        session.flush()
        evaluation = None
        if not entered_in_error:
            evaluation = evaluate_new_check(
                session, actor, amended, reconstruction, already_flagged=flags_before
            )
        flags_after = [flag.rule_id for flag in amended.flags]
        record_event(
            session,
            actor,
            "check.amend",
            "check",
            amended.id,
            before={**_check_record(previous), "check_id": previous.id},
            after=_check_record(amended),
        )
        due = _next_due(session, reconstruction)
        _tell_the_ward(session, reconstruction, amended)
    return AmendedCheck(
        check=amended,
        previous=previous,
        next_due_at=due,
        evaluation=evaluation,
        flags_before=flags_before,
        flags_after=flags_after,
    )


def check_history(session: Session, actor: Actor, check_id: int) -> list[Check]:
    """Every version of a check, first recorded first, with who recorded each and its flags."""
    check = session.get(Check, check_id)
    if check is None:
        raise NotFound(f"No check {check_id}.")
    get_reconstruction(session, actor, check.reconstruction_id)  # the actor's units only
    versions = [check]
    while versions[0].amends_id is not None:  # back to the first version
        earlier = session.get(Check, versions[0].amends_id)
        assert earlier is not None
        versions.insert(0, earlier)
    while versions[-1].superseded_by_id is not None:  # forward to the latest
        later = session.get(Check, versions[-1].superseded_by_id)
        assert later is not None
        versions.append(later)
    ids = [version.id for version in versions]
    loaded = session.scalars(
        select(Check)
        .where(Check.id.in_(ids))
        .options(selectinload(Check.flags), selectinload(Check.recorded_by))
    )
    by_id = {version.id: version for version in loaded}
    return [by_id[version_id] for version_id in ids]
