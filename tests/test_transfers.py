"""A transfer is a dated event: what happened on the old ward before it stays the old ward's
in its report, what came after is the new ward's, and the flap's time zero does not move."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Escalation
from flapwatch.services import SYSTEM, InvalidInput
from flapwatch.services.checks import record_check
from flapwatch.services.compliance import compliance_report
from flapwatch.services.escalations import acknowledge_escalation
from flapwatch.services.patients import transfer_patient
from flapwatch.services.ward import ward_board

DAY = datetime(2026, 11, 20, tzinfo=UTC)  # London is on UTC in November


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def moved(make, session):
    """A flap operated at 08:00 on ICU, checked hourly there at 09:00 and 10:00 (the second
    one flagged, the surgeon's answer "observe" at 10:10), transferred to PLAST-W3 at 10:30,
    checked there at 11:00 and 12:00, then not at 13:00 or 14:00."""
    make.unit("ICU")
    make.unit("PLAST-W3")
    icu_nurse = make.actor(make.user(Role.NURSE, "ICU"))
    ward_nurse = make.actor(make.user(Role.NURSE, "PLAST-W3"))
    flap = make.reconstruction(make.patient("ICU", bed="2"), surgery_end_at=at(8))
    for hour, colour in ((9, "pink"), (10, "dusky")):
        record_check(session, icu_nurse, flap.id, CheckValues(taken_at=at(hour), colour=colour),
                     now=at(hour, 1))  # fmt: skip
    escalation = session.scalars(select(Escalation)).one()
    acknowledge_escalation(session, make.actor(make.user(Role.SURGEON, "ICU")), escalation.id,
                           outcome="observe", now=at(10, 10))  # fmt: skip
    transfer_patient(session, icu_nurse, flap.patient_id, to_unit="PLAST-W3", at=at(10, 30),
                     bed="5", note="Stepped down from ICU", now=at(10, 40))  # fmt: skip
    for hour in (11, 12):
        record_check(session, ward_nurse, flap.id, CheckValues(taken_at=at(hour), colour="pink"),
                     now=at(hour, 1))  # fmt: skip
    return flap


def test_a_transfer_splits_the_compliance_report_between_the_two_wards_by_time(moved, session):
    icu = compliance_report(session, SYSTEM, "ICU", DAY.date(), DAY.date(), at(14, 30))
    ward = compliance_report(session, SYSTEM, "PLAST-W3", DAY.date(), DAY.date(), at(14, 30))

    assert (icu.total.due, icu.total.on_time, icu.total.missed) == (2, 2, 0)
    assert (ward.total.due, ward.total.on_time, ward.total.missed) == (4, 2, 2)
    assert (icu.checks_recorded, ward.checks_recorded) == (2, 2)
    assert (icu.escalations_opened, ward.escalations_opened) == (1, 0)  # flagged on ICU
    # Operated on ICU: its outcome is counted where its monitoring began.
    assert (icu.flaps_operated, ward.flaps_operated) == (1, 0)


def test_the_flap_is_on_the_new_ward_s_board_and_its_page_says_when_it_moved(
    moved, make, session, logged_in
):
    assert [f.reconstruction.id for f in ward_board(session, SYSTEM, "PLAST-W3", at(12)).flaps] == [
        moved.id
    ]
    assert ward_board(session, SYSTEM, "ICU", at(12)).flaps == []
    # Time zero stays the end of the first surgery: the 12:00 check is due again at 13:00.
    (card,) = ward_board(session, SYSTEM, "PLAST-W3", at(12, 30)).flaps
    assert card.next_due_at == at(13)
    browser, _ = logged_in(Role.NURSE, "PLAST-W3")
    page = browser.get(f"/reconstructions/{moved.id}").get_data(as_text=True)
    assert "Transferred ICU → PLAST-W3 at 20 Nov 10:30" in page and "Stepped down" in page


def test_a_transfer_is_refused_to_the_same_ward_before_arrival_or_in_the_future(moved, session):
    nurse = SYSTEM
    for to_unit, moment, field in (
        ("PLAST-W3", at(13), "to_unit"),
        ("ICU", at(10), "at"),  # before the patient came to PLAST-W3
        ("ICU", at(20), "at"),
    ):
        with pytest.raises(InvalidInput) as refused:
            transfer_patient(session, nurse, moved.patient_id, to_unit=to_unit, at=moment,
                             now=at(14))  # fmt: skip
        assert field in refused.value.problems


def test_the_api_transfers_only_a_patient_on_the_nurse_s_ward(api, make):
    make.unit("ICU")
    flap = make.reconstruction(make.patient("PLAST-W3"), hours_ago=5)
    outsider = api(Role.NURSE, "ICU")
    path = f"/patients/{flap.patient_id}/transfer"
    assert outsider.post(path, {"to_unit": "ICU"}).status_code == 404
    nurse = api(Role.NURSE, "PLAST-W3")
    answer = nurse.post(path, {"to_unit": "ICU", "bed": "3", "note": "Needs a ventilator"})
    assert answer.status_code == 200, answer.json
    assert answer.json["unit"] == "ICU" and answer.json["bed"] == "3"
    assert nurse.post(path, {"to_unit": "NOWHERE"}).status_code == 404
