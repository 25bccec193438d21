"""Escalation notices reach a unit's webhook: against real HTTP servers on 127.0.0.1, working,
failing, slow and absent; retried with backoff, each attempt stored and logged, and never in
the way of a nurse's check."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch import create_app
from flapwatch.db import EXTENSION_KEY, engine_of
from flapwatch.domain.vocabulary import DeliveryStatus, Role
from flapwatch.models import (
    AuditEvent,
    Escalation,
    NotificationAttempt,
    NotificationDelivery,
    Unit,
    utcnow,
)
from flapwatch.notifier import NOTIFIER_KEY, Notifier
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services import notifications as notifications_module
from flapwatch.services.escalations import acknowledge_escalation, open_escalation_of
from flapwatch.services.notifications import DeliveryPolicy, deliver_due, logger
from flapwatch.services.units import update_unit
from tests.conftest import TEST_SETTINGS, Factory, seen


@pytest.fixture
def closed_port_url() -> str:
    """An address where nothing listens: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture
def notification_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(level=logging.DEBUG)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


# --- helpers ---------------------------------------------------------------------------------


def with_webhook(make: Factory, session: Session, url: str) -> Unit:
    unit = make.unit()
    return update_unit(
        session, SYSTEM, unit.id, name=unit.name, timezone=unit.timezone, webhook_url=url
    )


def deliver(app: Flask, now: datetime | None = None, **policy: Any) -> int:
    chosen = replace(DeliveryPolicy.from_config(app.config), **policy)
    return deliver_due(app.extensions[EXTENSION_KEY], now=now, policy=chosen)


def deliveries(session: Session) -> list[NotificationDelivery]:
    return list(
        seen(session).scalars(select(NotificationDelivery).order_by(NotificationDelivery.id))
    )


def attempts_of(session: Session, delivery: NotificationDelivery) -> list[NotificationAttempt]:
    return list(
        seen(session).scalars(
            select(NotificationAttempt)
            .where(NotificationAttempt.delivery_id == delivery.id)
            .order_by(NotificationAttempt.id)
        )
    )


def escalation_of(session: Session, flap_id: int) -> Escalation:
    escalation = open_escalation_of(seen(session), flap_id)
    assert escalation is not None
    return escalation


# --- delivered -------------------------------------------------------------------------------


def test_a_flagged_check_posts_the_opened_escalation_to_the_webhook_exactly_once(
    app, make, session, receiver, notification_log
):
    with_webhook(make, session, receiver.url)
    flap = make.reconstruction()
    make.check(flap, colour="dusky")

    assert deliver(app) == 1
    assert deliver(app) == 0  # already delivered: never sent twice

    assert len(receiver.received) == 1
    request = receiver.received[0]
    body = request.body
    assert body["event"] == "escalation.opened"
    assert body["severity"] == "red"
    assert body["unit"] == "PLAST-W3"
    assert body["bed"] == flap.patient.bed
    assert any("dusky" in reason.lower() for reason in body["reasons"])
    assert body["escalation_id"] == escalation_of(session, flap.id).id
    assert request.path == "/hook"
    [delivery] = deliveries(session)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "flapwatch"
    assert request.headers["idempotency-key"] == f"flapwatch-delivery-{delivery.id}"
    assert request.headers["x-flapwatch-delivery"] == str(delivery.id)
    assert body == {**delivery.payload, "photo": None}  # its newest photo when sent: none

    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.delivered_at is not None and delivery.attempts == 1
    [attempt] = attempts_of(session, delivery)
    assert attempt.status_code == 200 and attempt.error is None and attempt.duration_ms >= 0
    [logged] = notification_log
    assert logged.levelno == logging.INFO and "HTTP 200" in logged.getMessage()
    assert "delivered" in logged.getMessage()


def test_acknowledging_posts_the_acknowledged_escalation(app, make, session, receiver):
    with_webhook(make, session, receiver.url)
    flap = make.reconstruction()
    make.check(flap, colour="dusky")
    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledge_escalation(
        session, surgeon, escalation_of(session, flap.id).id, outcome="observe", note="Seen"
    )

    assert deliver(app) == 2
    events = [request.body["event"] for request in receiver.received]
    assert events == ["escalation.opened", "escalation.acknowledged"]
    acknowledged = receiver.received[1].body
    assert acknowledged["outcome"] == "observe" and acknowledged["acknowledged_at"] is not None


def test_a_unit_without_a_webhook_queues_nothing(app, make, session):
    make.check(make.reconstruction(), colour="dusky")
    assert deliveries(session) == []
    assert deliver(app) == 0


# --- failing webhooks ------------------------------------------------------------------------


def test_a_server_error_is_recorded_and_retried_after_backoff_until_it_recovers(
    app, make, session, receiver, notification_log
):
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    receiver.status = 500
    start = utcnow()

    assert deliver(app, now=start) == 1
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.next_attempt_at == start + timedelta(seconds=10)
    assert delivery.last_error is not None and delivery.last_error.startswith("HTTP 500")
    assert notification_log[-1].levelno == logging.WARNING

    assert deliver(app, now=start + timedelta(seconds=9)) == 0  # still backing off
    assert deliver(app, now=start + timedelta(seconds=10)) == 1  # second failure: doubles
    [delivery] = deliveries(session)
    assert delivery.next_attempt_at == start + timedelta(seconds=30)

    receiver.status = 200
    assert deliver(app, now=start + timedelta(seconds=31)) == 1
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.last_error is None
    assert [attempt.status_code for attempt in attempts_of(session, delivery)] == [500, 500, 200]
    keys = {request.headers["idempotency-key"] for request in receiver.received}
    assert keys == {f"flapwatch-delivery-{delivery.id}"}  # the receiver can drop duplicates
    assert [request.headers["x-flapwatch-attempt"] for request in receiver.received] == [
        "1",
        "2",
        "3",
    ]
    assert len(notification_log) == 3  # every attempt logged


def test_an_unreachable_webhook_never_raises_and_is_given_up_after_the_last_attempt(
    app, make, session, closed_port_url, notification_log
):
    with_webhook(make, session, closed_port_url)
    check = make.check(make.reconstruction(), colour="dusky")
    assert check.id is not None  # the check saved; the notice waits for the sender
    moment = utcnow()
    for _ in range(3):
        assert deliver(app, now=moment, max_attempts=3) == 1
        moment += timedelta(minutes=11)
    assert deliver(app, now=moment, max_attempts=3) == 0

    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 3
    attempts = attempts_of(session, delivery)
    assert len(attempts) == 3
    assert all(attempt.status_code is None for attempt in attempts)
    assert all("Cannot connect" in (attempt.error or "") for attempt in attempts)
    assert [record.levelno for record in notification_log] == [
        logging.WARNING,
        logging.WARNING,
        logging.ERROR,
    ]
    assert "Gave up after 3 attempts" in notification_log[-1].getMessage()


def test_a_webhook_slower_than_the_timeout_is_a_failed_attempt(app, make, session, receiver):
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    receiver.delay = 1.5

    assert deliver(app, timeout_s=0.3) == 1
    [delivery] = deliveries(session)
    [attempt] = attempts_of(session, delivery)
    assert attempt.status_code is None and attempt.error == "No answer within 0.3 s."
    assert 300 <= attempt.duration_ms < 1500
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert len(receiver.received) == 1


def test_a_redirect_is_a_failed_attempt_not_a_delivery(app, make, session, receiver):
    # Followed, the POST would turn into a bodiless GET whose 200 would look like a page sent.
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    receiver.status = 302

    assert deliver(app) == 1
    [delivery] = deliveries(session)
    [attempt] = attempts_of(session, delivery)
    assert attempt.status_code == 302 and delivery.status == DeliveryStatus.PENDING
    assert len(receiver.received) == 1


def test_an_address_written_around_the_form_is_never_opened(app, make, session):
    unit = make.unit()
    unit.webhook_url = "file:///etc/hostname"
    session.commit()
    make.check(make.reconstruction(), colour="dusky")

    assert deliver(app) == 1
    [delivery] = deliveries(session)
    [attempt] = attempts_of(session, delivery)
    assert attempt.status_code is None and "not an http(s) address" in (attempt.error or "")


def test_the_retry_delay_doubles_up_to_its_cap():
    policy = DeliveryPolicy()
    delays = [policy.retry_delay(attempt).total_seconds() for attempt in range(1, 10)]
    assert delays == [10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert policy.retry_delay(10_000) == timedelta(minutes=10)


# --- claims: one sender per notice -----------------------------------------------------------


def test_a_notice_being_posted_is_not_posted_again_by_a_second_sender(app, make, session, receiver):
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    receiver.delay = 1.0
    first = threading.Thread(target=deliver, args=(app,))
    first.start()
    deadline = time.monotonic() + 5
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert receiver.received, "the first sender never posted"

    assert deliver(app) == 0  # claimed by the first sender, which is waiting for an answer
    first.join()
    assert len(receiver.received) == 1
    assert deliveries(session)[0].status == DeliveryStatus.DELIVERED


def test_a_notice_claimed_by_a_sender_that_died_is_sent_once_its_claim_runs_out(
    app, make, session, receiver, monkeypatch
):
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    start = utcnow()

    def die(*_args: Any) -> None:
        raise SystemExit("the worker was killed mid-send")

    monkeypatch.setattr(notifications_module, "post_json", die)
    with pytest.raises(SystemExit):
        deliver(app, now=start)
    monkeypatch.undo()

    assert deliver(app, now=start + timedelta(seconds=30)) == 0
    assert deliver(app, now=start + timedelta(seconds=66)) == 1  # 60 s lease + one 5 s timeout
    assert deliveries(session)[0].status == DeliveryStatus.DELIVERED
    assert len(receiver.received) == 1


# --- the nurse's check is never held up ------------------------------------------------------


def test_a_check_saves_with_the_webhook_at_a_closed_port(app, make, session, closed_port_url):
    with_webhook(make, session, closed_port_url)
    flap = make.reconstruction()
    check = make.check(flap, colour="dusky")
    assert check.id is not None and check.severity == "red"
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.PENDING and attempts_of(session, delivery) == []


def test_the_background_sender_posts_at_once_and_a_hanging_webhook_never_holds_up_a_check(
    app, make, session, receiver
):
    with_webhook(make, session, receiver.url)
    flap = make.reconstruction()
    # A long poll: only the doorbell rung by the check's commit can wake the sender in time.
    app.config.update(NOTIFIER_INTERVAL_SECONDS=60.0, WEBHOOK_TIMEOUT_SECONDS=1.0)
    receiver.delay = 3.0
    sender = Notifier(app)
    sender.ensure_running()
    try:
        make.check(flap, colour="dusky")
        deadline = time.monotonic() + 5
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [request.body["event"] for request in receiver.received] == ["escalation.opened"]

        # The sender is now waiting on the hanging webhook; the next check saves regardless.
        later = make.check(flap, colour="purple")
        assert later.id is not None and not receiver.answered.is_set()
    finally:
        sender.stop(timeout=10)
    assert not sender.running
    events = [delivery.event for delivery in deliveries(session)]
    assert events == ["opened", "updated"]
    opened = deliveries(session)[0]
    assert attempts_of(session, opened)[0].error == "No answer within 1 s."


def test_the_sender_thread_starts_with_the_first_request_not_with_the_app(app):
    serving = create_app(
        {
            **TEST_SETTINGS,
            "DATABASE_URL": app.config["DATABASE_URL"],
            "INSTANCE_PATH": app.instance_path,
            "NOTIFIER_THREAD": True,
        }
    )
    sender = serving.extensions[NOTIFIER_KEY]
    try:
        assert not sender.running  # not in a process that may yet fork (gunicorn's master)
        serving.test_client().get("/login")
        assert sender.running
    finally:
        sender.stop(timeout=10)
        engine_of(serving).dispose()
    assert NOTIFIER_KEY not in app.extensions  # the tests' apps start none


# --- the command line ------------------------------------------------------------------------


def test_deliver_notifications_command_sends_what_is_due(app, make, session, receiver, runner):
    with_webhook(make, session, receiver.url)
    make.check(make.reconstruction(), colour="dusky")
    result = runner.invoke(args=["deliver-notifications"])
    assert result.exit_code == 0, result.output
    assert "Notification attempts made: 1" in result.output
    assert len(receiver.received) == 1
    again = runner.invoke(args=["deliver-notifications"])
    assert "Notification attempts made: 0" in again.output and len(receiver.received) == 1


def test_sweep_sends_the_overdue_escalation_it_opens(app, make, session, receiver, runner):
    with_webhook(make, session, receiver.url)
    make.reconstruction(hours_ago=3)  # never checked: overdue since 1 h 15 min after surgery
    result = runner.invoke(args=["sweep"])
    assert result.exit_code == 0, result.output
    assert "1 escalated" in result.output and "Notification attempts made: 1" in result.output
    [request] = receiver.received
    assert request.body["event"] == "escalation.opened" and request.body["severity"] == "amber"


# --- the unit's webhook address --------------------------------------------------------------


def unit_form(unit: Unit, webhook_url: str) -> dict[str, str]:
    return {"name": unit.name, "timezone": unit.timezone, "webhook_url": webhook_url}


def test_unit_admin_saves_the_units_webhook_url_and_it_is_audited(logged_in, make, session):
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    unit = make.unit()
    url = "https://pager.example.org/flapwatch?token=abc"
    response = browser.post(f"/admin/units/{unit.id}/edit", unit_form(unit, f"  {url} "))
    assert response.status_code == 302
    assert seen(session).get(Unit, unit.id).webhook_url == url
    assert url in browser.get(f"/admin/units/{unit.id}/edit").get_data(as_text=True)
    event = (
        seen(session).scalars(select(AuditEvent).where(AuditEvent.action == "unit.update")).one()
    )
    assert event.before == {"webhook_url": None} and event.after == {"webhook_url": url}

    assert browser.post(f"/admin/units/{unit.id}/edit", unit_form(unit, "")).status_code == 302
    assert seen(session).get(Unit, unit.id).webhook_url is None


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("ftp://x", "Webhook URL must start with http:// or https://"),
        ("not a url", "Webhook URL must be one web address without spaces"),
        ("https://user:secret@pager.example.org/", "cannot hold a user name or password"),
    ],
)
def test_the_unit_page_refuses_a_webhook_that_is_not_a_web_address(
    logged_in, make, session, typed, message
):
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    unit = make.unit()
    response = browser.post(f"/admin/units/{unit.id}/edit", unit_form(unit, typed))
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    field_error = page[page.index('id="webhook_url-error"') :].split("</p>")[0]
    assert message in field_error
    assert seen(session).get(Unit, unit.id).webhook_url is None


def test_the_service_refuses_a_webhook_that_is_not_a_web_address(make, session):
    unit = make.unit()
    with pytest.raises(InvalidInput) as refused:
        update_unit(
            session, SYSTEM, unit.id, name=unit.name, timezone=unit.timezone, webhook_url="ftp://x"
        )
    assert "http:// or https://" in refused.value.problems["webhook_url"]


def test_waiting_notices_follow_a_mended_webhook_at_once(
    app, make, session, receiver, closed_port_url
):
    unit = with_webhook(make, session, closed_port_url)
    make.check(make.reconstruction(), colour="dusky")
    assert deliver(app) == 1  # refused: next try in 10 s
    update_unit(
        session, SYSTEM, unit.id, name=unit.name, timezone=unit.timezone, webhook_url=receiver.url
    )
    assert deliver(app) == 1
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.url == receiver.url
    assert [a.status_code for a in attempts_of(session, delivery)] == [None, 200]


def test_waiting_notices_are_given_up_when_the_webhook_is_removed(
    app, make, session, closed_port_url
):
    unit = with_webhook(make, session, closed_port_url)
    make.check(make.reconstruction(), colour="dusky")
    update_unit(session, SYSTEM, unit.id, name=unit.name, timezone=unit.timezone, webhook_url="")
    [delivery] = deliveries(session)
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.last_error == "The unit's webhook was removed."
    assert deliver(app) == 0
