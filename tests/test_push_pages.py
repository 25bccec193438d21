"""Pages by Web Push to the surgeon's phone: the surgeon turns notifications on from the queue
page, the chain's push channel names her, and each step reaches a local push service that
checks the VAPID signature (RFC 8292) and decrypts the notification with the phone's keys
(RFC 8291), as her phone would."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import DeliveryStatus, EscalationEventKind, Role
from flapwatch.models import EscalationEvent, NotificationDelivery, PushSubscription, utcnow
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.chains import publish_chains, publish_contacts
from flapwatch.services.channels import PushSettings, make_vapid_keys
from flapwatch.services.checks import record_check
from flapwatch.services.notifications import DeliveryPolicy, deliver_due
from tests.conftest import seen
from tests.servers import PushService

POLICY = DeliveryPolicy(timeout_s=5.0, max_attempts=3, retry_s=0.0)


@pytest.fixture
def vapid() -> PushSettings:
    public, private = make_vapid_keys()
    return PushSettings(public, private, "mailto:it@hospital.example.org", 900)


@pytest.fixture
def push_service(vapid) -> Iterator[PushService]:
    running = PushService(vapid.public_key or "")
    yield running
    running.close()


@pytest.fixture
def surgeon_on_phone(app, logged_in, push_service, vapid):
    """A surgeon logged in on her phone, notifications turned on from the queue page."""
    app.config.update(
        PUSH_ALLOW_HTTP_ENDPOINTS=True,
        VAPID_PUBLIC_KEY=vapid.public_key,
        VAPID_PRIVATE_KEY=vapid.private_key,
    )
    browser, user = logged_in(Role.SURGEON, "PLAST-W3")
    phone = push_service.new_phone()
    answer = browser.client.post(
        "/push/subscriptions",
        json=phone.subscription(),
        headers={"X-CSRFToken": browser.csrf_token("/escalations")},
    )
    assert answer.status_code == 201, answer.get_data(as_text=True)
    return browser, user, phone


def page_her_phone(make, session, username: str) -> None:
    unit = make.unit()
    publish_contacts(
        session,
        SYSTEM,
        unit.code,
        [
            {"name": "Registrar on call", "channels": [{"kind": "push", "user": username}]},
            {"name": "Consultant on call"},
            {"name": "Nurse in charge"},
        ],
        "The registrar's phone",
    )
    step = {"after_minutes": 0, "notify": "Registrar on call"}
    publish_chains(session, SYSTEM, unit.code, {"red": [step], "amber": [step]}, "At once")


def red_escalation(make, session, bed="12"):
    patient = make.patient(bed=bed, name="Margaret Hollis")
    flap = make.reconstruction(patient=patient, hours_ago=5)
    nurse = make.actor(make.user(Role.NURSE))
    now = utcnow()
    values = CheckValues(taken_at=now, colour="dusky", capillary_refill="brisk")
    recorded = record_check(session, nurse, flap.id, values, now=now)
    assert recorded.escalation is not None
    return recorded.escalation, patient


def push_deliveries(session) -> list[NotificationDelivery]:
    return list(
        seen(session).scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.channel == "push")
            .order_by(NotificationDelivery.id)
        )
    )


def test_a_red_page_reaches_her_phone_signed_and_decryptable_naming_no_patient(
    app, make, session, surgeon_on_phone, push_service, vapid
):
    _, user, phone = surgeon_on_phone
    page_her_phone(make, session, user.username)
    escalation, patient = red_escalation(make, session)

    assert deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, push=vapid) == 1
    assert push_service.refused == []
    (pushed,) = push_service.pushed
    assert phone.endpoint.endswith(pushed.path)
    assert pushed.claims["sub"] == "mailto:it@hospital.example.org"
    assert pushed.headers["ttl"] == "900" and pushed.headers["urgency"] == "high"
    note = pushed.notification
    assert note["title"] == "RED escalation · PLAST-W3 bed 12"
    assert note["url"] == f"/escalations/{escalation.id}"
    assert note["level"] == 1 and "Registrar on call paged" in note["body"]
    for identifier in (patient.name, "Hollis", patient.mrn):
        assert identifier not in note["title"] and identifier not in note["body"]
    (delivery,) = push_deliveries(session)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.url == phone.endpoint


def test_a_phone_whose_subscription_is_gone_is_given_up_at_once_and_the_timeline_says_so(
    app, make, session, surgeon_on_phone, push_service, vapid
):
    _, user, _ = surgeon_on_phone
    page_her_phone(make, session, user.username)
    red_escalation(make, session)
    push_service.status = 410
    deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, push=vapid)

    (delivery,) = push_deliveries(session)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    assert delivery.last_error.startswith("HTTP 410")
    (subscription,) = session.scalars(select(PushSubscription))
    assert subscription.ended_at is not None and "410" in subscription.ended_reason

    # Her next page finds no phone: the timeline says how she could not be reached.
    red_escalation(make, session, bed="14")
    words = [
        line
        for event in seen(session).scalars(
            select(EscalationEvent).where(EscalationEvent.kind == EscalationEventKind.PAGED)
        )
        for line in event.reasons
    ]
    assert f"{user.username} has turned on notifications on no phone" in words
    assert "Registrar on call could not be reached on any channel" in words


def test_a_push_signed_with_another_key_is_refused_by_the_push_service(
    app, make, session, surgeon_on_phone, push_service
):
    _, user, _ = surgeon_on_phone
    page_her_phone(make, session, user.username)
    red_escalation(make, session)
    public, private = make_vapid_keys()  # not the pair the phone subscribed with
    deliver_due(
        app.extensions[EXTENSION_KEY],
        policy=POLICY,
        push=PushSettings(public, private, "mailto:it@hospital.example.org"),
    )
    assert push_service.pushed == [] and "VAPID" in push_service.refused[0]
    (delivery,) = push_deliveries(session)
    assert delivery.status == DeliveryStatus.PENDING and "HTTP 401" in delivery.last_error


def test_without_vapid_keys_the_attempt_says_what_to_run(app, make, session, surgeon_on_phone):
    _, user, _ = surgeon_on_phone
    page_her_phone(make, session, user.username)
    red_escalation(make, session)
    deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, push=PushSettings())
    (delivery,) = push_deliveries(session)
    assert "flapwatch push-keys" in delivery.last_error


def test_the_queue_page_offers_notifications_only_when_the_server_can_send_them(
    app, logged_in, vapid
):
    browser, _ = logged_in(Role.SURGEON, "PLAST-W3")
    assert "data-push-key" not in browser.get("/escalations").get_data(as_text=True)
    app.config.update(VAPID_PUBLIC_KEY=vapid.public_key, VAPID_PRIVATE_KEY=vapid.private_key)
    page = browser.get("/escalations").get_data(as_text=True)
    assert f'data-push-key="{vapid.public_key}"' in page and "push.js" in page


def test_a_subscription_must_be_https_with_real_keys_and_can_be_turned_off(
    app, logged_in, push_service
):
    browser, _ = logged_in(Role.SURGEON, "PLAST-W3")
    phone = push_service.new_phone()
    token = browser.csrf_token("/escalations")

    def send(path, body):
        return browser.client.post(path, json=body, headers={"X-CSRFToken": token})

    refused = send("/push/subscriptions", phone.subscription())  # http: not a push service
    assert refused.status_code == 422 and "endpoint" in refused.get_json()["fields"]
    bad_keys = {"endpoint": "https://push.example.org/x", "keys": {"p256dh": "AAAA", "auth": ""}}
    fields = send("/push/subscriptions", bad_keys).get_json()["fields"]
    assert {"keys.p256dh", "keys.auth"} <= set(fields)
    no_csrf = browser.client.post("/push/subscriptions", json=phone.subscription())
    assert no_csrf.status_code == 400

    app.config["PUSH_ALLOW_HTTP_ENDPOINTS"] = True
    assert send("/push/subscriptions", phone.subscription()).status_code == 201
    assert send("/push/subscriptions", phone.subscription()).status_code == 200  # again: same
    assert send("/push/subscriptions/remove", {"endpoint": phone.endpoint}).get_json() == {
        "on": False,
        "removed": True,
    }


def test_a_push_channel_names_an_active_account_on_the_unit(api, make, session):
    make.unit("PLAST-W4")
    elsewhere = make.user(Role.SURGEON, "PLAST-W4")
    coordinator = api(Role.UNIT_ADMIN)
    contacts = coordinator.get("/units/PLAST-W3/contacts").get_json()["contacts"]
    for user, words in ((elsewhere.username, "does not work on PLAST-W3"), ("nobody", "No active")):
        contacts[0]["channels"] = [{"kind": "push", "user": user}]
        refused = coordinator.put("/units/PLAST-W3/contacts", {"note": "x", "contacts": contacts})
        assert refused.status_code == 422
        assert words in refused.get_json()["error"]["fields"]["contacts.0.channels.0.user"]
    here = make.user(Role.SURGEON, "PLAST-W3")
    contacts[0]["channels"] = [{"kind": "push", "user": here.username.upper()}]
    answer = coordinator.put("/units/PLAST-W3/contacts", {"note": "Phone", "contacts": contacts})
    assert answer.status_code == 201
    assert answer.get_json()["contacts"][0]["channels"] == [{"kind": "push", "user": here.username}]
    with pytest.raises(InvalidInput):
        publish_contacts(
            session,
            SYSTEM,
            "PLAST-W3",
            [{"name": "Registrar on call", "channels": [{"kind": "push", "user": "no one"}]}],
            "x",
        )


def test_push_keys_prints_a_pair_a_push_service_accepts(runner):
    from flapwatch.services.channels import PushTarget, send_push
    from tests.servers import unb64url

    result = runner.invoke(args=["push-keys"])
    assert result.exit_code == 0, result.output
    lines = dict(
        line.split("=", 1) for line in result.stdout.splitlines() if line.startswith("FLAPWATCH")
    )
    public, private = lines["FLAPWATCH_VAPID_PUBLIC_KEY"], lines["FLAPWATCH_VAPID_PRIVATE_KEY"]
    assert len(unb64url(public)) == 65 and unb64url(public)[0] == 4
    service = PushService(public)
    try:
        phone = service.new_phone()
        sent = send_push(
            PushSettings(public, private, "mailto:it@hospital.example.org"),
            PushTarget(phone.endpoint, **phone.keys),
            {"title": "test", "tag": "escalation-1"},
            5.0,
        )
        assert sent.delivered, sent.error
        assert service.pushed[0].notification == {"title": "test", "tag": "escalation-1"}
    finally:
        service.close()


def test_a_page_waiting_for_her_phone_stays_while_the_contact_still_pages_her(
    app, make, session, surgeon_on_phone, push_service, vapid
):
    _, user, phone = surgeon_on_phone
    page_her_phone(make, session, user.username)
    red_escalation(make, session)
    push_service.status = 503  # the push service is down for now: the page waits
    deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, push=vapid)

    def republish(channels, note):
        publish_contacts(
            session,
            SYSTEM,
            "PLAST-W3",
            [
                {"name": "Registrar on call", "channels": channels},
                {"name": "Consultant on call"},
                {"name": "Nurse in charge"},
            ],
            note,
        )

    republish(
        [{"kind": "push", "user": user.username}, {"kind": "email", "address": "r@h.org"}],
        "Her mailbox too",
    )
    (waiting,) = push_deliveries(session)
    assert waiting.status == DeliveryStatus.PENDING and waiting.url == phone.endpoint

    republish([{"kind": "email", "address": "r@h.org"}], "Mail only")
    (given_up,) = push_deliveries(session)
    assert given_up.status == DeliveryStatus.FAILED
    assert given_up.last_error == "Registrar on call no longer has this user's phone."


def test_an_unreachable_push_service_is_retried_and_the_error_names_no_phone(
    app, make, session, surgeon_on_phone, push_service, vapid
):
    _, user, phone = surgeon_on_phone
    page_her_phone(make, session, user.username)
    red_escalation(make, session)
    push_service.close()  # the push service is gone from the network
    deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, push=vapid)
    (delivery,) = push_deliveries(session)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_error.startswith("Cannot reach the push service 127.0.0.1:")
    assert phone.endpoint.rsplit("/", 1)[1] not in delivery.last_error


def test_turning_off_something_that_is_not_a_subscription_changes_nothing(logged_in):
    browser, _ = logged_in(Role.SURGEON, "PLAST-W3")
    token = browser.csrf_token("/escalations")
    for body in ({"endpoint": {"nested": 1}}, {"endpoint": "https://push.example.org/none"}, []):
        answer = browser.client.post(
            "/push/subscriptions/remove", json=body, headers={"X-CSRFToken": token}
        )
        assert answer.status_code == 200 and answer.get_json()["removed"] is False
