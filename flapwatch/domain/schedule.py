"""The monitoring schedule: when the next check of a flap is due, and whether it is late.

All arithmetic is on absolute (UTC) instants: "hours since surgery" is elapsed time, so a
daylight-saving change on the ward clock neither shortens nor stretches an interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from flapwatch.domain.vocabulary import DueState

# DESIGN.md §2 default: hourly for the first 24 h (most compromise shows in the first 24–48 h;
# Winterton 2010), 2-hourly to 48 h, 4-hourly to day 5, then 8-hourly until monitoring stops.
DEFAULT_BANDS: tuple[tuple[int, int], ...] = ((24, 60), (48, 120), (120, 240))
DEFAULT_GRACE_MINUTES = 15
DEFAULT_AFTER_LAST_BAND_MINUTES = 480
# A check that could not be done (the patient refused, was asleep after analgesia): the next
# falls due half an hour later (DESIGN.md §2), whatever the band.
DEFAULT_NOT_DONE_MINUTES = 30
MIN_INTERVAL_MINUTES = 5
MAX_INTERVAL_MINUTES = 24 * 60
MAX_GRACE_MINUTES = 120
MAX_NOT_DONE_MINUTES = 240
# A per-flap schedule lasts at most a week; one that omits checks at most 12 hours (a night's
# sleep, never a day without a look at the flap).
MAX_OVERRIDE_MINUTES = 7 * 24 * 60
MAX_OMIT_MINUTES = 12 * 60


class SchedulePolicyError(ValueError):
    """A schedule policy that cannot be used, with a message naming what is wrong."""


@dataclass(frozen=True)
class SchedulePolicy:
    """Bands of (until_hour, interval_minutes) from the end of surgery, plus a grace period."""

    bands: tuple[tuple[int, int], ...] = DEFAULT_BANDS
    grace_minutes: int = DEFAULT_GRACE_MINUTES
    after_last_band_minutes: int = DEFAULT_AFTER_LAST_BAND_MINUTES
    not_done_minutes: int = DEFAULT_NOT_DONE_MINUTES

    def __post_init__(self) -> None:
        problems = schedule_policy_problems(
            self.bands, self.grace_minutes, self.after_last_band_minutes, self.not_done_minutes
        )
        if problems:
            raise SchedulePolicyError(" ".join(problems.values()))

    def interval_at(self, hours_since_surgery: float) -> timedelta:
        """The monitoring interval in force at this many hours after surgery."""
        for until_hour, interval in self.bands:
            if hours_since_surgery < until_hour:
                return timedelta(minutes=interval)
        return timedelta(minutes=self.after_last_band_minutes)

    @property
    def grace(self) -> timedelta:
        return timedelta(minutes=self.grace_minutes)


def schedule_policy_problems(
    bands: tuple[tuple[int, int], ...],
    grace_minutes: int,
    after_last_band_minutes: int,
    not_done_minutes: int = DEFAULT_NOT_DONE_MINUTES,
) -> dict[str, str]:
    """Why a policy cannot be used, keyed by the field at fault; empty when it can."""
    band_errors: list[str] = []
    if not bands:
        band_errors.append("The schedule needs at least one band.")
    previous_until = 0
    for index, (until_hour, interval) in enumerate(bands, start=1):
        if until_hour <= previous_until:
            band_errors.append(
                f"Band {index}: 'until hour' must be greater than {previous_until} "
                "(bands go in increasing order)."
            )
        if not MIN_INTERVAL_MINUTES <= interval <= MAX_INTERVAL_MINUTES:
            band_errors.append(
                f"Band {index}: interval must be between {MIN_INTERVAL_MINUTES} and "
                f"{MAX_INTERVAL_MINUTES} minutes."
            )
        previous_until = until_hour
    problems: dict[str, str] = {}
    if band_errors:
        problems["bands"] = " ".join(band_errors)
    if not 0 <= grace_minutes <= MAX_GRACE_MINUTES:
        problems["grace_minutes"] = (
            f"Grace period must be between 0 and {MAX_GRACE_MINUTES} minutes."
        )
    if not MIN_INTERVAL_MINUTES <= after_last_band_minutes <= MAX_INTERVAL_MINUTES:
        problems["after_last_band_minutes"] = (
            f"Interval after the last band must be between {MIN_INTERVAL_MINUTES} and "
            f"{MAX_INTERVAL_MINUTES} minutes."
        )
    if not MIN_INTERVAL_MINUTES <= not_done_minutes <= MAX_NOT_DONE_MINUTES:
        problems["not_done_minutes"] = (
            f"After a check not done, the next must fall due between {MIN_INTERVAL_MINUTES} "
            f"and {MAX_NOT_DONE_MINUTES} minutes later."
        )
    return problems


def parse_bands(text: str) -> tuple[tuple[int, int], ...]:
    """Read bands written as 'until_hour:interval_minutes' pairs, e.g. '24:60, 48:120'."""
    bands: list[tuple[int, int]] = []
    for index, part in enumerate(p.strip() for p in text.replace(";", ",").split(",")):
        if not part:
            continue
        hour, sep, minutes = part.partition(":")
        try:
            if not sep:
                raise ValueError
            bands.append((int(hour), int(minutes)))
        except ValueError:
            raise SchedulePolicyError(
                f"Band {index + 1} '{part}' must be written as until_hour:interval_minutes, "
                "e.g. 24:60."
            ) from None
    return tuple(bands)


def format_bands(bands: tuple[tuple[int, int], ...]) -> str:
    return ", ".join(f"{until}:{interval}" for until, interval in bands)


def interval_words(minutes: int) -> str:
    """An interval as "every …" finishes it: "15 min", "hour", "2 h"."""
    hours, rest = divmod(minutes, 60)
    if rest:
        return f"{minutes} min"
    return "hour" if hours == 1 else f"{hours} h"


def hours_since(surgery_end_at: datetime, at: datetime) -> float:
    # In UTC: Python subtracts two times of the same zone by their wall clocks.
    return (at.astimezone(UTC) - surgery_end_at.astimezone(UTC)).total_seconds() / 3600


def next_due_at(
    policy: SchedulePolicy, surgery_end_at: datetime, last_taken_at: datetime | None
) -> datetime:
    """Last check's time (or the end of surgery) plus the interval of the band it falls in."""
    start = surgery_end_at if last_taken_at is None else max(last_taken_at, surgery_end_at)
    # Added in UTC: adding to a zoned time would add wall-clock hours across a clock change.
    start = start.astimezone(UTC)
    return start + policy.interval_at(hours_since(surgery_end_at, start))


@dataclass(frozen=True)
class ScheduleWindow:
    """A per-flap schedule in force over [starts_at, ends_at): checks every
    `interval_minutes`, or none at all (`interval_minutes` None: checks omitted)."""

    starts_at: datetime
    ends_at: datetime
    interval_minutes: int | None

    @property
    def omits(self) -> bool:
        return self.interval_minutes is None

    def holds(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at


def window_at(windows: Sequence[ScheduleWindow], at: datetime) -> ScheduleWindow | None:
    """The per-flap schedule in force at a moment, if any."""
    return next((window for window in windows if window.holds(at)), None)


def due_from(
    start: datetime,
    interval: timedelta,
    windows: Sequence[ScheduleWindow],
    in_window: Callable[[timedelta], timedelta] = lambda own: own,
) -> datetime:
    """The first moment, from `start`, at which the time since `start` reaches the interval
    in force at that moment: `interval` (the unit's) outside the flap's windows, the window's
    own (through `in_window`) inside one, and never inside a window that omits checks.

    So a tighter window starting after `start` makes a check due as it starts, or one of its
    intervals after `start`, whichever is later; a looser one stretches the wait; a window
    that omits checks holds everything due inside it until it ends; and once a window ends
    the unit's interval from `start` rules again.
    """
    start = start.astimezone(UTC)
    cursor = start
    for window in sorted(windows, key=lambda w: w.starts_at):
        if window.ends_at <= cursor:
            continue
        if cursor < window.starts_at:
            candidate = max(cursor, start + interval)
            if candidate < window.starts_at:
                return candidate
            cursor = window.starts_at.astimezone(UTC)
        if not window.omits:
            assert window.interval_minutes is not None
            candidate = max(cursor, start + in_window(timedelta(minutes=window.interval_minutes)))
            if candidate < window.ends_at:
                return candidate
        cursor = window.ends_at.astimezone(UTC)
    return max(cursor, start + interval)


@dataclass(frozen=True)
class FlapClock:
    """What a flap's next due time runs from, besides the unit's schedule: its last bedside
    check, its latest check not done, the end of its latest pause, and the pause in force."""

    surgery_end_at: datetime
    last_bedside_at: datetime | None = None
    not_done_at: datetime | None = None
    resumed_at: datetime | None = None
    paused_since: datetime | None = None
    # An unacknowledged escalation's recheck: every `recheck_minutes` from the later of the
    # last bedside check and the flagged check (`recheck_from`).
    recheck_minutes: int | None = None
    recheck_from: datetime | None = None
    # The flap's own schedules, each in force over its window (ScheduleWindow).
    windows: tuple[ScheduleWindow, ...] = field(default=())

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def after(self, kind: str, at: datetime) -> FlapClock:
        """The clock once this happened: a bedside `check`, a check `not_done`, a `pause`
        started (or monitoring stopped: back to theatre) or a `resume`, a `restart` of the
        schedule's time zero, an escalation asking for a `recheck:<minutes>`, or its
        acknowledgement (`answered`)."""
        if kind == "check":
            return replace(self, last_bedside_at=at)
        if kind == "not_done":
            return replace(self, not_done_at=at)
        if kind == "pause":
            return replace(self, paused_since=at)
        if kind == "resume":
            return replace(self, paused_since=None, resumed_at=at)
        if kind == "restart":
            return replace(self, surgery_end_at=at, paused_since=None, resumed_at=at)
        if kind.startswith("recheck:"):
            return replace(self, recheck_minutes=int(kind.partition(":")[2]), recheck_from=at)
        if kind == "answered":
            return replace(self, recheck_minutes=None, recheck_from=None)
        raise ValueError(kind)


def next_due(policy: SchedulePolicy, clock: FlapClock) -> datetime | None:
    """When the flap's next check falls due; None while its monitoring is paused.

    By the unit's bands from the last bedside check (or the end of surgery), or by the flap's
    own schedule where one is in force (`due_from`). After a resume with no check since, at
    once: the pause's own time is no one's fault, and the grace period runs from there. After
    a check not done with no check since, `not_done_minutes` after it (the band is not reset:
    a check not done is no assessment), or the flap's tighter interval. While an escalation
    with a recheck waits for its acknowledgement, no later than the recheck, even inside a
    window that omits checks: an unanswered flag outranks a night's sleep.
    """
    if clock.paused:
        return None
    zero = clock.surgery_end_at
    start = zero if clock.last_bedside_at is None else max(clock.last_bedside_at, zero)
    due = due_from(start, policy.interval_at(hours_since(zero, start)), clock.windows)
    since = clock.last_bedside_at
    if clock.resumed_at is not None and (since is None or clock.resumed_at > since):
        due = due_from(clock.resumed_at, timedelta(0), clock.windows, lambda _: timedelta(0))
        since = clock.resumed_at
    if clock.not_done_at is not None and (since is None or clock.not_done_at > since):
        wait = timedelta(minutes=policy.not_done_minutes)
        due = due_from(clock.not_done_at, wait, clock.windows, lambda own: min(own, wait))
    if clock.recheck_minutes is not None:
        latest = [t for t in (clock.last_bedside_at, clock.recheck_from) if t is not None]
        if latest:
            recheck = max(latest).astimezone(UTC) + timedelta(minutes=clock.recheck_minutes)
            due = min(due, recheck)
    return due


def state_of(policy: SchedulePolicy, clock: FlapClock, now: datetime) -> DueState:
    due = next_due(policy, clock)
    return DueState.PAUSED if due is None else due_state(policy, due, now)


def due_state(policy: SchedulePolicy, next_due: datetime, now: datetime) -> DueState:
    if now > next_due + policy.grace:
        return DueState.OVERDUE
    if now >= next_due:
        return DueState.DUE
    return DueState.NOT_DUE
