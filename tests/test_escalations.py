"""A worrying check reaches a surgeon: flags through record_check, escalations, the sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from flapwatch.domain.vocabulary import EscalationEventKind, EscalationOutcome, ReconstructionStatus
from flapwatch.models import (
    AuditEvent,
    Check,
    Escalation,
    EscalationEvent,
    MissedCheck,
    RuleSetVersion,
    utcnow,
)
from flapwatch.services import InvalidInput
from flapwatch.services.escalations import (
    acknowledge_escalation,
    close_escalation,
    sweep_overdue,
)

NORMAL = dict(
    colour="pink",
    flap_temperature_c=34.2,
    control_temperature_c=35.0,
    capillary_refill="normal",
    doppler_arterial="present",
    doppler_venous="present",
    turgor="soft",
    pinprick="bright_red",
    sto2_percent=70,
)


def flags(check: Check) -> set[str]:
    return {flag.rule_id for flag in check.flags}


def open_escalations(session) -> list[Escalation]:
    session.expire_all()
    return list(session.scalars(select(Escalation).where(Escalation.closed_at.is_(None))))


def test_a_normal_check_flags_nothing_and_opens_no_escalation(make, session):
    flap = make.reconstruction()
    check = make.check(flap, **NORMAL)
    assert flags(check) == set() and check.severity is None
    assert check.rule_set_version_id is not None
    assert open_escalations(session) == []


@pytest.mark.parametrize(
    ("changes", "rule", "severity"),
    [
        ({"colour": "pale", "capillary_refill": "sluggish"}, "arterial", "red"),
        ({"colour": "blue", "capillary_refill": "brisk"}, "venous", "red"),
        ({"flap_temperature_c": 33.1, "control_temperature_c": 35.0}, "temperature", "amber"),
        ({"colour": "black"}, "necrosis", "red"),
        ({"sto2_percent": 29}, "sto2", "red"),
    ],
)
def test_classic_patterns_flag_their_rule_and_open_an_escalation(
    make, session, changes, rule, severity
):
    flap = make.reconstruction()
    check = make.check(flap, **{**NORMAL, **changes})
    assert rule in flags(check)
    (escalation,) = open_escalations(session)
    assert escalation.reconstruction_id == flap.id
    assert escalation.opened_by_check_id == check.id
    assert any(severity == flag.severity for flag in check.flags if flag.rule_id == rule)


def test_a_present_doppler_going_absent_flags_doppler_change(make, session):
    flap = make.reconstruction()
    make.check(flap, minutes_ago=60, **NORMAL)
    check = make.check(flap, **{**NORMAL, "doppler_arterial": "absent"})
    assert {"doppler-change", "arterial"} <= flags(check)


def test_a_doppler_heard_only_days_of_checks_ago_is_still_the_one_a_change_is_judged_by(
    make, session
):
    # Recording reads a flap's newest checks first; this flap's last Doppler is older than
    # all of them, and going absent must still be flagged as a change from it.
    flap = make.reconstruction(hours_ago=62)
    make.check(flap, minutes_ago=60 * 61, doppler_arterial="present")
    for hours_ago in range(60, 0, -1):
        make.check(flap, minutes_ago=60 * hours_ago, colour="pink")
    check = make.check(flap, doppler_arterial="absent", colour="pink")
    assert "doppler-change" in flags(check)
    assert (
        "present to absent"
        in " ".join(
            reason
            for flag in check.flags
            if flag.rule_id == "doppler-change"
            for reason in flag.reasons
        ).lower()
    )


def test_sto2_falling_twenty_points_within_an_hour_flags_sto2(make):
    flap = make.reconstruction()
    make.check(flap, minutes_ago=50, **{**NORMAL, "sto2_percent": 72})
    check = make.check(flap, **{**NORMAL, "sto2_percent": 51})
    assert flags(check) == {"sto2"}
    reasons = " ".join(check.flags[0].reasons)
    assert "72" in reasons and "51" in reasons


def test_later_flags_attach_to_the_open_escalation_and_raise_its_severity(make, session):
    flap = make.reconstruction()
    make.check(flap, minutes_ago=30, **{**NORMAL, "flap_temperature_c": 33.0})  # amber
    (escalation,) = open_escalations(session)
    assert escalation.severity == "amber"
    make.check(flap, **{**NORMAL, "colour": "purple"})  # red
    (escalation,) = open_escalations(session)
    assert escalation.severity == "red"
    kinds = [event.kind for event in escalation.events]
    # The red sign raised the severity: the red chain starts, from its first step.
    assert kinds == ["opened", "paged", "flag_added", "paged"]
    assert escalation.chain_round == 2


def test_acknowledging_return_to_theatre_sets_the_flap_status(make, session):
    surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
    flap = make.reconstruction()
    make.check(flap, **{**NORMAL, "colour": "dusky"})
    (escalation,) = open_escalations(session)
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome="return_to_theatre", note="Re-explore now"
    )
    session.expire_all()
    assert escalation.acknowledged_by_id == surgeon.user_id
    assert escalation.outcome == EscalationOutcome.RETURN_TO_THEATRE
    assert flap.status == ReconstructionStatus.RETURNED_TO_THEATRE
    close_escalation(session, surgeon, escalation.id, note="Salvaged in theatre")
    assert open_escalations(session) == []
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"escalation.open", "escalation.acknowledge", "escalation.close"} <= actions


def test_a_new_sign_after_acknowledgement_needs_acknowledging_again(make, session):
    surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
    flap = make.reconstruction()
    make.check(flap, minutes_ago=40, **{**NORMAL, "colour": "dusky"})
    (escalation,) = open_escalations(session)
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe")
    make.check(flap, **{**NORMAL, "colour": "purple", "turgor": "tense"})
    (escalation,) = open_escalations(session)
    assert escalation.acknowledged_at is None and escalation.outcome is None


def test_closing_needs_an_acknowledgement_and_nurses_cannot_acknowledge(make, session):
    nurse = make.actor(make.user("nurse", "PLAST-W3"))
    surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
    flap = make.reconstruction()
    make.check(flap, **{**NORMAL, "colour": "dusky"})
    (escalation,) = open_escalations(session)
    with pytest.raises(InvalidInput, match="not closed"):
        close_escalation(session, surgeon, escalation.id)
    from flapwatch.services import Forbidden

    with pytest.raises(Forbidden):
        acknowledge_escalation(session, nurse, escalation.id, outcome="observe")
    with pytest.raises(InvalidInput):
        acknowledge_escalation(session, surgeon, escalation.id, outcome="wait and see")


def test_missed_check_is_escalated_once_however_often_the_sweep_runs(make, session):
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=100, **NORMAL)  # hourly band: due 40 min ago, grace 15
    first = sweep_overdue(session)
    again = sweep_overdue(session)
    assert (first.missed, first.escalated) == (1, 1)
    assert (again.missed, again.escalated) == (0, 0)
    (escalation,) = open_escalations(session)
    assert escalation.severity == "amber"
    assert [event.kind for event in escalation.events] == ["opened", "paged"]
    assert session.scalar(select(func.count(MissedCheck.id))) == 1


def test_a_check_within_grace_is_not_missed(make, session):
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=70, **NORMAL)  # due 10 min ago: within 15 min grace
    assert sweep_overdue(session).missed == 0
    later = sweep_overdue(session, now=utcnow() + timedelta(minutes=10))
    assert later.missed == 1


def test_each_check_keeps_the_rule_set_version_that_evaluated_it(make, session):
    from flapwatch.domain.rules import parse_rule_set, rule_set_to_json
    from flapwatch.services import SYSTEM
    from flapwatch.services.escalations import publish_rule_set

    flap = make.reconstruction()
    before = make.check(flap, minutes_ago=20, **{**NORMAL, "colour": "pale"})
    unit = flap.patient.unit
    version_1 = session.scalars(select(RuleSetVersion)).one()
    definition = rule_set_to_json(parse_rule_set(version_1.definition))
    for rule in definition["rules"]:
        if rule["id"] == "arterial":
            rule["enabled"] = False
    version_2 = publish_rule_set(session, SYSTEM, unit.id, definition, "Pale alone is noisy")
    after = make.check(flap, **{**NORMAL, "colour": "pale"})
    session.expire_all()
    assert before.rule_set_version_id == version_1.id and "arterial" in flags(before)
    assert after.rule_set_version_id == version_2.id and "arterial" not in flags(after)


def test_invalid_rule_set_is_refused_naming_the_condition(make, session):
    from flapwatch.services import SYSTEM
    from flapwatch.services.escalations import publish_rule_set

    unit = make.unit()
    bad = {
        "rules": [
            {
                "id": "venous",
                "name": "Venous",
                "severity": "red",
                "action": "Call",
                "match": "any",
                "enabled": True,
                "conditions": [{"field": "colur", "op": "in", "value": ["blue"]}],
            }
        ]
    }
    with pytest.raises(InvalidInput) as refused:
        publish_rule_set(session, SYSTEM, unit.id, bad, "typo")
    message = " ".join(refused.value.problems.values())
    assert "venous" in message and "condition 1" in message and "colur" in message
    assert session.scalar(select(func.count(RuleSetVersion.id))) == 1


def test_escalation_events_record_the_flagging_check(make, session):
    flap = make.reconstruction()
    check = make.check(flap, **{**NORMAL, "colour": "dusky"})
    event = session.scalars(
        select(EscalationEvent).where(EscalationEvent.kind == EscalationEventKind.OPENED)
    ).one()
    assert event.check_id == check.id and event.severity == "red"
    assert any("dusky" in reason.lower() for reason in event.reasons)


def test_nurse_saving_a_worrying_check_is_told_what_to_do_in_large_type(logged_in, make):
    from tests.test_record_check import normal_check

    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction()
    response = browser.post(
        f"/reconstructions/{flap.id}/checks/new",
        normal_check(colour="blue", capillary_refill="brisk"),
    )
    assert response.status_code == 302 and "/flagged" in response.headers["Location"]
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Escalate now" in page and "RED" in page and "▲" in page
    assert "Venous congestion suspected" in page or "venous" in page.lower()
    assert "Call the on-call plastic surgery registrar now" in page
    assert "colour blue" in page.lower()


def test_nurse_of_another_unit_cannot_see_the_flagged_check(logged_in, make):
    flap = make.reconstruction(unit="PLAST-W3")
    check = make.check(flap, colour="dusky")
    browser, _ = logged_in("nurse", "ORTHO-W1")
    assert browser.get(f"/checks/{check.id}/flagged").status_code == 404


def test_ordinary_requests_sweep_for_overdue_checks_at_most_once_a_minute(app, logged_in, make):
    from flapwatch.http import requests as request_hooks

    browser, _ = logged_in("nurse", "PLAST-W3")
    flap = make.reconstruction(hours_ago=6)
    make.check(flap, minutes_ago=100, colour="pink")  # overdue
    app.config["SWEEP_ON_REQUESTS"] = True
    request_hooks._last_sweep["at"] = 0.0
    board = browser.get("/units/PLAST-W3/board").get_data(as_text=True)
    assert "Escalation open" in board or "escalated" in board
    swept_at = request_hooks._last_sweep["at"]
    browser.get("/units/PLAST-W3/board")
    assert request_hooks._last_sweep["at"] == swept_at  # not again within the minute


def test_a_sign_added_after_the_surgeon_opened_the_page_is_not_acknowledged_unseen(make, session):
    surgeon = make.actor(make.user("surgeon", "PLAST-W3"))
    flap = make.reconstruction()
    make.check(flap, minutes_ago=20, **{**NORMAL, "colour": "dusky"})
    (escalation,) = open_escalations(session)
    seen = escalation.events[-1].id
    make.check(flap, **{**NORMAL, "colour": "purple"})  # arrives while the page is open
    with pytest.raises(InvalidInput) as refused:
        acknowledge_escalation(
            session, surgeon, escalation.id, outcome="observe", seen_event_id=seen
        )
    assert "new sign" in refused.value.problems[""]
    (escalation,) = open_escalations(session)
    assert escalation.acknowledged_at is None
    latest = escalation.events[-1].id
    acknowledge_escalation(session, surgeon, escalation.id, outcome="observe", seen_event_id=latest)
    assert open_escalations(session)[0].acknowledged_at is not None


def test_the_acknowledge_form_carries_the_last_event_the_surgeon_saw(logged_in, make, session):
    import html
    import re

    browser, _ = logged_in("surgeon", "PLAST-W3")
    flap = make.reconstruction()
    make.check(flap, minutes_ago=20, **{**NORMAL, "colour": "dusky"})
    (escalation,) = open_escalations(session)
    page = browser.get(f"/escalations/{escalation.id}").get_data(as_text=True)
    seen = re.search(r'name="seen_event_id" value="(\d+)"', page).group(1)
    make.check(flap, **{**NORMAL, "colour": "purple"})
    response = browser.post(
        f"/escalations/{escalation.id}/acknowledge",
        {"outcome": "observe", "note": "looked fine to me", "seen_event_id": seen},
    )
    refused = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400
    assert "A new sign was added after you opened this page" in refused
    assert "looked fine to me" in refused
    assert open_escalations(session)[0].acknowledged_at is None
