"""Recording bedside flap checks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.checks import CheckValues, check_problems, with_derived_refill
from flapwatch.domain.rules import Evaluation
from flapwatch.domain.schedule import next_due_at
from flapwatch.models import Check, Escalation, Reconstruction, utcnow
from flapwatch.services import CLINICAL_ROLES, Actor, InvalidInput, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.escalations import evaluate_new_check, open_escalation_of
from flapwatch.services.patients import get_reconstruction
from flapwatch.services.staff import current_schedule_policy


@dataclass(frozen=True)
class RecordedCheck:
    check: Check
    next_due_at: datetime
    evaluation: Evaluation
    escalation: Escalation | None


def record_check(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    values: CheckValues,
    *,
    now: datetime | None = None,
) -> RecordedCheck:
    """Store one bedside check and say when the next one falls due.

    Refused (InvalidInput, with a message per field) when any value is out of range, the time
    is implausible, or nothing at all was assessed. Nothing is stored on refusal.
    """
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    values = with_derived_refill(values)
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        problems = check_problems(
            values,
            surgery_end_at=reconstruction.surgery_end_at,
            now=now,
            buried=reconstruction.buried,
        )
        if not reconstruction.monitoring:
            problems[""] = (
                f"Monitoring of this flap has ended ({reconstruction.status.label}): "
                "resume monitoring before recording a check."
            )
        if problems:
            raise InvalidInput("The check was not saved.", problems)
        check = Check(
            reconstruction=reconstruction,
            recorded_at=now,
            recorded_by_id=actor.user_id,
            **values.as_dict(),
        )
        session.add(check)
        session.flush()
        evaluation = evaluate_new_check(session, actor, check, reconstruction)
        record_event(session, actor, "check.record", "check", check.id, after=_check_record(check))
        due = _next_due(session, reconstruction)
        escalation = open_escalation_of(session, reconstruction.id) if evaluation.matches else None
    return RecordedCheck(check=check, next_due_at=due, evaluation=evaluation, escalation=escalation)


def _next_due(session: Session, reconstruction: Reconstruction) -> datetime:
    last_taken = session.scalar(
        select(Check.taken_at)
        .where(Check.reconstruction_id == reconstruction.id)
        .order_by(Check.taken_at.desc())
        .limit(1)
    )
    policy = current_schedule_policy(session, reconstruction.patient.unit_id).as_value()
    return next_due_at(policy, reconstruction.surgery_end_at, last_taken)


def _check_record(check: Check) -> dict[str, object]:
    return {
        "reconstruction_id": check.reconstruction_id,
        "recorded_at": check.recorded_at,
        **check.values().as_dict(),
        "rule_set_version_id": check.rule_set_version_id,
        "flags": [flag.rule_id for flag in check.flags],
    }
