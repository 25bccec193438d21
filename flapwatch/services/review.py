"""What the surgeon reviews: a flap's trend (for its chart and report) and the unit's flaps
ordered by concern. Read-only, a fixed number of queries each.

A chart is cached under its *data version*: a digest of everything the chart draws from (the
flap and its patient, its checks, its escalations' timelines, the unit's rule set and schedule
in force). Checks and timeline events are only ever added, never changed, so their count and
highest id stand for their content; one query finds the version and checks the actor's unit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.rules import RuleSet
from flapwatch.domain.schedule import SchedulePolicy as Schedule
from flapwatch.domain.vocabulary import (
    FlapKind,
    ReconstructionStatus,
    Severity,
    Side,
)
from flapwatch.models import (
    Check,
    CheckNotDone,
    Escalation,
    EscalationEvent,
    MonitoringPause,
    Patient,
    PatientStay,
    Photo,
    Reconstruction,
    RuleSetVersion,
    ScheduleOverride,
    SchedulePolicy,
    TheatreReturn,
    Unit,
    User,
)
from flapwatch.services import Actor, NotFound
from flapwatch.services.audit import record_event
from flapwatch.services.escalations import rule_set_of
from flapwatch.services.outcomes import theatre_returns_of
from flapwatch.services.patients import status_history, transfers_of_flap
from flapwatch.services.photos import PhotoStore, photos_of
from flapwatch.services.ward import FlapStatus, WardBoard, ward_board

# The chart of a flap still monitored runs to "now" (an overdue stretch grows with the clock),
# so its version also turns over every few minutes; a finished flap's chart never expires.
CLOCK_STEP = timedelta(minutes=5)


@dataclass(frozen=True)
class ChartSubject:
    """The flap a chart is of, as one row: what the chart's heading needs, and its version."""

    reconstruction_id: int
    procedure: str
    flap_kind: FlapKind
    site: str
    side: Side
    surgeon: str
    surgery_end_at: datetime
    buried: bool
    status: ReconstructionStatus
    status_changed_at: datetime | None
    time_zero_at: datetime | None  # the schedule restarted after theatre, if it did
    patient_name: str
    mrn: str
    date_of_birth: date
    bed: str | None
    unit_id: int
    unit_code: str
    unit_name: str
    timezone: str
    check_count: int
    last_check_id: int | None
    last_event_id: int | None
    rule_set_version_id: int | None
    schedule_policy_id: int | None
    # Pauses begun and ended, and the latest check not done: they shade and move the chart.
    pauses: int
    pauses_ended: int
    last_not_done_id: int | None
    # The flap's own schedules set and withdrawn: they move its due times.
    overrides: int
    overrides_withdrawn: int
    # The patient's stays on each ward: a transfer is marked on the chart.
    stays: int
    # The flap's photos not hidden (how many, the newest id): each is marked on the chart.
    photo_count: int
    last_photo_id: int | None
    # Whether the chart has its StO₂ panel (and so its height), for the page's <img>.
    has_sto2: bool
    # The chart's right-hand edge for a monitored flap: now, to the step below. None for a
    # flap no longer monitored, whose chart ends with its data.
    as_of: datetime | None

    @property
    def monitoring(self) -> bool:
        return self.status == ReconstructionStatus.MONITORING

    def version(self, style: str) -> str:
        """The data version, with the drawing's own version `style` in it."""
        parts = [style, *(str(getattr(self, name)) for name in self.__dataclass_fields__)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


def _clock(now: datetime) -> datetime:
    step = int(CLOCK_STEP.total_seconds())
    seconds = int(now.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def _subjects(session: Session, where: ColumnElement[bool], now: datetime) -> list[ChartSubject]:
    r = Reconstruction
    check_count = (
        select(func.count(Check.id)).where(Check.reconstruction_id == r.id).scalar_subquery()
    )
    last_check = select(func.max(Check.id)).where(Check.reconstruction_id == r.id)
    last_event = (
        select(func.max(EscalationEvent.id))
        .join(Escalation, Escalation.id == EscalationEvent.escalation_id)
        .where(Escalation.reconstruction_id == r.id)
    )
    rule_set = select(func.max(RuleSetVersion.id)).where(RuleSetVersion.unit_id == Unit.id)
    schedule = select(func.max(SchedulePolicy.id)).where(SchedulePolicy.unit_id == Unit.id)
    pauses = select(func.count(MonitoringPause.id)).where(MonitoringPause.reconstruction_id == r.id)
    pauses_ended = select(func.count(MonitoringPause.ended_at)).where(
        MonitoringPause.reconstruction_id == r.id
    )
    not_done = select(func.max(CheckNotDone.id)).where(CheckNotDone.reconstruction_id == r.id)
    overrides = select(func.count(ScheduleOverride.id)).where(
        ScheduleOverride.reconstruction_id == r.id
    )
    overrides_withdrawn = select(func.count(ScheduleOverride.withdrawn_at)).where(
        ScheduleOverride.reconstruction_id == r.id
    )
    stays = select(func.count(PatientStay.id)).where(PatientStay.patient_id == r.patient_id)
    shown = (Photo.reconstruction_id == r.id) & Photo.hidden_at.is_(None)
    photo_count = select(func.count(Photo.id)).where(shown)
    last_photo = select(func.max(Photo.id)).where(shown)
    sto2 = select(Check.id).where(
        Check.reconstruction_id == r.id, Check.in_force(), Check.sto2_percent.is_not(None)
    )
    rows = session.execute(
        select(
            r.id,
            r.procedure,
            r.flap_kind,
            r.site,
            r.side,
            r.surgeon,
            r.surgery_end_at,
            r.buried,
            r.status,
            r.status_changed_at,
            r.time_zero_at,
            Patient.name,
            Patient.mrn,
            Patient.date_of_birth,
            Patient.bed,
            Unit.id,
            Unit.code,
            Unit.name,
            Unit.timezone,
            check_count,
            last_check.scalar_subquery(),
            last_event.scalar_subquery(),
            rule_set.scalar_subquery(),
            schedule.scalar_subquery(),
            pauses.scalar_subquery(),
            pauses_ended.scalar_subquery(),
            not_done.scalar_subquery(),
            overrides.scalar_subquery(),
            overrides_withdrawn.scalar_subquery(),
            stays.scalar_subquery(),
            photo_count.scalar_subquery(),
            last_photo.scalar_subquery(),
            sto2.exists(),
        )
        .join(Patient, Patient.id == r.patient_id)
        .join(Unit, Unit.id == Patient.unit_id)
        .where(where)
    ).all()
    clock = _clock(now)
    return [
        ChartSubject(*row, as_of=clock if row[8] == ReconstructionStatus.MONITORING else None)
        for row in rows
    ]


def chart_subject(
    session: Session, actor: Actor, reconstruction_id: int, now: datetime
) -> ChartSubject:
    """The flap and its data version in one query; NotFound outside the actor's units."""
    found = _subjects(session, Reconstruction.id == reconstruction_id, now)
    if not found or not actor.works_in(found[0].unit_code):
        raise NotFound(f"No reconstruction {reconstruction_id}.")
    return found[0]


def chart_subjects(
    session: Session, actor: Actor, reconstruction_ids: list[int], now: datetime
) -> dict[int, ChartSubject]:
    """Several flaps' data versions in one query (the review page's small multiples)."""
    if not reconstruction_ids:
        return {}
    found = _subjects(session, Reconstruction.id.in_(reconstruction_ids), now)
    return {s.reconstruction_id: s for s in found if actor.works_in(s.unit_code)}


@dataclass(frozen=True)
class Trend:
    """Everything a flap's chart and report draw, oldest first."""

    subject: ChartSubject
    checks: list[Check]
    escalations: list[Escalation]
    pauses: list[MonitoringPause]
    not_done: list[CheckNotDone]  # oldest first
    overrides: list[ScheduleOverride]  # the flap's own schedules ever in force, oldest first
    # Its patient's moves between wards: (time, from ward's code, to ward's code), oldest first.
    transfers: list[tuple[datetime, str, str]]
    # Its status changes: (time, monitored after?), oldest first.
    status_changes: list[tuple[datetime, bool]]
    rule_set: RuleSet
    rule_set_version: int
    schedule: Schedule
    people: dict[int, str]
    # For the report: each return to theatre, first first, and the final outcome if recorded.
    theatre_returns: list[TheatreReturn] = field(default_factory=list)
    final_outcome: Reconstruction | None = None
    # Each photo not hidden, oldest first (marked on the chart); for the report, given where
    # photos are kept, each one's thumbnail JPEG by its id.
    photos: list[Photo] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)

    def person(self, user_id: int | None) -> str:
        if user_id is None:
            return "flapwatch"
        return self.people.get(user_id, "a former user")


def flap_trend(
    session: Session,
    subject: ChartSubject,
    *,
    for_report: bool = False,
    photo_store: PhotoStore | None = None,
) -> Trend:
    """The flap's checks, escalations with their timelines, and the unit's rules in force;
    for the report also each check's flags, the names of the people in the record, and (given
    where photos are kept) each photo's thumbnail."""
    query = (
        select(Check)
        .where(Check.reconstruction_id == subject.reconstruction_id, Check.current())
        .order_by(Check.taken_at, Check.id)
    )
    if for_report:
        query = query.options(selectinload(Check.flags))
    checks = list(session.scalars(query))
    escalations = list(
        session.scalars(
            select(Escalation)
            .where(Escalation.reconstruction_id == subject.reconstruction_id)
            .options(selectinload(Escalation.events))
            .order_by(Escalation.opened_at, Escalation.id)
            # An escalation this session loaded before it was acknowledged is read afresh.
            .execution_options(populate_existing=True)
        )
    )
    pauses = list(
        session.scalars(
            select(MonitoringPause)
            .where(MonitoringPause.reconstruction_id == subject.reconstruction_id)
            .order_by(MonitoringPause.started_at, MonitoringPause.id)
        )
    )
    not_done = list(
        session.scalars(
            select(CheckNotDone)
            .where(CheckNotDone.reconstruction_id == subject.reconstruction_id)
            .order_by(CheckNotDone.taken_at, CheckNotDone.id)
        )
    )
    overrides = [
        override
        for override in session.scalars(
            select(ScheduleOverride)
            .where(ScheduleOverride.reconstruction_id == subject.reconstruction_id)
            .order_by(ScheduleOverride.starts_at, ScheduleOverride.id)
        )
        if override.ever_in_force
    ]
    status_changes = [
        (at, status == ReconstructionStatus.MONITORING)
        for at, status in status_history(session, [subject.reconstruction_id]).get(
            subject.reconstruction_id, []
        )
    ]
    transfers = transfers_of_flap(session, subject.reconstruction_id)
    rule_set_row = session.get(RuleSetVersion, subject.rule_set_version_id)
    schedule_row = session.get(SchedulePolicy, subject.schedule_policy_id)
    if rule_set_row is None or schedule_row is None:  # every unit has both from its creation
        raise NotFound(f"Unit {subject.unit_code} has no rule set or schedule.")
    people: dict[int, str] = {}
    theatre_returns: list[TheatreReturn] = []
    final_outcome = None
    photos = photos_of(session, [subject.reconstruction_id])[subject.reconstruction_id]
    thumbnails: dict[int, bytes] = {}
    if for_report and photo_store is not None:
        thumbnails = {
            photo.id: b"".join(photo_store.chunks(session, photo, "thumbnail")) for photo in photos
        }
    if for_report:
        theatre_returns = theatre_returns_of(session, [subject.reconstruction_id]).get(
            subject.reconstruction_id, []
        )
        flap = session.get(Reconstruction, subject.reconstruction_id)
        final_outcome = flap if flap is not None and flap.final_outcome is not None else None
        people_ids = {check.recorded_by_id for check in checks}
        people_ids |= {t.decided_by_id for t in theatre_returns}
        people_ids |= {final_outcome.final_outcome_by_id} if final_outcome else set()
        people_ids |= {check.taken_by_id for check in checks}
        people_ids |= {row.recorded_by_id for row in not_done}
        people_ids |= {p.started_by_id for p in pauses} | {p.ended_by_id for p in pauses}
        people_ids |= {o.set_by_id for o in overrides}
        for escalation in escalations:
            people_ids |= {event.actor_id for event in escalation.events}
            people_ids |= {escalation.acknowledged_by_id, escalation.closed_by_id}
        people_ids.discard(None)
        people = dict(
            session.execute(select(User.id, User.display_name).where(User.id.in_(people_ids))).all()
        )
    return Trend(
        subject=subject,
        checks=checks,
        escalations=escalations,
        pauses=pauses,
        not_done=not_done,
        overrides=overrides,
        transfers=transfers,
        status_changes=status_changes,
        rule_set=rule_set_of(rule_set_row),
        rule_set_version=rule_set_row.version,
        schedule=schedule_row.as_value(),
        people=people,
        theatre_returns=theatre_returns,
        final_outcome=final_outcome,
        photos=photos,
        thumbnails=thumbnails,
    )


# --- the unit's flaps by concern -------------------------------------------------------------

_SEVERITY_RANK = {Severity.RED: 0, Severity.AMBER: 1}
_NONE = len(_SEVERITY_RANK)
_DUE_RANK = {"overdue": 0, "due": 1, "not_due": 2}


def concern(flap: FlapStatus) -> tuple[int, int, int, int, float]:
    """Most worrying first: an escalation no surgeon has acknowledged (red, amber), one
    acknowledged but open, the latest check's flag, overdue, due; then the freshest flaps,
    since most compromise shows in the first 24–48 h (Winterton 2010)."""
    escalation = flap.escalation
    unacknowledged = (
        _SEVERITY_RANK[escalation.severity]
        if escalation is not None and escalation.acknowledged_at is None
        else _NONE
    )
    acknowledged = (
        _SEVERITY_RANK[escalation.severity]
        if escalation is not None and escalation.acknowledged_at is not None
        else _NONE
    )
    latest = flap.last_check.severity if flap.last_check is not None else None
    return (
        unacknowledged,
        acknowledged,
        _SEVERITY_RANK[latest] if latest is not None else _NONE,
        _DUE_RANK[flap.due_state.value],
        flap.hours_since_surgery,
    )


def review_board(session: Session, actor: Actor, unit_code: str, now: datetime) -> WardBoard:
    """Every flap the unit is monitoring, most worrying first (see `concern`)."""
    board = ward_board(session, actor, unit_code, now)
    return WardBoard(
        unit=board.unit,
        schedule=board.schedule,
        flaps=sorted(board.flaps, key=concern),
        now=board.now,
    )


def record_report_export(session: Session, actor: Actor, subject: ChartSubject) -> None:
    """A printed record of a patient leaves the system: the audit trail says who took it."""
    with write_transaction(session):
        record_event(
            session,
            actor,
            "reconstruction.report",
            "reconstruction",
            subject.reconstruction_id,
            after={"format": "pdf", "checks": subject.check_count},
        )
