"""Answering "I'm coming": a surgeon answers an escalation before the decision, saying when
they expect to be at the bedside. The ward sees who is coming and when, the chain stops paging
for the signs so far, a later sign pages again, and the decision follows with the
acknowledgement."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import EscalationEventKind, Role
from flapwatch.models import Escalation, EscalationEvent, utcnow
from flapwatch.services import Forbidden, InvalidInput
from flapwatch.services.chains import advance_chains, publish_chains
from flapwatch.services.checks import record_check
from flapwatch.services.escalations import (
    acknowledge_escalation,
    attend_escalation,
    close_escalation,
)
from tests.conftest import seen

DUSKY = {"colour": "dusky", "capillary_refill": "brisk"}
LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def minute_chain(make, session):
    """Red: the registrar at 0, 1 and 2 minutes."""
    unit = make.unit()
    steps = [{"after_minutes": m, "notify": "Registrar on call"} for m in (0, 1, 2)]
    publish_chains(
        session,
        make.actor(make.user(Role.UNIT_ADMIN)),
        unit.code,
        {"red": steps, "amber": steps[:1]},
        "A minute apart",
    )
    return unit


def red_escalation(make, session, at, flap=None):
    flap = flap or make.reconstruction(hours_ago=5)
    nurse = make.actor(make.user(Role.NURSE))
    recorded = record_check(session, nurse, flap.id, CheckValues(taken_at=at, **DUSKY), now=at)
    assert recorded.escalation is not None
    return recorded.escalation


def levels(session, escalation_id):
    escalation = seen(session).get(Escalation, escalation_id)
    return escalation.chain_round, escalation.chain_level


def test_a_surgeon_coming_stops_the_chain_and_the_ward_sees_who_and_when(
    make, session, minute_chain
):
    start = utcnow().replace(microsecond=0)
    escalation = red_escalation(make, session, start)
    surgeon_user = make.user(Role.SURGEON)
    surgeon = make.actor(surgeon_user)

    answered = attend_escalation(
        session, surgeon, escalation.id, expected_minutes=15, now=start + timedelta(seconds=40)
    )
    assert answered.attending_now and answered.acknowledged_at is None
    assert answered.attending_expected_at == start + timedelta(seconds=40, minutes=15)
    assert answered.status == "open"  # the decision is still to come

    assert advance_chains(session, start + timedelta(minutes=5)) == 0
    assert levels(session, escalation.id) == (1, 1)  # never level 2

    (event,) = seen(session).scalars(
        select(EscalationEvent).where(EscalationEvent.kind == EscalationEventKind.ATTENDING)
    )
    expected = (start + timedelta(seconds=40, minutes=15)).astimezone(LONDON)
    assert event.reasons == [f"Coming, expected at {expected:%H:%M} (in 15 min)"]
    assert event.actor_id == surgeon_user.id


def test_a_sign_after_i_am_coming_pages_again_but_the_surgeon_stays_shown_on_the_way(
    make, session, minute_chain
):
    start = utcnow().replace(microsecond=0)
    flap = make.reconstruction(hours_ago=5)
    escalation = red_escalation(make, session, start, flap)
    surgeon = make.actor(make.user(Role.SURGEON))
    attend_escalation(session, surgeon, escalation.id, expected_minutes=20, now=start)

    later = start + timedelta(minutes=3)
    nurse = make.actor(make.user(Role.NURSE))
    worse = CheckValues(taken_at=later, colour="purple", capillary_refill="brisk")
    record_check(session, nurse, flap.id, worse, now=later)
    assert levels(session, escalation.id) == (2, 1)  # a new round, level 1 at once
    assert advance_chains(session, later + timedelta(minutes=1)) == 1
    again = seen(session).get(Escalation, escalation.id)
    assert not again.attending_now and again.attending_by_id == surgeon.user_id

    # Answering again covers the new sign: the chain waits once more.
    attend_escalation(session, surgeon, escalation.id, expected_minutes=5, now=later)
    assert advance_chains(session, later + timedelta(minutes=2)) == 0


def test_the_decision_follows_at_the_bedside_and_the_timeline_keeps_who_came(
    make, session, minute_chain
):
    start = utcnow().replace(microsecond=0)
    escalation = red_escalation(make, session, start)
    surgeon = make.actor(make.user(Role.SURGEON))
    attend_escalation(session, surgeon, escalation.id, expected_minutes=10, now=start)
    decided = acknowledge_escalation(
        session, surgeon, escalation.id, outcome="observe", now=start + timedelta(minutes=12)
    )
    assert decided.status == "acknowledged"
    assert decided.attending_at is None  # they came: the board no longer says "coming"
    kinds = [event.kind for event in seen(session).get(Escalation, escalation.id).events]
    assert kinds[-2:] == [EscalationEventKind.ATTENDING, EscalationEventKind.ACKNOWLEDGED]


def test_an_answer_that_cannot_stand_is_refused_naming_why(make, session, minute_chain):
    start = utcnow().replace(microsecond=0)
    escalation = red_escalation(make, session, start)
    surgeon = make.actor(make.user(Role.SURGEON))
    for minutes in (-1, 241, "15"):
        with pytest.raises(InvalidInput) as refused:
            attend_escalation(session, surgeon, escalation.id, expected_minutes=minutes)
        assert "expected_minutes" in refused.value.problems
    with pytest.raises(Forbidden):
        attend_escalation(
            session, make.actor(make.user(Role.NURSE)), escalation.id, expected_minutes=5
        )
    stale = escalation.events[0].id - 1
    with pytest.raises(InvalidInput) as refused:
        attend_escalation(session, surgeon, escalation.id, expected_minutes=5, seen_event_id=stale)
    assert "new sign" in refused.value.problems[""]
    acknowledge_escalation(session, surgeon, escalation.id, outcome="false_alarm")
    close_escalation(session, surgeon, escalation.id)
    with pytest.raises(InvalidInput) as refused:
        attend_escalation(session, surgeon, escalation.id, expected_minutes=5)
    assert "closed" in refused.value.problems[""]


def test_through_the_api_the_answer_and_who_is_coming_are_in_the_escalation(
    api, make, session, minute_chain
):
    escalation = red_escalation(make, session, utcnow())
    surgeon = api(Role.SURGEON)
    answer = surgeon.post(f"/escalations/{escalation.id}/attending", {"expected_minutes": 15})
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["status"] == "open" and body["chain_level"] == 1
    assert body["attending"]["by"] == surgeon.user.username
    assert body["events"][-1]["kind"] == "attending"

    read = api(Role.NURSE).get(f"/escalations/{escalation.id}").get_json()
    assert read["attending"] == body["attending"]
    assert (
        api(Role.NURSE)
        .post(f"/escalations/{escalation.id}/attending", {"expected_minutes": 5})
        .status_code
        == 403
    )
    refused = surgeon.post(f"/escalations/{escalation.id}/attending", {"expected_minutes": 999})
    assert refused.status_code == 400
    assert "expected_minutes" in refused.get_json()["error"]["fields"]


def test_on_the_pages_the_surgeon_says_i_am_coming_and_the_nurse_sees_it(
    make, session, logged_in, minute_chain
):
    escalation = red_escalation(make, session, utcnow())
    surgeon, surgeon_user = logged_in(Role.SURGEON)
    url = f"/escalations/{escalation.id}"
    page = surgeon.get(url).get_data(as_text=True)
    assert "I'm coming" in page and 'name="expected_minutes"' in page

    refused = surgeon.post(f"{url}/attending", {"seen_event_id": ""})
    assert refused.status_code == 400
    assert 'id="expected_minutes-error"' in refused.get_data(as_text=True)

    sent = surgeon.post(f"{url}/attending", {"expected_minutes": "20"})
    assert sent.status_code == 302
    page = surgeon.get(url).get_data(as_text=True)
    assert "The ward is told you are coming" in page
    assert f"Coming: {surgeon_user.display_name}, expected" in page

    nurse, _ = logged_in(Role.NURSE)
    board = nurse.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert f"Coming: {surgeon_user.display_name}, expected" in board
    assert "unanswered" not in board  # the chain waits for the one coming
    queue = nurse.get("/escalations").get_data(as_text=True)
    assert f"Coming: {surgeon_user.display_name}, expected" in queue
