"""Units, their schedule policies, and staff accounts."""

from __future__ import annotations

import logging
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.rules import DEFAULT_RULE_SET, rule_set_to_json
from flapwatch.domain.schedule import (
    DEFAULT_AFTER_LAST_BAND_MINUTES,
    DEFAULT_BANDS,
    DEFAULT_GRACE_MINUTES,
    schedule_policy_problems,
)
from flapwatch.domain.vocabulary import Role
from flapwatch.models import (
    AuditEvent,
    LoginSession,
    RuleSetVersion,
    SchedulePolicy,
    Unit,
    User,
    utcnow,
)
from flapwatch.security import MIN_PASSWORD_LENGTH, dummy_verify, hash_password, verify_password
from flapwatch.services import (
    MANAGING_ROLES,
    Actor,
    Forbidden,
    InvalidInput,
    NotFound,
    ServiceError,
    require_role,
)
from flapwatch.services.audit import changes, record_event
from flapwatch.services.notifications import follow_new_webhook, webhook_url_problem
from flapwatch.services.tokens import token_digest

UNIT_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
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
) -> SchedulePolicy:
    """Store a new version of the unit's schedule; earlier versions stay as they were."""
    require_role(actor, *MANAGING_ROLES)
    problems = schedule_policy_problems(bands, grace_minutes, after_last_band_minutes)
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


def unit_zone(unit: Unit) -> ZoneInfo:
    try:
        return ZoneInfo(unit.timezone)
    except ZoneInfoNotFoundError:  # pragma: no cover - refused on input; kept for old rows
        return ZoneInfo("UTC")


# --- staff -----------------------------------------------------------------------------


# The roles a unit coordinator hands out; administrators and auditors are made by an admin.
WARD_ROLES = (Role.NURSE, Role.SURGEON, Role.UNIT_ADMIN)


def grantable_roles(actor_role: str) -> tuple[Role, ...]:
    if actor_role == Role.ADMIN:
        return tuple(Role)
    return WARD_ROLES if actor_role == Role.UNIT_ADMIN else ()


def _may_grant(actor_role: str, role: Role) -> bool:
    return role in grantable_roles(actor_role)


def may_manage_account(actor: Actor, user: User) -> bool:
    """A coordinator manages ward roles working only in their units; an admin, anyone."""
    in_my_units = actor.all_units or {unit.code for unit in user.units} <= actor.unit_codes
    return in_my_units and _may_grant(actor.role, user.role)


def get_staff_member(session: Session, actor: Actor, user_id: int) -> User:
    """An account the actor manages. One outside all their units is not there for them."""
    user = session.get(User, user_id, options=[selectinload(User.units)])
    if user is None or not (actor.all_units or any(actor.works_in(u.code) for u in user.units)):
        raise NotFound(f"No user {user_id}.")
    if not may_manage_account(actor, user):
        raise Forbidden(
            "This account also works in units you do not manage, or has a role only an "
            "administrator manages."
        )
    return user


def _user_record(user: User) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "active": user.active,
        "units": sorted(unit.code for unit in user.units),
    }


def _password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Password must be at least {MIN_PASSWORD_LENGTH} characters."
    return None


def create_user(
    session: Session,
    actor: Actor,
    *,
    username: str,
    display_name: str,
    role: Role | str,
    password: str,
    unit_codes: list[str],
) -> User:
    require_role(actor, *MANAGING_ROLES)
    username = username.strip().lower()
    problems: dict[str, str] = {}
    if not USERNAME.match(username):
        problems["username"] = (
            "Username must be 2–64 lower-case letters, digits, dots, hyphens or underscores."
        )
    if role not in Role.values():
        problems["role"] = f"Role must be one of: {', '.join(Role.values())}."
    elif not _may_grant(actor.role, Role(role)):
        raise Forbidden(f"A {actor.role} cannot create a {role} account.")
    if (password_problem := _password_problem(password)) is not None:
        problems["password"] = password_problem
    password_hash = hash_password(password) if not problems else ""
    with write_transaction(session):
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            problems["username"] = f"The username {username} is taken."
        units = _units_by_code(session, actor, unit_codes, problems)
        if problems:
            raise InvalidInput("The account could not be created.", problems)
        user = User(
            username=username,
            display_name=display_name.strip() or username,
            role=Role(role),
            password_hash=password_hash,
            units=units,
        )
        session.add(user)
        session.flush()
        record_event(session, actor, "user.create", "user", user.id, after=_user_record(user))
    return user


def update_user(
    session: Session,
    actor: Actor,
    user_id: int,
    *,
    display_name: str,
    role: Role | str,
    active: bool,
    unit_codes: list[str],
) -> User:
    require_role(actor, *MANAGING_ROLES)
    problems: dict[str, str] = {}
    if role not in Role.values():
        raise InvalidInput("The account could not be saved.", {"role": "Unknown role."})
    with write_transaction(session):
        user = get_staff_member(session, actor, user_id)
        if not _may_grant(actor.role, Role(role)):
            raise Forbidden(f"A {actor.role} cannot change a {user.role} account to {role}.")
        if user.id == actor.user_id and (not active or role != user.role):
            problems["role"] = "You cannot change your own role or deactivate yourself."
        units = _units_by_code(session, actor, unit_codes, problems)
        if problems:
            raise InvalidInput("The account could not be saved.", problems)
        before = _user_record(user)
        user.display_name = display_name.strip() or user.username
        user.role = Role(role)
        if user.active and not active:
            _end_login_sessions(session, user.id, "deactivated")
        user.active = active
        user.units = units
        old, new = changes(before, _user_record(user))
        if new:
            record_event(session, actor, "user.update", "user", user.id, before=old, after=new)
    return user


def set_password(session: Session, actor: Actor, user_id: int, password: str) -> None:
    require_role(actor, *MANAGING_ROLES)
    if (problem := _password_problem(password)) is not None:
        raise InvalidInput("The password was not changed.", {"password": problem})
    password_hash = hash_password(password)
    with write_transaction(session):
        # Setting someone's password is taking over their account: the same reach as editing it.
        user = get_staff_member(session, actor, user_id)
        user.password_hash = password_hash
        # Whoever was logged in as them (the reason for a reset, often) is logged out.
        _end_login_sessions(session, user.id, "password")
        record_event(session, actor, "user.set_password", "user", user.id)


@dataclass(frozen=True)
class LoginLimits:
    """How many failed log-ins within `window` lock an account, or an address."""

    per_account: int
    per_address: int
    window: timedelta


class LoginLocked(ServiceError):
    """Too many failed log-ins: refused without looking at the password."""

    def __init__(self, message: str, minutes: int) -> None:
        super().__init__(message)
        self.minutes = minutes


security_log = logging.getLogger("flapwatch.security")


def authenticate(
    session: Session,
    username: str,
    password: str,
    *,
    request_id: str | None,
    client: str | None,
    limits: LoginLimits,
    now: datetime | None = None,
) -> User | None:
    """The user these credentials belong to, or None. Success and failure are both audited.

    Raises LoginLocked, audited as `login.refused`, while the account (known or not, so that
    the answer tells nothing of which accounts exist) or the address has had too many failures
    within the window: the password is then not even checked.
    """
    now = now or utcnow()
    username = username.strip().lower()[:64]
    user = session.scalars(select(User).where(User.username == username)).first()
    actor = Actor(
        user_id=user.id if user else None,
        username=username,
        role=user.role if user else "unknown",
        request_id=request_id,
        client_address=client,
    )
    lock = _login_lock(session, username, user, client, limits, now)
    if lock is not None:
        reason, failures, until = lock
        minutes = max(1, math.ceil((until - now).total_seconds() / 60))
        with write_transaction(session):
            record_event(
                session,
                actor,
                "login.refused",
                "user",
                user.id if user else None,
                after={"locked": reason, "failures": failures, "until": until.isoformat()},
            )
        security_log.warning(
            "log-in refused: %s locked after %d failed log-ins (user %r, address %s)",
            reason,
            failures,
            username,
            client,
        )
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        raise LoginLocked(
            f"Too many failed log-ins. Log-in is locked for {wait}; a unit coordinator can "
            "reset the password sooner."
            if reason == "account"
            else f"Too many failed log-ins from this device. Log-in here is locked for {wait}.",
            minutes,
        )
    if user is None:
        dummy_verify(password)
        ok = False
    else:
        ok = verify_password(user.password_hash, password) and user.active
    with write_transaction(session):
        record_event(
            session, actor, "login" if ok else "login.failed", "user", user.id if user else None
        )
    return user if ok else None


def _login_lock(
    session: Session,
    username: str,
    user: User | None,
    client: str | None,
    limits: LoginLimits,
    now: datetime,
) -> tuple[str, int, datetime] | None:
    """("account" or "address", the failures counted, when the lock lifts), or None."""
    start = now - limits.window
    # An account's count starts again at its last successful log-in or password reset.
    cleared = [
        session.scalar(
            select(func.max(AuditEvent.at)).where(
                AuditEvent.action == "login", AuditEvent.actor_username == username
            )
        )
    ]
    if user is not None:
        cleared.append(
            session.scalar(
                select(func.max(AuditEvent.at)).where(
                    AuditEvent.object_type == "user",
                    AuditEvent.object_id == str(user.id),
                    AuditEvent.action == "user.set_password",
                )
            )
        )
    account_start = max([start, *(at for at in cleared if at is not None)])
    checks = [("account", limits.per_account, AuditEvent.actor_username == username, account_start)]
    if client:
        checks.append(("address", limits.per_address, AuditEvent.client_address == client, start))
    for reason, limit, who, since in checks:
        newest = list(
            session.scalars(
                select(AuditEvent.at)
                .where(AuditEvent.action == "login.failed", who, AuditEvent.at > since)
                .order_by(AuditEvent.at.desc())
                .limit(limit)
            )
        )
        if len(newest) >= limit:
            # Locked until the oldest of the newest `limit` failures leaves the window.
            return reason, len(newest), newest[-1] + limits.window
    return None


def start_login_session(session: Session, user: User) -> str:
    """A new log-in of `user`: the token for their session cookie (only its digest is kept)."""
    token = secrets.token_urlsafe(32)
    with write_transaction(session):
        session.add(LoginSession(user_id=user.id, token_hash=token_digest(token)))
    return token


def record_logout(
    session: Session, actor: Actor, reason: str = "user", login_token: str | None = None
) -> None:
    """`reason`: "user" (logged out), "switch" (switched user), "idle" (logged off unused).
    The log-in ends on the server too: the cookie, wherever a copy of it is, opens nothing."""
    with write_transaction(session):
        if login_token:
            session.execute(
                update(LoginSession)
                .where(
                    LoginSession.token_hash == token_digest(login_token),
                    LoginSession.ended_at.is_(None),
                )
                .values(ended_at=utcnow(), end_reason=reason)
            )
        record_event(session, actor, "logout", "user", actor.user_id, after={"reason": reason})


def _end_login_sessions(session: Session, user_id: int, reason: str) -> None:
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )


def _units_by_code(
    session: Session, actor: Actor, codes: list[str], problems: dict[str, str]
) -> list[Unit]:
    wanted = sorted({code.strip().upper() for code in codes if code.strip()})
    outside = [code for code in wanted if not actor.works_in(code)]
    if outside:
        raise Forbidden(f"You do not manage unit {', '.join(outside)}.")
    units = list(session.scalars(select(Unit).where(Unit.code.in_(wanted)))) if wanted else []
    missing = sorted(set(wanted) - {unit.code for unit in units})
    if missing:
        problems["units"] = f"No such unit: {', '.join(missing)}."
    return units
