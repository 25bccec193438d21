"""Compliance with the monitoring schedule and time to acknowledgement, from values.

A flap's schedule is rolling (DESIGN.md §2): the next check falls due one interval after the
last. An audit of it counts *scheduled checks*, the moments a check fell due while the flap was
monitored, and what became of each:

- **on time**: a check was taken by the due time plus the unit's grace period;
- **late**: no check by then; the first check after it is the late answer;
- **missed**: while no check came, one interval after each due time another check fell due;
  those passed with no check at all (as did a due time whose grace ran out with none ever
  taken while the flap was monitored).

A check taken more than half an interval before its due time is an *extra* check (a closer
look after a worry): it moves the schedule on, as every check does, but answers no scheduled
check, so a busy night of extra looks cannot inflate the count due.

A **check not done** (the patient refused, was off the ward) answers its scheduled check as
*not done*, with its reason, counted apart from missed; the next falls due the unit's
`not_done_minutes` after it. While monitoring is **paused** nothing falls due: a pause is
left out of the monitored stretches. Where a surgeon set the flap's own schedule for a
window, due times follow it there (a tighter interval, or none at all while checks are
omitted), and its slots are counted under that schedule, not the unit's band.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum

from flapwatch.domain.schedule import (
    SchedulePolicy,
    ScheduleWindow,
    due_from,
    hours_since,
    interval_words,
    window_at,
)

# Beyond this many scheduled checks a flap's walk stops: a flap left "monitoring" for years
# by mistake must not stall a report (5-minute checks for a year are about 105,000).
MAX_SLOTS_PER_FLAP = 200_000


class SlotState(StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    MISSED = "missed"
    NOT_DONE = "not_done"


@dataclass(frozen=True)
class Slot:
    """One scheduled check: when it fell due, under which band, and what became of it."""

    due_at: datetime
    band: str
    band_start_hours: int
    state: SlotState
    answered_at: datetime | None = None
    not_done_reason: str | None = None


@dataclass(frozen=True)
class FlapSchedule:
    """What a flap's record says of its schedule: the slots and the extra checks."""

    slots: tuple[Slot, ...]
    extra_checks: tuple[datetime, ...]


def band_of(policy: SchedulePolicy, hours: float) -> tuple[int, str]:
    """The band in force this many hours after surgery: its first hour and its words."""
    start = 0
    for until_hour, interval in policy.bands:
        if hours < until_hour:
            return start, f"{start}–{until_hour} h, every {interval_words(interval)}"
        start = until_hour
    return start, f"from {start} h, every {interval_words(policy.after_last_band_minutes)}"


def monitored_spans(
    surgery_end_at: datetime,
    status_changes: Iterable[tuple[datetime, bool]],
) -> list[tuple[datetime, datetime | None]]:
    """The stretches a flap was monitored, from its status changes (time, monitoring after?).

    Monitoring starts at the end of surgery; a change away from monitoring (returned to
    theatre, stopped, ...) ends a stretch and a change back starts another.
    """
    spans: list[tuple[datetime, datetime | None]] = []
    start: datetime | None = surgery_end_at
    for at, monitoring in sorted(status_changes, key=lambda change: change[0]):
        if monitoring and start is None:
            start = max(at, surgery_end_at)
        elif not monitoring and start is not None:
            if at > start:
                spans.append((start, at))
            start = None
    if start is not None:
        spans.append((start, None))
    return spans


def without_pauses(
    spans: Sequence[tuple[datetime, datetime | None]],
    pauses: Iterable[tuple[datetime, datetime | None]],
) -> list[tuple[datetime, datetime | None]]:
    """The monitored stretches with the pauses (start, end or None: still paused) cut out."""
    result = list(spans)
    for pause_start, pause_end in sorted(pauses, key=lambda pause: pause[0]):
        cut: list[tuple[datetime, datetime | None]] = []
        for start, end in result:
            if (end is not None and end <= pause_start) or (
                pause_end is not None and pause_end <= start
            ):
                cut.append((start, end))
                continue
            if start < pause_start:
                cut.append((start, pause_start))
            if pause_end is not None and (end is None or pause_end < end):
                cut.append((pause_end, end))
        result = cut
    return result


def within(
    spans: Sequence[tuple[datetime, datetime | None]],
    stays: Iterable[tuple[datetime | None, datetime | None]],
) -> list[tuple[datetime, datetime | None]]:
    """The monitored stretches that fell inside the stays (start or None: since ever, end or
    None: still there) of one ward: what that ward's report counts of a patient moved
    between wards."""
    result: list[tuple[datetime, datetime | None]] = []
    for stay_start, stay_end in stays:
        for start, end in spans:
            low = start if stay_start is None else max(start, stay_start)
            high = end if stay_end is None else (stay_end if end is None else min(end, stay_end))
            if high is None or low < high:
                result.append((low, high))
    return sorted(result, key=lambda span: span[0])


def _monitored(spans: Sequence[tuple[datetime, datetime | None]], at: datetime) -> bool:
    return any(start <= at and (end is None or at < end) for start, end in spans)


def schedule_slots(
    policy_at: Callable[[datetime], SchedulePolicy],
    surgery_end_at: datetime,
    taken_times: Iterable[datetime],
    spans: Sequence[tuple[datetime, datetime | None]],
    now: datetime,
    until: datetime | None = None,
    not_done: Iterable[tuple[datetime, str]] = (),
    restarted_at: datetime | None = None,
    windows: Sequence[ScheduleWindow] = (),
) -> FlapSchedule:
    """Walk a flap's checks against its schedule.

    `policy_at` gives the schedule in force at a moment (a unit may change it); the interval
    after a check is the one in force when the check was taken, in the band of its hours since
    surgery (since `restarted_at`, from then on, when the schedule restarted after theatre).
    Only due times while the flap was monitored count. A due time whose grace has not yet run
    out by `now` (or by the end of the last monitored stretch) is still open and not counted.
    Due times from `until` on are not worked out (the end of the period audited). `windows`
    are the flap's own schedules, each in force over its window (`schedule.due_from`).
    """
    # Checks (reason None) and checks not done (their reason), in time order.
    events: list[tuple[datetime, str | None]] = sorted(
        [(at, None) for at in taken_times] + [(at, reason) for at, reason in not_done],
        key=lambda event: event[0],
    )
    last_end = spans[-1][1] if spans else None
    horizon = now if last_end is None else min(now, last_end)
    slots: list[Slot] = []
    extras: list[datetime] = []

    def following(
        after: datetime, not_done_then: bool = False
    ) -> tuple[datetime, SchedulePolicy, tuple[int, str]]:
        """The due time one interval after `after`, by the band in force at `after` (after a
        check not done, the unit's `not_done_minutes`), or by the flap's own schedule."""
        policy = policy_at(after)
        # Back from theatre with the schedule restarted: its bands count from the restart.
        zero = restarted_at if restarted_at is not None and after >= restarted_at else None
        hours = hours_since(zero or surgery_end_at, after)
        if not_done_then:
            wait = timedelta(minutes=policy.not_done_minutes)
            due = due_from(after, wait, windows, lambda own: min(own, wait))
        else:
            due = due_from(after, policy.interval_at(hours), windows)
        own = window_at(windows, due)
        if own is not None and own.interval_minutes is not None:
            words = f"per-flap schedule, every {interval_words(own.interval_minutes)}"
            return due, policy, (band_of(policy, hours)[0], words)
        return due, policy, band_of(policy, hours)

    def count(
        due: datetime,
        band: tuple[int, str],
        state: SlotState,
        answer: datetime | None,
        reason: str | None = None,
    ) -> bool:
        """Count a due time if the flap was monitored then; say whether it was."""
        if not _monitored(spans, due):
            return False
        if reason is not None and state in (SlotState.ON_TIME, SlotState.LATE):
            state = SlotState.NOT_DONE  # answered, by a check that could not be done
        slots.append(Slot(due, band[1], band[0], state, answer, reason))
        return True

    start, index, after_not_done = surgery_end_at, 0, False
    while len(slots) < MAX_SLOTS_PER_FLAP:
        due, policy, band = following(start, after_not_done)
        if until is not None and due >= until:
            break
        taken, reason = events[index] if index < len(events) else (None, None)
        if taken is not None and taken < due - (due - start) / 2:
            if reason is None:
                extras.append(taken)
        elif taken is not None and taken <= due + policy.grace:
            count(due, band, SlotState.ON_TIME, taken, reason)
        else:
            # No check by the end of the grace period. While none came, one interval after
            # each passed due time another fell due. The first passed while monitored is
            # answered late by the check that came (missed if none came); the others were
            # missed. Had none passed while monitored (the flap was in theatre), the check
            # answers the due time it came in.
            end = taken if taken is not None else horizon
            if due + policy.grace > end:
                break  # still open: its grace has not run out
            passed_due: list[tuple[datetime, tuple[int, str]]] = [(due, band)]
            came_in: tuple[datetime, tuple[int, str]] | None = None
            while len(passed_due) < MAX_SLOTS_PER_FLAP:
                following_due, policy, following_band = following(passed_due[-1][0])
                if until is not None and following_due >= until:
                    break
                if following_due + policy.grace >= end:
                    came_in = (following_due, following_band)
                    break
                passed_due.append((following_due, following_band))
            answered = False
            for passed, passed_band in passed_due:
                late = taken is not None and not answered
                answered |= count(
                    passed,
                    passed_band,
                    SlotState.LATE if late else SlotState.MISSED,
                    taken if late else None,
                    reason if late else None,
                )
            if taken is None:
                break
            if not answered and came_in is not None:
                count(*came_in, SlotState.ON_TIME, taken, reason)
        start, index = max(taken, surgery_end_at), index + 1
        after_not_done = reason is not None
    return FlapSchedule(tuple(slots), tuple(extras))


@dataclass
class Tally:
    """Scheduled checks and what became of them."""

    on_time: int = 0
    late: int = 0
    missed: int = 0
    not_done: int = 0
    not_done_by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, state: SlotState, reason: str | None = None) -> None:
        setattr(self, state.value, getattr(self, state.value) + 1)
        if state == SlotState.NOT_DONE and reason is not None:
            self.not_done_by_reason[reason] = self.not_done_by_reason.get(reason, 0) + 1

    @property
    def due(self) -> int:
        return self.on_time + self.late + self.missed + self.not_done

    @property
    def on_time_percent(self) -> float | None:
        return round(100 * self.on_time / self.due, 1) if self.due else None


@dataclass(frozen=True)
class Wait:
    """Minutes from escalation to acknowledgement: how many, the median and 90th percentile."""

    count: int
    median: float | None
    p90: float | None


def waits(minutes: Sequence[float]) -> Wait:
    """Median and 90th percentile by linear interpolation between ranks (numpy's default,
    the 'inclusive' method), so a single wait is its own median and 90th percentile."""
    if not minutes:
        return Wait(0, None, None)
    ordered = sorted(minutes)
    if len(ordered) == 1:
        return Wait(1, round(ordered[0], 1), round(ordered[0], 1))
    p90 = statistics.quantiles(ordered, n=10, method="inclusive")[8]
    return Wait(len(ordered), round(statistics.median(ordered), 1), round(p90, 1))


@dataclass
class Buckets:
    """Slots tallied by day (or week, for a long period) of their due time on the unit's
    clock, every bucket of the period present even when nothing fell due in it."""

    first_day: date
    last_day: date
    weekly: bool = field(init=False)
    tallies: dict[date, Tally] = field(init=False)

    def __post_init__(self) -> None:
        self.weekly = (self.last_day - self.first_day).days > 92
        self.tallies = {}
        day = self.bucket(self.first_day)
        while day <= self.last_day:
            self.tallies[day] = Tally()
            day += timedelta(days=7 if self.weekly else 1)

    def bucket(self, day: date) -> date:
        return day - timedelta(days=day.weekday()) if self.weekly else day

    def add(self, day: date, state: SlotState, reason: str | None = None) -> None:
        self.tallies[self.bucket(day)].add(state, reason)
