"""Logging in: credentials checked, failed log-ins throttled (counted from the audit
trail), and each log-in a session the server can end."""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.models import AuditEvent, LoginSession, User, utcnow
from flapwatch.security import dummy_verify, verify_password
from flapwatch.services import Actor, ServiceError
from flapwatch.services.audit import record_event
from flapwatch.services.tokens import token_digest


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


def end_login_sessions(session: Session, user_id: int, reason: str) -> None:
    session.execute(
        update(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
    )
