"""What a trend chart marks, from the rule set and the schedule (pure domain functions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from flapwatch.domain.rules import DEFAULT_RULE_SET, parse_rule_set
from flapwatch.domain.schedule import SchedulePolicy
from flapwatch.domain.trend import (
    abnormal_categories,
    overdue_gaps,
    schedule_bands,
    thresholds,
    trend_conditions,
)
from flapwatch.domain.vocabulary import Severity

SURGERY = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def _at(hours: float) -> datetime:
    return SURGERY + timedelta(hours=hours)


def _rules(*rules: dict) -> object:
    return parse_rule_set({"rules": list(rules)})


def test_default_rules_draw_the_temperature_difference_and_sto2_lines():
    lines = {(t.field, t.op, t.value, t.severity, t.rule_id) for t in thresholds(DEFAULT_RULE_SET)}
    assert lines == {
        ("temperature_difference_c", ">=", 1.8, Severity.AMBER, "temperature"),
        ("sto2_percent", "<", 30.0, Severity.RED, "sto2"),
    }


def test_threshold_words_name_the_rule_and_the_condition():
    (difference,) = [t for t in thresholds(DEFAULT_RULE_SET) if t.rule_id == "temperature"]
    assert difference.label == "Flap cooling: ΔT ≥ 1.8 °C"


def test_a_disabled_rule_draws_no_line():
    rules = replace(
        DEFAULT_RULE_SET,
        rules=tuple(
            replace(rule, enabled=False) if rule.id == "temperature" else rule
            for rule in DEFAULT_RULE_SET.rules
        ),
    )
    assert [t.rule_id for t in thresholds(rules)] == ["sto2"]


def test_trend_conditions_are_listed_in_words_not_drawn():
    labels = {c.rule_id: c.label for c in trend_conditions(DEFAULT_RULE_SET)}
    assert labels["sto2"] == "Low or falling StO₂: StO₂ falls ≥ 20 points within 60 min"
    assert "flap temperature falls ≥ 1.8 °C since the previous check" in labels["temperature"]


def test_abnormal_answers_come_from_the_rules_with_their_highest_severity():
    abnormal = abnormal_categories(DEFAULT_RULE_SET)
    assert abnormal["colour"] == {
        "pale": Severity.RED,
        "white": Severity.RED,
        "mottled": Severity.RED,
        "dusky": Severity.RED,
        "blue": Severity.RED,
        "purple": Severity.RED,
        "black": Severity.RED,
    }
    # A lost signal (changed_from ... to) is abnormal too.
    assert abnormal["doppler_arterial"] == {"absent": Severity.RED, "weak": Severity.RED}
    assert "pink" not in abnormal["colour"]


def test_not_in_makes_every_other_observed_answer_abnormal_but_not_unassessable():
    rules = _rules(
        {
            "id": "not-pink",
            "name": "Not pink",
            "severity": "amber",
            "action": "Look again.",
            "conditions": [{"field": "colour", "op": "not_in", "value": ["pink"]}],
        },
        {
            "id": "blue",
            "name": "Blue",
            "severity": "red",
            "action": "Call.",
            "conditions": [{"field": "colour", "op": "in", "value": ["blue"]}],
        },
    )
    colour = abnormal_categories(rules)["colour"]
    assert colour["pale"] == Severity.AMBER
    assert colour["blue"] == Severity.RED  # the higher of the two rules
    assert "pink" not in colour
    assert "not_assessable" not in colour


def test_a_gap_past_due_and_grace_is_overdue_until_the_next_check():
    hourly = SchedulePolicy()
    gaps = overdue_gaps(hourly, SURGERY, _checks(0.2, 1.1, 3.0), until=None)
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.due_at == _at(2.1)
    assert gap.overdue_from == _at(2.1) + timedelta(minutes=15)
    assert gap.until == _at(3.0)
    assert gap.closed


def test_a_check_within_grace_leaves_no_gap():
    gaps = overdue_gaps(SchedulePolicy(), SURGERY, _checks(0.2, 1.4), until=None)
    assert gaps == []


def test_a_flap_still_monitored_shows_its_open_gap_up_to_now():
    gaps = overdue_gaps(SchedulePolicy(), SURGERY, _checks(0.5), until=_at(4))
    assert [(g.overdue_from, g.until, g.closed) for g in gaps] == [
        (_at(1.5) + timedelta(minutes=15), _at(4), False)
    ]


def test_no_check_at_all_is_overdue_from_the_first_due_time():
    gaps = overdue_gaps(SchedulePolicy(), SURGERY, [], until=_at(2))
    assert [g.due_at for g in gaps] == [_at(1)]


def _checks(*hours: float) -> list[tuple[datetime, str]]:
    return [(_at(h), "check") for h in hours]


def test_nothing_is_overdue_while_paused_and_a_resume_is_due_at_once():
    events = [*_checks(0.5), (_at(1.0), "pause"), (_at(3.0), "resume")]
    assert overdue_gaps(SchedulePolicy(), SURGERY, events, until=_at(3.2)) == []
    (gap,) = overdue_gaps(SchedulePolicy(), SURGERY, events, until=_at(4))
    assert (gap.due_at, gap.until, gap.closed) == (_at(3.0), _at(4), False)


def test_a_check_not_done_makes_the_next_due_half_an_hour_later():
    events = [*_checks(0.5), (_at(1.5), "not_done")]
    (gap,) = overdue_gaps(SchedulePolicy(), SURGERY, events, until=_at(3))
    assert gap.due_at == _at(2.0)


def test_schedule_bands_cover_the_chart_and_name_their_interval():
    bands = schedule_bands(SchedulePolicy(), end_hours=60)
    assert [(b.start_hours, b.end_hours, b.label) for b in bands] == [
        (0.0, 24.0, "hourly"),
        (24.0, 48.0, "2-hourly"),
        (48.0, 120.0, "4-hourly"),
    ]
    long = schedule_bands(SchedulePolicy(), end_hours=130)
    assert long[-1].label == "8-hourly"
    assert [b.label for b in schedule_bands(SchedulePolicy(bands=((12, 30),)), 20)] == [
        "every 30 min",
        "8-hourly",
    ]
