"""Use cases, one transaction each (DESIGN.md §4). Views, API and CLI call these."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """A request the ward can act on: shown as a form error, a 4xx body or a CLI message."""

    def __init__(self, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or {}


class NotFound(ServiceError):
    pass


class InvalidInput(ServiceError):
    """Values that cannot be stored; `problems` maps each field ('' = whole record) to why."""


class Forbidden(ServiceError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who is acting, and from where: written into every audit event."""

    user_id: int | None
    username: str
    role: str
    request_id: str | None = None
    client_address: str | None = None
    # The units this actor works in; `all_units` for administrators and auditors.
    unit_codes: frozenset[str] = frozenset()
    all_units: bool = False

    def works_in(self, code: str) -> bool:
        return self.all_units or code in self.unit_codes


SYSTEM = Actor(user_id=None, username="system", role="admin", all_units=True)


def require_role(actor: Actor, *roles: str) -> None:
    """Refuse a use case to a role that may not perform it, whatever the entry point."""
    if actor.role not in roles:
        raise Forbidden(f"A {actor.role.replace('_', ' ')} cannot do this.")


# Who may do what (the web routes use the same sets).
CLINICAL_ROLES = ("nurse", "surgeon", "unit_admin", "admin")
MANAGING_ROLES = ("unit_admin", "admin")
