"""API tokens: a device or another system acts as one staff account, with its role and units.

A token is 256 random bits; only its SHA-256 is stored (a slow password hash buys nothing
against a secret that long, and every API request looks one up). Revoked or expired tokens,
and tokens of deactivated accounts, authenticate no one.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from flapwatch.db import write_transaction
from flapwatch.models import ApiToken, User, utcnow
from flapwatch.services import Actor, InvalidInput, NotFound, require_role
from flapwatch.services.audit import record_event

TOKEN_PREFIX = "fwt_"  # noqa: S105 - a marker, not a secret
# How often a token's last use is written down: a hint for an administrator tidying tokens,
# not worth a write on every request.
LAST_USED_RESOLUTION = timedelta(minutes=5)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(
    session: Session,
    actor: Actor,
    username: str,
    *,
    name: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `username`; the plain token is returned once and never stored."""
    require_role(actor, "admin")
    now = now or utcnow()
    problems: dict[str, str] = {}
    if not name.strip():
        problems["name"] = "Say what the token is for, e.g. 'Doppler gateway bed 1-12'."
    elif len(name.strip()) > 200:
        problems["name"] = "The name must be at most 200 characters."
    if expires_at is not None and expires_at <= now:
        problems["expires_at"] = "The expiry must be in the future."
    with write_transaction(session):
        user = session.scalars(select(User).where(User.username == username)).first()
        if user is None:
            problems["username"] = f"No account {username}."
        elif not user.active:
            problems["username"] = f"The account {username} is deactivated."
        if problems:
            raise InvalidInput("The token was not created.", problems)
        assert user is not None
        plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = ApiToken(
            user_id=user.id,
            name=name.strip(),
            prefix=plain[:12],
            token_hash=token_digest(plain),
            created_at=now,
            created_by=actor.username,
            expires_at=expires_at,
        )
        session.add(token)
        session.flush()
        record_event(
            session,
            actor,
            "api_token.create",
            "api_token",
            token.id,
            after={
                "username": user.username,
                "name": token.name,
                "prefix": token.prefix,
                "expires_at": expires_at,
            },
        )
    return token, plain


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    require_role(actor, "admin")
    with write_transaction(session):
        token = session.get(ApiToken, token_id, with_for_update=True)
        if token is None:
            raise NotFound(f"No token {token_id}.")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            token.revoked_by = actor.username
            record_event(
                session,
                actor,
                "api_token.revoke",
                "api_token",
                token.id,
                after={"prefix": token.prefix, "name": token.name},
            )
    return token


def list_tokens(session: Session, actor: Actor, username: str | None = None) -> list[ApiToken]:
    require_role(actor, "admin")
    query = select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id)
    if username is not None:
        query = query.join(ApiToken.user).where(User.username == username)
    return list(session.scalars(query))


def user_for_token(session: Session, presented: str, now: datetime | None = None) -> User | None:
    """The active account a token acts as, or None (unknown, revoked, expired, deactivated)."""
    now = now or utcnow()
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > 100:
        return None
    token = session.scalars(
        select(ApiToken)
        .where(ApiToken.token_hash == token_digest(presented))
        .options(selectinload(ApiToken.user).selectinload(User.units))
    ).first()
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        with write_transaction(session):
            token.last_used_at = now
    return token.user
