"""An escalation that climbs until someone answers: the unit's chain sends each step once when
its time comes, whichever sweepers run, stops at the acknowledgement and starts again at a
sign nobody has seen. Against a real HTTP receiver, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import EscalationEventKind, Role
from flapwatch.models import EscalationEvent, EscalationPage, NotificationDelivery, utcnow
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.chains import advance_chains, publish_chains, publish_contacts
from flapwatch.services.checks import record_check
from flapwatch.services.escalations import acknowledge_escalation, sweep_overdue
from flapwatch.services.notifications import DeliveryPolicy, deliver_due
from flapwatch.services.units import update_unit
from tests.conftest import Factory, seen
from tests.servers import Receiver


@pytest.fixture
def pager() -> Iterator[Receiver]:
    """The contacts' pagers: a real HTTP server on 127.0.0.1."""
    running = Receiver()
    yield running
    running.close()


DUSKY = {"colour": "dusky", "capillary_refill": "brisk"}


def chain_of_three(make: Factory, session: Session, url: str) -> None:
    """Red: registrar at 0 and 1 min, consultant at 2; amber: registrar at 0 and 30."""
    unit = make.unit()
    publish_contacts(
        session,
        SYSTEM,
        unit.code,
        [
            {"name": "Registrar", "channels": [{"kind": "webhook", "url": f"{url}/registrar"}]},
            {"name": "Consultant", "channels": [{"kind": "webhook", "url": f"{url}/consultant"}]},
            {"name": "Registrar on call"},
            {"name": "Consultant on call"},
            {"name": "Nurse in charge"},
        ],
        "The test ward's pagers",
    )
    publish_chains(
        session,
        SYSTEM,
        unit.code,
        {
            "red": [
                {"after_minutes": 0, "notify": "Registrar"},
                {"after_minutes": 1, "notify": "Registrar"},
                {"after_minutes": 2, "notify": "Consultant"},
            ],
            "amber": [
                {"after_minutes": 0, "notify": "Registrar"},
                {"after_minutes": 30, "notify": "Registrar"},
            ],
        },
        "Minutes apart, for the test",
    )


def red_check(make: Factory, session: Session, at: Any) -> Any:
    flap = make.reconstruction(hours_ago=5)
    nurse = make.actor(make.user(Role.NURSE))
    recorded = record_check(session, nurse, flap.id, CheckValues(taken_at=at, **DUSKY), now=at)
    assert recorded.escalation is not None
    return recorded.escalation


def pages(session: Session, escalation_id: int) -> list[tuple[int, int, str]]:
    return [
        (page.round, page.level, page.contact)
        for page in seen(session).scalars(
            select(EscalationPage)
            .where(EscalationPage.escalation_id == escalation_id)
            .order_by(EscalationPage.round, EscalationPage.level)
        )
    ]


def page_deliveries(session: Session, escalation_id: int) -> list[tuple[int | None, str | None]]:
    return [
        (delivery.level, delivery.target)
        for delivery in seen(session).scalars(
            select(NotificationDelivery)
            .where(
                NotificationDelivery.escalation_id == escalation_id,
                NotificationDelivery.level.is_not(None),
            )
            .order_by(NotificationDelivery.id)
        )
    ]


def test_the_chain_climbs_a_level_each_time_a_step_falls_due_and_stops_at_acknowledgement(
    app, make, session, pager
):
    chain_of_three(make, session, pager.url)
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)

    # Step 1 goes with the check itself, in its transaction.
    assert pages(session, escalation.id) == [(1, 1, "Registrar")]
    assert advance_chains(session, start + timedelta(seconds=59)) == 0
    assert advance_chains(session, start + timedelta(minutes=1)) == 1
    assert pages(session, escalation.id) == [(1, 1, "Registrar"), (1, 2, "Registrar")]

    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="observe", now=start + timedelta(seconds=90)
    )
    assert advance_chains(session, start + timedelta(minutes=5)) == 0
    assert [level for _, level, _ in pages(session, escalation.id)] == [1, 2]  # never step 3

    timeline = [
        event.reasons[0]
        for event in seen(session).scalars(
            select(EscalationEvent)
            .where(
                EscalationEvent.escalation_id == escalation.id,
                EscalationEvent.kind == EscalationEventKind.PAGED,
            )
            .order_by(EscalationEvent.id)
        )
    ]
    assert timeline == [
        "Registrar paged (level 1)",
        "Not acknowledged in 1 min: Registrar paged (level 2)",
    ]

    # Each page reaches the contact's own webhook, saying which level and for whom.
    assert page_deliveries(session, escalation.id) == [(1, "Registrar"), (2, "Registrar")]
    with app.app_context():
        deliver_due(app.extensions[EXTENSION_KEY], policy=DeliveryPolicy(timeout_s=5))
    paged = [r for r in pager.received if r.path.startswith("/hook/registrar")]
    assert [(r.body["level"], r.body["target"]) for r in paged] == [
        (1, "Registrar"),
        (2, "Registrar"),
    ]
    assert all(r.body["event"] == "escalation.paged" for r in paged)


def test_a_sweep_that_comes_late_sends_every_step_due_once(make, session, pager):
    chain_of_three(make, session, pager.url)
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)
    assert advance_chains(session, start + timedelta(minutes=7)) == 2
    assert advance_chains(session, start + timedelta(minutes=8)) == 0
    assert [level for _, level, _ in pages(session, escalation.id)] == [1, 2, 3]
    assert session.get(type(escalation), escalation.id).chain_level == 3


def test_two_sweepers_racing_send_each_step_exactly_once(app, make, session, pager):
    chain_of_three(make, session, pager.url)
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)
    session.commit()
    factory = app.extensions[EXTENSION_KEY]
    barrier = threading.Barrier(2)
    sent: list[int] = []
    failures: list[BaseException] = []

    def sweeper() -> None:
        try:
            with app.app_context(), factory() as own:
                barrier.wait()
                sent.append(advance_chains(own, start + timedelta(minutes=3)))
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    assert sorted(sent) == [0, 2]
    assert [level for _, level, _ in pages(session, escalation.id)] == [1, 2, 3]
    assert [level for level, _ in page_deliveries(session, escalation.id)] == [1, 2, 3]


def test_a_new_sign_after_acknowledgement_starts_the_chain_again(make, session, pager):
    chain_of_three(make, session, pager.url)
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)
    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="observe", now=start + timedelta(seconds=30)
    )
    later = start + timedelta(minutes=4)
    nurse = make.actor(make.user(Role.NURSE))
    record_check(
        session,
        nurse,
        escalation.reconstruction_id,
        CheckValues(taken_at=later, colour="purple"),
        now=later,
    )
    advance_chains(session, later + timedelta(minutes=1))
    assert pages(session, escalation.id) == [
        (1, 1, "Registrar"),
        (2, 1, "Registrar"),
        (2, 2, "Registrar"),
    ]


def test_a_missed_check_follows_the_amber_chain(make, session, pager):
    chain_of_three(make, session, pager.url)
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=100)  # overdue since about 40 minutes
    now = utcnow()
    sweep_overdue(session, now)
    escalation = (
        seen(session)
        .scalars(select(EscalationPage.escalation_id).order_by(EscalationPage.id.desc()))
        .first()
    )
    assert pages(session, escalation) == [(1, 1, "Registrar")]
    assert advance_chains(session, now + timedelta(minutes=29)) == 0
    assert advance_chains(session, now + timedelta(minutes=30)) == 1


def test_a_contact_without_a_channel_is_paged_on_the_timeline_and_says_it_cannot_be_reached(
    make, session
):
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)  # the default contacts have no channels yet
    reasons = [
        event.reasons for event in escalation.events if event.kind == EscalationEventKind.PAGED
    ]
    assert reasons == [
        [
            "Registrar on call paged (level 1)",
            "Registrar on call has no way to be reached: a coordinator adds one",
        ]
    ]


def test_a_contact_the_chain_pages_cannot_be_removed(make, session):
    unit = make.unit()
    with pytest.raises(InvalidInput) as refused:
        publish_contacts(session, SYSTEM, unit.code, [{"name": "Registrar on call"}], "Fewer")
    assert "Consultant on call, Nurse in charge" in refused.value.problems["contacts"]


def test_a_chain_naming_no_contact_is_refused_naming_the_step(make, session):
    unit = make.unit()
    with pytest.raises(InvalidInput) as refused:
        publish_chains(
            session,
            SYSTEM,
            unit.code,
            {
                "red": [{"after_minutes": 0, "notify": "Dr Nobody"}],
                "amber": [{"after_minutes": 0, "notify": "Nurse in charge"}],
            },
            "Typo",
        )
    assert "Must name one of the unit's contacts" in refused.value.problems["chains.red.0.notify"]


def test_a_new_unit_webhook_leaves_the_contacts_pages_where_they_were_going(make, session, pager):
    chain_of_three(make, session, pager.url)
    unit = make.unit()
    update_unit(
        session, SYSTEM, unit.id, name=unit.name, timezone=unit.timezone, webhook_url=pager.url
    )
    start = utcnow().replace(microsecond=0)
    escalation = red_check(make, session, start)
    update_unit(
        session,
        SYSTEM,
        unit.id,
        name=unit.name,
        timezone=unit.timezone,
        webhook_url="https://gateway.example.org/ward",
    )
    waiting = {
        (delivery.level, delivery.url)
        for delivery in seen(session).scalars(
            select(NotificationDelivery).where(NotificationDelivery.escalation_id == escalation.id)
        )
    }
    assert waiting == {(None, "https://gateway.example.org/ward"), (1, f"{pager.url}/registrar")}


def test_a_mended_pager_address_takes_the_pages_waiting_for_the_old_one(make, session, pager):
    chain_of_three(make, session, pager.url)
    unit = make.unit()
    escalation = red_check(make, session, utcnow().replace(microsecond=0))
    contacts = [
        {"name": "Registrar", "channels": [{"kind": "webhook", "url": f"{pager.url}/mended"}]},
        {"name": "Consultant", "channels": [{"kind": "webhook", "url": f"{pager.url}/consultant"}]},
        {"name": "Registrar on call"},
        {"name": "Consultant on call"},
        {"name": "Nurse in charge"},
    ]
    publish_contacts(session, SYSTEM, unit.code, contacts, "Registrar's pager mended")

    def waiting() -> list[tuple[str, str, str | None]]:
        return [
            (delivery.url, delivery.status.value, delivery.last_error)
            for delivery in seen(session).scalars(
                select(NotificationDelivery).where(
                    NotificationDelivery.escalation_id == escalation.id,
                    NotificationDelivery.level.is_not(None),
                )
            )
        ]

    assert waiting() == [(f"{pager.url}/mended", "pending", None)]
    contacts[0]["channels"] = []
    publish_contacts(session, SYSTEM, unit.code, contacts, "Registrar's pager withdrawn")
    assert waiting() == [(f"{pager.url}/mended", "failed", "Registrar no longer has this webhook.")]


# --- through the API ---------------------------------------------------------------------------


def test_a_new_unit_starts_with_the_default_chain_readable_by_its_ward(api):
    nurse = api(Role.NURSE)
    answer = nurse.get("/units/PLAST-W3/escalation-chain")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["version"] == 1 and body["unit"] == "PLAST-W3"
    assert [(s["after_minutes"], s["notify"]) for s in body["chains"]["red"]] == [
        (0, "Registrar on call"),
        (5, "Registrar on call"),
        (15, "Consultant on call"),
        (20, "Nurse in charge"),
    ]
    # The contacts hold the pagers' addresses and their tokens: coordinators only.
    assert nurse.get("/units/PLAST-W3/contacts").status_code == 403


def test_a_coordinator_gives_the_registrar_a_pager_and_shortens_the_chain(api, pager):
    coordinator = api(Role.UNIT_ADMIN)
    contacts = coordinator.get("/units/PLAST-W3/contacts").get_json()["contacts"]
    contacts[0]["channels"] = [{"kind": "webhook", "url": pager.url}]
    published = coordinator.put(
        "/units/PLAST-W3/contacts", {"note": "Registrar's pager gateway", "contacts": contacts}
    )
    assert published.status_code == 201, published.get_json()
    assert published.get_json()["version"] == 2
    assert published.headers["Location"].endswith("/units/PLAST-W3/contacts")
    again = coordinator.put(
        "/units/PLAST-W3/contacts", {"note": "Registrar's pager gateway", "contacts": contacts}
    )
    assert again.status_code == 200 and again.get_json()["version"] == 2

    chains = {
        "red": [
            {"after_minutes": 0, "notify": "Registrar on call"},
            {"after_minutes": 10, "notify": "Consultant on call"},
        ],
        "amber": [{"after_minutes": 0, "notify": "Registrar on call"}],
    }
    answer = coordinator.put(
        "/units/PLAST-W3/escalation-chain", {"note": "Consultant sooner", "chains": chains}
    )
    assert answer.status_code == 201
    assert answer.get_json()["chains"] == chains
    assert answer.get_json()["created_by"] == coordinator.user.username


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "note": "Typo",
                "chains": {
                    "red": [{"after_minutes": 0, "notify": "Regsitrar on call"}],
                    "amber": [{"after_minutes": 0, "notify": "Registrar on call"}],
                },
            },
            "chains.red.0.notify",
        ),
        (
            {
                "note": "Backwards",
                "chains": {
                    "red": [
                        {"after_minutes": 15, "notify": "Registrar on call"},
                        {"after_minutes": 5, "notify": "Consultant on call"},
                    ],
                    "amber": [{"after_minutes": 0, "notify": "Registrar on call"}],
                },
            },
            "chains.red.1.after_minutes",
        ),
    ],
)
def test_a_chain_that_cannot_run_is_refused_naming_the_step(api, body, field):
    coordinator = api(Role.UNIT_ADMIN)
    answer = coordinator.put("/units/PLAST-W3/escalation-chain", body)
    assert answer.status_code == 422
    assert field in answer.get_json()["error"]["fields"]
    assert coordinator.get("/units/PLAST-W3/escalation-chain").get_json()["version"] == 1


def test_the_shape_of_a_chain_is_checked_at_the_door(api):
    coordinator = api(Role.UNIT_ADMIN)
    answer = coordinator.put(
        "/units/PLAST-W3/escalation-chain",
        {"note": "x", "chains": {"red": [{"after_minutes": "soon", "notify": "R"}], "amber": []}},
    )
    assert answer.status_code == 400
    fields = answer.get_json()["error"]["fields"]
    assert "chains.red.0.after_minutes" in fields and "chains.amber" in fields


def test_a_nurse_cannot_change_the_chain_and_another_unit_cannot_see_it(api, make):
    nurse = api(Role.NURSE)
    chains = {"red": [{"after_minutes": 0, "notify": "Nurse in charge"}], "amber": []}
    assert (
        nurse.put("/units/PLAST-W3/escalation-chain", {"note": "x", "chains": chains}).status_code
        == 403
    )
    make.unit("ORTHO-W1")
    elsewhere = api(Role.UNIT_ADMIN, "ORTHO-W1")
    assert elsewhere.get("/units/PLAST-W3/escalation-chain").status_code == 404
    assert elsewhere.get("/units/PLAST-W3/contacts").status_code == 404


# --- on the ward board and the queue -------------------------------------------------------------


def test_the_board_and_the_queue_say_how_long_it_has_gone_unanswered_and_how_far_it_climbed(
    logged_in, make, session
):
    start = utcnow().replace(microsecond=0) - timedelta(minutes=6)
    escalation = red_check(make, session, start)
    advance_chains(session)  # the registrar again at 5 minutes: level 2
    browser, _ = logged_in(Role.NURSE)
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "unanswered 6 min · level 2" in board
    queue = browser.get("/escalations?unit=PLAST-W3").get_data(as_text=True)
    assert "unanswered 6 min · level 2" in queue
    timeline = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)
    assert "by the escalation chain" in timeline
    assert "Not acknowledged in 5 min: Registrar on call paged (level 2)" in timeline

    surgeon = make.actor(make.user(Role.SURGEON))
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe")
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "unanswered" not in board
