"""Units (wards): creating and configuring one, and its versioned schedule policy."""

from __future__ import annotations

import re
from zoneinfo import available_timezones

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.chains import webhook_url_problem
from flapwatch.domain.rules import DEFAULT_RULE_SET, rule_set_to_json
from flapwatch.domain.schedule import (
    DEFAULT_AFTER_LAST_BAND_MINUTES,
    DEFAULT_BANDS,
    DEFAULT_GRACE_MINUTES,
    DEFAULT_NOT_DONE_MINUTES,
    schedule_policy_problems,
)
from flapwatch.models import RuleSetVersion, SchedulePolicy, Unit
from flapwatch.services import MANAGING_ROLES, Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import changes, record_event
from flapwatch.services.chains import install_default_chains
from flapwatch.services.notifications import follow_new_webhook

UNIT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
# Logoff of a shared tablet without use: long enough to finish a check at the bedside, short
# enough that a tablet left on a trolley does not show patients to the next passer-by.
IDLE_LOGOFF_MINUTES = (2, 60)


def _unit_problems(code: str | None, name: str, timezone: str) -> dict[str, str]:
    problems: dict[str, str] = {}
    if code is not None and not UNIT_CODE.match(code):
        problems["code"] = "Code must be 2–32 capital letters, digits or hyphens, e.g. PLAST-W3."
    if not name.strip():
        problems["name"] = "Name is required."
    if timezone not in available_timezones():
        problems["timezone"] = "Time zone must be an IANA name such as Europe/London."
    return problems


def create_unit(session: Session, actor: Actor, *, code: str, name: str, timezone: str) -> Unit:
    require_role(actor, "admin")
    code = code.strip().upper()
    problems = _unit_problems(code, name, timezone)
    with write_transaction(session):
        if session.scalar(select(Unit.id).where(Unit.code == code)) is not None:
            problems["code"] = f"A unit with code {code} already exists."
        if problems:
            raise InvalidInput("The unit could not be created.", problems)
        unit = Unit(code=code, name=name.strip(), timezone=timezone)
        session.add(unit)
        session.flush()
        policy = SchedulePolicy(
            unit_id=unit.id,
            version=1,
            bands=[list(band) for band in DEFAULT_BANDS],
            grace_minutes=DEFAULT_GRACE_MINUTES,
            after_last_band_minutes=DEFAULT_AFTER_LAST_BAND_MINUTES,
            note="Default schedule",
            created_by_id=actor.user_id,
        )
        session.add(policy)
        install_default_rule_set(session, actor, unit)
        install_default_chains(session, actor, unit)
        record_event(session, actor, "unit.create", "unit", unit.id, after=_unit_record(unit))
    return unit


def install_default_rule_set(session: Session, actor: Actor, unit: Unit) -> RuleSetVersion:
    """Version 1 of a new unit's escalation rules: DESIGN.md §3, for the unit to adapt."""
    version = RuleSetVersion(
        unit_id=unit.id,
        version=1,
        definition=rule_set_to_json(DEFAULT_RULE_SET),
        note="Default rule set",
        created_by_id=actor.user_id,
    )
    session.add(version)
    return version


def update_unit(
    session: Session,
    actor: Actor,
    unit_id: int,
    *,
    name: str,
    timezone: str,
    webhook_url: str | None = None,
    idle_logoff_minutes: int | None = None,
) -> Unit:
    """Rename the unit, change its clock, its webhook (None leaves it as it is, "" removes
    it; notices waiting to be sent follow a changed webhook) and its tablets' logoff after
    minutes without use (None leaves it)."""
    require_role(actor, *MANAGING_ROLES)
    problems = _unit_problems(None, name, timezone)
    shortest, longest = IDLE_LOGOFF_MINUTES
    if idle_logoff_minutes is not None and not shortest <= idle_logoff_minutes <= longest:
        problems["idle_logoff_minutes"] = (
            f"Log off after must be between {shortest} and {longest} minutes."
        )
    if webhook_url is not None:
        webhook_url = webhook_url.strip()
        problem = webhook_url_problem(webhook_url) if webhook_url else None
        if problem:
            problems["webhook_url"] = problem
    if problems:
        raise InvalidInput("The unit could not be saved.", problems)
    with write_transaction(session):
        unit = _get_unit(session, actor, unit_id)
        before = _unit_settings(unit)
        unit.name, unit.timezone = name.strip(), timezone
        if idle_logoff_minutes is not None:
            unit.idle_logoff_minutes = idle_logoff_minutes
        if webhook_url is not None and (webhook_url or None) != unit.webhook_url:
            unit.webhook_url = webhook_url or None
            follow_new_webhook(session, unit.id, unit.webhook_url)
        old, new = changes(before, _unit_settings(unit))
        if new:
            record_event(session, actor, "unit.update", "unit", unit.id, before=old, after=new)
    return unit


def current_schedule_policy(session: Session, unit_id: int) -> SchedulePolicy:
    policy = session.scalars(
        select(SchedulePolicy)
        .where(SchedulePolicy.unit_id == unit_id)
        .order_by(SchedulePolicy.version.desc())
        .limit(1)
    ).first()
    if policy is None:
        raise NotFound(f"Unit {unit_id} has no schedule policy.")
    return policy


def publish_schedule_policy(
    session: Session,
    actor: Actor,
    unit_id: int,
    *,
    bands: tuple[tuple[int, int], ...],
    grace_minutes: int,
    after_last_band_minutes: int,
    note: str,
    not_done_minutes: int = DEFAULT_NOT_DONE_MINUTES,
) -> SchedulePolicy:
    """Store a new version of the unit's schedule; earlier versions stay as they were."""
    require_role(actor, *MANAGING_ROLES)
    problems = schedule_policy_problems(
        bands, grace_minutes, after_last_band_minutes, not_done_minutes
    )
    if problems:
        raise InvalidInput("The schedule could not be saved.", problems)
    with write_transaction(session):
        unit = _get_unit(session, actor, unit_id)
        latest = session.scalar(
            select(func.max(SchedulePolicy.version)).where(SchedulePolicy.unit_id == unit.id)
        )
        policy = SchedulePolicy(
            unit_id=unit.id,
            version=(latest or 0) + 1,
            bands=[list(band) for band in bands],
            grace_minutes=grace_minutes,
            after_last_band_minutes=after_last_band_minutes,
            not_done_minutes=not_done_minutes,
            note=note.strip(),
            created_by_id=actor.user_id,
        )
        session.add(policy)
        session.flush()
        record_event(
            session,
            actor,
            "schedule_policy.publish",
            "unit",
            unit.id,
            after={
                "version": policy.version,
                "bands": policy.bands,
                "grace_minutes": grace_minutes,
                "after_last_band_minutes": after_last_band_minutes,
                "not_done_minutes": not_done_minutes,
                "note": policy.note,
            },
        )
    return policy


def _get_unit(session: Session, actor: Actor, unit_id: int) -> Unit:
    # Locked: versions of the unit's schedule are numbered one after another under this lock.
    unit = session.get(Unit, unit_id, with_for_update=True)
    if unit is None or not actor.works_in(unit.code):
        raise NotFound(f"No unit {unit_id}.")
    return unit


def _unit_record(unit: Unit) -> dict[str, object]:
    return {"code": unit.code, "name": unit.name, "timezone": unit.timezone}


def _unit_settings(unit: Unit) -> dict[str, object]:
    return {
        **_unit_record(unit),
        "webhook_url": unit.webhook_url,
        "idle_logoff_minutes": unit.idle_logoff_minutes,
    }
