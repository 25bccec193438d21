"""What the ward board and the flap page show: read-only, a fixed number of queries each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, contains_eager, selectinload

from flapwatch.domain.schedule import SchedulePolicy as Schedule
from flapwatch.domain.schedule import due_state, hours_since, next_due
from flapwatch.domain.vocabulary import CheckSource, DueState, ReconstructionStatus, Severity
from flapwatch.models import (
    Check,
    CheckNotDone,
    Escalation,
    MonitoringPause,
    Patient,
    PatientStay,
    Photo,
    Reconstruction,
    ScheduleOverride,
    TheatreReturn,
    Unit,
)
from flapwatch.services import Actor, NotFound
from flapwatch.services.monitoring import (
    Clocks,
    clocks_of,
    not_done_of,
    overrides_of,
    pauses_of,
)
from flapwatch.services.outcomes import theatre_returns_of
from flapwatch.services.patients import get_reconstruction, stays_of
from flapwatch.services.photos import photos_of
from flapwatch.services.units import current_schedule_policy

_URGENCY = {DueState.OVERDUE: 0, DueState.DUE: 1, DueState.NOT_DUE: 2, DueState.PAUSED: 3}
_NEVER = datetime.max.replace(tzinfo=UTC)
# An escalation no surgeon has acknowledged yet puts its flap above every due state: the
# nurse must chase it. Once acknowledged, the surgeon has decided and the schedule rules again.
_ESCALATION_URGENCY = {Severity.RED: 0, Severity.AMBER: 1}
_NOT_ESCALATED = len(_ESCALATION_URGENCY)


@dataclass(frozen=True)
class FlapStatus:
    """One monitored flap against its schedule at a moment."""

    reconstruction: Reconstruction
    last_check: Check | None
    next_due_at: datetime | None  # None while paused
    due_state: DueState
    hours_since_surgery: float
    # The flap's escalation that is not yet closed, if any.
    escalation: Escalation | None = None
    pause: MonitoringPause | None = None
    # The latest check not done, when no bedside check came after it.
    not_done: CheckNotDone | None = None
    # The flap's own schedules in force now or still to come, soonest first.
    overrides: tuple[ScheduleOverride, ...] = ()

    @property
    def patient(self) -> Patient:
        return self.reconstruction.patient

    @property
    def awaiting_acknowledgement(self) -> bool:
        return self.escalation is not None and self.escalation.acknowledged_at is None

    def board_order(self) -> tuple[int, int, datetime, str]:
        escalated = (
            _ESCALATION_URGENCY[self.escalation.severity]
            if self.escalation is not None and self.awaiting_acknowledgement
            else _NOT_ESCALATED
        )
        due = self.next_due_at or _NEVER
        return (escalated, _URGENCY[self.due_state], due, self.patient.bed or "")

    def pause_overrunning(self, now: datetime) -> bool:
        return self.pause is not None and self.pause.longer_than_expected(now)

    def override_at(self, now: datetime) -> ScheduleOverride | None:
        """The flap's own schedule in force now, if any."""
        return next((o for o in self.overrides if o.holds(now)), None)

    def override_coming(self, now: datetime) -> ScheduleOverride | None:
        """The next of the flap's own schedules still to begin, if any."""
        return next((o for o in self.overrides if o.starts_at > now), None)


@dataclass(frozen=True)
class WardBoard:
    unit: Unit
    schedule: Schedule
    flaps: list[FlapStatus]
    now: datetime

    def count(self, state: DueState) -> int:
        return sum(1 for flap in self.flaps if flap.due_state == state)

    @property
    def awaiting_acknowledgement(self) -> int:
        return sum(1 for flap in self.flaps if flap.awaiting_acknowledgement)


def visible_units(session: Session, actor: Actor) -> list[Unit]:
    query = select(Unit).order_by(Unit.code)
    if not actor.all_units:
        query = query.where(Unit.code.in_(sorted(actor.unit_codes)))
    return list(session.scalars(query))


def get_unit_by_code(session: Session, actor: Actor, code: str) -> Unit:
    unit = session.scalars(select(Unit).where(Unit.code == code.upper())).first()
    if unit is None or not actor.works_in(unit.code):
        raise NotFound(f"No unit {code}.")
    return unit


def flap_status(
    schedule: Schedule,
    reconstruction: Reconstruction,
    last_check: Check | None,
    now: datetime,
    escalation: Escalation | None,
    clocks: Clocks,
) -> FlapStatus:
    """Where the flap stands, by its clock in `clocks` (pauses, checks not done, rechecks)."""
    flap_id = reconstruction.id
    due = next_due(schedule, clocks.clocks[flap_id])
    not_done = clocks.not_done.get(flap_id)
    if not_done is not None and last_check is not None and last_check.taken_at >= not_done.taken_at:
        not_done = None  # answered by the check since
    return FlapStatus(
        reconstruction=reconstruction,
        last_check=last_check,
        next_due_at=due,
        due_state=DueState.PAUSED if due is None else due_state(schedule, due, now),
        hours_since_surgery=hours_since(reconstruction.surgery_end_at, now),
        escalation=escalation,
        pause=clocks.pauses.get(flap_id),
        not_done=not_done,
        overrides=clocks.overrides_to_come(flap_id, now),
    )


def ward_board(session: Session, actor: Actor, unit_code: str, now: datetime) -> WardBoard:
    """Every flap under monitoring in the unit, most urgent first.

    Unacknowledged escalations lead (red, then amber), then overdue, due, and by due time.
    """
    unit = get_unit_by_code(session, actor, unit_code)
    schedule = current_schedule_policy(session, unit.id).as_value()
    reconstructions = list(
        session.scalars(
            select(Reconstruction)
            .join(Reconstruction.patient)
            .options(contains_eager(Reconstruction.patient))
            .where(
                Patient.unit_id == unit.id,
                Reconstruction.status == ReconstructionStatus.MONITORING,
            )
        )
    )
    ids = [r.id for r in reconstructions]
    latest = latest_checks(session, ids)
    escalations = open_escalation_by_flap(session, ids)
    clocks = clocks_of(
        session, reconstructions, {i: c.taken_at if (c := latest.get(i)) else None for i in ids}
    )
    flaps = [
        flap_status(schedule, r, latest.get(r.id), now, escalations.get(r.id), clocks)
        for r in reconstructions
    ]
    flaps.sort(key=FlapStatus.board_order)
    return WardBoard(unit=unit, schedule=schedule, flaps=flaps, now=now)


def latest_checks(session: Session, reconstruction_ids: list[int]) -> dict[int, Check]:
    """Each reconstruction's most recent bedside check by clinical time (the one the schedule
    runs from; a device's readings are on the chart), in one query.

    A subquery per flap walks the (reconstruction_id, taken_at) index from its newest end, so
    the cost follows the number of flaps, not how many checks each has.
    """
    if not reconstruction_ids:
        return {}
    newest = (
        select(Check.id)
        .where(Check.reconstruction_id == Reconstruction.id, Check.on_schedule())
        .order_by(Check.taken_at.desc(), Check.id.desc())
        .limit(1)
        .correlate(Reconstruction)
        .scalar_subquery()
    )
    per_flap = select(newest).where(Reconstruction.id.in_(reconstruction_ids))
    checks = session.scalars(select(Check).where(Check.id.in_(per_flap)))
    return {check.reconstruction_id: check for check in checks}


def open_escalation_by_flap(
    session: Session, reconstruction_ids: list[int]
) -> dict[int, Escalation]:
    """Each reconstruction's escalation not yet closed (at most one), in one query."""
    if not reconstruction_ids:
        return {}
    escalations = session.scalars(
        select(Escalation)
        .where(Escalation.reconstruction_id.in_(reconstruction_ids), Escalation.closed_at.is_(None))
        # Who is coming, named on the card: one query for the board, not one per card.
        .options(selectinload(Escalation.attending_by))
    )
    return {escalation.reconstruction_id: escalation for escalation in escalations}


@dataclass(frozen=True)
class FlapRecord:
    status: FlapStatus
    unit: Unit
    schedule: Schedule
    checks: list[Check]
    pauses: list[MonitoringPause] = field(default_factory=list)  # newest first
    not_done: list[CheckNotDone] = field(default_factory=list)  # newest first
    overrides: list[ScheduleOverride] = field(default_factory=list)  # every version, newest first
    theatre_returns: list[TheatreReturn] = field(default_factory=list)  # first first
    stays: list[PatientStay] = field(default_factory=list)  # the patient's wards, first first
    photos: list[Photo] = field(default_factory=list)  # not hidden, oldest first

    @property
    def baseline_photo(self) -> Photo | None:
        """The first photo after surgery: what later ones are compared with."""
        return self.photos[0] if self.photos else None

    @property
    def newest_photo(self) -> Photo | None:
        return self.photos[-1] if len(self.photos) > 1 else None

    @property
    def transfers(self) -> list[tuple[PatientStay, PatientStay]]:
        """(from, to) of each move between wards, in order."""
        return list(zip(self.stays, self.stays[1:], strict=False))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.unit.timezone)


def flap_record(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    now: datetime,
    *,
    all_checks: bool = True,
) -> FlapRecord:
    """A flap with its checks, newest first, each with who recorded it; with `all_checks`
    False only its latest check (what the check form shows beside each field), however long
    the flap has been monitored."""
    reconstruction = get_reconstruction(session, actor, reconstruction_id)
    unit = reconstruction.patient.unit
    newest_first = (Check.taken_at.desc(), Check.id.desc())
    if all_checks:
        checks = list(
            session.scalars(
                select(Check)
                .where(Check.reconstruction_id == reconstruction.id, Check.current())
                .options(selectinload(Check.recorded_by), selectinload(Check.taken_by))
                .order_by(*newest_first)
            )
        )
    else:
        checks = list(
            session.scalars(
                select(Check)
                .where(Check.reconstruction_id == reconstruction.id, Check.on_schedule())
                .order_by(*newest_first)
                .limit(1)
            )
        )
    schedule = current_schedule_policy(session, unit.id).as_value()
    latest = next(
        (c for c in checks if not c.entered_in_error and c.source == CheckSource.BEDSIDE), None
    )
    clocks = clocks_of(
        session, [reconstruction], {reconstruction.id: latest.taken_at if latest else None}
    )
    status = flap_status(schedule, reconstruction, latest, now, None, clocks)
    returns = theatre_returns_of(session, [reconstruction.id]).get(reconstruction.id, [])
    if not all_checks:
        return FlapRecord(
            status=status, unit=unit, schedule=schedule, checks=checks, theatre_returns=returns
        )
    return FlapRecord(
        status=status,
        unit=unit,
        schedule=schedule,
        checks=checks,
        theatre_returns=returns,
        stays=stays_of(session, [reconstruction.patient_id]).get(reconstruction.patient_id, []),
        pauses=pauses_of(session, reconstruction.id)[::-1],
        not_done=not_done_of(session, reconstruction.id),
        overrides=overrides_of(session, reconstruction.id)[::-1],
        photos=photos_of(session, [reconstruction.id])[reconstruction.id],
    )


def flagged_check(session: Session, actor: Actor, check_id: int) -> Check:
    """A check with its flags, if it is in one of the actor's units."""
    check = session.get(Check, check_id, options=[selectinload(Check.flags)])
    if check is None:
        raise NotFound(f"No check {check_id}.")
    get_reconstruction(session, actor, check.reconstruction_id)  # unit access
    return check
