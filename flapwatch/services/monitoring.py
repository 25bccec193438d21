"""The ward's real day around the schedule: pausing a flap's monitoring (theatre, imaging, off
the ward) and resuming it, recording a check that could not be done, a surgeon's schedule for
one flap over a window, and each flap's clock (what its next due time runs from), read for
one flap or a whole board in a fixed number of queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.checks import BEFORE_SURGERY_TOLERANCE, FUTURE_TOLERANCE, NOTES_MAX_LENGTH
from flapwatch.domain.schedule import (
    MAX_INTERVAL_MINUTES,
    MAX_OMIT_MINUTES,
    MAX_OVERRIDE_MINUTES,
    MIN_INTERVAL_MINUTES,
    FlapClock,
    interval_words,
)
from flapwatch.domain.vocabulary import NotDoneReason, OverrideKind, PauseReason
from flapwatch.models import (
    Check,
    CheckNotDone,
    Escalation,
    MonitoringPause,
    Reconstruction,
    ScheduleOverride,
    utcnow,
)
from flapwatch.services import CLINICAL_ROLES, Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import record_event
from flapwatch.services.live import publish
from flapwatch.services.patients import get_reconstruction

# How long a pause may be expected to last, in minutes (a return to theatre can take a day).
EXPECTED_MINUTES_MAX = 24 * 60
EXPECTED_MINUTES_CHOICES = (30, 60, 120, 240)


def _note_problem(note: str, required: bool, label: str) -> str | None:
    if len(note) > NOTES_MAX_LENGTH:
        return f"{label} can be at most {NOTES_MAX_LENGTH} characters."
    if required and not note:
        return f"{label}: say what 'other' is."
    return None


def _tell_the_ward(session: Session, reconstruction: Reconstruction) -> None:
    unit_id = reconstruction.patient.unit_id
    publish(session, unit_id, "flap.updated", reconstruction_id=reconstruction.id)


# --- pauses ----------------------------------------------------------------------------------


def open_pause(session: Session, reconstruction_id: int) -> MonitoringPause | None:
    return session.scalars(
        select(MonitoringPause).where(
            MonitoringPause.reconstruction_id == reconstruction_id,
            MonitoringPause.ended_at.is_(None),
        )
    ).first()


def start_pause(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    reason: str,
    note: str = "",
    expected_minutes: int | None = None,
    despite_open_escalation: bool = False,
    now: datetime | None = None,
) -> MonitoringPause:
    """Pause a flap's monitoring: nothing falls due and the sweep records no missed check
    until it is resumed. A flap with an escalation not yet closed is paused only when asked
    again (`despite_open_escalation`): the escalation goes on climbing either way."""
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    note = (note or "").strip()
    problems: dict[str, str] = {}
    if reason not in PauseReason.values():
        problems["reason"] = f"Reason must be one of: {', '.join(PauseReason.values())}."
    problem = _note_problem(note, reason == PauseReason.OTHER, "Note")
    if problem:
        problems["note"] = problem
    if expected_minutes is not None and not 1 <= expected_minutes <= EXPECTED_MINUTES_MAX:
        problems["expected_minutes"] = (
            f"Expected back in: between 1 and {EXPECTED_MINUTES_MAX} minutes."
        )
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if not reconstruction.monitoring:
            problems[""] = (
                f"Monitoring of this flap has ended ({reconstruction.status.label}): there is "
                "nothing to pause."
            )
        paused = open_pause(session, reconstruction.id)
        if paused is not None:
            problems[""] = f"Monitoring is already paused ({paused.reason.label})."
        escalation = session.scalars(
            select(Escalation).where(
                Escalation.reconstruction_id == reconstruction.id, Escalation.closed_at.is_(None)
            )
        ).first()
        if escalation is not None and not despite_open_escalation and not problems:
            waiting = "unanswered" if escalation.acknowledged_at is None else "not yet closed"
            problems["despite_open_escalation"] = (
                f"This flap has an open {escalation.severity.value} escalation ({waiting}). "
                "Pausing does not stop it: confirm to pause anyway."
            )
        if problems:
            raise InvalidInput("Monitoring was not paused.", problems)
        pause = MonitoringPause(
            reconstruction_id=reconstruction.id,
            reason=PauseReason(reason),
            note=note,
            started_at=now,
            started_by_id=actor.user_id,
            expected_until=(
                now + timedelta(minutes=expected_minutes) if expected_minutes else None
            ),
            end_note="",
        )
        session.add(pause)
        session.flush()
        record_event(session, actor, "monitoring.pause", "reconstruction", reconstruction.id,
                     after=_pause_record(pause))  # fmt: skip
        _tell_the_ward(session, reconstruction)
    return pause


def resume(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    note: str = "",
    now: datetime | None = None,
) -> MonitoringPause:
    """End the flap's pause: its next check is due at once, overdue after the grace period."""
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    note = (note or "").strip()
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        pause = open_pause(session, reconstruction.id)
        problems: dict[str, str] = {}
        if pause is None:
            problems[""] = "Monitoring of this flap is not paused."
        problem = _note_problem(note, False, "Note")
        if problem:
            problems["note"] = problem
        if problems:
            raise InvalidInput("Monitoring was not resumed.", problems)
        assert pause is not None
        end_pause(session, actor, reconstruction, pause, now, note)
    return pause


def end_pause(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    pause: MonitoringPause,
    at: datetime,
    note: str,
) -> None:
    """Inside the caller's transaction, with the flap locked."""
    before = _pause_record(pause)
    pause.ended_at = max(at, pause.started_at)
    pause.ended_by_id = actor.user_id
    pause.end_note = note
    session.flush()
    record_event(session, actor, "monitoring.resume", "reconstruction", reconstruction.id,
                 before=before, after=_pause_record(pause))  # fmt: skip
    _tell_the_ward(session, reconstruction)


def _pause_record(pause: MonitoringPause) -> dict[str, object]:
    return {
        "pause_id": pause.id,
        "reason": pause.reason,
        "note": pause.note,
        "started_at": pause.started_at,
        "expected_until": pause.expected_until,
        "ended_at": pause.ended_at,
        "end_note": pause.end_note,
    }


def pauses_of(session: Session, reconstruction_id: int) -> list[MonitoringPause]:
    """Every pause of a flap, oldest first."""
    return list(
        session.scalars(
            select(MonitoringPause)
            .where(MonitoringPause.reconstruction_id == reconstruction_id)
            .order_by(MonitoringPause.started_at)
        )
    )


# --- checks not done -------------------------------------------------------------------------


def record_not_done(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    taken_at: datetime,
    reason: str,
    note: str = "",
    now: datetime | None = None,
) -> CheckNotDone:
    """A check that could not be done, with why: no assessment (it satisfies no rule and
    does not reset the band), and the next check falls due the unit's `not_done_minutes`
    after it."""
    require_role(actor, *CLINICAL_ROLES)
    now = now or utcnow()
    note = (note or "").strip()
    problems: dict[str, str] = {}
    if taken_at.tzinfo is None:
        raise ValueError("taken_at must carry a time zone")
    if reason not in NotDoneReason.values():
        problems["reason"] = f"Reason must be one of: {', '.join(NotDoneReason.values())}."
    problem = _note_problem(note, reason == NotDoneReason.OTHER, "Note")
    if problem:
        problems["note"] = problem
    if taken_at > now + FUTURE_TOLERANCE:
        problems["taken_at"] = "Time is in the future: it can be at most 5 minutes after now."
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if taken_at < reconstruction.surgery_end_at - BEFORE_SURGERY_TOLERANCE:
            problems["taken_at"] = "Time is before this flap's surgery."
        if not reconstruction.monitoring:
            problems[""] = (
                f"Monitoring of this flap has ended ({reconstruction.status.label}): no check "
                "is due."
            )
        elif open_pause(session, reconstruction.id) is not None:
            problems[""] = "Monitoring of this flap is paused: no check is due until it resumes."
        if problems:
            raise InvalidInput("The check not done was not saved.", problems)
        not_done = CheckNotDone(
            reconstruction_id=reconstruction.id,
            taken_at=taken_at,
            reason=NotDoneReason(reason),
            note=note,
            recorded_at=now,
            recorded_by_id=actor.user_id,
        )
        session.add(not_done)
        session.flush()
        record_event(
            session,
            actor,
            "check.not_done",
            "reconstruction",
            reconstruction.id,
            after={
                "not_done_id": not_done.id,
                "taken_at": taken_at,
                "reason": not_done.reason,
                "note": note,
            },
        )
        _tell_the_ward(session, reconstruction)
    return not_done


def not_done_of(session: Session, reconstruction_id: int) -> list[CheckNotDone]:
    """Every check not done of a flap, newest first."""
    return list(
        session.scalars(
            select(CheckNotDone)
            .where(CheckNotDone.reconstruction_id == reconstruction_id)
            .order_by(CheckNotDone.taken_at.desc(), CheckNotDone.id.desc())
        )
    )


# --- per-flap schedules ----------------------------------------------------------------------

# A flap's own schedule is a clinical order: the surgeon's, as a change of the unit's is the
# coordinator's.
OVERRIDE_ROLES = ("surgeon",)
OVERRIDE_INTERVAL_CHOICES = (10, 15, 20, 30, 60, 120, 240)
REASON_MAX_LENGTH = 500


def set_override(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    *,
    kind: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    reason: str,
    interval_minutes: int | None = None,
    replaces: int | None = None,
    now: datetime | None = None,
) -> ScheduleOverride:
    """Set the flap's own schedule for [starts_at, ends_at) (from now without a start): checks
    every `interval_minutes`, or none (`omit`). It overlaps no other per-flap schedule still to
    run, except the one it `replaces`, which is withdrawn from now in the same transaction.
    A window cannot start in the past: what was due before it was set stays due."""
    require_role(actor, *OVERRIDE_ROLES)
    now = now or utcnow()
    starts_at = starts_at or now
    reason = (reason or "").strip()
    problems: dict[str, str] = {}
    if kind not in OverrideKind.values():
        problems["kind"] = f"Kind must be one of: {', '.join(OverrideKind.values())}."
    elif kind == OverrideKind.INTERVAL:
        if interval_minutes is None:
            problems["interval_minutes"] = "Checks every: say how many minutes."
        elif not MIN_INTERVAL_MINUTES <= interval_minutes <= MAX_INTERVAL_MINUTES:
            problems["interval_minutes"] = (
                f"Checks every: between {MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES} minutes."
            )
    else:
        interval_minutes = None  # omitted checks have no interval
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment is not None and moment.tzinfo is None:
            raise ValueError(f"{name} must carry a time zone")
    if starts_at < now - FUTURE_TOLERANCE:
        problems["starts_at"] = (
            "Start is in the past: a per-flap schedule starts now or later, so what was due "
            "before it was set stays due."
        )
    if ends_at is None:
        problems["ends_at"] = "End: say when this schedule ends."
    elif ends_at <= starts_at:
        problems["ends_at"] = "End must be after the start."
    else:
        omits = kind == OverrideKind.OMIT
        longest = MAX_OMIT_MINUTES if omits else MAX_OVERRIDE_MINUTES
        if ends_at - starts_at > timedelta(minutes=longest):
            problems["ends_at"] = (
                "Checks can be left out for at most 12 hours."
                if omits
                else "A per-flap schedule lasts at most 7 days."
            )
    if not reason:
        problems["reason"] = "Reason: say why this flap's schedule differs from the unit's."
    elif len(reason) > REASON_MAX_LENGTH:
        problems["reason"] = f"Reason can be at most {REASON_MAX_LENGTH} characters."
    with write_transaction(session):
        reconstruction = get_reconstruction(session, actor, reconstruction_id, for_update=True)
        if not reconstruction.monitoring:
            problems[""] = (
                f"Monitoring of this flap has ended ({reconstruction.status.label}): it has no "
                "schedule to change."
            )
        existing = overrides_of(session, reconstruction.id)
        replaced = None
        if replaces is not None:
            replaced = next((o for o in existing if o.id == replaces), None)
            if replaced is None or replaced.in_force_until <= now:
                problems["replaces"] = (
                    "The version being changed has ended or was withdrawn meanwhile: set a "
                    "new schedule instead."
                )
        if ends_at is not None and not problems:
            for other in existing:
                if other is replaced or other.in_force_until <= max(now, starts_at):
                    continue
                if other.starts_at < ends_at and starts_at < other.in_force_until:
                    problems["starts_at"] = (
                        f"This window overlaps version {other.version} ({describe(other)}): "
                        "change or withdraw that one instead."
                    )
                    break
        if problems:
            raise InvalidInput("The flap's schedule was not changed.", problems)
        assert ends_at is not None
        if replaced is not None:
            _withdraw(session, actor, reconstruction, replaced, now, "Replaced by a new version.")
        override = ScheduleOverride(
            reconstruction_id=reconstruction.id,
            version=max((o.version for o in existing), default=0) + 1,
            kind=OverrideKind(kind),
            interval_minutes=interval_minutes,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            set_at=now,
            set_by_id=actor.user_id,
            replaces_id=replaced.id if replaced is not None else None,
            withdraw_note="",
        )
        session.add(override)
        session.flush()
        record_event(session, actor, "schedule.override", "reconstruction", reconstruction.id,
                     after=_override_record(override))  # fmt: skip
        _tell_the_ward(session, reconstruction)
    return override


def withdraw_override(
    session: Session,
    actor: Actor,
    override_id: int,
    *,
    note: str = "",
    reconstruction_id: int | None = None,
    now: datetime | None = None,
) -> ScheduleOverride:
    """End a per-flap schedule from now (one not yet begun is then never in force): the
    unit's schedule rules again. What it made due before now stays as it was. With
    `reconstruction_id`, only a schedule of that flap."""
    require_role(actor, *OVERRIDE_ROLES)
    now = now or utcnow()
    note = (note or "").strip()
    override = session.get(ScheduleOverride, override_id)
    if override is None or reconstruction_id not in (None, override.reconstruction_id):
        raise NotFound(f"No per-flap schedule {override_id}.")
    with write_transaction(session):
        reconstruction = get_reconstruction(
            session, actor, override.reconstruction_id, for_update=True
        )
        session.refresh(override)
        problems: dict[str, str] = {}
        if override.in_force_until <= now:
            problems[""] = "This per-flap schedule has already ended."
        problem = _note_problem(note, False, "Note")
        if problem:
            problems["note"] = problem
        if problems:
            raise InvalidInput("The per-flap schedule was not withdrawn.", problems)
        _withdraw(session, actor, reconstruction, override, now, note)
    return override


def _withdraw(
    session: Session,
    actor: Actor,
    reconstruction: Reconstruction,
    override: ScheduleOverride,
    at: datetime,
    note: str,
) -> None:
    before = _override_record(override)
    override.withdrawn_at = at
    override.withdrawn_by_id = actor.user_id
    override.withdraw_note = note
    session.flush()
    record_event(session, actor, "schedule.override_withdrawn", "reconstruction",
                 reconstruction.id, before=before, after=_override_record(override))  # fmt: skip
    _tell_the_ward(session, reconstruction)


def _override_record(override: ScheduleOverride) -> dict[str, object]:
    return {
        "override_id": override.id,
        "version": override.version,
        "kind": override.kind,
        "interval_minutes": override.interval_minutes,
        "starts_at": override.starts_at,
        "ends_at": override.ends_at,
        "reason": override.reason,
        "replaces_id": override.replaces_id,
        "withdrawn_at": override.withdrawn_at,
        "withdraw_note": override.withdraw_note,
    }


def describe(override: ScheduleOverride) -> str:
    """Its schedule in words: "checks every 15 min" or "no checks"."""
    if override.interval_minutes is None:
        return "no checks"
    return f"checks every {interval_words(override.interval_minutes)}"


def overrides_of(session: Session, reconstruction_id: int) -> list[ScheduleOverride]:
    """Every version of a flap's own schedule, oldest first."""
    return list(
        session.scalars(
            select(ScheduleOverride)
            .where(ScheduleOverride.reconstruction_id == reconstruction_id)
            .order_by(ScheduleOverride.version)
        )
    )


# --- the clock -------------------------------------------------------------------------------


class Timed(Protocol):
    """A flap as far as its clock goes (a Reconstruction, or a row of the same names): its
    id, its schedule's time zero, and when its monitoring last came back."""

    @property
    def id(self) -> int: ...

    @property
    def time_zero(self) -> datetime: ...

    @property
    def resumed_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Clocks:
    """Each flap's clock, its pause in force, its latest check not done, and its own
    schedules ever in force (oldest first)."""

    clocks: dict[int, FlapClock]
    pauses: dict[int, MonitoringPause]
    not_done: dict[int, CheckNotDone]
    overrides: dict[int, list[ScheduleOverride]]

    def overrides_to_come(
        self, reconstruction_id: int, now: datetime
    ) -> tuple[ScheduleOverride, ...]:
        """This flap's own schedules in force now or still to start, oldest first."""
        return tuple(o for o in self.overrides.get(reconstruction_id, ()) if o.in_force_until > now)


def clocks_of(
    session: Session,
    reconstructions: Iterable[Timed],
    last_bedside: Mapping[int, datetime | None] | None = None,
) -> Clocks:
    """The clocks of these flaps, in six queries however many (five with `last_bedside`,
    each flap's last bedside check time, given)."""
    flaps = {r.id: r for r in reconstructions}
    ids = list(flaps)
    if not ids:
        return Clocks({}, {}, {}, {})
    if last_bedside is None:
        last_bedside = dict(
            session.execute(
                select(Check.reconstruction_id, func.max(Check.taken_at))
                .where(Check.reconstruction_id.in_(ids), Check.on_schedule())
                .group_by(Check.reconstruction_id)
            ).all()
        )
    pauses = {
        pause.reconstruction_id: pause
        for pause in session.scalars(
            select(MonitoringPause).where(
                MonitoringPause.reconstruction_id.in_(ids), MonitoringPause.ended_at.is_(None)
            )
        )
    }
    resumed = dict(
        session.execute(
            select(MonitoringPause.reconstruction_id, func.max(MonitoringPause.ended_at))
            .where(MonitoringPause.reconstruction_id.in_(ids))
            .group_by(MonitoringPause.reconstruction_id)
        ).all()
    )
    newest = (
        select(CheckNotDone.id)
        .where(CheckNotDone.reconstruction_id == Reconstruction.id)
        .order_by(CheckNotDone.taken_at.desc(), CheckNotDone.id.desc())
        .limit(1)
        .correlate(Reconstruction)
        .scalar_subquery()
    )
    not_done = {
        row.reconstruction_id: row
        for row in session.scalars(
            select(CheckNotDone).where(
                CheckNotDone.id.in_(select(newest).where(Reconstruction.id.in_(ids)))
            )
        )
    }
    rechecks = {
        flap_id: (minutes, since)
        for flap_id, minutes, since in session.execute(
            select(
                Escalation.reconstruction_id, Escalation.recheck_minutes, Escalation.recheck_from
            ).where(
                Escalation.reconstruction_id.in_(ids),
                Escalation.closed_at.is_(None),
                Escalation.acknowledged_at.is_(None),
                Escalation.recheck_minutes.is_not(None),
            )
        )
    }
    overrides: dict[int, list[ScheduleOverride]] = {}
    for override in session.scalars(
        select(ScheduleOverride)
        .where(ScheduleOverride.reconstruction_id.in_(ids))
        .order_by(ScheduleOverride.starts_at, ScheduleOverride.id)
    ):
        if override.ever_in_force:
            overrides.setdefault(override.reconstruction_id, []).append(override)
    clocks = {
        flap_id: FlapClock(
            surgery_end_at=flap.time_zero,
            last_bedside_at=last_bedside.get(flap_id),
            not_done_at=not_done[flap_id].taken_at if flap_id in not_done else None,
            resumed_at=_latest(resumed.get(flap_id), flap.resumed_at),
            paused_since=pauses[flap_id].started_at if flap_id in pauses else None,
            recheck_minutes=rechecks[flap_id][0] if flap_id in rechecks else None,
            recheck_from=rechecks[flap_id][1] if flap_id in rechecks else None,
            windows=tuple(o.as_window() for o in overrides.get(flap_id, ())),
        )
        for flap_id, flap in flaps.items()
    }
    return Clocks(clocks, pauses, not_done, overrides)


def _latest(*moments: datetime | None) -> datetime | None:
    return max((m for m in moments if m is not None), default=None)


def clock_of(session: Session, reconstruction: Reconstruction) -> FlapClock:
    return clocks_of(session, [reconstruction]).clocks[reconstruction.id]
