"""Who may open what: roles on every route, units on every object."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, request
from flask_login import current_user, login_required

from flapwatch.domain.vocabulary import Role
from flapwatch.models import User
from flapwatch.services import Actor

F = TypeVar("F", bound=Callable[..., Any])

EVERY_ROLE = tuple(Role.values())
CLINICAL = (Role.NURSE, Role.SURGEON, Role.UNIT_ADMIN, Role.ADMIN)
READERS = (Role.NURSE, Role.SURGEON, Role.UNIT_ADMIN, Role.ADMIN, Role.AUDITOR)
MANAGERS = (Role.UNIT_ADMIN, Role.ADMIN)
ADMINS = (Role.ADMIN,)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Log-in required, and the user's role must be one of `roles` (else 403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        guarded.allowed_roles = frozenset(roles)  # type: ignore[attr-defined]
        return guarded  # type: ignore[return-value]

    return decorate


def current_actor() -> Actor:
    return actor_of(current_user)


def actor_of(user: User) -> Actor:
    """The account acting in this request (logged-in or by API token), for the services."""
    return Actor(
        user_id=user.id,
        username=user.username,
        role=str(user.role),
        request_id=g.get("request_id"),
        client_address=request.remote_addr,
        unit_codes=frozenset(unit.code for unit in user.units),
        all_units=user.sees_every_unit,
    )
