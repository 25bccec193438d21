"""Rules that tighten the schedule: while the escalation a rule opened waits for a surgeon's
acknowledgement, the next check falls due `recheck_minutes` after the latest (red 15, amber
30 in the default rules); acknowledging hands the flap back to the unit's bands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flapwatch.domain.checks import CheckValues
from flapwatch.domain.rules import (
    DEFAULT_RULE_SET,
    RuleSetError,
    compare_rule_sets,
    parse_rule_set,
    rule_set_to_json,
)
from flapwatch.domain.vocabulary import DueState, EscalationOutcome, Role
from flapwatch.models import Escalation
from flapwatch.services import SYSTEM
from flapwatch.services.checks import record_check
from flapwatch.services.escalations import acknowledge_escalation, sweep_overdue
from flapwatch.services.rule_sets import dry_run
from flapwatch.services.ward import ward_board

DAY = datetime(2026, 11, 20, tzinfo=UTC)
RED = {"colour": "dusky", "capillary_refill": "brisk"}
COOL = {"flap_temperature_c": 33.0, "control_temperature_c": 35.0}  # ΔT 2.0: amber


def at(hour: int, minute: int = 0) -> datetime:
    return DAY + timedelta(hours=hour, minutes=minute)


def _due(session, now):
    (card,) = ward_board(session, SYSTEM, "PLAST-W3", now).flaps
    return card.next_due_at, card.due_state


@pytest.fixture
def nurse(make):
    return make.actor(make.user(Role.NURSE))


def _check(session, nurse, flap, when, **values):
    return record_check(
        session, nurse, flap.id, CheckValues(taken_at=when, **(values or {"colour": "pink"})),
        now=when,
    )  # fmt: skip


def test_a_red_flag_makes_checks_due_every_15_minutes_until_it_is_acknowledged(
    make, session, nurse
):
    flap = make.reconstruction(surgery_end_at=at(4))  # hourly band
    _check(session, nurse, flap, at(9))
    _check(session, nurse, flap, at(10), **RED)

    assert _due(session, at(10, 1)) == (at(10, 15), DueState.NOT_DUE)
    _check(session, nurse, flap, at(10, 15))  # a normal look: still nobody has answered
    assert _due(session, at(10, 16))[0] == at(10, 30)
    assert sweep_overdue(session, now=at(10, 44)).missed == 0
    assert sweep_overdue(session, now=at(10, 46)).missed == 1  # the 10:30 recheck, missed

    surgeon = make.actor(make.user(Role.SURGEON))
    escalation = session.query(Escalation).one()
    acknowledge_escalation(
        session, surgeon, escalation.id, outcome=EscalationOutcome.OBSERVE, note="", now=at(10, 50)
    )
    _check(session, nurse, flap, at(10, 55))
    assert _due(session, at(10, 56))[0] == at(11, 55)  # the band again


def test_an_amber_flag_rechecks_in_30_minutes(make, session, nurse):
    flap = make.reconstruction(surgery_end_at=at(4))
    _check(session, nurse, flap, at(10), **COOL)
    assert _due(session, at(10, 1))[0] == at(10, 30)


def test_a_devices_alarm_calls_for_a_bedside_look_from_the_alarm_not_before_it(
    make, session, nurse
):
    from flapwatch.domain.vocabulary import CheckSource

    flap = make.reconstruction(surgery_end_at=at(4))
    _check(session, nurse, flap, at(9))
    record_check(
        session,
        nurse,
        flap.id,
        CheckValues(taken_at=at(9, 40), sto2_percent=25),
        source=CheckSource.DEVICE,
        device="T.Ox gateway 2",
        now=at(9, 40),
    )
    assert _due(session, at(9, 41))[0] == at(9, 55)


def test_a_rule_without_a_recheck_leaves_the_schedule_alone(make, session, nurse, app):
    from flapwatch.services.escalations import publish_rule_set

    definition = rule_set_to_json(DEFAULT_RULE_SET)
    for rule in definition["rules"]:
        rule.pop("recheck_minutes", None)
    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    flap = make.reconstruction(surgery_end_at=at(4))
    publish_rule_set(session, coordinator, flap.patient.unit_id, definition, "No rechecks")
    _check(session, nurse, flap, at(10), **RED)
    assert _due(session, at(10, 1))[0] == at(11)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (3, "from 5 to 240"),
        (True, "whole number"),
        ("15", "whole number"),
    ],
)
def test_a_recheck_is_a_whole_number_of_minutes_in_range(value, words):
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    definition["rules"][0]["recheck_minutes"] = value
    with pytest.raises(RuleSetError) as refused:
        parse_rule_set(definition)
    assert words in str(refused.value) and '"arterial"' in str(refused.value)


def test_the_overdue_rule_takes_no_recheck():
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    overdue = next(rule for rule in definition["rules"] if rule["id"] == "overdue")
    overdue["recheck_minutes"] = 15
    with pytest.raises(RuleSetError, match="overdue rule has no"):
        parse_rule_set(definition)


def test_the_default_rules_recheck_red_in_15_and_amber_in_30():
    rules = {rule.id: rule for rule in DEFAULT_RULE_SET.rules}
    assert {r.recheck_minutes for r in rules.values() if r.severity == "red"} == {15}
    assert rules["temperature"].recheck_minutes == 30
    assert rules["overdue"].recheck_minutes is None
    assert parse_rule_set(rule_set_to_json(DEFAULT_RULE_SET)).rules == DEFAULT_RULE_SET.rules


def test_the_dry_run_counts_the_extra_checks_a_recheck_would_ask_for():
    from dataclasses import replace

    without = replace(
        DEFAULT_RULE_SET,
        rules=tuple(replace(rule, recheck_minutes=None) for rule in DEFAULT_RULE_SET.rules),
    )
    flagged = CheckValues(taken_at=at(10), colour="dusky")
    calm = CheckValues(taken_at=at(11), colour="pink")
    cases = [(flagged, [], 60), (calm, [flagged], 60), (flagged, [], 240)]
    totals = compare_rule_sets(without, DEFAULT_RULE_SET, cases)["total"]
    # Hourly: 15, 30, 45 before the next at 60 (3); four-hourly: 15 ... 225 (15).
    assert (totals["current_rechecks"], totals["proposed_rechecks"]) == (0, 18)


def test_the_units_dry_run_reports_the_rechecks_of_a_proposal(make, session, nurse):
    from dataclasses import replace

    now = datetime.now(UTC)
    flap = make.reconstruction(hours_ago=6)  # hourly band
    _check(session, nurse, flap, now - timedelta(minutes=30), **RED)
    coordinator = make.actor(make.user(Role.UNIT_ADMIN))
    faster = replace(
        DEFAULT_RULE_SET,
        rules=tuple(
            replace(rule, recheck_minutes=10) if rule.severity == "red" else rule
            for rule in DEFAULT_RULE_SET.rules
        ),
    )
    result = dry_run(session, coordinator, flap.patient.unit_id, faster, 7, now)
    assert (result.rechecks_now, result.rechecks_proposed) == (3, 5)
