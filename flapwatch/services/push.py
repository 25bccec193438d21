"""The phones and browsers where a user turned on notifications (Web Push subscriptions).

A subscription belongs to the user who made it; the same endpoint sent again by another user
(a phone handed over at the end of a shift) moves to them, and the earlier owner's ends. The
escalation chain's push channel notifies every subscription of the user it names
(services/notifications.queue_page).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.db import write_transaction
from flapwatch.domain.text import has_control_characters
from flapwatch.models import PushSubscription, utcnow
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.audit import record_event

# As long as a notice's address (notification_deliveries.url): real push services' endpoints
# are a few hundred characters.
ENDPOINT_MAX_LENGTH = 500
USER_AGENT_MAX_LENGTH = 300


@dataclass(frozen=True)
class Subscribed:
    subscription: PushSubscription
    created: bool


def _b64url_bytes(value: Any) -> bytes | None:
    if not isinstance(value, str) or not value or len(value) > 200:
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def subscription_problems(
    endpoint: Any, p256dh: Any, auth: Any, *, allow_http: bool = False
) -> dict[str, str]:
    """What is wrong with a subscription a browser sent, by field."""
    problems: dict[str, str] = {}
    if (
        not isinstance(endpoint, str)
        or len(endpoint) > ENDPOINT_MAX_LENGTH
        or has_control_characters(endpoint)
        or any(char.isspace() for char in endpoint)
    ):
        problems["endpoint"] = "The push service's address is missing or too long."
    else:
        parts = urlsplit(endpoint)
        schemes = ("https", "http") if allow_http else ("https",)
        if parts.scheme not in schemes or not parts.hostname:
            problems["endpoint"] = "The push service's address must be https."
    key = _b64url_bytes(p256dh)
    if key is None or len(key) != 65 or key[0] != 4:
        problems["keys.p256dh"] = "The phone's key must be a P-256 public key (65 bytes)."
    secret = _b64url_bytes(auth)
    if secret is None or len(secret) != 16:
        problems["keys.auth"] = "The phone's authentication secret must be 16 bytes."
    return problems


def subscribe(
    session: Session,
    actor: Actor,
    endpoint: Any,
    p256dh: Any,
    auth: Any,
    *,
    user_agent: str | None = None,
    allow_http: bool = False,
) -> Subscribed:
    """This phone notifies `actor` from now on."""
    assert actor.user_id is not None, "a subscription belongs to a person"
    problems = subscription_problems(endpoint, p256dh, auth, allow_http=allow_http)
    if problems:
        raise InvalidInput("Notifications were not turned on.", problems)
    agent = (user_agent or "")[:USER_AGENT_MAX_LENGTH] or None
    if agent is not None and has_control_characters(agent):
        agent = None
    now = utcnow()
    with write_transaction(session):
        existing = session.scalars(
            select(PushSubscription).where(PushSubscription.endpoint == endpoint).with_for_update()
        ).first()
        if existing is not None and existing.user_id == actor.user_id and not existing.ended_at:
            existing.p256dh, existing.auth = p256dh, auth
            return Subscribed(existing, created=False)
        if existing is not None:
            # A phone handed over, or turned on again after it ended: a new subscription, the
            # old one's history kept under a retired address.
            existing.endpoint = f"ended:{existing.id}:{endpoint}"[:ENDPOINT_MAX_LENGTH]
            existing.ended_at = existing.ended_at or now
            existing.ended_reason = existing.ended_reason or "Subscribed again on this phone."
            session.flush()
        subscription = PushSubscription(
            user_id=actor.user_id,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            user_agent=agent,
            created_at=now,
        )
        session.add(subscription)
        session.flush()
        record_event(
            session,
            actor,
            "push.subscribe",
            "push_subscription",
            subscription.id,
            after={"service": urlsplit(endpoint).netloc, "user_agent": agent},
        )
        return Subscribed(subscription, created=True)


def unsubscribe(session: Session, actor: Actor, endpoint: Any) -> bool:
    """Notifications off on this phone; False when it had none for `actor`."""
    if not isinstance(endpoint, str):
        return False
    with write_transaction(session):
        subscription = session.scalars(
            select(PushSubscription)
            .where(
                PushSubscription.endpoint == endpoint,
                PushSubscription.user_id == actor.user_id,
                PushSubscription.ended_at.is_(None),
            )
            .with_for_update()
        ).first()
        if subscription is None:
            return False
        subscription.ended_at = utcnow()
        subscription.ended_reason = "Turned off on the phone."
        record_event(session, actor, "push.unsubscribe", "push_subscription", subscription.id)
        return True


def active_subscriptions(session: Session, user_id: int) -> list[PushSubscription]:
    return list(
        session.scalars(
            select(PushSubscription)
            .where(PushSubscription.user_id == user_id, PushSubscription.ended_at.is_(None))
            .order_by(PushSubscription.id)
        )
    )
