"""The append-only, hash-chained audit trail (DESIGN.md §2 "Audit event")."""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flapwatch.models import AuditChainHead, AuditEvent, utcnow
from flapwatch.services import Actor

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1


def jsonable(value: Any) -> Any:
    """Values as they go into an audit record: times ISO 8601 with offset, enums by value."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def canonical_form(event: AuditEvent) -> bytes:
    """The bytes an event's hash covers: every field but its own hash and id."""
    record = {
        "at": event.at.isoformat(),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "actor_role": event.actor_role,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "client_address": event.client_address,
        "previous_hash": event.previous_hash,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_event(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: object | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction.

    Writers take the chain head's row lock first, so concurrent transactions append one at
    a time and every event names its true predecessor.
    """
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == CHAIN_HEAD_ID)
        .values(event_count=AuditChainHead.event_count + 1)
    )
    previous_hash = session.execute(
        select(AuditChainHead.last_hash).where(AuditChainHead.id == CHAIN_HEAD_ID)
    ).scalar_one()
    event = AuditEvent(
        at=utcnow(),
        actor_id=actor.user_id,
        actor_username=actor.username,
        actor_role=actor.role,
        action=action,
        object_type=object_type,
        object_id=None if object_id is None else str(object_id),
        before=jsonable(before),
        after=jsonable(after),
        request_id=actor.request_id,
        client_address=actor.client_address,
        previous_hash=previous_hash,
    )
    event.hash = hashlib.sha256(canonical_form(event)).hexdigest()
    session.add(event)
    session.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == CHAIN_HEAD_ID)
        .values(last_hash=event.hash)
    )
    return event


def changes(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the fields that differ, for a compact before/after pair."""
    changed = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in changed}, {k: after[k] for k in changed}
