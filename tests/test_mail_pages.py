"""Pages by e-mail: a contact with an e-mail address is mailed at each step of the chain,
through a real SMTP server (aiosmtpd on 127.0.0.1), with no patient's name or number in the
mail; a relay that refuses is an attempt on record and never stops the chain."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import DeliveryStatus, Role
from flapwatch.models import NotificationAttempt, NotificationDelivery, utcnow
from flapwatch.services import SYSTEM
from flapwatch.services.chains import advance_chains, publish_chains, publish_contacts
from flapwatch.services.channels import MailSettings
from flapwatch.services.checks import record_check
from flapwatch.services.notifications import DeliveryPolicy, deliver_due
from tests.conftest import Factory, seen
from tests.servers import MailServer, Receiver

POLICY = DeliveryPolicy(timeout_s=5.0, max_attempts=3, retry_s=0.0)
REGISTRAR_MAIL = "plastics.registrar@hospital.example.org"


@pytest.fixture
def relay() -> Iterator[MailServer]:
    running = MailServer()
    yield running
    running.close()


@pytest.fixture
def pager() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def mail_to(relay: MailServer, **given: object) -> MailSettings:
    settings = {
        "host": "127.0.0.1",
        "port": relay.port,
        "sender": "flapwatch@hospital.example.org",
        "base_url": "https://flapwatch.hospital.example.org",
        **given,
    }
    return MailSettings(**settings)  # type: ignore[arg-type]


def registrar_by_mail(make: Factory, session: Session, pager_url: str | None = None) -> None:
    """Red: the registrar by mail (and pager) at 0 and 1 minutes."""
    unit = make.unit()
    channels: list[dict[str, str]] = [{"kind": "email", "address": REGISTRAR_MAIL}]
    if pager_url:
        channels.append({"kind": "webhook", "url": pager_url})
    publish_contacts(
        session,
        SYSTEM,
        unit.code,
        [
            {"name": "Registrar", "channels": channels},
            {"name": "Registrar on call"},
            {"name": "Consultant on call"},
            {"name": "Nurse in charge"},
        ],
        "The registrar's mailbox",
    )
    step = {"after_minutes": 0, "notify": "Registrar"}
    publish_chains(
        session,
        SYSTEM,
        unit.code,
        {"red": [step, {"after_minutes": 1, "notify": "Registrar"}], "amber": [step]},
        "By mail, a minute apart",
    )


def red_escalation(make: Factory, session: Session):
    patient = make.patient(bed="12", name="Margaret Hollis")
    flap = make.reconstruction(patient=patient, hours_ago=5)
    nurse = make.actor(make.user(Role.NURSE))
    now = utcnow()
    values = CheckValues(taken_at=now, colour="dusky", capillary_refill="brisk")
    recorded = record_check(session, nurse, flap.id, values, now=now)
    assert recorded.escalation is not None
    return recorded.escalation, patient


def mail_deliveries(session: Session) -> list[NotificationDelivery]:
    return list(
        seen(session).scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.channel == "email")
            .order_by(NotificationDelivery.id)
        )
    )


def test_the_registrar_gets_a_short_mail_naming_no_patient_that_links_to_the_escalation(
    app, make, session, relay
):
    registrar_by_mail(make, session)
    escalation, patient = red_escalation(make, session)
    factory = app.extensions[EXTENSION_KEY]

    assert deliver_due(factory, policy=POLICY, mail=mail_to(relay)) == 1
    (mail,) = relay.mails
    assert mail.recipients == [REGISTRAR_MAIL]
    message = mail.message
    assert message["Subject"] == "flapwatch: RED escalation, PLAST-W3 bed 12 (level 1)"
    assert message["From"] == "flapwatch@hospital.example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content()
    assert f"https://flapwatch.hospital.example.org/escalations/{escalation.id}" in body
    assert "Registrar paged (level 1)" in body and "Opened " in body
    assert escalation.reasons and all(reason in body for reason in escalation.reasons)
    for identifier in (patient.name, "Hollis", patient.mrn):
        assert identifier not in message["Subject"] and identifier not in body

    (delivery,) = mail_deliveries(session)
    assert delivery.status == DeliveryStatus.DELIVERED and delivery.url == REGISTRAR_MAIL
    assert (delivery.level, delivery.target) == (1, "Registrar")
    (attempt,) = session.scalars(
        select(NotificationAttempt).where(NotificationAttempt.delivery_id == delivery.id)
    )
    assert attempt.status_code == 250 and attempt.error is None


def test_every_try_of_one_page_carries_the_same_message_id_and_the_next_step_its_own(
    app, make, session, relay
):
    registrar_by_mail(make, session)
    escalation, _ = red_escalation(make, session)
    factory = app.extensions[EXTENSION_KEY]
    relay.refuse = "451 Try again later"
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    relay.refuse = None
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    advance_chains(session, utcnow() + timedelta(minutes=1, seconds=1))
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    first, second = mail_deliveries(session)
    assert [m.message["Message-ID"] for m in relay.mails] == [
        f"<flapwatch-delivery-{first.id}@hospital.example.org>",
        f"<flapwatch-delivery-{second.id}@hospital.example.org>",
    ]
    assert [m.message["Subject"][-9:] for m in relay.mails] == ["(level 1)", "(level 2)"]
    assert first.attempts == 2 and escalation.id == first.escalation_id


def test_a_relay_refusing_the_mailbox_is_on_record_and_the_pager_and_next_step_still_go(
    app, make, session, relay, pager
):
    registrar_by_mail(make, session, pager_url=pager.url)
    red_escalation(make, session)
    factory = app.extensions[EXTENSION_KEY]
    relay.refuse = "550 5.1.1 No such user here"

    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    assert len(pager.received) == 1 and relay.mails == []
    (mail,) = mail_deliveries(session)
    assert mail.status == DeliveryStatus.PENDING and mail.attempts == 1
    assert mail.last_error == "SMTP 550: 5.1.1 No such user here"

    assert advance_chains(session, utcnow() + timedelta(minutes=1, seconds=1)) == 1
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    assert [r.body["level"] for r in pager.received] == [1, 2]
    attempts = seen(session).scalars(select(NotificationAttempt.status_code)).all()
    assert attempts.count(550) == 3  # level 1 twice, level 2 once: every try stored


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_that_asks_for_a_login_takes_the_configured_one(app, make, session):
    relay = MailServer(credentials=("flapwatch", "s3cret-relay"))
    try:
        registrar_by_mail(make, session)
        red_escalation(make, session)
        factory = app.extensions[EXTENSION_KEY]
        deliver_due(factory, policy=POLICY, mail=mail_to(relay))
        assert relay.mails == [] and "SMTP 530" in (mail_deliveries(session)[0].last_error or "")
        given = mail_to(relay, username="flapwatch", password="s3cret-relay")
        deliver_due(factory, policy=POLICY, mail=given)
        assert len(relay.mails) == 1
        assert mail_deliveries(session)[0].status == DeliveryStatus.DELIVERED
    finally:
        relay.close()


def test_without_a_mail_server_configured_the_attempt_says_what_to_set(app, make, session):
    registrar_by_mail(make, session)
    red_escalation(make, session)
    deliver_due(app.extensions[EXTENSION_KEY], policy=POLICY, mail=MailSettings())
    (mail,) = mail_deliveries(session)
    assert mail.last_error == "No mail server: set FLAPWATCH_SMTP_HOST."


def test_the_mail_settings_come_from_the_environment(monkeypatch, tmp_path):
    from flapwatch import create_app

    monkeypatch.setenv("FLAPWATCH_SMTP_HOST", "smtp.hospital.example.org")
    monkeypatch.setenv("FLAPWATCH_SMTP_PORT", "587")
    monkeypatch.setenv("FLAPWATCH_SMTP_SECURITY", "STARTTLS")
    monkeypatch.setenv("FLAPWATCH_BASE_URL", "https://flapwatch.hospital.example.org/")
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path / 'f.sqlite3'}", "NOTIFIER_THREAD": False}
    )
    settings = MailSettings.from_config(app.config)
    assert (settings.host, settings.port, settings.security) == (
        "smtp.hospital.example.org",
        587,
        "starttls",
    )
    assert settings.base_url == "https://flapwatch.hospital.example.org"


def test_a_mended_mailbox_takes_the_page_still_waiting(app, make, session, relay):
    registrar_by_mail(make, session)
    red_escalation(make, session)
    factory = app.extensions[EXTENSION_KEY]
    relay.refuse = "550 No such user"
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    relay.refuse = None
    mended = "registrar.plastics@hospital.example.org"
    publish_contacts(
        session,
        SYSTEM,
        "PLAST-W3",
        [
            {"name": "Registrar", "channels": [{"kind": "email", "address": mended}]},
            {"name": "Registrar on call"},
            {"name": "Consultant on call"},
            {"name": "Nurse in charge"},
        ],
        "Registrar's address mistyped",
    )
    deliver_due(factory, policy=POLICY, mail=mail_to(relay))
    assert [m.recipients for m in relay.mails] == [[mended]]


def test_a_coordinator_adds_a_mailbox_through_the_api_and_a_bad_one_is_named(api):
    coordinator = api(Role.UNIT_ADMIN)
    contacts = coordinator.get("/units/PLAST-W3/contacts").get_json()["contacts"]
    contacts[0]["channels"] = [{"kind": "email", "address": REGISTRAR_MAIL}]
    answer = coordinator.put("/units/PLAST-W3/contacts", {"note": "Mail", "contacts": contacts})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["contacts"][0]["channels"] == contacts[0]["channels"]

    contacts[1]["channels"] = [{"kind": "email", "address": "consultant@hospital"}]
    refused = coordinator.put("/units/PLAST-W3/contacts", {"note": "Typo", "contacts": contacts})
    assert refused.status_code == 422
    assert "contacts.1.channels.0.address" in refused.get_json()["error"]["fields"]


def test_the_contacts_page_keeps_mail_addresses_one_a_line(make, logged_in):
    unit = make.unit()
    browser, _ = logged_in(Role.UNIT_ADMIN)
    url = f"/admin/units/{unit.id}/chain"
    data = {"part": "contacts", "csrf_token": browser.csrf_token(url), "note": "Mailboxes"}
    rows = [
        ("Registrar on call", f"{REGISTRAR_MAIL}\nreg.backup@hospital.example.org"),
        ("Consultant on call", "consultant at hospital"),
        ("Nurse in charge", ""),
    ]
    for index, (name, emails) in enumerate(rows):
        data[f"contacts-{index}-name"] = name
        data[f"contacts-{index}-emails"] = emails
    refused = browser.post(url, data)
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert 'id="contacts-1-emails-error"' in page and "one e-mail address" in page
    assert "reg.backup@hospital.example.org" in page  # what was typed is kept

    data["contacts-1-emails"] = ""
    data["csrf_token"] = browser.csrf_token(url)
    assert browser.post(url, data).status_code == 302
    page = browser.get(url).get_data(as_text=True)
    assert "Contacts: version 2 in force" in page
    assert f"{REGISTRAR_MAIL}\nreg.backup@hospital.example.org" in page
