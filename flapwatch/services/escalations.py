"""Rule sets, flags and escalations: a worrying check must reach a surgeon fast."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager, joinedload, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.rules import (
    Evaluation,
    RuleSet,
    RuleSetError,
    evaluate,
    overdue_rule,
    parse_rule_set,
    recent_history_is_enough,
    rule_set_to_json,
)
from flapwatch.domain.schedule import next_due
from flapwatch.domain.vocabulary import (
    EscalationEventKind,
    EscalationOutcome,
    ReconstructionStatus,
    Severity,
)
from flapwatch.models import (
    Check,
    CheckFlag,
    Escalation,
    EscalationEvent,
    MissedCheck,
    Patient,
    Reconstruction,
    RuleSetVersion,
    SchedulePolicy,
    Unit,
    User,
    utcnow,
)
from flapwatch.models import (
    EscalationPage as SentPage,
)
from flapwatch.services import (
    MANAGING_ROLES,
    SYSTEM,
    Actor,
    InvalidInput,
    NotFound,
    require_role,
)
from flapwatch.services.audit import record_event
from flapwatch.services.chains import start_chain
from flapwatch.services.live import publish
from flapwatch.services.monitoring import clock_of, clocks_of
from flapwatch.services.notifications import queue_notification
from flapwatch.services.outcomes import begin_theatre_return
from flapwatch.services.patients import get_reconstruction
from flapwatch.services.units import current_schedule_policy

# Who may acknowledge and close an escalation: the surgical team, and coordinators/admins.
REVIEWING_ROLES = ("surgeon", "unit_admin", "admin")
_SEVERITY_RANK = {None: 0, Severity.AMBER: 1, Severity.RED: 2}


def higher(a: Severity | None, b: Severity | None) -> Severity | None:
    return a if _SEVERITY_RANK[a] >= _SEVERITY_RANK[b] else b


# --- rule sets ---------------------------------------------------------------------------


def current_rule_set(session: Session, unit_id: int) -> RuleSetVersion:
    version = session.scalars(
        select(RuleSetVersion)
        .where(RuleSetVersion.unit_id == unit_id)
        .order_by(RuleSetVersion.version.desc())
        .limit(1)
    ).first()
    if version is None:
        raise NotFound(f"Unit {unit_id} has no rule set.")
    return version


# A published rule-set version never changes (a change is a new version), so each is parsed
# once per process, not once per check.
_PARSED: dict[tuple[int, int, int, datetime], RuleSet] = {}
_PARSED_KEEP = 256


def rule_set_of(version: RuleSetVersion) -> RuleSet:
    """The parsed rules of a published version (known by its row, unit, number and time of
    publishing: another database's row of the same id is another version)."""
    key = (version.id, version.unit_id, version.version, version.created_at)
    parsed = _PARSED.get(key)
    if parsed is None:
        if len(_PARSED) >= _PARSED_KEEP:
            _PARSED.clear()
        parsed = _PARSED[key] = parse_rule_set(version.definition)
    return parsed


# The values a rule compares with: read as plain rows, not as checks with their relationships.
_VALUE_COLUMNS = tuple(getattr(Check, name) for name in CheckValues.__dataclass_fields__)


def rule_set_problems(error: RuleSetError) -> dict[str, str]:
    """Each problem under a key naming its rule and condition, for a form to show."""
    problems: dict[str, str] = {}
    for number, problem in enumerate(error.problems, start=1):
        problems[f"problem-{number}"] = problem.message
    return problems


def publish_rule_set(
    session: Session, actor: Actor, unit_id: int, definition: dict[str, Any], note: str
) -> RuleSetVersion:
    """Store a new version; the next check is evaluated by it, earlier flags keep theirs."""
    require_role(actor, *MANAGING_ROLES)
    if not note.strip():
        raise InvalidInput("The rule set was not published.", {"note": "Say why it changes."})
    try:
        rule_set = parse_rule_set({**definition, "note": note.strip()})
    except RuleSetError as error:
        raise InvalidInput("The rule set was not published.", rule_set_problems(error)) from None
    with write_transaction(session):
        # The unit's row lock: two coordinators publishing at once get consecutive versions.
        unit = session.get(Unit, unit_id, with_for_update=True)
        if unit is None or not actor.works_in(unit.code):
            raise NotFound(f"No unit {unit_id}.")
        latest = session.scalar(
            select(func.max(RuleSetVersion.version)).where(RuleSetVersion.unit_id == unit.id)
        )
        version = RuleSetVersion(
            unit_id=unit.id,
            version=(latest or 0) + 1,
            definition=rule_set_to_json(rule_set),
            note=note.strip(),
            created_by_id=actor.user_id,
        )
        session.add(version)
        session.flush()
        record_event(
            session,
            actor,
            "rule_set.publish",
            "unit",
            unit.id,
            after={"version": version.version, "note": version.note},
        )
    return version


# --- evaluating a check ----------------------------------------------------------------------


# The newest checks read first; a flap monitored hourly passes this in two days.
RECENT_HISTORY = 48


def _rule_history(
    session: Session, check: Check, values: CheckValues, rule_set: RuleSet
) -> list[CheckValues]:
    """The flap's checks before `check` that its rules compare with, oldest first: the newest
    RECENT_HISTORY of them when they are enough to judge it (recent_history_is_enough), else
    all of them, so that recording costs the same on the third day as on the first."""
    earlier = select(*_VALUE_COLUMNS).where(
        Check.reconstruction_id == check.reconstruction_id,
        Check.id != check.id,
        Check.taken_at < check.taken_at,
        Check.in_force(),
    )
    newest = [
        CheckValues(*row)
        for row in session.execute(
            earlier.order_by(Check.taken_at.desc(), Check.id.desc()).limit(RECENT_HISTORY)
        )
    ]
    newest.reverse()
    if len(newest) < RECENT_HISTORY or recent_history_is_enough(rule_set, values, newest):
        return newest
    return [
        CheckValues(*row) for row in session.execute(earlier.order_by(Check.taken_at, Check.id))
    ]


def evaluate_new_check(
    session: Session,
    actor: Actor,
    check: Check,
    reconstruction: Reconstruction,
    *,
    already_flagged: Collection[str] = (),
) -> Evaluation:
    """Inside record_check's (or amend_check's) transaction: flag the check and escalate if
    any rule matched; a rule in `already_flagged` (the amended version's flags) was escalated
    when that version was recorded, and is not escalated again."""
    version = current_rule_set(session, reconstruction.patient.unit_id)
    rule_set = rule_set_of(version)
    values = check.values()
    history = _rule_history(session, check, values, rule_set)
    evaluation = evaluate(rule_set, values, history)
    check.rule_set_version_id = version.id
    check.severity = evaluation.severity
    for match in evaluation.matches:
        check.flags.append(
            CheckFlag(
                rule_id=match.rule_id,
                rule_name=match.name,
                severity=match.severity,
                action=match.action,
                reasons=list(match.reasons),
            )
        )
    new = [match for match in evaluation.matches if match.rule_id not in already_flagged]
    if new:
        session.flush()
        reasons = [f"{match.name}: {reason}" for match in new for reason in match.reasons]
        escalate(
            session,
            actor,
            reconstruction,
            severity=max((m.severity for m in new), key=_SEVERITY_RANK.__getitem__),
            reasons=reasons,
            at=check.recorded_at,
            check_id=check.id,
            recheck_minutes=min(
                (m.recheck_minutes for m in new if m.recheck_minutes is not None), default=None
            ),
            recheck_from=check.taken_at,
        )
    return evaluation


def open_escalation_of(session: Session, reconstruction_id: int) -> Escalation | None:
    return session.scalars(
        select(Escalation).where(
            Escalation.reconstruction_id == reconstruction_id, Escalation.closed_at.is_(None)
        )
    ).first()


def escalate(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    *,
    severity: Severity,
    reasons: list[str],
    at: datetime,
    check_id: int | None = None,
    kind: EscalationEventKind | None = None,
    recheck_minutes: int | None = None,
    recheck_from: datetime | None = None,
) -> Escalation:
    """Open the flap's escalation, or add to the one already open (DESIGN.md §2).

    A further sign after acknowledgement makes it unacknowledged again: the surgeon who
    reviewed the earlier sign has not seen this one. `recheck_minutes` (the rules' soonest
    recheck, from the flagged check at `recheck_from`) tightens the flap's schedule until the
    escalation is acknowledged.
    """
    # The flap's row lock (callers normally hold it already): a check and the overdue sweep
    # cannot both open an escalation.
    session.execute(
        select(Reconstruction.id).where(Reconstruction.id == reconstruction.id).with_for_update()
    )
    escalation = open_escalation_of(session, reconstruction.id)
    # The chain starts at the opening, and again at a sign nobody has answered for: one
    # after an acknowledgement, or one that raises the severity (the red chain from level 1).
    unseen = escalation is None or escalation.answered
    if escalation is not None and higher(escalation.severity, severity) != escalation.severity:
        unseen = True
    if escalation is None:
        escalation = Escalation(
            reconstruction_id=reconstruction.id,
            severity=severity,
            reasons=list(reasons),
            opened_at=at,
            opened_by_check_id=check_id,
            recheck_minutes=recheck_minutes,
            recheck_from=recheck_from if recheck_minutes is not None else None,
        )
        session.add(escalation)
        session.flush()
        event_kind = EscalationEventKind.OPENED
        action = "escalation.open"
    else:
        escalation.severity = Severity(higher(escalation.severity, severity))
        escalation.reasons = [*escalation.reasons, *reasons]
        if escalation.acknowledged_at is not None:
            # The earlier review stays in the timeline (its event); the live state is reset.
            escalation.acknowledged_at = None
            escalation.acknowledged_by_id = None
            escalation.outcome = None
            escalation.note = None
            escalation.recheck_minutes = escalation.recheck_from = None
        if recheck_minutes is not None:
            kept = escalation.recheck_minutes
            escalation.recheck_minutes = min(kept, recheck_minutes) if kept else recheck_minutes
            escalation.recheck_from = max(
                (t for t in (escalation.recheck_from, recheck_from) if t is not None),
                default=at,
            )
        event_kind = EscalationEventKind.FLAG_ADDED
        action = "escalation.attach"
    session.add(
        EscalationEvent(
            escalation_id=escalation.id,
            at=at,
            # The first event is the opening whatever its cause; the reasons say the cause.
            kind=event_kind if event_kind == EscalationEventKind.OPENED else kind or event_kind,
            severity=severity,
            check_id=check_id,
            actor_id=actor.user_id,
            reasons=list(reasons),
        )
    )
    record_event(
        session,
        actor,
        action,
        "escalation",
        escalation.id,
        after={"severity": severity, "reasons": reasons, "check_id": check_id},
    )
    queue_notification(session, escalation, "opened" if action == "escalation.open" else "updated")
    _tell_the_ward(session, escalation, opened=action == "escalation.open")
    if unseen:
        start_chain(session, escalation, at)
    return escalation


def _tell_the_ward(session: Session, escalation: Escalation, *, opened: bool = False) -> None:
    """The unit's board and every queue showing it update at once (services/live.py)."""
    publish(
        session,
        escalation.reconstruction.patient.unit_id,
        "escalation.opened" if opened else "escalation.updated",
        escalation_id=escalation.id,
        reconstruction_id=escalation.reconstruction_id,
        severity=escalation.severity.value,
        status=escalation.status,
    )


# --- the surgeon's side --------------------------------------------------------------------


def _escalation_for(session: Session, actor: Actor, escalation_id: int) -> Escalation:
    escalation = session.get(Escalation, escalation_id)
    if escalation is None or not actor.works_in(escalation.reconstruction.patient.unit.code):
        raise NotFound(f"No escalation {escalation_id}.")
    return escalation


def _locked_escalation(session: Session, actor: Actor, escalation_id: int) -> Escalation:
    """The escalation as it stands once its flap is locked: a sign added meanwhile is seen."""
    escalation = _escalation_for(session, actor, escalation_id)
    session.refresh(escalation.reconstruction, with_for_update=True)
    session.refresh(escalation)
    return escalation


def _refuse_unseen(escalation: Escalation, seen_event_id: int | None, done: str, do: str) -> None:
    """An answer given to a page whose newest event was `seen_event_id` is refused when a sign
    came after it: nobody answers for a sign unseen."""
    latest_event = max((event.id for event in escalation.events), default=None)
    if seen_event_id is not None and latest_event is not None and latest_event > seen_event_id:
        raise InvalidInput(
            f"The escalation was not {done}.",
            {
                "": "A new sign was added after you opened this page: read the timeline, "
                f"then {do} again."
            },
        )


# "I'm coming": the most a surgeon can say they will be, and the page's one-tap choices.
MAX_EXPECTED_MINUTES = 240
EXPECTED_MINUTES_CHOICES = (10, 20, 30, 60)


def attend_escalation(
    session: Session,
    actor: Actor,
    escalation_id: int,
    *,
    expected_minutes: int,
    note: str = "",
    now: datetime | None = None,
    seen_event_id: int | None = None,
) -> Escalation:
    """A surgeon answers "I'm coming", expected at the bedside in `expected_minutes`: the
    nurse sees who and when, the chain stops paging for the signs so far. The decision
    follows at the bedside (`acknowledge_escalation`), which ends it. A later sign pages again
    (the one coming has not seen it) but they stay shown as on their way."""
    require_role(actor, *REVIEWING_ROLES)
    if type(expected_minutes) is not int or not 0 <= expected_minutes <= MAX_EXPECTED_MINUTES:
        raise InvalidInput(
            "The answer was not saved.",
            {
                "expected_minutes": "Minutes until you are at the bedside: a whole number from "
                f"0 to {MAX_EXPECTED_MINUTES}."
            },
        )
    now = now or utcnow()
    with write_transaction(session):
        escalation = _locked_escalation(session, actor, escalation_id)
        if not escalation.is_open:
            raise InvalidInput(
                "The answer was not saved.", {"": "This escalation is already closed."}
            )
        _refuse_unseen(escalation, seen_event_id, "answered", "answer")
        expected = now + timedelta(minutes=expected_minutes)
        escalation.attending_by_id = actor.user_id
        escalation.attending_at = now
        escalation.attending_expected_at = expected
        note = note.strip()
        zone = ZoneInfo(escalation.reconstruction.patient.unit.timezone)
        session.add(
            EscalationEvent(
                escalation_id=escalation.id,
                at=now,
                kind=EscalationEventKind.ATTENDING,
                actor_id=actor.user_id,
                reasons=[
                    f"Coming, expected at {expected.astimezone(zone):%H:%M} "
                    f"(in {expected_minutes} min)"
                ]
                + ([note] if note else []),
            )
        )
        record_event(
            session,
            actor,
            "escalation.attend",
            "escalation",
            escalation.id,
            after={"expected_at": expected.isoformat(), "note": note or None},
        )
        queue_notification(session, escalation, "attending")
        _tell_the_ward(session, escalation)
    return escalation


def acknowledge_escalation(
    session: Session,
    actor: Actor,
    escalation_id: int,
    *,
    outcome: EscalationOutcome | str,
    note: str = "",
    now: datetime | None = None,
    seen_event_id: int | None = None,
) -> Escalation:
    """A surgeon has reviewed the flap and decided; return to theatre updates the flap.

    `seen_event_id` is the last timeline event the surgeon had in front of them: a sign added
    since then is refused rather than acknowledged unseen.
    """
    require_role(actor, *REVIEWING_ROLES)
    if outcome not in EscalationOutcome.values():
        allowed = ", ".join(member.label for member in EscalationOutcome)
        raise InvalidInput(
            "The escalation was not acknowledged.", {"outcome": f"Choose an outcome: {allowed}."}
        )
    now = now or utcnow()
    with write_transaction(session):
        escalation = _locked_escalation(session, actor, escalation_id)
        if not escalation.is_open:
            raise InvalidInput(
                "The escalation was not acknowledged.", {"": "This escalation is already closed."}
            )
        _refuse_unseen(escalation, seen_event_id, "acknowledged", "acknowledge")
        escalation.acknowledged_at = now
        escalation.acknowledged_by_id = actor.user_id
        escalation.outcome = EscalationOutcome(outcome)
        # Whoever was coming has come (or decided from afar): the timeline keeps it.
        escalation.attending_by_id = None
        escalation.attending_at = None
        escalation.attending_expected_at = None
        escalation.note = note.strip() or None
        session.add(
            EscalationEvent(
                escalation_id=escalation.id,
                at=now,
                kind=EscalationEventKind.ACKNOWLEDGED,
                actor_id=actor.user_id,
                reasons=[f"Outcome: {escalation.outcome.label}"]
                + ([escalation.note] if escalation.note else []),
            )
        )
        if escalation.outcome == EscalationOutcome.RETURN_TO_THEATRE:
            begin_theatre_return(
                session,
                actor,
                escalation.reconstruction,
                now,
                f"Escalation {escalation.id} acknowledged",
                escalation,
            )
        record_event(
            session,
            actor,
            "escalation.acknowledge",
            "escalation",
            escalation.id,
            after={"outcome": escalation.outcome, "note": escalation.note},
        )
        queue_notification(session, escalation, "acknowledged")
        _tell_the_ward(session, escalation)
    return escalation


def close_escalation(
    session: Session,
    actor: Actor,
    escalation_id: int,
    *,
    note: str = "",
    now: datetime | None = None,
) -> Escalation:
    require_role(actor, *REVIEWING_ROLES)
    now = now or utcnow()
    with write_transaction(session):
        escalation = _locked_escalation(session, actor, escalation_id)
        if not escalation.is_open:
            return escalation
        if escalation.acknowledged_at is None:
            raise InvalidInput(
                "The escalation was not closed.",
                {"": "Acknowledge it with an outcome before closing it."},
            )
        escalation.closed_at = now
        escalation.closed_by_id = actor.user_id
        session.add(
            EscalationEvent(
                escalation_id=escalation.id,
                at=now,
                kind=EscalationEventKind.CLOSED,
                actor_id=actor.user_id,
                reasons=[note.strip()] if note.strip() else [],
            )
        )
        record_event(
            session,
            actor,
            "escalation.close",
            "escalation",
            escalation.id,
            after={"note": note.strip()},
        )
        _tell_the_ward(session, escalation)
    return escalation


# --- the overdue sweep ---------------------------------------------------------------------


@dataclass(frozen=True)
class SweepResult:
    missed: int
    escalated: int


def sweep_overdue(session: Session, now: datetime | None = None) -> SweepResult:
    """Record every missed check and escalate it (the `overdue` rule), exactly once.

    Safe to run in several processes at once: a missed check is unique per (flap, due time),
    and a second sweeper finding it already recorded moves on.
    """
    now = now or utcnow()
    missed = escalated = 0
    for reconstruction_id in _overdue_reconstruction_ids(session, now):
        try:
            outcome = _sweep_one(session, reconstruction_id, now)
        except IntegrityError:
            session.rollback()  # another process recorded this missed check first
            continue
        if outcome is not None:
            missed += 1
            escalated += int(outcome)
    return SweepResult(missed=missed, escalated=escalated)


def _overdue_reconstruction_ids(session: Session, now: datetime) -> list[int]:
    """Monitored flaps past due plus grace with that missed check not yet recorded.

    Read-only and in a fixed number of queries, so a sweep with nothing to do takes no write
    lock; `_sweep_one` decides again under the flap's lock.
    """
    flaps = session.execute(
        select(
            Reconstruction.id,
            func.coalesce(Reconstruction.time_zero_at, Reconstruction.surgery_end_at).label(
                "time_zero"
            ),
            Reconstruction.status_changed_at.label("resumed_at"),  # all monitored: came back
            Patient.unit_id,
        )
        .join(Reconstruction.patient)
        .where(Reconstruction.status == ReconstructionStatus.MONITORING)
    ).all()
    last_taken: dict[int, datetime] = dict(
        session.execute(
            select(Check.reconstruction_id, func.max(Check.taken_at))
            .join(Check.reconstruction)
            .where(Reconstruction.status == ReconstructionStatus.MONITORING, Check.on_schedule())
            .group_by(Check.reconstruction_id)
        ).all()
    )
    schedules = {
        policy.unit_id: policy.as_value()
        for policy in session.scalars(select(SchedulePolicy).order_by(SchedulePolicy.version))
    }  # the highest version of each unit is the last one written into the dict
    clocks = clocks_of(session, flaps, last_taken)
    overdue: dict[int, datetime] = {}
    for flap in flaps:
        schedule = schedules[flap.unit_id]
        due = next_due(schedule, clocks.clocks[flap.id])  # None: paused, nothing is due
        if due is not None and now > due + schedule.grace:
            overdue[flap.id] = due
    recorded = {
        (flap_id, due)
        for flap_id, due in session.execute(
            select(MissedCheck.reconstruction_id, MissedCheck.due_at).where(
                MissedCheck.reconstruction_id.in_(list(overdue))
            )
        )
    }
    session.rollback()  # end the read so each flap's write transaction starts fresh
    return [flap_id for flap_id, due in overdue.items() if (flap_id, due) not in recorded]


def _sweep_one(session: Session, reconstruction_id: int, now: datetime) -> bool | None:
    """None: nothing missed. True/False: a missed check recorded, escalated or not."""
    with write_transaction(session):
        reconstruction = session.get(Reconstruction, reconstruction_id, with_for_update=True)
        if reconstruction is None or not reconstruction.monitoring:
            return None
        unit_id = reconstruction.patient.unit_id
        schedule = current_schedule_policy(session, unit_id).as_value()
        due = next_due(schedule, clock_of(session, reconstruction))
        if due is None or now <= due + schedule.grace:
            return None
        already = session.scalar(
            select(MissedCheck.id).where(
                MissedCheck.reconstruction_id == reconstruction.id, MissedCheck.due_at == due
            )
        )
        if already is not None:
            return None
        missed = MissedCheck(reconstruction_id=reconstruction.id, due_at=due, detected_at=now)
        session.add(missed)
        session.flush()
        rule = overdue_rule(rule_set_of(current_rule_set(session, unit_id)))
        if rule is None:
            return False
        local_due = due.astimezone(ZoneInfo(reconstruction.patient.unit.timezone))
        escalation = escalate(
            session,
            SYSTEM,
            reconstruction,
            severity=Severity(rule.severity),
            reasons=[f"{rule.name}: no check since it fell due at {local_due:%H:%M}"],
            at=now,
            kind=EscalationEventKind.OVERDUE,
        )
        missed.escalation_id = escalation.id
        return True


# --- reading ---------------------------------------------------------------------------------


def escalations_with_their_flaps() -> Select[tuple[Escalation]]:
    """Escalations joined to (and loaded with) their flap, patient and unit, and who
    acknowledged them: a list of them in a fixed number of queries."""
    return (
        select(Escalation)
        .join(Escalation.reconstruction)
        .join(Reconstruction.patient)
        .join(Patient.unit)
        .options(
            contains_eager(Escalation.reconstruction)
            .contains_eager(Reconstruction.patient)
            .contains_eager(Patient.unit),
            selectinload(Escalation.acknowledged_by),
            selectinload(Escalation.attending_by),
        )
    )


def open_escalations(
    session: Session, actor: Actor, unit_codes: Iterable[str] | None = None
) -> list[Escalation]:
    """Open escalations in the actor's units: red first, then the longest waiting."""
    query = escalations_with_their_flaps().where(Escalation.closed_at.is_(None))
    codes = set(unit_codes) if unit_codes is not None else None
    if not actor.all_units:
        codes = actor.unit_codes if codes is None else codes & actor.unit_codes
    if codes is not None:
        query = query.where(Unit.code.in_(sorted(codes)))
    escalations = list(session.scalars(query))
    escalations.sort(
        key=lambda e: (-_SEVERITY_RANK[e.severity], e.acknowledged_at is not None, e.opened_at)
    )
    return escalations


# Enough of the flap's recent history to see the trend that led here; the flap page has all.
RECENT_CHECKS = 10


@dataclass(frozen=True)
class EscalationPage:
    """An escalation with its timeline, the people on it and the flap's recent checks."""

    escalation: Escalation
    unit: Unit
    people: dict[int, User]
    checks: list[Check]
    # Who the escalation chain paged in its latest round (since the last sign nobody had
    # seen), first level first: the surgeon sees who else is on the way.
    paged: list[SentPage]

    @property
    def reconstruction(self) -> Reconstruction:
        return self.escalation.reconstruction

    @property
    def patient(self) -> Patient:
        return self.reconstruction.patient

    def person(self, user_id: int | None) -> str:
        if user_id is None:
            return "flapwatch (overdue check)"
        user = self.people.get(user_id)
        return user.display_name if user else "a former user"


def escalation_page(session: Session, actor: Actor, escalation_id: int) -> EscalationPage:
    """Everything the detail page shows, in six queries however long the history."""
    escalation = session.scalars(
        select(Escalation)
        .where(Escalation.id == escalation_id)
        .options(
            joinedload(Escalation.reconstruction)
            .joinedload(Reconstruction.patient)
            .joinedload(Patient.unit),
            selectinload(Escalation.events),
        )
    ).first()
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id}.")
    get_reconstruction(session, actor, escalation.reconstruction_id)  # the actor's units only
    checks = list(
        session.scalars(
            select(Check)
            .where(Check.reconstruction_id == escalation.reconstruction_id, Check.current())
            .options(selectinload(Check.flags))
            .order_by(Check.taken_at.desc(), Check.id.desc())
            .limit(RECENT_CHECKS)
        )
    )
    paged = list(
        session.scalars(
            select(SentPage)
            .where(
                SentPage.escalation_id == escalation.id,
                SentPage.round == escalation.chain_round,
            )
            .order_by(SentPage.level)
        )
    )
    people_ids = {event.actor_id for event in escalation.events}
    people_ids |= {escalation.acknowledged_by_id, escalation.closed_by_id}
    people_ids |= {check.taken_by_id or check.recorded_by_id for check in checks}
    people_ids.discard(None)
    people = {
        user.id: user for user in session.scalars(select(User).where(User.id.in_(people_ids)))
    }
    return EscalationPage(
        escalation=escalation,
        unit=escalation.reconstruction.patient.unit,
        people=people,
        checks=checks,
        paged=paged,
    )


def awaiting_acknowledgement(session: Session, actor: Actor) -> int:
    """How many escalations in the actor's units no surgeon has acknowledged: one count."""
    query = (
        select(func.count(Escalation.id))
        .join(Escalation.reconstruction)
        .join(Reconstruction.patient)
        .join(Patient.unit)
        .where(Escalation.closed_at.is_(None), Escalation.acknowledged_at.is_(None))
    )
    if not actor.all_units:
        query = query.where(Unit.code.in_(sorted(actor.unit_codes)))
    return session.scalar(query) or 0
