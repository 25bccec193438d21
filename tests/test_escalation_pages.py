"""The surgeon's escalation pages: the queue, acknowledging and closing, and the ward board."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from flapwatch.domain.vocabulary import EscalationOutcome, ReconstructionStatus
from flapwatch.models import AuditEvent, Escalation, Reconstruction, utcnow
from flapwatch.services.escalations import acknowledge_escalation
from tests.conftest import count_queries

AMBER = {"flap_temperature_c": 33.0, "control_temperature_c": 35.0}  # ΔT 2.0 °C
RED = {"colour": "dusky"}


def flagged_flap(make, name: str, unit: str = "PLAST-W3", **values):
    """A flap whose latest check opened an escalation; returns (flap, escalation)."""
    flap = make.reconstruction(make.patient(unit, name=name), unit=unit)
    make.check(flap, **(values or RED))
    return flap, escalation_of(make.session, flap)


def escalation_of(session, flap) -> Escalation:
    session.rollback()  # a fresh read: the app's requests committed in their own sessions
    return session.scalars(
        select(Escalation)
        .where(Escalation.reconstruction_id == flap.id)
        .order_by(Escalation.id.desc())
    ).first()


def opened_minutes_ago(session, escalation: Escalation, minutes: int) -> None:
    escalation.opened_at = utcnow() - timedelta(minutes=minutes)
    session.commit()


def acknowledge(make, escalation: Escalation, outcome: str = "observe") -> None:
    surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
    acknowledge_escalation(make.session, surgeon, escalation.id, outcome=outcome)


def test_surgeon_sees_the_queue_red_first_unacknowledged_first_oldest_first(logged_in, make):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    _, seen_red = flagged_flap(make, "Dee Acknowledged")
    _, amber = flagged_flap(make, "Amy Amber", **AMBER)
    _, new_red = flagged_flap(make, "Ned Newer")
    _, old_red = flagged_flap(make, "Ola Older")
    flagged_flap(make, "Otto Elsewhere", unit="ORTHO-W1")
    opened_minutes_ago(make.session, seen_red, 90)
    opened_minutes_ago(make.session, amber, 80)
    opened_minutes_ago(make.session, new_red, 10)
    opened_minutes_ago(make.session, old_red, 25)
    acknowledge(make, seen_red)

    page = browser.get("/escalations").get_data(as_text=True)

    order = ["Ola Older", "Ned Newer", "Dee Acknowledged", "Amy Amber"]
    positions = [page.index(name) for name in order]
    assert positions == sorted(positions)
    assert "Otto Elsewhere" not in page
    assert "opened 25 min ago" in page and "opened 10 min ago" in page
    assert "▲</span> RED" in page and "◆</span> AMBER" in page  # icon and word, not colour alone
    assert "3 awaiting acknowledgement" in page and "4 open" in page
    assert "Venous congestion" in page
    assert "Acknowledged by Test surgeon" in page and "<strong>Observe</strong>" in page
    assert f"/escalations/{old_red.id}" in page
    assert 'class="nav-count">3<' in page


def test_queue_can_be_narrowed_to_one_of_the_users_units(logged_in, make):
    browser, _ = logged_in("surgeon", "PLAST-W3", "ORTHO-W1")
    flagged_flap(make, "Pia Plastics")
    flagged_flap(make, "Otto Ortho", unit="ORTHO-W1")

    both = browser.get("/escalations").get_data(as_text=True)
    ortho = browser.get("/escalations?unit=ortho-w1").get_data(as_text=True)

    assert "Pia Plastics" in both and "Otto Ortho" in both
    assert "Otto Ortho" in ortho and "Pia Plastics" not in ortho
    assert browser.get("/escalations?unit=HAND-W2").status_code == 404


def test_surgeon_acknowledges_with_an_outcome_and_a_note(logged_in, make, session):
    browser, surgeon = logged_in("surgeon", "PLAST-W3")
    _, escalation = flagged_flap(make, "Ada Dusky")
    url = f"/escalations/{escalation.id}"

    response = browser.post(
        f"{url}/acknowledge",
        {"outcome": "medical_management", "note": "Loosen dressing, review in 30 min"},
        follow_redirects=True,
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 200 and response.request.path == url
    assert "Acknowledged: Medical management" in page
    assert "Loosen dressing, review in 30 min" in page
    escalation = escalation_of(session, escalation.reconstruction)
    assert escalation.outcome == EscalationOutcome.MEDICAL_MANAGEMENT
    assert escalation.note == "Loosen dressing, review in 30 min"
    assert escalation.acknowledged_by_id == surgeon.id
    audit = session.scalars(
        select(AuditEvent).where(AuditEvent.action == "escalation.acknowledge")
    ).one()
    assert audit.object_id == str(escalation.id) and audit.actor_id == surgeon.id
    assert 'name="closing_note"' in page  # acknowledged: the close form replaces it


def test_return_to_theatre_marks_the_flap_and_takes_it_off_the_board(logged_in, make, session):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap, escalation = flagged_flap(make, "Ben Theatre")
    assert "Ben Theatre" in browser.get("/units/PLAST-W3/board").get_data(as_text=True)

    response = browser.post(
        f"/escalations/{escalation.id}/acknowledge",
        {"outcome": "return_to_theatre"},
        follow_redirects=True,
    )

    assert "has left the ward board" in response.get_data(as_text=True)
    session.rollback()
    assert session.get(Reconstruction, flap.id).status == ReconstructionStatus.RETURNED_TO_THEATRE
    assert "Ben Theatre" not in browser.get("/units/PLAST-W3/board").get_data(as_text=True)


def test_acknowledging_without_an_outcome_is_refused_and_keeps_the_note(logged_in, make, session):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap, escalation = flagged_flap(make, "Cat Missing")

    response = browser.post(
        f"/escalations/{escalation.id}/acknowledge", {"note": "Seen at the bedside"}
    )

    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="outcome-error">Choose an outcome' in page
    assert "Seen at the bedside</textarea>" in page
    assert escalation_of(session, flap).acknowledged_at is None


def test_closing_before_acknowledging_is_refused(logged_in, make, session):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap, escalation = flagged_flap(make, "Dan Early")
    url = f"/escalations/{escalation.id}"

    refused = browser.post(f"{url}/close", {"closing_note": "All fine"})

    assert refused.status_code == 400
    assert "Acknowledge it with an outcome before closing it." in refused.get_data(as_text=True)
    assert escalation_of(session, flap).closed_at is None

    browser.post(f"{url}/acknowledge", {"outcome": "false_alarm"})
    closed = browser.post(
        f"{url}/close", {"closing_note": "Lighting, flap pink"}, follow_redirects=True
    )

    assert closed.request.path == "/escalations"
    assert "Escalation closed: Dan Early" in closed.get_data(as_text=True)
    assert escalation_of(session, flap).closed_at is not None
    assert "Dan Early" not in browser.get("/escalations").get_data(as_text=True)
    timeline = browser.get(url).get_data(as_text=True)
    assert "Closed" in timeline and "Lighting, flap pink" in timeline
    late = browser.post(f"{url}/acknowledge", {"outcome": "observe"})
    assert late.status_code == 400
    assert "This escalation is already closed." in late.get_data(as_text=True)


def test_nurses_and_auditors_cannot_acknowledge_or_close(logged_in, make, session):
    flap, escalation = flagged_flap(make, "Eve Watched")
    for role, units in (("nurse", ("PLAST-W3",)), ("auditor", ())):
        browser, _ = logged_in(role, *units)
        page = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)
        assert "Eve Watched" in page and 'name="outcome"' not in page
        acknowledge_url = f"/escalations/{escalation.id}/acknowledge"
        assert browser.post(acknowledge_url, {"outcome": "observe"}).status_code == 403
        assert browser.post(f"/escalations/{escalation.id}/close", {}).status_code == 403
    assert escalation_of(session, flap).acknowledged_at is None


def test_escalation_of_another_unit_is_not_found(logged_in, make, session):
    flap, escalation = flagged_flap(make, "Fay Plastics")
    browser, _ = logged_in("surgeon", "ORTHO-W1")

    assert browser.get(f"/escalations/{escalation.id}").status_code == 404
    response = browser.post(f"/escalations/{escalation.id}/acknowledge", {"outcome": "observe"})
    assert response.status_code == 404
    assert browser.get("/escalations?unit=PLAST-W3").status_code == 404
    assert escalation_of(session, flap).acknowledged_at is None


def test_detail_shows_the_timeline_and_recent_checks_in_the_unit_time_zone(logged_in, make):
    make.unit("NYC-W1", timezone="America/New_York")
    browser, _ = logged_in("surgeon", "NYC-W1")
    flap = make.reconstruction(make.patient("NYC-W1", name="Gil Trend"), unit="NYC-W1")
    make.check(flap, minutes_ago=50, colour="pink")
    first = make.check(flap, minutes_ago=30, **AMBER)
    make.check(flap, minutes_ago=5, colour="purple", turgor="tense")
    escalation = escalation_of(make.session, flap)

    page = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)

    new_york = first.recorded_at.astimezone(ZoneInfo("America/New_York"))
    assert new_york.strftime("%d %b %H:%M") in page
    assert page.index(">Opened<") < page.index(">Further flag<")
    assert f'href="#check-{first.id}"' in page and f'id="check-{first.id}"' in page
    assert "colour purple" in page.lower() and "turgor" in page.lower()
    assert page.count('class="flagged-row') == 2  # the pink check is listed, unflagged
    assert 'name="outcome"' in page and "Return to theatre" in page


def test_board_shows_escalation_open_then_acknowledged(logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    overdue = make.reconstruction(make.patient(name="Hal Overdue"), hours_ago=5)
    make.check(overdue, minutes_ago=90)
    flap, escalation = flagged_flap(make, "Ivy Flagged")

    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)

    assert 'data-refresh-seconds="30"' in board
    assert "Escalation open" in board and f"/escalations/{escalation.id}" in board
    assert board.index("Ivy Flagged") < board.index("Hal Overdue")  # escalated before overdue
    assert "1 awaiting acknowledgement" in board

    acknowledge(make, escalation)
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)

    assert "Escalation open" not in board and "Acknowledged — Observe" in board
    assert board.index("Hal Overdue") < board.index("Ivy Flagged")  # back to due order


def test_queue_query_count_does_not_grow_with_escalations(app, logged_in, make, session):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    _, first = flagged_flap(make, "Jo First")
    acknowledge(make, first)
    flagged_flap(make, "Kim Second")

    def queue_queries() -> int:
        session.expire_all()
        with count_queries(app) as statements:
            assert browser.get("/escalations").status_code == 200
        return len(statements)

    few = queue_queries()
    for number in range(6):
        _, escalation = flagged_flap(make, f"More {number}", **(AMBER if number % 2 else RED))
        if number % 3 == 0:
            acknowledge(make, escalation, "medical_management")
    assert queue_queries() == few


def test_detail_query_count_does_not_grow_with_history(app, logged_in, make, session):
    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap, escalation = flagged_flap(make, "Lee Long")

    def detail_queries() -> int:
        session.expire_all()
        with count_queries(app) as statements:
            assert browser.get(f"/escalations/{escalation.id}").status_code == 200
        return len(statements)

    few = detail_queries()
    for minutes in range(5):
        make.check(flap, minutes_ago=minutes, colour="blue", actor=None)
    acknowledge(make, escalation)
    assert detail_queries() == few


def test_the_escalation_page_opens_with_who_the_chain_has_paged_and_the_answers(
    logged_in, make, session
):
    from flapwatch.services.chains import advance_chains

    browser, _ = logged_in("surgeon", "PLAST-W3")
    _, escalation = flagged_flap(make, "Pat Chained")
    advance_chains(session, utcnow() + timedelta(minutes=16))  # registrar again, consultant

    page = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)

    head = page[
        page.index('class="card escalation-head') : page.index('class="card escalation-flap')
    ]
    reasons, paged, answers = (
        head.index(word) for word in ("<h2>Reasons", "<h2>Paged", "answer-actions")
    )
    assert reasons < paged < answers
    assert "· level 3</span>" in head  # how far the chain has climbed
    assert head.count("<strong>Registrar on call</strong>") == 1  # paged twice, named once
    assert "<strong>Consultant on call</strong>" in head
    assert 'name="outcome"' in head[answers:] and ">Acknowledge</button>" in head[answers:]


def test_an_escalation_nobody_was_paged_for_says_so(logged_in, make, session):
    from flapwatch.models import EscalationPage

    browser, _ = logged_in("surgeon", "PLAST-W3")
    _, escalation = flagged_flap(make, "Nia Nobody")
    for sent in session.scalars(select(EscalationPage)):
        session.delete(sent)  # as for an escalation opened before the unit had a chain
    session.commit()

    page = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)

    assert "Nobody has been paged by the escalation chain." in page
