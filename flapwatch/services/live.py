"""Live events: the ward board and the escalation queue updating within seconds of a change.

A change that a board or a queue shows (a check recorded, an escalation opened, added to,
answered or closed) writes a `live_events` row in its own transaction: a page is told of
nothing that did not commit, and misses nothing that did. The row's id is the event stream's
id (`/api/v1/units/{code}/events`), so a page that reconnects with `Last-Event-ID` catches up
from the table.

Telling the event servers: on PostgreSQL a `pg_notify` in the same transaction carries the
event itself and is delivered to every server's LISTEN when it commits, in commit order
(several app servers on one database; a server reads nothing to pass it on, and an event whose
id was drawn before another's but committed after it is not skipped, as reading "ids after the
last one seen" would). On SQLite (one machine, one writer at a time: ids commit in order) the
servers look for new rows twice a second. The event
carries ids and the severity, never a patient's name: the page fetches what it shows, with the
viewer's own access.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.models import LiveEvent, utcnow
from flapwatch.services.notifications import Doorbell

# The PostgreSQL channel every event server listens on; a notification's payload is
# "<unit id> <event id> <kind> <data>" (see `notification` and `parse_notification`).
CHANNEL = "flapwatch_live"
# Channels are the database's, not a schema's: a deployment in a schema of its own (a second
# hospital site, a test run) has a channel of its own, so that its streams never carry
# another's events. The name is kept under PostgreSQL's 63 bytes whatever the schema's.
CHANNEL_SQL = (
    f"CASE current_schema() WHEN 'public' THEN '{CHANNEL}' "
    f"ELSE '{CHANNEL}_' || left(md5(current_schema()), 16) END"
)
KINDS = ("check.recorded", "escalation.opened", "escalation.updated", "flap.updated")
KEEP = timedelta(hours=1)
_PUBLISHED = "flapwatch.live_published"


def publish(session: Session, unit_id: int, kind: str, **payload: Any) -> LiveEvent:
    """Inside the caller's transaction: the event, and on PostgreSQL its notification."""
    assert kind in KINDS, kind
    live = LiveEvent(unit_id=unit_id, kind=kind, payload=payload, at=utcnow())
    session.add(live)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text(f"SELECT pg_notify({CHANNEL_SQL}, :message)"),  # noqa: S608 - no input in it
            {"message": notification(live)},
        )
    session.info[_PUBLISHED] = True
    return live


def data_of(event_id: int, kind: str, payload: dict[str, Any]) -> str:
    """The event's `data` on the wire: its id and kind with its payload, as compact JSON."""
    return json.dumps({"id": event_id, "kind": kind, **payload}, separators=(",", ":"))


def notification(live: LiveEvent) -> str:
    """The event as a `pg_notify` payload (ids and a severity: far under its 8000 bytes)."""
    return f"{live.unit_id} {live.id} {live.kind} {data_of(live.id, live.kind, live.payload)}"


def parse_notification(message: str) -> tuple[int, int, str, str]:
    """(unit id, event id, kind, data) of a notification's payload."""
    unit_id, event_id, kind, data = message.split(" ", 3)
    return int(unit_id), int(event_id), kind, data


def events_after(
    session: Session, unit_ids: list[int] | None, after_id: int, limit: int = 200
) -> list[LiveEvent]:
    """Events since `after_id`, oldest first; of `unit_ids` only, or of every unit (None)."""
    query = select(LiveEvent).where(LiveEvent.id > after_id)
    if unit_ids is not None:
        query = query.where(LiveEvent.unit_id.in_(unit_ids))
    return list(session.scalars(query.order_by(LiveEvent.id).limit(limit)))


def latest_id(session: Session) -> int:
    return int(session.scalar(select(func.max(LiveEvent.id))) or 0)


def forget_old(session: Session, now: datetime | None = None) -> int:
    """Events older than an hour: no page that reconnects needs them (it reloads instead)."""
    cutoff = (now or utcnow()) - KEEP
    with write_transaction(session):
        removed = session.execute(delete(LiveEvent).where(LiveEvent.at < cutoff)).rowcount
    return int(removed or 0)


# Rung in this process when a transaction that published an event commits: a WSGI stream in
# the same process (flapwatch/http/live.py) wakes at once instead of at its next look. The
# notice sender's kind of bell, reset in a forked child as the sender's is.
bell = Doorbell()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=bell._reset)


@event.listens_for(Session, "after_commit")
def _ring_when_published(session: Session) -> None:
    if session.info.pop(_PUBLISHED, False):
        bell.ring()


@event.listens_for(Session, "after_rollback")
def _forget_published(session: Session) -> None:
    session.info.pop(_PUBLISHED, None)
