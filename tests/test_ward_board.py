"""The nurse's home: the ward board with due and overdue flaps, most urgent first."""

from __future__ import annotations

import re

from sqlalchemy import select

from flapwatch.models import Escalation
from tests.conftest import count_queries


def test_nurse_sees_monitored_flaps_with_due_states_overdue_first(logged_in, make):
    browser, nurse = logged_in("nurse", "PLAST-W3")
    fresh = make.reconstruction(make.patient(bed="1", name="Ada Fresh"), hours_ago=2)
    make.check(fresh, minutes_ago=10)  # hourly band: next due in 50 min
    overdue = make.reconstruction(make.patient(bed="2", name="Bea Overdue"), hours_ago=5)
    make.check(overdue, minutes_ago=90)  # due 30 min ago, grace 15 min: overdue
    due = make.reconstruction(make.patient(bed="3", name="Cai Due"), hours_ago=5)
    make.check(due, minutes_ago=65)  # due 5 min ago, within grace

    page = browser.get("/units/PLAST-W3/board").get_data(as_text=True)

    positions = [page.index(name) for name in ("Bea Overdue", "Cai Due", "Ada Fresh")]
    assert positions == sorted(positions)
    assert "1 overdue" in page and "1 due" in page
    assert re.search(r"Overdue by (29|30) min", page)


def test_board_query_count_does_not_grow_with_flaps(app, logged_in, make):
    browser, _ = logged_in("nurse", "PLAST-W3")
    reconstruction = make.reconstruction()
    make.check(reconstruction, minutes_ago=5)
    with count_queries(app) as few:
        assert browser.get("/units/PLAST-W3/board").status_code == 200
    for _ in range(6):
        more = make.reconstruction()
        make.check(more, minutes_ago=30)
        make.check(more, minutes_ago=5)
    with count_queries(app) as many:
        assert browser.get("/units/PLAST-W3/board").status_code == 200
    assert len(many) == len(few)


def test_flap_page_query_count_does_not_grow_with_checks(app, logged_in, make, session):
    from flapwatch.domain.checks import CheckValues
    from flapwatch.services.checks import amend_check

    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=30)
    make.check(flap, minutes_ago=29 * 60, colour="dusky")  # flagged, escalated
    with count_queries(app) as few:
        assert browser.get(f"/reconstructions/{flap.id}").status_code == 200
    for hour in range(28, 0, -1):
        check = make.check(flap, minutes_ago=hour * 60, colour="pink", flap_temperature_c=34.0)
        if hour % 7 == 0:
            amend_check(session, make.nurses["PLAST-W3"], check.id, reason="Typed wrong",
                        values=CheckValues(taken_at=check.taken_at, colour="pale"))  # fmt: skip
    with count_queries(app) as many:
        assert browser.get(f"/reconstructions/{flap.id}").status_code == 200
    assert len(many) == len(few)


def test_board_naming_who_is_coming_reads_the_same_number_of_times_for_many(
    app, logged_in, make, session
):
    from flapwatch.services.escalations import attend_escalation

    browser, _ = logged_in("nurse", "PLAST-W3")

    def coming_to(count: int) -> None:
        for _ in range(count):
            flap = make.reconstruction()
            make.check(flap, minutes_ago=5, colour="dusky", capillary_refill="brisk")
            escalation = session.scalars(
                select(Escalation).where(Escalation.reconstruction_id == flap.id)
            ).one()
            surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
            attend_escalation(session, surgeon, escalation.id, expected_minutes=20)

    coming_to(1)
    with count_queries(app) as few:
        page = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert page.count("Coming: Test surgeon, expected") == 1
    coming_to(5)
    with count_queries(app) as many:
        page = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert page.count("Coming: Test surgeon, expected") == 6
    assert len(many) == len(few)
