"""The append-only, hash-chained audit trail (DESIGN.md §2 "Audit event")."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import String, cast, inspect, select, update
from sqlalchemy import event as orm_events
from sqlalchemy.orm import Session, aliased

from flapwatch.domain.checks import CheckValues
from flapwatch.models import AuditChainHead, AuditEvent, Check, utcnow
from flapwatch.services import Actor

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1

# What a check recorded at the bedside: never changed once stored (a correction is an
# amendment). The database refuses it too (migration 0004's triggers).
CHECK_VALUE_ATTRIBUTES = (
    "reconstruction_id",
    "taken_at",
    "recorded_at",
    "recorded_by_id",
    *(name for name in CheckValues.__dataclass_fields__ if name != "taken_at"),
)


# Written with a check's row and never changed either: which version it is, and of what.
AMENDMENT_ATTRIBUTES = (
    "version",
    "amends_id",
    "entered_in_error",
    "amendment_reason",
    "first_recorded_at",
)


class AppendOnlyError(RuntimeError):
    """A code path tried to change or delete an audit event or a check's recorded values."""


@orm_events.listens_for(Session, "before_flush")
def _refuse_rewrites(session: Session, _context: object, _instances: object) -> None:
    """No session of flapwatch's writes over the record, whatever code asks it to."""
    for gone in session.deleted:
        if isinstance(gone, AuditEvent | Check):
            raise AppendOnlyError(f"{type(gone).__name__} {gone.id} cannot be deleted.")
    for changed in session.dirty:
        if isinstance(changed, AuditEvent) and session.is_modified(changed):
            raise AppendOnlyError(f"Audit event {changed.id} cannot be changed.")
        if isinstance(changed, Check):
            state = inspect(changed)
            rewritten = [
                name
                for name in (*CHECK_VALUE_ATTRIBUTES, *AMENDMENT_ATTRIBUTES)
                if state.attrs[name].history.has_changes()
            ]
            # Marked superseded once, when amended; never unmarked or re-pointed.
            if any(v is not None for v in state.attrs.superseded_by_id.history.deleted):
                rewritten.append("superseded_by_id")
            if rewritten:
                raise AppendOnlyError(
                    f"Check {changed.id}'s recorded {', '.join(rewritten)} cannot be changed: "
                    "a correction is an amendment."
                )


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


# --- verifying the trail ---------------------------------------------------------------------

# Check columns whose recorded values the trail holds (the "check.record" event's `after`;
# who recorded it is the event's actor).
RECORDED_CHECK_FIELDS = (
    *(name for name in CHECK_VALUE_ATTRIBUTES if name != "recorded_by_id"),
    "rule_set_version_id",
    *AMENDMENT_ATTRIBUTES,
)
# What a first version recorded before amendments existed said of them by saying nothing.
_FIRST_VERSION = {"version": 1, "amends_id": None, "entered_in_error": False}


@dataclass(frozen=True)
class Break:
    """The first place the stored record and its audit trail disagree."""

    what: str  # "audit event 17", "check 5"
    reason: str

    def __str__(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass(frozen=True)
class Verification:
    events: int
    checks: int
    broken: Break | None

    @property
    def intact(self) -> bool:
        return self.broken is None


_BATCH = 1000


def verify_audit_trail(session: Session) -> Verification:
    """Recompute the hash chain, then hold every check against the values the trail recorded.

    Streamed in batches, so it runs in constant memory however long the trail. Reports the
    first disagreement: an event edited (its hash no longer matches), removed or inserted (the
    next one's previous_hash names another), the end of the chain cut off (the chain head
    remembers the last hash and the count), a check row edited, removed, or added without its
    record.
    """
    chain = session.scalars(
        select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=_BATCH)
    )
    with chain:  # closed even when a break ends the walk early: an open cursor holds a read
        broken, events, previous = _walk_chain(chain)
    if broken is not None:
        return Verification(events, 0, broken)
    head = session.get(AuditChainHead, CHAIN_HEAD_ID)
    if head is not None and (head.last_hash != previous or head.event_count != events):
        return Verification(
            events,
            0,
            Break(
                "the end of the trail",
                f"{head.event_count} events were written, {events} remain "
                "(the last ones were removed)"
                if head.event_count != events
                else "the last event is not the one last written",
            ),
        )
    checks, broken = _verify_checks(session)
    return Verification(events, checks, broken)


def _walk_chain(chain: Iterable[AuditEvent]) -> tuple[Break | None, int, str]:
    previous, events = GENESIS_HASH, 0
    for event in chain:
        if event.previous_hash != previous:
            return (
                Break(
                    f"audit event {event.id}",
                    "does not follow the event before it (an event was removed or inserted)",
                ),
                events,
                previous,
            )
        if hashlib.sha256(canonical_form(event)).hexdigest() != event.hash:
            return (
                Break(f"audit event {event.id}", "its contents no longer match its hash"),
                events,
                previous,
            )
        previous, events = event.hash, events + 1
    return None, events, previous


def _recorded_checks() -> Any:
    return select(AuditEvent.object_id, AuditEvent.after, AuditEvent.actor_id).where(
        AuditEvent.object_type == "check", AuditEvent.action.in_(("check.record", "check.amend"))
    )


def _verify_checks(session: Session) -> tuple[int, Break | None]:
    recorded = _recorded_checks().subquery()
    rows = session.execute(
        select(Check, recorded.c.after, recorded.c.actor_id)
        .outerjoin(recorded, recorded.c.object_id == cast(Check.id, String))
        .order_by(Check.id)
        .execution_options(yield_per=_BATCH)
    )
    with rows:
        count, broken = _compare_checks(rows)
    if broken is not None:
        return count, broken
    missing = session.execute(
        select(recorded.c.object_id)
        .outerjoin(Check, recorded.c.object_id == cast(Check.id, String))
        .where(Check.id.is_(None))
        .limit(1)
    ).scalar()
    if missing is not None:
        return count, Break(f"check {missing}", "was recorded but is no longer stored")
    return count, _verify_versions(session)


def _compare_checks(rows: Iterable[Any]) -> tuple[int, Break | None]:
    count = 0
    for check, after, recorder in rows:
        count += 1
        if after is None:
            return count, Break(f"check {check.id}", "has no record in the audit trail")
        stored = jsonable({name: getattr(check, name) for name in RECORDED_CHECK_FIELDS})
        expected = {**_FIRST_VERSION, "first_recorded_at": after.get("recorded_at"), **after}
        differing = [
            name for name in RECORDED_CHECK_FIELDS if not _same(stored[name], expected.get(name))
        ]
        if check.recorded_by_id != recorder:
            differing.append("recorded_by_id")
        # Who took it is in the record of every check written since it was kept.
        if "taken_by_id" in after and check.taken_by_id != after["taken_by_id"]:
            differing.append("taken_by_id")
        if differing:
            return count, Break(
                f"check {check.id}", f"differs from what was recorded ({', '.join(differing)})"
            )
    return count, None


def _verify_versions(session: Session) -> Break | None:
    """Every amended check points at the version that amends it, and back."""
    later = aliased(Check)
    wrongly_superseded = session.scalar(
        select(Check.id)
        .outerjoin(later, later.id == Check.superseded_by_id)
        .where(
            Check.superseded_by_id.is_not(None),
            (later.id.is_(None)) | (later.amends_id != Check.id),
        )
        .limit(1)
    )
    if wrongly_superseded is not None:
        return Break(
            f"check {wrongly_superseded}", "is marked replaced by a version that does not amend it"
        )
    earlier = aliased(Check)
    unmarked = session.scalar(
        select(earlier.id)
        .join(Check, Check.amends_id == earlier.id)
        .where((earlier.superseded_by_id.is_(None)) | (earlier.superseded_by_id != Check.id))
        .limit(1)
    )
    if unmarked is not None:
        return Break(f"check {unmarked}", "was amended but is no longer marked replaced")
    return None


def _same(stored: Any, recorded: Any) -> bool:
    if isinstance(stored, float) and isinstance(recorded, int | float):
        return abs(stored - recorded) < 1e-9
    if isinstance(stored, str) and isinstance(recorded, str) and stored != recorded:
        # The same instant may have been recorded with another UTC offset (the ward's clock).
        try:
            return datetime.fromisoformat(stored) == datetime.fromisoformat(recorded)
        except ValueError:
            return False
    return stored == recorded
