"""What a flap's trend chart marks, worked out from values (DESIGN.md §2 rule set, schedule).

Pure functions, so the chart never hard-codes a clinical threshold: the lines, the abnormal
categories and the overdue gaps all come from the unit's own rule set and schedule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from flapwatch.domain.checks import CATEGORICAL_FIELDS
from flapwatch.domain.rule_words import describe_condition
from flapwatch.domain.rules import (
    CATEGORICAL_OPERATORS,
    CHANGED_FROM,
    COMPARISONS,
    TREND_OPERATORS,
    RuleSet,
)
from flapwatch.domain.schedule import FlapClock, SchedulePolicy, ScheduleWindow, next_due
from flapwatch.domain.vocabulary import NOT_OBSERVED, Severity

_SEVERITY_RANK = {Severity.AMBER: 1, Severity.RED: 2}


@dataclass(frozen=True)
class Threshold:
    """A line on a measurement panel: a rule's comparison on one field."""

    field: str
    op: str
    value: float
    severity: Severity
    rule_id: str
    rule_name: str
    words: str  # "ΔT ≥ 1.8 °C"

    @property
    def label(self) -> str:
        return f"{self.rule_name}: {self.words}"


@dataclass(frozen=True)
class TrendCondition:
    """A rule on a change between checks (a fall since the previous, within m minutes):
    not a line on the chart, so the chart lists it under the panel in words."""

    field: str
    severity: Severity
    rule_id: str
    rule_name: str
    words: str  # "StO₂ falls ≥ 20 points within 60 min"

    @property
    def label(self) -> str:
        return f"{self.rule_name}: {self.words}"


def thresholds(rule_set: RuleSet) -> tuple[Threshold, ...]:
    """Every enabled rule's fixed comparison on a number, in rule order."""
    found: list[Threshold] = []
    for rule in rule_set.rules:
        if not rule.enabled:
            continue
        for condition in rule.conditions:
            if condition.op in COMPARISONS and isinstance(condition.value, int | float):
                found.append(
                    Threshold(
                        field=condition.field,
                        op=condition.op,
                        value=float(condition.value),
                        severity=Severity(rule.severity),
                        rule_id=rule.id,
                        rule_name=rule.name,
                        words=describe_condition(condition),
                    )
                )
    return tuple(found)


def trend_conditions(rule_set: RuleSet) -> tuple[TrendCondition, ...]:
    """Every enabled rule's condition on a change of a number, in the coordinator's words."""
    return tuple(
        TrendCondition(
            field=condition.field,
            severity=Severity(rule.severity),
            rule_id=rule.id,
            rule_name=rule.name,
            words=describe_condition(condition),
        )
        for rule in rule_set.rules
        if rule.enabled
        for condition in rule.conditions
        if condition.op in TREND_OPERATORS
    )


def abnormal_categories(rule_set: RuleSet) -> dict[str, dict[str, Severity]]:
    """For each categorical field, the answers an enabled rule looks for, with the highest
    severity of the rules that do.

    `in` names them, `not_in` names the normal ones (everything else observed is abnormal),
    `changed_from` names what a signal changes to. A "nothing observed" answer is abnormal
    only when a rule names it with `in`, as the rule engine treats it.
    """
    found: dict[str, dict[str, Severity]] = {}
    for rule in rule_set.rules:
        if not rule.enabled:
            continue
        severity = Severity(rule.severity)
        for condition in rule.conditions:
            vocabulary = CATEGORICAL_FIELDS.get(condition.field)
            if vocabulary is None:
                continue
            named = condition.value if isinstance(condition.value, tuple) else ()
            if condition.op == "in":
                values: Iterable[str] = named
            elif condition.op in CATEGORICAL_OPERATORS:  # not_in
                values = (
                    v for v in vocabulary.values() if v not in named and v not in NOT_OBSERVED
                )
            elif condition.op == CHANGED_FROM:
                values = condition.to_values
            else:
                continue
            field = found.setdefault(condition.field, {})
            for value in values:
                if _SEVERITY_RANK[severity] > _SEVERITY_RANK.get(field.get(value), 0):
                    field[value] = severity
    return found


@dataclass(frozen=True)
class Gap:
    """A stretch with no check after one had fallen due and its grace had passed."""

    due_at: datetime
    overdue_from: datetime
    until: datetime
    # False: the gap is still open at the end of the chart (no check since).
    closed: bool


def overdue_gaps(
    schedule: SchedulePolicy,
    surgery_end_at: datetime,
    events: Sequence[tuple[datetime, str]],
    until: datetime | None,
    windows: Sequence[ScheduleWindow] = (),
) -> list[Gap]:
    """Each overdue stretch of the flap, by the unit's schedule and the flap's clock.

    `events` are (time, kind), the kinds of `FlapClock.after`: its bedside checks, checks not
    done, pauses (and stretches away from monitoring) begun and ended, a restart of time zero,
    rechecks asked for and answered; `windows` its own schedules. Nothing is overdue while
    paused. `until` is
    the end of the chart for a flap still monitored (now): a check overdue then is an open
    gap. None for a flap no longer monitored: nothing after its last event is overdue.
    """
    gaps: list[Gap] = []
    clock = FlapClock(surgery_end_at, windows=tuple(windows))
    for at, kind in sorted(events, key=lambda event: event[0]):
        due = next_due(schedule, clock)
        if due is not None and at > due + schedule.grace:
            gaps.append(Gap(due, due + schedule.grace, at, closed=True))
        clock = clock.after(kind, at)
    if until is not None:
        due = next_due(schedule, clock)
        if due is not None and until > due + schedule.grace:
            gaps.append(Gap(due, due + schedule.grace, until, closed=False))
    return gaps


@dataclass(frozen=True)
class Band:
    """A stretch of the schedule with one monitoring interval, in hours since surgery."""

    start_hours: float
    end_hours: float
    interval_minutes: int

    @property
    def label(self) -> str:
        hours, minutes = divmod(self.interval_minutes, 60)
        if minutes:
            return f"every {self.interval_minutes} min"
        return "hourly" if hours == 1 else f"{hours}-hourly"


def schedule_bands(schedule: SchedulePolicy, end_hours: float) -> list[Band]:
    """The schedule's bands that fall on a chart running from 0 to `end_hours`."""
    bands: list[Band] = []
    start = 0.0
    for until_hour, interval in schedule.bands:
        if start >= end_hours:
            return bands
        bands.append(Band(start, float(until_hour), interval))
        start = float(until_hour)
    if start < end_hours:
        bands.append(Band(start, end_hours, schedule.after_last_band_minutes))
    return bands
