"""The compliance report of a unit for a period: the schedule kept, entries, escalations and
outcomes, worked out in a fixed number of queries whatever the unit's size."""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, contains_eager

from flapwatch.domain.checks import is_late_entry
from flapwatch.domain.compliance import (
    Buckets,
    Tally,
    Wait,
    monitored_spans,
    schedule_slots,
    waits,
    within,
    without_pauses,
)
from flapwatch.domain.episodes import Episode, levels_reached
from flapwatch.domain.outcomes import (
    AuditMeasures,
    FlapOutcome,
    Rate,
    ReturnRecord,
    audit_measures,
    hours_between,
    minutes_between,
    outcome_counts,
)
from flapwatch.domain.schedule import SchedulePolicy as Schedule
from flapwatch.domain.schedule import ScheduleWindow
from flapwatch.domain.vocabulary import (
    CheckSource,
    EscalationOutcome,
    NotDoneReason,
    ReconstructionStatus,
    Severity,
)
from flapwatch.models import (
    Check,
    CheckNotDone,
    Escalation,
    MonitoringPause,
    Patient,
    PatientStay,
    Reconstruction,
    ScheduleOverride,
    SchedulePolicy,
    TheatreReturn,
    Unit,
)
from flapwatch.services import Actor, InvalidInput, require_role
from flapwatch.services.exports import (
    EXPORT_ROLES,
    episodes_of_escalations,
    escalation_sources,
)
from flapwatch.services.outcomes import theatre_returns_of
from flapwatch.services.patients import IN_CHUNKS, status_history, stays_of
from flapwatch.services.ward import get_unit_by_code, visible_units


@dataclass(frozen=True)
class FlapLine:
    """One flap's scheduled checks in the period."""

    reconstruction_id: int
    patient_mrn: str
    patient_name: str
    bed: str | None
    procedure: str
    status: ReconstructionStatus
    tally: Tally


@dataclass(frozen=True)
class RuleCount:
    rule_id: str
    rule_name: str
    escalations: int


@dataclass
class ComplianceReport:
    unit: Unit
    first_day: date
    last_day: date
    generated_at: datetime
    total: Tally = field(default_factory=Tally)
    by_band: list[tuple[str, Tally]] = field(default_factory=list)
    buckets: Buckets | None = None
    extra_checks: int = 0
    flaps: list[FlapLine] = field(default_factory=list)
    checks_recorded: int = 0
    late_entries: int = 0
    corrected: int = 0
    entered_in_error: int = 0
    escalations_opened: int = 0
    escalations_by_severity: dict[str, int] = field(default_factory=dict)
    escalations_by_rule: list[RuleCount] = field(default_factory=list)
    # Each wait for a surgeon (domain/episodes.py): minutes from its flag to the first answer
    # (acknowledged), to "I'm coming", to the decision; the chain's highest level reached.
    episodes: list[Episode] = field(default_factory=list)
    wait: Wait = field(default_factory=lambda: Wait(0, None, None))
    to_attending: Wait = field(default_factory=lambda: Wait(0, None, None))
    to_decision: Wait = field(default_factory=lambda: Wait(0, None, None))
    levels_reached: dict[int, int] = field(default_factory=dict)
    unacknowledged: int = 0
    escalation_outcomes: dict[str, int] = field(default_factory=dict)
    flaps_operated: int = 0
    flap_outcomes: dict[str, int] = field(default_factory=dict)
    audit: AuditMeasures = field(default_factory=lambda: audit_measures([]))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.unit.timezone)

    @property
    def flaps_behind(self) -> list[FlapLine]:
        """Flaps with a late or missed check, worst first."""
        behind = [line for line in self.flaps if line.tally.late or line.tally.missed]
        return sorted(
            behind,
            key=lambda line: (
                -(line.tally.missed + line.tally.late),
                line.tally.on_time_percent or 0,
            ),
        )


def compliance_report(
    session: Session,
    actor: Actor,
    unit_code: str,
    first_day: date | None,
    last_day: date | None,
    now: datetime,
) -> ComplianceReport:
    """A unit's compliance for whole days on its clock, both ends included.

    Without a first day the report starts at the unit's first surgery; without a last day it
    ends today.
    """
    require_role(actor, *EXPORT_ROLES)
    if first_day and last_day and first_day > last_day:
        raise InvalidInput("No report.", {"to": "The last day must not be before the first."})
    unit = get_unit_by_code(session, actor, unit_code)
    zone = ZoneInfo(unit.timezone)
    today = now.astimezone(zone).date()
    if first_day is None:
        first_surgery = session.scalar(
            select(func.min(Reconstruction.surgery_end_at))
            .join(Patient)
            .where(Patient.unit_id == unit.id)
        )
        first_day = first_surgery.astimezone(zone).date() if first_surgery else today
    last_day = last_day or max(today, first_day)
    start = datetime.combine(first_day, time(0), zone).astimezone(UTC)
    end = datetime.combine(last_day + timedelta(days=1), time(0), zone).astimezone(UTC)
    report = ComplianceReport(unit, first_day, last_day, now)
    report.buckets = Buckets(first_day, last_day)

    flaps = _flaps_in_scope(session, unit, start, end)
    stays = _stays_on(session, unit, flaps)
    checks = _current_checks(session, [flap.id for flap in flaps])
    history = status_history(session, [flap.id for flap in flaps])
    policy_at = _schedule_at(session, unit)
    days = _ward_days(session, [flap.id for flap in flaps])
    _schedule_kept(report, flaps, checks, history, days, stays, policy_at, start, end, now)
    _entries(report, checks, stays, start, end)
    _escalations(session, report, unit, flaps, stays, start, end)
    # A flap's outcome is the ward's where its monitoring began (at the end of surgery).
    begun_here = [flap for flap in flaps if _on_unit(stays[flap.id], flap.surgery_end_at)]
    _outcomes(session, report, begun_here, start, end)
    return report


def compliance_reports(
    session: Session,
    actor: Actor,
    unit_code: str | None,
    first_day: date | None,
    last_day: date | None,
    now: datetime,
) -> Iterator[ComplianceReport]:
    """The report of one unit, or of every unit the actor sees, one after another."""
    require_role(actor, *EXPORT_ROLES)
    codes = [unit_code] if unit_code else [unit.code for unit in visible_units(session, actor)]
    for code in codes:
        yield compliance_report(session, actor, code, first_day, last_day, now)


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for offset in range(0, len(ids), IN_CHUNKS):
        yield ids[offset : offset + IN_CHUNKS]


def _flaps_in_scope(
    session: Session, unit: Unit, start: datetime, end: datetime
) -> list[Reconstruction]:
    """Flaps operated before the period ended and still monitored (or changed) in it."""
    return list(
        session.scalars(
            select(Reconstruction)
            .join(Reconstruction.patient)
            .options(contains_eager(Reconstruction.patient))
            .where(
                or_(Patient.unit_id == unit.id, Patient.id.in_(_stayed_on(unit, start, end))),
                Reconstruction.surgery_end_at < end,
                or_(
                    Reconstruction.status == ReconstructionStatus.MONITORING,
                    Reconstruction.status_changed_at.is_(None),
                    Reconstruction.status_changed_at >= start,
                ),
            )
            .order_by(Reconstruction.id)
        )
    )


def _stayed_on(unit: Unit, start: datetime, end: datetime) -> Any:
    """The patients who were on the unit at some moment of [start, end)."""
    return select(PatientStay.patient_id).where(
        PatientStay.unit_id == unit.id,
        or_(PatientStay.started_at.is_(None), PatientStay.started_at < end),
        or_(PatientStay.ended_at.is_(None), PatientStay.ended_at > start),
    )


Stays = dict[int, list[tuple[datetime | None, datetime | None]]]


def _stays_on(session: Session, unit: Unit, flaps: list[Reconstruction]) -> Stays:
    """Each flap's stretches on the unit (its patient's stays there; a patient with no stay on
    record: all of it, when they are on the unit now)."""
    stays = stays_of(session, sorted({flap.patient_id for flap in flaps}))
    found: Stays = {}
    for flap in flaps:
        mine = stays.get(flap.patient_id)
        if not mine:
            found[flap.id] = [(None, None)] if flap.patient.unit_id == unit.id else []
        else:
            found[flap.id] = [(s.started_at, s.ended_at) for s in mine if s.unit_id == unit.id]
    return found


def _on_unit(stays: list[tuple[datetime | None, datetime | None]], at: datetime) -> bool:
    return any((a is None or a <= at) and (b is None or at < b) for a, b in stays)


@dataclass(frozen=True)
class _CheckRow:
    taken_at: datetime
    first_recorded_at: datetime
    version: int
    entered_in_error: bool


def _current_checks(session: Session, flap_ids: list[int]) -> dict[int, list[_CheckRow]]:
    """Each flap's current check versions, oldest first."""
    checks: dict[int, list[_CheckRow]] = defaultdict(list)
    for ids in _chunks(flap_ids):
        query = (
            select(
                Check.reconstruction_id,
                Check.taken_at,
                Check.first_recorded_at,
                Check.version,
                Check.entered_in_error,
            )
            # The schedule is a nurse's: a device's readings answer no scheduled check.
            .where(
                Check.current(),
                Check.source == CheckSource.BEDSIDE,
                Check.reconstruction_id.in_(ids),
            )
            .order_by(Check.reconstruction_id, Check.taken_at)
        )
        for flap_id, *values in session.execute(query):
            checks[flap_id].append(_CheckRow(*values))
    return checks


@dataclass
class _WardDay:
    """A flap's pauses (start, end or None), checks not done (time, reason) and own
    schedules."""

    pauses: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    not_done: list[tuple[datetime, str]] = field(default_factory=list)
    windows: list[ScheduleWindow] = field(default_factory=list)


def _ward_days(session: Session, flap_ids: list[int]) -> dict[int, _WardDay]:
    days: dict[int, _WardDay] = defaultdict(_WardDay)
    for ids in _chunks(flap_ids):
        for flap_id, started, ended in session.execute(
            select(
                MonitoringPause.reconstruction_id,
                MonitoringPause.started_at,
                MonitoringPause.ended_at,
            ).where(MonitoringPause.reconstruction_id.in_(ids))
        ):
            days[flap_id].pauses.append((started, ended))
        for flap_id, taken, reason in session.execute(
            select(CheckNotDone.reconstruction_id, CheckNotDone.taken_at, CheckNotDone.reason)
            .where(CheckNotDone.reconstruction_id.in_(ids))
            .order_by(CheckNotDone.taken_at)
        ):
            days[flap_id].not_done.append((taken, str(reason)))
        for override in session.scalars(
            select(ScheduleOverride).where(ScheduleOverride.reconstruction_id.in_(ids))
        ):
            if override.ever_in_force:
                days[override.reconstruction_id].windows.append(override.as_window())
    return days


def _spans(
    flap: Reconstruction, changes: list[tuple[datetime, str]], day: _WardDay | None = None
) -> list[Any]:
    if not changes and flap.status != ReconstructionStatus.MONITORING:
        # A status set without an audited change (imported data): it changed when it says.
        changes = [(flap.status_changed_at or flap.surgery_end_at, flap.status)]
    spans = monitored_spans(
        flap.surgery_end_at,
        [(at, status == ReconstructionStatus.MONITORING) for at, status in changes],
    )
    return without_pauses(spans, day.pauses) if day is not None else spans


def _schedule_at(session: Session, unit: Unit) -> Callable[[datetime], Schedule]:
    """The unit's schedule in force at a moment: the latest version published by then (the
    first version before it was published)."""
    versions = list(
        session.scalars(
            select(SchedulePolicy)
            .where(SchedulePolicy.unit_id == unit.id)
            .order_by(SchedulePolicy.version)
        )
    )
    published = [version.created_at for version in versions]
    values = [version.as_value() for version in versions] or [Schedule()]

    def policy_at(moment: datetime) -> Schedule:
        return values[max(bisect.bisect_right(published, moment) - 1, 0)]

    return policy_at


def _schedule_kept(
    report: ComplianceReport,
    flaps: list[Reconstruction],
    checks: dict[int, list[_CheckRow]],
    history: dict[int, list[tuple[datetime, str]]],
    days: dict[int, _WardDay],
    stays: Stays,
    policy_at: Callable[[datetime], Schedule],
    start: datetime,
    end: datetime,
    now: datetime,
) -> None:
    bands: dict[tuple[int, str], Tally] = defaultdict(Tally)
    zone = report.zone
    assert report.buckets is not None
    for flap in flaps:
        taken = [row.taken_at for row in checks.get(flap.id, ()) if not row.entered_in_error]
        day = days.get(flap.id) or _WardDay()
        walked = schedule_slots(
            policy_at,
            flap.surgery_end_at,
            taken,
            within(_spans(flap, history.get(flap.id, []), day), stays[flap.id]),
            now,
            until=end,
            not_done=day.not_done,
            restarted_at=flap.time_zero_at,
            windows=day.windows,
        )
        tally = Tally()
        for slot in walked.slots:
            if slot.due_at < start:
                continue
            reason = slot.not_done_reason
            tally.add(slot.state, reason)
            report.total.add(slot.state, reason)
            bands[(slot.band_start_hours, slot.band)].add(slot.state, reason)
            report.buckets.add(slot.due_at.astimezone(zone).date(), slot.state, reason)
        report.extra_checks += sum(1 for at in walked.extra_checks if start <= at < end)
        if tally.due:
            report.flaps.append(
                FlapLine(
                    flap.id,
                    flap.patient.mrn,
                    flap.patient.name,
                    flap.patient.bed,
                    flap.procedure,
                    flap.status,
                    tally,
                )
            )
    report.by_band = [(words, bands[key]) for key, words in sorted((k, k[1]) for k in bands)]


def _entries(
    report: ComplianceReport,
    checks: dict[int, list[_CheckRow]],
    stays: Stays,
    start: datetime,
    end: datetime,
) -> None:
    for flap_id, rows in checks.items():
        for row in rows:
            if not start <= row.taken_at < end or not _on_unit(stays[flap_id], row.taken_at):
                continue
            report.checks_recorded += 1
            report.late_entries += is_late_entry(row.taken_at, row.first_recorded_at)
            report.corrected += row.version > 1
            report.entered_in_error += row.entered_in_error


def _escalations(
    session: Session,
    report: ComplianceReport,
    unit: Unit,
    flaps: list[Reconstruction],
    stays: Stays,
    start: datetime,
    end: datetime,
) -> None:
    # Each escalation is the ward's where the patient was when it opened.
    opened: list[int] = []
    for ids in _chunks([flap.id for flap in flaps]):
        for escalation_id, flap_id, at in session.execute(
            select(Escalation.id, Escalation.reconstruction_id, Escalation.opened_at).where(
                Escalation.reconstruction_id.in_(ids),
                Escalation.opened_at >= start,
                Escalation.opened_at < end,
            )
        ):
            if _on_unit(stays.get(flap_id, []), at):
                opened.append(escalation_id)
    escalations = list(
        session.execute(
            select(Escalation.severity, Escalation.outcome).where(Escalation.id.in_(opened))
        )
    )
    report.escalations_opened = len(escalations)
    severities = Counter(str(severity) for severity, _ in escalations)
    report.escalations_by_severity = {s.value: severities[s.value] for s in reversed(Severity)}
    report.episodes = episodes_of_escalations(session, opened)
    answered = [e for e in report.episodes if e.answered]
    report.wait = waits([e.minutes_to(e.acknowledged_at) or 0.0 for e in answered])
    report.to_attending = waits(
        [e.minutes_to(e.attending_at) or 0.0 for e in report.episodes if e.attending_at]
    )
    report.to_decision = waits(
        [e.minutes_to(e.decided_at) or 0.0 for e in report.episodes if e.decided_at]
    )
    report.unacknowledged = sum(1 for e in report.episodes if not e.answered and e.ended_at is None)
    report.levels_reached = levels_reached(report.episodes)
    outcomes = Counter(str(outcome) if outcome else "none" for _, outcome in escalations)
    report.escalation_outcomes = {
        **{outcome.value: outcomes[outcome.value] for outcome in EscalationOutcome},
        "none": outcomes["none"],
    }

    # Which rules each escalation was raised by: the flags of the checks that opened it or
    # joined it, and the overdue sweep's missed checks.
    _, raised_by = escalation_sources(session, opened)
    by_rule: dict[str, set[int]] = defaultdict(set)
    names: dict[str, str] = {}
    for escalation_id, rules in raised_by.items():
        for rule_id, rule_name in rules.items():
            by_rule[rule_id].add(escalation_id)
            names[rule_id] = rule_name
    report.escalations_by_rule = sorted(
        (RuleCount(rule_id, names[rule_id], len(ids)) for rule_id, ids in by_rule.items()),
        key=lambda count: (-count.escalations, count.rule_id),
    )


def _outcomes(
    session: Session,
    report: ComplianceReport,
    flaps: list[Reconstruction],
    start: datetime,
    end: datetime,
) -> None:
    """The flaps operated on in the period, by what became of them, and the unit's audit
    measures of their re-explorations (domain/outcomes), each return timed from the first
    flag of the escalation that sent it (its first episode's first answer: acknowledged)."""
    operated = [flap for flap in flaps if start <= flap.surgery_end_at < end]
    returns = theatre_returns_of(session, [flap.id for flap in operated])
    sent_by = [r.escalation_id for rs in returns.values() for r in rs if r.escalation_id]
    answered = {
        episode.escalation_id: episode.acknowledged_at
        for episode in (episodes_of_escalations(session, sent_by) if sent_by else [])
        if episode.number == 1
    }

    def record(flap: Reconstruction, theatre: TheatreReturn) -> ReturnRecord:
        flagged = theatre.escalation.opened_at if theatre.escalation else None
        return ReturnRecord(
            sign_hours=hours_between(flap.surgery_end_at, flagged),
            re_explored_hours=hours_between(
                flap.surgery_end_at, theatre.knife_to_skin_at or theatre.decided_at
            ),
            to_acknowledge=minutes_between(flagged, answered.get(theatre.escalation_id or 0)),
            to_decision=minutes_between(flagged, theatre.decided_at),
            to_knife=minutes_between(flagged, theatre.knife_to_skin_at),
            findings=theatre.findings.value if theatre.findings else None,
            result=theatre.result.value if theatre.result else None,
        )

    outcomes = [
        FlapOutcome(
            returns=tuple(record(flap, r) for r in returns.get(flap.id, ())),
            final_outcome=flap.final_outcome.value if flap.final_outcome else None,
            still_monitored=flap.status
            in (ReconstructionStatus.MONITORING, ReconstructionStatus.RETURNED_TO_THEATRE),
        )
        for flap in operated
    ]
    report.flaps_operated = len(operated)
    report.flap_outcomes = outcome_counts(outcomes)
    report.audit = audit_measures(outcomes)


# --- as CSV --------------------------------------------------------------------------------------

# A long table: one measure a row, so new measures never move a column (README "Compliance").
COMPLIANCE_COLUMNS = ("unit", "from", "to", "section", "group", "measure", "value")


def audit_rows(
    row: Callable[[str, str, str, Any], dict[str, Any]], audit: AuditMeasures
) -> Iterator[dict[str, Any]]:
    """The audit measures (README "Audit measures"): rates as count, of, percent."""
    group = "operated in period"

    def rate(measure: str, value: Rate) -> Iterator[dict[str, Any]]:
        yield row("audit", group, measure, value.count)
        yield row("audit", group, f"{measure}_of", value.of)
        yield row("audit", group, f"{measure}_percent", value.percent)

    yield row("audit", group, "flaps", audit.flaps)
    yield from rate("re_explored", audit.re_explored)
    yield row("audit", group, "re_explorations", audit.re_explorations)
    yield from rate("salvaged", audit.salvaged)
    yield from rate("completely_salvaged", audit.completely_salvaged)
    yield from rate("partially_salvaged", audit.partially_salvaged)
    yield from rate("failed_after_re_exploration", audit.failed_after_re_exploration)
    yield row("audit", group, "result_unknown", audit.result_unknown)
    yield from rate("total_loss", audit.total_loss)
    yield from rate("partial_loss", audit.partial_loss)
    for name, wait in (
        ("flag_to_acknowledge", audit.to_acknowledge),
        ("flag_to_decision", audit.to_decision),
        ("flag_to_knife_to_skin", audit.to_knife),
    ):
        yield row("audit", group, f"timed_{name}", wait.count)
        yield row("audit", group, f"median_minutes_{name}", wait.median)
        yield row("audit", group, f"p90_minutes_{name}", wait.p90)
    yield from rate("first_sign_within_24h", audit.sign_within_24h)
    yield from rate("first_sign_within_72h", audit.sign_within_72h)
    yield row("audit", group, "median_hours_to_re_exploration", audit.re_explored_hours.median)
    yield row("audit", group, "p90_hours_to_re_exploration", audit.re_explored_hours.p90)
    yield row("audit", group, "mean_hours_to_re_exploration_salvaged", audit.mean_hours_salvaged)
    yield row("audit", group, "mean_hours_to_re_exploration_failed", audit.mean_hours_failed)
    for cause, count in audit.losses_by_cause.items():
        yield row("audit_total_losses_by_cause", cause, "flaps", count)


def compliance_rows(report: ComplianceReport) -> Iterator[dict[str, Any]]:
    """The report's figures as rows of COMPLIANCE_COLUMNS."""
    head = {
        "unit": report.unit.code,
        "from": report.first_day.isoformat(),
        "to": report.last_day.isoformat(),
    }

    def row(section: str, group: str, measure: str, value: Any) -> dict[str, Any]:
        return {**head, "section": section, "group": group, "measure": measure, "value": value}

    def tally_rows(section: str, group: str, tally: Tally) -> Iterator[dict[str, Any]]:
        yield row(section, group, "checks_due", tally.due)
        yield row(section, group, "on_time", tally.on_time)
        yield row(section, group, "late", tally.late)
        yield row(section, group, "missed", tally.missed)
        yield row(section, group, "not_done", tally.not_done)
        yield row(section, group, "on_time_percent", tally.on_time_percent)

    yield from tally_rows("schedule", "all bands", report.total)
    for reason in NotDoneReason:
        count = report.total.not_done_by_reason.get(reason.value, 0)
        yield row("schedule", "all bands", f"not_done_{reason.value}", count)
    yield row("schedule", "all bands", "extra_checks", report.extra_checks)
    for band, tally in report.by_band:
        yield from tally_rows("schedule", band, tally)
    assert report.buckets is not None
    period = "week" if report.buckets.weekly else "day"
    for day, tally in report.buckets.tallies.items():
        yield from tally_rows(period, day.isoformat(), tally)
    for line in report.flaps:
        group = str(line.reconstruction_id)
        yield row("flap", group, "patient_mrn", line.patient_mrn)
        yield from tally_rows("flap", group, line.tally)
    yield row("entries", "all", "checks_recorded", report.checks_recorded)
    yield row("entries", "all", "late_entries", report.late_entries)
    yield row("entries", "all", "corrected", report.corrected)
    yield row("entries", "all", "entered_in_error", report.entered_in_error)
    yield row("escalations", "all", "opened", report.escalations_opened)
    for severity, count in report.escalations_by_severity.items():
        yield row("escalations", "all", f"opened_{severity}", count)
    yield row("escalations", "all", "episodes", len(report.episodes))
    yield row("escalations", "all", "acknowledged", report.wait.count)
    yield row("escalations", "all", "not_acknowledged", report.unacknowledged)
    yield row("escalations", "all", "median_minutes_to_acknowledge", report.wait.median)
    yield row("escalations", "all", "p90_minutes_to_acknowledge", report.wait.p90)
    yield row("escalations", "all", "attending", report.to_attending.count)
    yield row("escalations", "all", "median_minutes_to_attending", report.to_attending.median)
    yield row("escalations", "all", "p90_minutes_to_attending", report.to_attending.p90)
    yield row("escalations", "all", "decided", report.to_decision.count)
    yield row("escalations", "all", "median_minutes_to_decision", report.to_decision.median)
    yield row("escalations", "all", "p90_minutes_to_decision", report.to_decision.p90)
    for level, count in report.levels_reached.items():
        yield row("escalations", "all", f"episodes_highest_level_{level}", count)
    zone = report.zone
    for episode in report.episodes:
        group = f"{episode.escalation_id}.{episode.number}"
        yield row("episode", group, "flagged_at", episode.flagged_at.astimezone(zone).isoformat())
        yield row(
            "episode", group, "minutes_to_acknowledge", episode.minutes_to(episode.acknowledged_at)
        )
        yield row(
            "episode", group, "minutes_to_attending", episode.minutes_to(episode.attending_at)
        )
        yield row("episode", group, "minutes_to_decision", episode.minutes_to(episode.decided_at))
        yield row("episode", group, "highest_level", episode.highest_level)
    for rule in report.escalations_by_rule:
        yield row("escalations_by_rule", rule.rule_id, "escalations", rule.escalations)
    for outcome, count in report.escalation_outcomes.items():
        yield row("escalation_outcomes", outcome, "escalations", count)
    yield row("flap_outcomes", "operated in period", "flaps", report.flaps_operated)
    for outcome, count in report.flap_outcomes.items():
        yield row("flap_outcomes", outcome, "flaps", count)
    yield from audit_rows(row, report.audit)
