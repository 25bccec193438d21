"""Idempotency-Key: a POST retried after a dropped connection is answered, not done again.

The record of a request's answer is written in the transaction that stored what the request
stored, so either both are there or neither is. Only successful answers are kept: a refused
request stored nothing and may be sent again with the same key once it is corrected (as
Stripe's API does).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.models import IdempotencyRecord, utcnow

# A tablet offline over a night shift still retries safely; after this the key may be reused.
KEEP_FOR = timedelta(days=7)
MAX_KEY_LENGTH = 255

T = TypeVar("T")


@dataclass(frozen=True)
class Answer:
    """A successful answer as it is kept: what a retry with the same key is given again."""

    status: int
    body: dict[str, Any]
    location: str | None = None


def once(
    session: Session,
    user_id: int,
    key: str,
    request_fingerprint: str,
    produce: Callable[[], T],
    answer_of: Callable[[T], Answer],
) -> T | IdempotencyRecord:
    """What `produce` stored, with its answer kept under the key in the same transaction; or,
    when the key was used before (or by a request at this very moment), the earlier record,
    and nothing done."""
    try:
        with write_transaction(session):
            earlier = find_record(session, user_id, key)
            if earlier is not None:
                return earlier
            produced = produce()
            answer = answer_of(produced)
            remember(session, user_id, key, request_fingerprint, answer)
    except IntegrityError:
        # The same key arrived twice at once: the other request stored its answer first, and
        # everything this one stored has been rolled back.
        earlier = find_record(session, user_id, key)
        if earlier is None:
            raise
        return earlier
    return produced


def key_problem(key: str) -> str | None:
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        return f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters."
    if not all(" " <= character <= "~" for character in key):
        return "Idempotency-Key must be printable ASCII, e.g. a UUID."
    return None


def fingerprint(method: str, path: str, body: Any) -> str:
    """The request's identity: the same JSON written with other spacing or key order is the
    same request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def form_fingerprint(api_path: str) -> str:
    """The mark of a check sent by the ward's own form with a key: the same check, if the
    tablet later sends it through the API at `api_path` with that key (after the form's answer
    was lost to a dropped connection), whatever the JSON looks like."""
    return f"form {api_path}"


def find_record(session: Session, user_id: int, key: str) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    ).first()


def remember(
    session: Session, user_id: int, key: str, request_fingerprint: str, answer: Answer
) -> None:
    """Inside the request's transaction: a concurrent duplicate fails here on the unique key,
    and its transaction, with everything it stored, is rolled back."""
    session.add(
        IdempotencyRecord(
            user_id=user_id,
            key=key,
            fingerprint=request_fingerprint,
            status_code=answer.status,
            body=answer.body,
            location=answer.location,
        )
    )
    session.flush()


def forget_expired(session: Session, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - KEEP_FOR
    with write_transaction(session):
        result = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
        )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
