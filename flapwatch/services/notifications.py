"""Escalation notices: to a unit's webhook (a paging gateway, say), and the escalation
chain's pages on each contact's channels (services/channels.py sends each kind).

Queued inside the transaction that opens or acknowledges the escalation, so a notice is never
lost; sent afterwards, outside any transaction, so a slow or failing webhook never holds up or
loses a nurse's check.

Sending (`deliver_due`) runs in three steps, each safe for several processes at once:
1. claim: one short write transaction pushes the due deliveries' `next_attempt_at` a lease
   ahead, so no other sender picks them up while this one is posting (PostgreSQL skips rows
   another sender has locked; SQLite lets one writer at a time in anyway);
2. post each, outside any transaction, with a short timeout;
3. record: one short write transaction per attempt stores it and marks the delivery
   delivered, schedules the next try (exponential backoff), or gives up after the last try.
A sender that dies after claiming leaves its deliveries to be claimed again once the lease
runs out; a receiver drops the duplicate by its `Idempotency-Key`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import event, exists, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from flapwatch.db import write_transaction
from flapwatch.domain.chains import Channel
from flapwatch.domain.vocabulary import DeliveryStatus, Role
from flapwatch.models import (
    Escalation,
    NotificationAttempt,
    NotificationDelivery,
    Patient,
    PushSubscription,
    Reconstruction,
    User,
    user_units,
    utcnow,
)
from flapwatch.services.channels import (
    AttemptResult,
    MailSettings,
    PushSettings,
    PushTarget,
    page_mail,
    post_json,
    push_notification,
    send_mail,
    send_push,
)
from flapwatch.services.photos import notice_photo

# A child of the app's logger ("flapwatch"), usable from the sender thread without an app
# context: every attempt is logged here as well as stored.
logger = logging.getLogger("flapwatch.notifications")


# --- the webhook address ---------------------------------------------------------------------


def _where(url: str, channel: str = "webhook") -> str:
    """The address without its query: logs must not spread a gateway's secret token (nor a
    phone's push endpoint, whose path is the phone's)."""
    if "://" not in url:
        return url  # an e-mail address
    parts = urlsplit(url)
    if channel == "push":
        return f"the phone at {parts.scheme}://{parts.netloc}"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


# --- queueing, inside the escalation's transaction -------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


def escalation_payload(escalation: Escalation, event: str) -> dict[str, object]:
    reconstruction = escalation.reconstruction
    patient = reconstruction.patient
    return {
        "event": f"escalation.{event}",
        "escalation_id": escalation.id,
        "severity": escalation.severity.value,
        "reasons": list(escalation.reasons),
        "opened_at": _iso(escalation.opened_at),
        "acknowledged_at": _iso(escalation.acknowledged_at),
        # "I'm coming": when the one answering expects to be at the bedside.
        "attending_expected_at": _iso(escalation.attending_expected_at),
        "outcome": escalation.outcome.value if escalation.outcome else None,
        "unit": patient.unit.code,
        "bed": patient.bed,
        "patient": {"mrn": patient.mrn, "name": patient.name},
        "reconstruction": {
            "id": reconstruction.id,
            "procedure": reconstruction.procedure,
            "site": reconstruction.site,
            "side": reconstruction.side.value,
        },
    }


_QUEUED = "flapwatch.notification_queued"


def queue_notification(session: Session, escalation: Escalation, event: str) -> None:
    """A notice to the unit's own webhook, if it has one."""
    url = escalation.reconstruction.patient.unit.webhook_url
    if url:
        _queue(session, escalation, url, event, escalation_payload(escalation, event))


def queue_page(
    session: Session, escalation: Escalation, channel: Channel, *, level: int, target: str
) -> int:
    """A step of the escalation chain, on one of the paged contact's channels: one notice, or
    for a push channel one to each phone where that user turned notifications on. Returns
    how many were queued."""
    payload: dict[str, object] = {
        **escalation_payload(escalation, "paged"),
        "level": level,
        "target": target,
    }
    if channel.kind == "email":
        payload["unit_timezone"] = escalation.reconstruction.patient.unit.timezone
    addresses = [channel.address]
    if channel.kind == "push":
        payload = push_notification(payload)
        addresses = list(
            session.scalars(
                select(PushSubscription.endpoint)
                .join(User, User.id == PushSubscription.user_id)
                .where(
                    User.username == channel.address,
                    User.active.is_(True),
                    PushSubscription.ended_at.is_(None),
                    # Still on the unit: nobody who has left it is told of its patients.
                    or_(
                        User.role == Role.ADMIN,
                        exists().where(
                            user_units.c.user_id == User.id,
                            user_units.c.unit_id == escalation.reconstruction.patient.unit_id,
                        ),
                    ),
                )
                .order_by(PushSubscription.id)
            )
        )
    for address in addresses:
        _queue(
            session,
            escalation,
            address,
            "paged",
            payload,
            channel=channel.kind,
            level=level,
            target=target,
        )
    return len(addresses)


def _queue(
    session: Session,
    escalation: Escalation,
    url: str,
    event: str,
    payload: dict[str, object],
    *,
    channel: str = "webhook",
    level: int | None = None,
    target: str | None = None,
) -> None:
    session.add(
        NotificationDelivery(
            escalation_id=escalation.id,
            event=event,
            url=url,
            payload=payload,
            status=DeliveryStatus.PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
            channel=channel,
            level=level,
            target=target,
        )
    )
    session.info[_QUEUED] = True


def _waiting(
    session: Session, unit_id: int, which: ColumnElement[bool]
) -> list[NotificationDelivery]:
    """The unit's notices still to be sent, locked: the unit's own (`level` None) or its
    chain's pages."""
    return list(
        session.scalars(
            select(NotificationDelivery)
            .join(Escalation, Escalation.id == NotificationDelivery.escalation_id)
            .join(Reconstruction, Reconstruction.id == Escalation.reconstruction_id)
            .join(Patient, Patient.id == Reconstruction.patient_id)
            .where(
                Patient.unit_id == unit_id,
                NotificationDelivery.status == DeliveryStatus.PENDING,
                which,
            )
            .with_for_update(of=NotificationDelivery)
        )
    )


def _send_elsewhere(
    session: Session, delivery: NotificationDelivery, url: str | None, removed: str
) -> None:
    """A fresh set of tries at `url`, at once (the attempts so far stay on record); given up,
    saying `removed`, when there is no address left."""
    if url is None:
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = removed
    else:
        delivery.url, delivery.attempts, delivery.next_attempt_at = url, 0, utcnow()
        session.info[_QUEUED] = True


def follow_new_webhook(session: Session, unit_id: int, url: str | None) -> int:
    """Inside the unit's update: its waiting notices go to its new address, at once.

    Without this a coordinator mending a broken address would watch the notices already
    queued keep failing against the old one until they gave up: a page lost. With the
    webhook removed, they are given up: the unit asked not to be notified. The chain's pages
    are the contacts' own, and stay where they were going.
    """
    waiting = _waiting(session, unit_id, NotificationDelivery.level.is_(None))
    for delivery in waiting:
        _send_elsewhere(session, delivery, url, "The unit's webhook was removed.")
    return len(waiting)


_ADDRESS_WORDS = {"webhook": "webhook", "email": "e-mail address", "push": "user's phone"}


def follow_new_contacts(
    session: Session, unit_id: int, channels: Mapping[str, Sequence[Channel]]
) -> int:
    """Inside the publishing of the unit's contacts: a page waiting to go to an address its
    contact no longer has goes to the contact's first address of the same kind now, at once
    (a mended pager address or mailbox); with none left, it is given up. A page to a phone
    stays while the contact still pages the phone's owner. Returns how many pages moved."""
    moved = 0
    waiting = _waiting(session, unit_id, NotificationDelivery.level.is_not(None))
    owners = _phone_owners(session, [d.url for d in waiting if d.channel == "push"])
    for delivery in waiting:
        kind = delivery.channel
        addresses = [c.address for c in channels.get(delivery.target or "", ()) if c.kind == kind]
        if kind == "push":
            if owners.get(delivery.url) in addresses:
                continue
            addresses = []  # another user's phones are that user's own pages
        elif delivery.url in addresses:
            continue
        moved += 1
        _send_elsewhere(
            session,
            delivery,
            addresses[0] if addresses else None,
            f"{delivery.target} no longer has this {_ADDRESS_WORDS.get(kind, kind)}.",
        )
    return moved


def _phone_owners(session: Session, endpoints: list[str]) -> dict[str, str]:
    if not endpoints:
        return {}
    rows = session.execute(
        select(PushSubscription.endpoint, User.username)
        .join(User, User.id == PushSubscription.user_id)
        .where(PushSubscription.endpoint.in_(endpoints))
    )
    return {endpoint: username for endpoint, username in rows}


class Doorbell:
    """Rung when a transaction that queued a notice commits: this process's sender wakes and
    sends it at once instead of at its next poll (seconds count on the way to a surgeon)."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._condition = threading.Condition()
        self.rings = 0

    def ring(self) -> None:
        with self._condition:
            self.rings += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Until a ring after `seen` or `timeout` seconds; returns the rings so far."""
        with self._condition:
            self._condition.wait_for(lambda: self.rings != seen, timeout)
            return self.rings


doorbell = Doorbell()
if hasattr(os, "register_at_fork"):
    # A lock held by a parent's thread at fork time would stay held in the child forever.
    os.register_at_fork(after_in_child=doorbell._reset)


@event.listens_for(Session, "after_commit")
def _ring_when_queued(session: Session) -> None:
    if session.info.pop(_QUEUED, False):
        doorbell.ring()


@event.listens_for(Session, "after_rollback")
def _forget_queued(session: Session) -> None:
    session.info.pop(_QUEUED, None)


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryPolicy:
    """How long to wait for a webhook, how often to try, how long a claim lasts (seconds)."""

    timeout_s: float = 5.0
    max_attempts: int = 8
    retry_s: float = 10.0
    retry_max_s: float = 600.0
    lease_s: float = 60.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DeliveryPolicy:
        defaults = cls()
        return cls(
            timeout_s=max(0.1, float(config.get("WEBHOOK_TIMEOUT_SECONDS", defaults.timeout_s))),
            max_attempts=max(1, int(config.get("WEBHOOK_MAX_ATTEMPTS", defaults.max_attempts))),
            retry_s=max(0.0, float(config.get("WEBHOOK_RETRY_SECONDS", defaults.retry_s))),
            retry_max_s=max(
                0.0, float(config.get("WEBHOOK_RETRY_MAX_SECONDS", defaults.retry_max_s))
            ),
            lease_s=max(1.0, float(config.get("WEBHOOK_LEASE_SECONDS", defaults.lease_s))),
        )

    def retry_delay(self, attempts: int) -> timedelta:
        """After the n-th failed try: retry_s, doubled each time, at most retry_max_s."""
        doublings = min(max(attempts - 1, 0), 32)
        return timedelta(seconds=min(self.retry_s * 2**doublings, self.retry_max_s))


@dataclass(frozen=True)
class _Claim:
    delivery_id: int
    escalation_id: int
    event: str
    channel: str
    url: str
    payload: dict[str, Any]
    attempt: int
    lease_until: datetime
    # A push notice's phone: its subscription's keys; None once the subscription has ended.
    push_target: PushTarget | None = None


def delivery_headers(claim: _Claim) -> dict[str, str]:
    """The delivery id travels with every try, so a receiver can drop a duplicate."""
    return {
        "Idempotency-Key": f"flapwatch-delivery-{claim.delivery_id}",
        "X-Flapwatch-Delivery": str(claim.delivery_id),
        "X-Flapwatch-Event": f"escalation.{claim.event}",
        "X-Flapwatch-Attempt": str(claim.attempt),
    }


SessionFactory = Callable[[], Session]


def deliver_due(
    session_factory: SessionFactory,
    now: datetime | None = None,
    limit: int = 50,
    policy: DeliveryPolicy | None = None,
    mail: MailSettings | None = None,
    push: PushSettings | None = None,
) -> int:
    """Try every due notice once (at most `limit`); returns how many were tried.

    `now` stands for the clock (tests move it forward). Safe in several processes at once. A
    channel's failure is recorded, never raised; only a database failure while claiming is.
    """
    config = current_app.config if has_app_context() else {}
    if policy is None:
        policy = DeliveryPolicy.from_config(config)
    if mail is None:
        mail = MailSettings.from_config(config)
    if push is None:
        push = PushSettings.from_config(config)

    def clock() -> datetime:
        return now or utcnow()

    claims = _claim_due(session_factory, clock(), limit, policy)
    for claim in claims:
        started_at = clock()
        result = _send(claim, policy, mail, push)
        try:
            _record_attempt(session_factory, claim, result, started_at, clock(), policy)
        except Exception:
            logger.exception(
                "Notification %s: the attempt could not be recorded; it is tried again once its "
                "claim runs out.",
                claim.delivery_id,
            )
    return len(claims)


def _send(
    claim: _Claim, policy: DeliveryPolicy, mail: MailSettings, push: PushSettings
) -> AttemptResult:
    if claim.channel == "push":
        if claim.push_target is None:
            return AttemptResult(None, "Notifications were turned off on this phone.", 0, True)
        return send_push(push, claim.push_target, claim.payload, policy.timeout_s)
    if claim.channel == "email":
        message = page_mail(mail, claim.url, claim.payload, claim.delivery_id)
        return send_mail(mail, message, policy.timeout_s)
    return post_json(claim.url, claim.payload, delivery_headers(claim), policy.timeout_s)


def _claim_due(
    session_factory: SessionFactory, now: datetime, limit: int, policy: DeliveryPolicy
) -> list[_Claim]:
    is_due = (NotificationDelivery.status == DeliveryStatus.PENDING) & (
        NotificationDelivery.next_attempt_at <= now
    )
    with session_factory() as session:
        # A read first: an idle poll takes no write lock (SQLite has only one).
        if session.scalar(select(NotificationDelivery.id).where(is_due).limit(1)) is None:
            return []
        claims: list[_Claim] = []
        with write_transaction(session):
            due = session.scalars(
                select(NotificationDelivery)
                .where(is_due)
                .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            phones = _push_targets(session, [d.url for d in due if d.channel == "push"])
            for position, delivery in enumerate(due, start=1):
                # The batch is posted one after another: the n-th may wait n timeouts first.
                lease = timedelta(seconds=policy.lease_s + policy.timeout_s * position)
                delivery.next_attempt_at = now + lease
                claims.append(
                    _Claim(
                        delivery_id=delivery.id,
                        escalation_id=delivery.escalation_id,
                        event=delivery.event,
                        channel=delivery.channel,
                        url=delivery.url,
                        payload=_with_photo(session, dict(delivery.payload), now),
                        attempt=delivery.attempts + 1,
                        lease_until=delivery.next_attempt_at,
                        push_target=phones.get(delivery.url)
                        if delivery.channel == "push"
                        else None,
                    )
                )
        return claims


def _with_photo(session: Session, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The notice as it is sent: with the flap's newest photo as it is then (one taken with
    the check that raised it included), a link that opens it for 30 minutes after log-in,
    never the image."""
    flap = payload.get("reconstruction")
    if isinstance(flap, dict) and isinstance(flap.get("id"), int):
        payload["photo"] = notice_photo(session, flap["id"], now)
    return payload


def _push_targets(session: Session, endpoints: list[str]) -> dict[str, PushTarget]:
    """The keys of each phone still subscribed at `endpoints`."""
    if not endpoints:
        return {}
    rows = session.execute(
        select(PushSubscription.endpoint, PushSubscription.p256dh, PushSubscription.auth).where(
            PushSubscription.endpoint.in_(endpoints), PushSubscription.ended_at.is_(None)
        )
    )
    return {endpoint: PushTarget(endpoint, p256dh, auth) for endpoint, p256dh, auth in rows}


_NOT_TOLD = {"webhook": "the webhook", "push": "the phone"}


def _record_attempt(
    session_factory: SessionFactory,
    claim: _Claim,
    result: AttemptResult,
    started_at: datetime,
    finished_at: datetime,
    policy: DeliveryPolicy,
) -> None:
    what = (
        f"Notification {claim.delivery_id} (escalation.{claim.event}, escalation "
        f"{claim.escalation_id}) to {_where(claim.url, claim.channel)}, attempt {claim.attempt}"
    )
    kind = "SMTP" if claim.channel == "email" else "HTTP"
    outcome = f"{kind} {result.status_code}" if result.delivered else result.error
    level, message = logging.INFO, f"{what}: {outcome} in {result.duration_ms} ms; delivered."
    with session_factory() as session, write_transaction(session):
        delivery = session.get(NotificationDelivery, claim.delivery_id, with_for_update=True)
        if delivery is None:
            return
        delivery.attempts += 1
        session.add(
            NotificationAttempt(
                delivery_id=delivery.id,
                at=started_at,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        )
        if result.delivered:
            if delivery.status != DeliveryStatus.DELIVERED:
                delivery.status = DeliveryStatus.DELIVERED
                delivery.delivered_at = finished_at
                delivery.last_error = None
        elif (
            delivery.status != DeliveryStatus.PENDING
            or delivery.next_attempt_at != claim.lease_until
        ):
            # Delivered or given up meanwhile, or claimed afresh after this claim ran out (or
            # sent to a new address): the attempt is on record, its fate is another's to decide.
            level, message = logging.WARNING, f"{what}: {outcome}; handled elsewhere meanwhile."
        elif result.permanent:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = result.error
            if claim.channel == "push":
                _end_subscription(session, claim.url, result.error or "", finished_at)
            level, message = (
                logging.WARNING,
                f"{what}: {outcome}. Not tried again: the phone's subscription is gone.",
            )
        elif delivery.attempts >= policy.max_attempts:
            delivery.status = DeliveryStatus.FAILED
            delivery.last_error = result.error
            level, message = (
                logging.ERROR,
                f"{what}: {outcome}. Gave up after {delivery.attempts} attempts: "
                f"{_NOT_TOLD.get(claim.channel, claim.url)} was NOT told of this escalation.",
            )
        else:
            delay = policy.retry_delay(delivery.attempts)
            delivery.next_attempt_at = finished_at + delay
            delivery.last_error = result.error
            level, message = (
                logging.WARNING,
                f"{what} of {policy.max_attempts}: {outcome} after {result.duration_ms} ms; "
                f"trying again in {delay.total_seconds():g} s.",
            )
    logger.log(level, message)


def _end_subscription(session: Session, endpoint: str, why: str, at: datetime) -> None:
    subscription = session.scalars(
        select(PushSubscription).where(
            PushSubscription.endpoint == endpoint, PushSubscription.ended_at.is_(None)
        )
    ).first()
    if subscription is not None:
        subscription.ended_at = at
        subscription.ended_reason = f"The push service answered: {why}"
