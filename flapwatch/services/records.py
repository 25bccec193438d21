"""Reading records page by page, for the API and other systems: each page in a fixed number of
queries, only inside the actor's units, in a stable order a cursor can resume from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, contains_eager, selectinload

from flapwatch.domain.schedule import due_state, next_due
from flapwatch.domain.vocabulary import DueState, ReconstructionStatus
from flapwatch.models import (
    Check,
    Escalation,
    MonitoringPause,
    Patient,
    Reconstruction,
    RuleSetVersion,
    ScheduleOverride,
    SchedulePolicy,
    TheatreReturn,
    Unit,
    User,
)
from flapwatch.services import Actor, NotFound
from flapwatch.services.escalations import escalations_with_their_flaps
from flapwatch.services.monitoring import clocks_of
from flapwatch.services.outcomes import theatre_returns_of
from flapwatch.services.patients import get_reconstruction
from flapwatch.services.ward import get_unit_by_code, latest_checks, open_escalation_by_flap


def _in_units(query: Select, actor: Actor, unit_code: str | None, session: Session) -> Select:
    """Limit a query joined to Unit to the actor's units, or to one of them (404 otherwise)."""
    if unit_code is not None:
        unit = get_unit_by_code(session, actor, unit_code)
        return query.where(Unit.id == unit.id)
    if not actor.all_units:
        return query.where(Unit.code.in_(sorted(actor.unit_codes)))
    return query


# --- units -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitSettings:
    schedule: SchedulePolicy
    rule_set_version: int


def units_page(session: Session, actor: Actor, after_code: str | None, limit: int) -> list[Unit]:
    query = select(Unit).order_by(Unit.code).limit(limit)
    if not actor.all_units:
        query = query.where(Unit.code.in_(sorted(actor.unit_codes)))
    if after_code is not None:
        query = query.where(Unit.code > after_code)
    return list(session.scalars(query))


def unit_settings(session: Session, unit_ids: list[int]) -> dict[int, UnitSettings]:
    """Each unit's schedule and rule-set version in force, in two queries."""
    if not unit_ids:
        return {}
    latest_schedule = (
        select(SchedulePolicy.unit_id, func.max(SchedulePolicy.version).label("version"))
        .where(SchedulePolicy.unit_id.in_(unit_ids))
        .group_by(SchedulePolicy.unit_id)
        .subquery()
    )
    schedules = {
        policy.unit_id: policy
        for policy in session.scalars(
            select(SchedulePolicy).join(
                latest_schedule,
                (latest_schedule.c.unit_id == SchedulePolicy.unit_id)
                & (latest_schedule.c.version == SchedulePolicy.version),
            )
        )
    }
    versions = dict(
        session.execute(
            select(RuleSetVersion.unit_id, func.max(RuleSetVersion.version))
            .where(RuleSetVersion.unit_id.in_(unit_ids))
            .group_by(RuleSetVersion.unit_id)
        ).all()
    )
    return {
        unit_id: UnitSettings(schedules[unit_id], versions.get(unit_id, 0))
        for unit_id in unit_ids
        if unit_id in schedules
    }


@dataclass(frozen=True)
class RuleSetRecord:
    version: RuleSetVersion
    author: str | None


def rule_set_version(
    session: Session, actor: Actor, unit_code: str, number: int | None = None
) -> RuleSetRecord:
    """The version in force (or `number`) of a unit's rules: anyone in the unit may read them."""
    unit = get_unit_by_code(session, actor, unit_code)
    query = (
        select(RuleSetVersion, User.username)
        .outerjoin(User, User.id == RuleSetVersion.created_by_id)
        .where(RuleSetVersion.unit_id == unit.id)
        .order_by(RuleSetVersion.version.desc())
        .limit(1)
    )
    if number is not None:
        query = query.where(RuleSetVersion.version == number)
    row = session.execute(query).first()
    if row is None:
        raise NotFound(f"Unit {unit.code} has no such rule set version.")
    return RuleSetRecord(row[0], row[1])


def rule_set_versions_page(
    session: Session, actor: Actor, unit_code: str, before_version: int | None, limit: int
) -> list[RuleSetRecord]:
    """Versions newest first, without their rules."""
    unit = get_unit_by_code(session, actor, unit_code)
    query = (
        select(RuleSetVersion, User.username)
        .outerjoin(User, User.id == RuleSetVersion.created_by_id)
        .where(RuleSetVersion.unit_id == unit.id)
        .order_by(RuleSetVersion.version.desc())
        .limit(limit)
    )
    if before_version is not None:
        query = query.where(RuleSetVersion.version < before_version)
    return [RuleSetRecord(version, author) for version, author in session.execute(query)]


# --- patients and flaps ----------------------------------------------------------------------


def patients_page(
    session: Session,
    actor: Actor,
    unit_code: str | None,
    after_id: int | None,
    limit: int,
    mrn: str | None = None,
) -> list[Patient]:
    query = (
        select(Patient)
        .join(Patient.unit)
        .options(contains_eager(Patient.unit))
        .order_by(Patient.id)
        .limit(limit)
    )
    query = _in_units(query, actor, unit_code, session)
    if mrn is not None:
        query = query.where(Patient.mrn == mrn.strip())
    if after_id is not None:
        query = query.where(Patient.id > after_id)
    return list(session.scalars(query))


@dataclass(frozen=True)
class FlapProgress:
    """Where a flap stands against its unit's schedule; the due fields are None once its
    monitoring has ended."""

    reconstruction: Reconstruction
    next_due_at: datetime | None
    due_state: DueState | None
    last_check_at: datetime | None
    open_escalation_id: int | None
    pause: MonitoringPause | None = None  # in force
    # The flap's own schedules in force now or still to come, soonest first.
    overrides: tuple[ScheduleOverride, ...] = ()
    theatre_returns: tuple[TheatreReturn, ...] = ()  # first first


def reconstructions_page(
    session: Session,
    actor: Actor,
    unit_code: str | None,
    status: ReconstructionStatus | None,
    after_id: int | None,
    limit: int,
) -> list[Reconstruction]:
    query = (
        select(Reconstruction)
        .join(Reconstruction.patient)
        .join(Patient.unit)
        .options(
            contains_eager(Reconstruction.patient).contains_eager(Patient.unit),
            selectinload(Reconstruction.final_outcome_by),
        )
        .order_by(Reconstruction.id)
        .limit(limit)
    )
    query = _in_units(query, actor, unit_code, session)
    if status is not None:
        query = query.where(Reconstruction.status == status)
    if after_id is not None:
        query = query.where(Reconstruction.id > after_id)
    return list(session.scalars(query))


def progress_of(
    session: Session, reconstructions: list[Reconstruction], now: datetime
) -> list[FlapProgress]:
    """Each flap's schedule position and its returns to theatre, in a fixed number of queries
    however many flaps."""
    ids = [r.id for r in reconstructions]
    returns = theatre_returns_of(session, ids)
    latest = latest_checks(session, ids)
    escalations = open_escalation_by_flap(session, ids)
    settings = unit_settings(session, sorted({r.patient.unit_id for r in reconstructions}))
    clocks = clocks_of(
        session, reconstructions, {i: c.taken_at if (c := latest.get(i)) else None for i in ids}
    )
    progress = []
    for reconstruction in reconstructions:
        last = latest.get(reconstruction.id)
        escalation = escalations.get(reconstruction.id)
        due = state = None
        if reconstruction.monitoring:
            schedule = settings[reconstruction.patient.unit_id].schedule.as_value()
            due = next_due(schedule, clocks.clocks[reconstruction.id])
            state = DueState.PAUSED if due is None else due_state(schedule, due, now)
        progress.append(
            FlapProgress(
                reconstruction=reconstruction,
                next_due_at=due,
                due_state=state,
                last_check_at=last.taken_at if last else None,
                open_escalation_id=escalation.id if escalation else None,
                pause=clocks.pauses.get(reconstruction.id),
                overrides=clocks.overrides_to_come(reconstruction.id, now),
                theatre_returns=tuple(returns.get(reconstruction.id, ())),
            )
        )
    return progress


# --- checks ----------------------------------------------------------------------------------


def checks_page(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Check]:
    """A flap's checks newest first (by clinical time), with their flags and who recorded them."""
    get_reconstruction(session, actor, reconstruction_id)
    query = (
        select(Check)
        .where(Check.reconstruction_id == reconstruction_id, Check.current())
        .options(
            selectinload(Check.flags),
            selectinload(Check.recorded_by),
            selectinload(Check.taken_by),
        )
        .order_by(Check.taken_at.desc(), Check.id.desc())
        .limit(limit)
    )
    if before is not None:
        taken_at, check_id = before
        query = query.where(
            (Check.taken_at < taken_at) | ((Check.taken_at == taken_at) & (Check.id < check_id))
        )
    return list(session.scalars(query))


def rule_set_version_numbers(session: Session, version_ids: set[int]) -> dict[int, int]:
    if not version_ids:
        return {}
    return dict(
        session.execute(
            select(RuleSetVersion.id, RuleSetVersion.version).where(
                RuleSetVersion.id.in_(sorted(version_ids))
            )
        ).all()
    )


# --- escalations -----------------------------------------------------------------------------


def escalations_page(
    session: Session,
    actor: Actor,
    unit_code: str | None,
    status: str | None,
    after_id: int | None,
    limit: int,
) -> list[Escalation]:
    """Escalations oldest first; `status` open (awaiting a surgeon), acknowledged or closed."""
    query = escalations_with_their_flaps().order_by(Escalation.id).limit(limit)
    query = _in_units(query, actor, unit_code, session)
    if status == "open":
        query = query.where(Escalation.closed_at.is_(None), Escalation.acknowledged_at.is_(None))
    elif status == "acknowledged":
        query = query.where(Escalation.closed_at.is_(None), Escalation.acknowledged_at.is_not(None))
    elif status == "closed":
        query = query.where(Escalation.closed_at.is_not(None))
    if after_id is not None:
        query = query.where(Escalation.id > after_id)
    return list(session.scalars(query))


def get_escalation(session: Session, actor: Actor, escalation_id: int) -> Escalation:
    escalation = session.scalars(
        select(Escalation)
        .where(Escalation.id == escalation_id)
        .options(
            selectinload(Escalation.events),
            selectinload(Escalation.acknowledged_by),
            selectinload(Escalation.attending_by),
        )
    ).first()
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id}.")
    get_reconstruction(session, actor, escalation.reconstruction_id)
    return escalation


def usernames(session: Session, user_ids: set[int | None]) -> dict[int, str]:
    ids = sorted(i for i in user_ids if i is not None)
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.username).where(User.id.in_(ids))).all())
