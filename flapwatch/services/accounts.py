"""Staff accounts: who may create and change which, their roles, units and passwords."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Unit, User
from flapwatch.security import MIN_PASSWORD_LENGTH, hash_password
from flapwatch.services import (
    MANAGING_ROLES,
    Actor,
    Forbidden,
    InvalidInput,
    NotFound,
    require_role,
)
from flapwatch.services.audit import changes, record_event
from flapwatch.services.login import end_login_sessions

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


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
            end_login_sessions(session, user.id, "deactivated")
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
        end_login_sessions(session, user.id, "password")
        record_event(session, actor, "user.set_password", "user", user.id)


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
