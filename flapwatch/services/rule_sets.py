"""Reading a unit's rule set versions, and the dry run of a proposed set on recorded checks.

Publishing is `services.escalations.publish_rule_set`; this module only reads. The dry run
answers the coordinator's question before going live: how many alarms would the ward have
had over the last days with the proposed rules, compared with the rules in force?
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.rules import OVERDUE_RULE_ID, RuleSet, compare_rule_sets, parse_rule_set
from flapwatch.domain.schedule import SchedulePolicy as Schedule
from flapwatch.domain.schedule import hours_since
from flapwatch.models import Check, Patient, Reconstruction, RuleSetVersion, Unit, User
from flapwatch.services import MANAGING_ROLES, Actor, InvalidInput, NotFound, require_role
from flapwatch.services.escalations import current_rule_set
from flapwatch.services.units import current_schedule_policy

# A week or two shows the alarm burden of a typical run of admissions; three months is as far
# back as a coordinator can sensibly compare (the unit's case mix changes over a season).
DEFAULT_DRY_RUN_DAYS = 14
DRY_RUN_DAYS = (1, 90)

# The check columns a rule can read, in CheckValues' order.
_VALUE_COLUMNS = (
    Check.taken_at,
    Check.colour,
    Check.flap_temperature_c,
    Check.control_temperature_c,
    Check.capillary_refill,
    Check.capillary_refill_s,
    Check.doppler_arterial,
    Check.doppler_venous,
    Check.turgor,
    Check.pinprick,
    Check.sto2_percent,
)


@dataclass(frozen=True)
class PublishedVersion:
    """One version of a unit's rule set as stored, with its author's name."""

    record: RuleSetVersion
    author: str | None

    @property
    def number(self) -> int:
        return self.record.version


@dataclass(frozen=True)
class RuleBurden:
    """Checks one rule flagged under each set; None: the rule is not in that set."""

    rule_id: str
    name: str
    current: int | None
    proposed: int | None
    enabled_now: bool | None
    enabled_proposed: bool | None

    @property
    def change(self) -> int | None:
        if self.current is None or self.proposed is None:
            return None
        return self.proposed - self.current


@dataclass(frozen=True)
class DryRun:
    """The proposed rules against the version in force, on the unit's checks in a window."""

    days: int
    since: datetime
    until: datetime
    current_version: int
    checks: int
    flagged_now: int
    flagged_proposed: int
    rules: tuple[RuleBurden, ...]
    # Checks the rules' rechecks would add, had no flag been acknowledged before the next
    # scheduled check.
    rechecks_now: int = 0
    rechecks_proposed: int = 0


def unit_for_rules(session: Session, actor: Actor, unit_id: int) -> Unit:
    """The unit whose rules the actor manages; NotFound outside the actor's units."""
    require_role(actor, *MANAGING_ROLES)
    unit = session.get(Unit, unit_id)
    if unit is None or not actor.works_in(unit.code):
        raise NotFound(f"No unit {unit_id}.")
    return unit


def rule_set_history(session: Session, actor: Actor, unit_id: int) -> list[PublishedVersion]:
    """Every version of the unit's rule set, newest (the one in force) first."""
    unit = unit_for_rules(session, actor, unit_id)
    rows = session.execute(
        select(RuleSetVersion, User.display_name)
        .outerjoin(User, User.id == RuleSetVersion.created_by_id)
        .where(RuleSetVersion.unit_id == unit.id)
        .order_by(RuleSetVersion.version.desc())
    )
    return [PublishedVersion(record, author) for record, author in rows]


def published_version(
    session: Session, actor: Actor, unit_id: int, number: int
) -> PublishedVersion:
    unit = unit_for_rules(session, actor, unit_id)
    row = session.execute(
        select(RuleSetVersion, User.display_name)
        .outerjoin(User, User.id == RuleSetVersion.created_by_id)
        .where(RuleSetVersion.unit_id == unit.id, RuleSetVersion.version == number)
    ).first()
    if row is None:
        raise NotFound(f"Unit {unit.code} has no rule set version {number}.")
    return PublishedVersion(row[0], row[1])


def dry_run(
    session: Session, actor: Actor, unit_id: int, proposed: RuleSet, days: int, now: datetime
) -> DryRun:
    """How many of the unit's checks of the last `days` days each rule would have flagged.

    Both sets are evaluated afresh, so a check flagged by an older version counts under the
    rules in force today. Three queries whatever the number of checks: the unit, the version
    in force, and every check of each flap checked in the window (earlier checks included:
    "since the previous check" may reach back before the window).
    """
    low, high = DRY_RUN_DAYS
    if not low <= days <= high:
        raise InvalidInput(
            "The dry run was not done.",
            {"days": f"Days must be a whole number from {low} to {high}."},
        )
    unit = unit_for_rules(session, actor, unit_id)
    in_force = current_rule_set(session, unit.id)
    current = parse_rule_set(in_force.definition)
    since = now - timedelta(days=days)
    schedule = current_schedule_policy(session, unit.id).as_value()
    counts = compare_rule_sets(current, proposed, _cases(session, unit.id, since, now, schedule))
    total = counts["total"]
    return DryRun(
        days=days,
        since=since,
        until=now,
        current_version=in_force.version,
        checks=total["checks"],
        flagged_now=total["current"],
        flagged_proposed=total["proposed"],
        rules=_burdens(current, proposed, counts["current"], counts["proposed"]),
        rechecks_now=total["current_rechecks"],
        rechecks_proposed=total["proposed_rechecks"],
    )


def _cases(
    session: Session, unit_id: int, since: datetime, until: datetime, schedule: Schedule
) -> list[tuple[CheckValues, list[CheckValues], int]]:
    """Each check taken in (since, until], with the same flap's earlier checks and the
    schedule's interval (minutes) when it was taken."""
    checked_flaps = (
        select(Check.reconstruction_id)
        .join(Reconstruction, Reconstruction.id == Check.reconstruction_id)
        .join(Patient, Patient.id == Reconstruction.patient_id)
        .where(
            Patient.unit_id == unit_id,
            Check.taken_at > since,
            Check.taken_at <= until,
            Check.in_force(),
        )
    )
    rows = session.execute(
        select(Check.reconstruction_id, Reconstruction.surgery_end_at, *_VALUE_COLUMNS)
        .join(Reconstruction, Reconstruction.id == Check.reconstruction_id)
        .where(Check.reconstruction_id.in_(checked_flaps), Check.in_force())
        .order_by(Check.reconstruction_id, Check.taken_at, Check.id)
    )
    by_flap: dict[int, list[CheckValues]] = defaultdict(list)
    surgery: dict[int, datetime] = {}
    for reconstruction_id, surgery_end_at, *values in rows:
        by_flap[reconstruction_id].append(CheckValues(*values))
        surgery[reconstruction_id] = surgery_end_at
    return list(_in_window(by_flap, surgery, since, until, schedule))


def _in_window(
    flaps: dict[int, list[CheckValues]],
    surgery: dict[int, datetime],
    since: datetime,
    until: datetime,
    schedule: Schedule,
) -> Iterator[tuple[CheckValues, list[CheckValues], int]]:
    for flap_id, checks in flaps.items():
        for index, check in enumerate(checks):
            if since < check.taken_at <= until:
                hours = hours_since(surgery[flap_id], check.taken_at)
                interval = int(schedule.interval_at(hours).total_seconds() // 60)
                yield check, checks[:index], interval


def _burdens(
    current: RuleSet,
    proposed: RuleSet,
    counted_now: dict[str, int],
    counted_proposed: dict[str, int],
) -> tuple[RuleBurden, ...]:
    """The proposed rules in their order, then the rules the proposal removes."""
    now_by_id = {rule.id: rule for rule in current.rules}
    proposed_by_id = {rule.id: rule for rule in proposed.rules}
    ids = [rule.id for rule in proposed.rules]
    ids += [rule.id for rule in current.rules if rule.id not in proposed_by_id]
    burdens = []
    for rule_id in ids:
        if rule_id == OVERDUE_RULE_ID:
            continue
        before, after = now_by_id.get(rule_id), proposed_by_id.get(rule_id)
        shown = after or before
        assert shown is not None
        burdens.append(
            RuleBurden(
                rule_id=rule_id,
                name=shown.name,
                current=counted_now.get(rule_id, 0) if before else None,
                proposed=counted_proposed.get(rule_id, 0) if after else None,
                enabled_now=before.enabled if before else None,
                enabled_proposed=after.enabled if after else None,
            )
        )
    return tuple(burdens)
