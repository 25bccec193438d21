"""Who may open what: roles on every route (pages and API alike), units on every object."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort, g, request
from flask_login import current_user, login_required

from flapwatch.domain.vocabulary import Role
from flapwatch.models import User
from flapwatch.services import CLINICAL_ROLES, MANAGING_ROLES, Actor
from flapwatch.services.escalations import REVIEWING_ROLES
from flapwatch.services.exports import EXPORT_ROLES
from flapwatch.services.monitoring import OVERRIDE_ROLES
from flapwatch.services.outcomes import OUTCOME_ROLES

F = TypeVar("F", bound=Callable[..., Any])

# The roles each kind of route is open to: the services' own sets, so that a page, an API
# operation and the use case behind both refuse the same people.
EVERY_ROLE = tuple(Role.values())
READERS = EVERY_ROLE
CLINICAL = CLINICAL_ROLES
MANAGERS = MANAGING_ROLES
REVIEWERS = REVIEWING_ROLES
EXPORTERS = EXPORT_ROLES
SCHEDULERS = OVERRIDE_ROLES  # a flap's own schedule: a surgeon's order
OUTCOMES = OUTCOME_ROLES  # returns to theatre and final outcomes
ADMINS = (Role.ADMIN.value,)


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
