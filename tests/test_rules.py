"""The escalation rule engine (DESIGN.md §2 "Rule set", "Flag"; §3), as tables of cases."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flapwatch.domain.checks import CATEGORICAL_FIELDS, CheckValues
from flapwatch.domain.rules import (
    DEFAULT_RULE_SET,
    MAX_CHOICES,
    MAX_CONDITIONS,
    MAX_RULES,
    NUMERIC_FIELDS,
    OVERDUE_RULE_ID,
    AtLeast,
    Condition,
    Evaluation,
    Rule,
    RuleSet,
    RuleSetError,
    compare_rule_sets,
    evaluate,
    overdue_rule,
    parse_rule_set,
    recent_history_is_enough,
    rule_set_to_json,
)
from flapwatch.domain.vocabulary import NOT_OBSERVED, Severity

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def check(minutes_ago: float = 0, **values: Any) -> CheckValues:
    return CheckValues(taken_at=NOW - timedelta(minutes=minutes_ago), **values)


def rule_json(*conditions: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    rule = {
        "id": "test",
        "name": "Test rule",
        "severity": "red",
        "action": "Call the registrar.",
        "match": "any",
        "enabled": True,
        "conditions": list(conditions),
    }
    return {**rule, **overrides}


def one_rule(*conditions: dict[str, Any], **overrides: Any) -> RuleSet:
    return parse_rule_set({"rules": [rule_json(*conditions, **overrides)]})


def reasons_for(
    condition: dict[str, Any], current: CheckValues, history: list[CheckValues] | None = None
) -> list[str] | None:
    """The reasons of the single-condition rule, or None when it does not flag the check."""
    evaluation = evaluate(one_rule(condition), current, history or [])
    if not evaluation.matches:
        return None
    return list(evaluation.matches[0].reasons)


def problem_messages(definition: Any) -> list[str]:
    with pytest.raises(RuleSetError) as raised:
        parse_rule_set(definition)
    return [problem.message for problem in raised.value.problems]


# --- categorical operators -------------------------------------------------------------------

COLOUR_PALE = {"field": "colour", "op": "in", "value": ["pale", "white"]}
NOT_PINK = {"field": "colour", "op": "not_in", "value": ["pink"]}


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        (COLOUR_PALE, {"colour": "pale"}, "colour pale"),
        (COLOUR_PALE, {"colour": "white"}, "colour white"),
        (COLOUR_PALE, {"colour": "pink"}, None),
        (COLOUR_PALE, {"colour": None}, None),
        (COLOUR_PALE, {"colour": "not_assessable"}, None),
        (
            {"field": "capillary_refill", "op": "in", "value": ["brisk"]},
            {"capillary_refill": "brisk"},
            "capillary refill brisk (<1 s)",
        ),
        (
            {"field": "pinprick", "op": "in", "value": ["dark_rapid"]},
            {"pinprick": "dark_rapid"},
            "pinprick dark, rapid",
        ),
        (
            {"field": "doppler_arterial", "op": "in", "value": ["not_assessed"]},
            {"doppler_arterial": "not_assessed"},
            "arterial Doppler not assessed",
        ),
        (NOT_PINK, {"colour": "dusky"}, "colour dusky (not pink)"),
        (
            {"field": "turgor", "op": "not_in", "value": ["soft", "firm"]},
            {"turgor": "tense"},
            "turgor tense (not soft or firm)",
        ),
        (NOT_PINK, {"colour": "pink"}, None),
        (NOT_PINK, {"colour": None}, None),
        (NOT_PINK, {"colour": "not_assessable"}, None),
        (
            {"field": "pinprick", "op": "not_in", "value": ["bright_red"]},
            {"pinprick": "not_done"},
            None,
        ),
        (NOT_PINK, {"colour": "grey"}, None),
    ],
    ids=lambda case: json.dumps(case) if isinstance(case, dict) else str(case),
)
def test_choice_conditions_match_only_observed_answers(condition, values, expected):
    result = reasons_for(condition, check(**values))
    assert result == (None if expected is None else [expected])


# --- numeric comparisons ---------------------------------------------------------------------


def numeric(field: str, op: str, value: float) -> dict[str, Any]:
    return {"field": field, "op": op, "value": value}


@pytest.mark.parametrize(
    ("condition", "values", "expected"),
    [
        (
            numeric("temperature_difference_c", ">=", 1.8),
            {"flap_temperature_c": 33.0, "control_temperature_c": 35.1},
            "ΔT 2.1 °C ≥ 1.8 °C",
        ),
        (
            numeric("temperature_difference_c", ">=", 1.8),
            {"flap_temperature_c": 33.3, "control_temperature_c": 35.1},
            "ΔT 1.8 °C ≥ 1.8 °C",
        ),
        (
            numeric("temperature_difference_c", ">=", 1.8),
            {"flap_temperature_c": 33.4, "control_temperature_c": 35.1},
            None,
        ),
        (numeric("temperature_difference_c", ">=", 1.8), {"flap_temperature_c": 30.0}, None),
        (numeric("sto2_percent", ">", 30), {"sto2_percent": 31}, "StO₂ 31 % > 30 %"),
        (numeric("sto2_percent", ">", 30), {"sto2_percent": 30}, None),
        (numeric("sto2_percent", "<=", 30), {"sto2_percent": 30}, "StO₂ 30 % ≤ 30 %"),
        (numeric("sto2_percent", "<=", 30), {"sto2_percent": 30.5}, None),
        (numeric("sto2_percent", "<", 30), {"sto2_percent": 29}, "StO₂ 29 % < 30 %"),
        (numeric("sto2_percent", "<", 30), {"sto2_percent": 30}, None),
        (numeric("sto2_percent", "<", 30), {"sto2_percent": None}, None),
        (
            numeric("capillary_refill_s", "==", 3),
            {"capillary_refill_s": 3.0},
            "capillary refill time 3 s = 3 s",
        ),
        (numeric("capillary_refill_s", "==", 3), {"capillary_refill_s": 3.1}, None),
        (
            numeric("flap_temperature_c", "<", 32),
            {"flap_temperature_c": 31.5},
            "flap temperature 31.5 °C < 32.0 °C",
        ),
    ],
    ids=lambda case: json.dumps(case, ensure_ascii=False) if isinstance(case, dict) else str(case),
)
def test_comparisons_include_the_threshold_only_when_the_operator_does(condition, values, expected):
    result = reasons_for(condition, check(**values))
    assert result == (None if expected is None else [expected])


# --- trends against the previous check -------------------------------------------------------

FLAP_DROP = {"field": "flap_temperature_c", "op": "drop_since_previous", "value": 1.8}
STO2_DROP = {"field": "sto2_percent", "op": "drop_since_previous", "value": 20}
DELTA_T_RISE = {"field": "temperature_difference_c", "op": "rise_since_previous", "value": 1.0}


@pytest.mark.parametrize(
    ("condition", "current", "history", "expected"),
    [
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 32.5},
            [(60, {"flap_temperature_c": 34.5})],
            "flap temperature fell 2.0 °C since the previous check (34.5 → 32.5 °C)",
            id="drop-above-threshold",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 34.5},
            [(60, {"flap_temperature_c": 36.3})],
            "flap temperature fell 1.8 °C since the previous check (36.3 → 34.5 °C)",
            id="drop-exactly-at-threshold-despite-float-arithmetic",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 34.6},
            [(60, {"flap_temperature_c": 36.3})],
            None,
            id="drop-just-below-threshold",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 36.3},
            [(60, {"flap_temperature_c": 34.5})],
            None,
            id="rise-is-not-a-drop",
        ),
        pytest.param(FLAP_DROP, {"flap_temperature_c": 30.0}, [], None, id="no-previous-check"),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": None, "colour": "pink"},
            [(60, {"flap_temperature_c": 36.0})],
            None,
            id="this-check-did-not-record-the-field",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 33.0},
            [(120, {"flap_temperature_c": 35.0}), (60, {"colour": "pink"})],
            "flap temperature fell 2.0 °C since the previous check (35.0 → 33.0 °C)",
            id="previous-check-without-the-field-is-skipped",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 33.0},
            [(60, {"flap_temperature_c": 33.5}), (120, {"flap_temperature_c": 36.0})],
            None,
            id="only-the-latest-earlier-check-counts",
        ),
        pytest.param(
            FLAP_DROP,
            {"flap_temperature_c": 33.0},
            [(0, {"flap_temperature_c": 36.0}), (-30, {"flap_temperature_c": 36.0})],
            None,
            id="checks-at-or-after-this-one-are-not-previous",
        ),
        pytest.param(
            STO2_DROP,
            {"sto2_percent": 45},
            [(60, {"sto2_percent": 70})],
            "StO₂ fell 25 points since the previous check (70 → 45 %)",
            id="sto2-drop-in-points",
        ),
        pytest.param(
            DELTA_T_RISE,
            {"flap_temperature_c": 33.5, "control_temperature_c": 35.0},
            [(60, {"flap_temperature_c": 34.5, "control_temperature_c": 35.0})],
            "ΔT rose 1.0 °C since the previous check (0.5 → 1.5 °C)",
            id="rise-exactly-at-threshold",
        ),
        pytest.param(
            DELTA_T_RISE,
            {"flap_temperature_c": 33.6, "control_temperature_c": 35.0},
            [(60, {"flap_temperature_c": 34.5, "control_temperature_c": 35.0})],
            None,
            id="rise-below-threshold",
        ),
        pytest.param(
            DELTA_T_RISE,
            {"flap_temperature_c": 33.5, "control_temperature_c": 35.0},
            [(60, {"flap_temperature_c": 34.5})],
            None,
            id="derived-field-needs-both-temperatures-in-the-previous-check",
        ),
    ],
)
def test_trend_compares_with_the_latest_earlier_check_that_recorded_the_field(
    condition, current, history, expected
):
    earlier = [check(minutes_ago, **values) for minutes_ago, values in history]
    result = reasons_for(condition, check(**current), earlier)
    assert result == (None if expected is None else [expected])


def test_history_order_does_not_matter():
    earlier = [
        check(180, flap_temperature_c=36.0),
        check(60, flap_temperature_c=35.0),
        check(120, flap_temperature_c=30.0),
    ]
    expected = ["flap temperature fell 2.0 °C since the previous check (35.0 → 33.0 °C)"]
    for history in (earlier, list(reversed(earlier))):
        assert reasons_for(FLAP_DROP, check(flap_temperature_c=33.0), history) == expected


# --- drop within a window --------------------------------------------------------------------

STO2_WITHIN_HOUR = {"field": "sto2_percent", "op": "drop_within", "value": 20, "minutes": 60}


@pytest.mark.parametrize(
    ("current", "history", "expected"),
    [
        pytest.param(45, [(30, 70)], "StO₂ fell 25 points within 60 min (70 → 45 %)", id="fall"),
        pytest.param(
            50,
            [(50, 70), (10, 55)],
            "StO₂ fell 20 points within 60 min (70 → 50 %)",
            id="highest-in-window-not-previous",
        ),
        pytest.param(
            50,
            [(60, 70)],
            "StO₂ fell 20 points within 60 min (70 → 50 %)",
            id="window-start-is-included",
        ),
        pytest.param(50, [(61, 70)], None, id="just-outside-the-window"),
        pytest.param(50, [(0, 90)], None, id="same-time-is-not-before"),
        pytest.param(51, [(30, 70)], None, id="one-point-short"),
        pytest.param(75, [(30, 70)], None, id="rising"),
        pytest.param(50, [], None, id="no-earlier-checks"),
        pytest.param(50, [(30, None)], None, id="earlier-check-without-sto2"),
        pytest.param(None, [(30, 70)], None, id="this-check-without-sto2"),
    ],
)
def test_drop_within_compares_with_the_highest_value_in_the_window(current, history, expected):
    earlier = [check(minutes_ago, sto2_percent=value) for minutes_ago, value in history]
    result = reasons_for(STO2_WITHIN_HOUR, check(sto2_percent=current), earlier)
    assert result == (None if expected is None else [expected])


# --- changes of category ---------------------------------------------------------------------

VENOUS_LOST = {
    "field": "doppler_venous",
    "op": "changed_from",
    "from": ["present"],
    "to": ["absent"],
}
ARTERIAL_WORSE = {
    "field": "doppler_arterial",
    "op": "changed_from",
    "from": ["present", "weak"],
    "to": ["weak", "absent"],
}


@pytest.mark.parametrize(
    ("condition", "current", "history", "expected"),
    [
        pytest.param(
            VENOUS_LOST,
            "absent",
            ["present"],
            "venous Doppler changed from present to absent",
            id="lost",
        ),
        pytest.param(VENOUS_LOST, "absent", ["absent"], None, id="already-absent"),
        pytest.param(VENOUS_LOST, "present", ["present"], None, id="unchanged"),
        pytest.param(VENOUS_LOST, "absent", [], None, id="no-previous-check"),
        pytest.param(VENOUS_LOST, "not_assessed", ["present"], None, id="now-not-assessed"),
        pytest.param(VENOUS_LOST, None, ["present"], None, id="now-not-recorded"),
        pytest.param(
            VENOUS_LOST,
            "absent",
            ["present", "not_assessed"],
            "venous Doppler changed from present to absent",
            id="not-assessed-in-between-is-skipped",
        ),
        pytest.param(
            VENOUS_LOST,
            "absent",
            ["present", None],
            "venous Doppler changed from present to absent",
            id="not-recorded-in-between-is-skipped",
        ),
        pytest.param(VENOUS_LOST, "absent", ["present", "absent"], None, id="lost-earlier"),
        pytest.param(ARTERIAL_WORSE, "weak", ["weak"], None, id="same-value-in-both-lists"),
        pytest.param(
            ARTERIAL_WORSE,
            "absent",
            ["weak"],
            "arterial Doppler changed from weak to absent",
            id="overlapping-lists",
        ),
    ],
)
def test_changed_from_compares_with_the_latest_observed_value(
    condition, current, history, expected
):
    field = condition["field"]
    # history is oldest first, an hour apart, ending an hour before this check
    earlier = [
        check(60 * (len(history) - n), **{field: value, "colour": "pink"})
        for n, value in enumerate(history)
    ]
    result = reasons_for(condition, check(**{field: current, "colour": "pink"}), earlier)
    assert result == (None if expected is None else [expected])


# --- how a rule combines its conditions ------------------------------------------------------

THREE_SIGNS = (
    {"field": "colour", "op": "in", "value": ["pale"]},
    {"field": "turgor", "op": "in", "value": ["flaccid"]},
    {"field": "pinprick", "op": "in", "value": ["slow_none"]},
)


@pytest.mark.parametrize(
    ("match", "values", "expected_reasons"),
    [
        ("any", {"colour": "pale"}, ["colour pale"]),
        ("any", {"colour": "pink"}, None),
        ("all", {"colour": "pale", "turgor": "flaccid"}, None),
        (
            "all",
            {"colour": "pale", "turgor": "flaccid", "pinprick": "slow_none"},
            ["colour pale", "turgor flaccid", "pinprick slow / none"],
        ),
        ({"at_least": 2}, {"colour": "pale"}, None),
        (
            {"at_least": 2},
            {"colour": "pale", "pinprick": "slow_none"},
            ["colour pale", "pinprick slow / none"],
        ),
        (
            {"at_least": 3},
            {"colour": "pale", "turgor": "flaccid", "pinprick": "slow_none"},
            ["colour pale", "turgor flaccid", "pinprick slow / none"],
        ),
    ],
)
def test_match_mode_decides_how_many_conditions_must_be_met(match, values, expected_reasons):
    evaluation = evaluate(one_rule(*THREE_SIGNS, match=match), check(**values), [])
    if expected_reasons is None:
        assert evaluation == Evaluation(matches=(), severity=None)
    else:
        (match_,) = evaluation.matches
        assert list(match_.reasons) == expected_reasons


def test_a_match_carries_the_rules_name_severity_and_action():
    rule_set = one_rule(COLOUR_PALE, id="pale", name="Pale flap", severity="amber", action="Look.")
    (match,) = evaluate(rule_set, check(colour="pale"), []).matches
    assert (match.rule_id, match.name, match.severity, match.action) == (
        "pale",
        "Pale flap",
        Severity.AMBER,
        "Look.",
    )


def test_a_disabled_rule_never_matches():
    rule_set = one_rule(COLOUR_PALE, enabled=False)
    assert evaluate(rule_set, check(colour="pale"), []).matches == ()


@pytest.mark.parametrize(
    ("severities", "expected"),
    [
        ([], None),
        (["amber"], Severity.AMBER),
        (["red"], Severity.RED),
        (["amber", "red", "amber"], Severity.RED),
        (["red", "amber"], Severity.RED),
    ],
)
def test_the_flag_takes_the_highest_severity_of_the_matching_rules(severities, expected):
    rules = [
        rule_json(COLOUR_PALE, id=f"rule-{n}", severity=severity)
        for n, severity in enumerate(severities)
    ]
    rules.append(rule_json(NOT_PINK, id="never", severity="red", enabled=False))
    evaluation = evaluate(parse_rule_set({"rules": rules}), check(colour="pale"), [])
    assert evaluation.severity == expected
    assert [m.rule_id for m in evaluation.matches] == [f"rule-{n}" for n in range(len(severities))]


def test_the_overdue_rule_never_matches_a_check_but_switches_overdue_escalation_on():
    overdue = rule_json(id="overdue", severity="amber", name="Check overdue")
    evaluation = evaluate(parse_rule_set({"rules": [overdue]}), check(colour="black"), [])
    assert evaluation.matches == ()
    rule = overdue_rule(parse_rule_set({"rules": [overdue]}))
    assert rule is not None and (rule.id, rule.severity) == ("overdue", Severity.AMBER)


@pytest.mark.parametrize(
    "rules",
    [[], [rule_json(id="overdue", enabled=False)], [rule_json(COLOUR_PALE, id="pale")]],
)
def test_without_an_enabled_overdue_rule_overdue_escalation_is_off(rules):
    assert overdue_rule(parse_rule_set({"rules": rules})) is None


# --- the default rule set (DESIGN.md §3) ------------------------------------------------------


def test_default_rule_set_is_exactly_the_design_table():
    rules = {rule["id"]: rule for rule in rule_set_to_json(DEFAULT_RULE_SET)["rules"]}
    assert list(rules) == [
        "arterial",
        "venous",
        "necrosis",
        "temperature",
        "doppler-change",
        "sto2",
        "overdue",
    ]
    assert {rule_id: rule["severity"] for rule_id, rule in rules.items()} == {
        "arterial": "red",
        "venous": "red",
        "necrosis": "red",
        "temperature": "amber",
        "doppler-change": "red",
        "sto2": "red",
        "overdue": "amber",
    }
    assert all(rule["match"] == "any" and rule["enabled"] for rule in rules.values())
    assert all(rule["action"].strip() for rule in rules.values())

    def choice(field: str, *values: str) -> dict[str, Any]:
        return {"field": field, "op": "in", "value": list(values)}

    assert rules["arterial"]["conditions"] == [
        choice("colour", "pale", "white", "mottled"),
        choice("capillary_refill", "sluggish", "absent"),
        choice("turgor", "flaccid"),
        choice("pinprick", "slow_none"),
        choice("doppler_arterial", "absent"),
    ]
    assert rules["venous"]["conditions"] == [
        choice("colour", "dusky", "blue", "purple"),
        choice("capillary_refill", "brisk"),
        choice("turgor", "tense"),
        choice("pinprick", "dark_rapid"),
        choice("doppler_venous", "absent"),
    ]
    assert rules["necrosis"]["conditions"] == [choice("colour", "black")]
    assert rules["temperature"]["conditions"] == [
        {"field": "temperature_difference_c", "op": ">=", "value": 1.8},
        {"field": "flap_temperature_c", "op": "drop_since_previous", "value": 1.8},
    ]
    assert rules["doppler-change"]["conditions"] == [
        {
            "field": "doppler_arterial",
            "op": "changed_from",
            "from": ["present"],
            "to": ["weak", "absent"],
        },
        {"field": "doppler_venous", "op": "changed_from", "from": ["present"], "to": ["absent"]},
    ]
    assert rules["sto2"]["conditions"] == [
        {"field": "sto2_percent", "op": "<", "value": 30},
        {"field": "sto2_percent", "op": "drop_within", "value": 20, "minutes": 60},
    ]
    assert rules["overdue"]["conditions"] == []


NORMAL = {
    "colour": "pink",
    "capillary_refill": "normal",
    "turgor": "soft",
    "pinprick": "bright_red",
    "flap_temperature_c": 34.5,
    "control_temperature_c": 35.3,
    "doppler_arterial": "present",
    "doppler_venous": "present",
    "sto2_percent": 70,
}


def normal(**changes: Any) -> dict[str, Any]:
    return {**NORMAL, **changes}


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [
        pytest.param(normal(), normal(), {}, id="normal-check-flags-nothing"),
        pytest.param(normal(), None, {}, id="normal-first-check-flags-nothing"),
        pytest.param(
            {
                "colour": "not_assessable",
                "capillary_refill": "not_assessable",
                "turgor": "not_assessable",
                "pinprick": "not_done",
                "doppler_arterial": "present",
                "doppler_venous": "present",
                "sto2_percent": 70,
            },
            normal(),
            {},
            id="buried-flap-flags-nothing",
        ),
        pytest.param(
            normal(colour="pale", capillary_refill="sluggish"),
            normal(),
            {"arterial": ["colour pale", "capillary refill sluggish (>3 s)"]},
            id="pale-sluggish-is-arterial",
        ),
        pytest.param(
            normal(colour="blue", capillary_refill="brisk"),
            normal(),
            {"venous": ["colour blue", "capillary refill brisk (<1 s)"]},
            id="blue-brisk-is-venous",
        ),
        pytest.param(
            normal(flap_temperature_c=33.0, control_temperature_c=34.8),
            normal(flap_temperature_c=33.4, control_temperature_c=34.8),
            {"temperature": ["ΔT 1.8 °C ≥ 1.8 °C"]},
            id="delta-t-at-threshold-is-temperature",
        ),
        pytest.param(
            normal(flap_temperature_c=32.7, control_temperature_c=None),
            normal(flap_temperature_c=34.5, control_temperature_c=None),
            {
                "temperature": [
                    "flap temperature fell 1.8 °C since the previous check (34.5 → 32.7 °C)"
                ]
            },
            id="flap-cooling-since-previous-is-temperature",
        ),
        pytest.param(
            normal(doppler_arterial="absent"),
            normal(),
            {
                "arterial": ["arterial Doppler absent"],
                "doppler-change": ["arterial Doppler changed from present to absent"],
            },
            id="arterial-doppler-lost",
        ),
        pytest.param(
            normal(doppler_arterial="weak"),
            normal(),
            {"doppler-change": ["arterial Doppler changed from present to weak"]},
            id="arterial-doppler-weakened",
        ),
        pytest.param(
            normal(doppler_venous="absent"),
            normal(),
            {
                "venous": ["venous Doppler absent"],
                "doppler-change": ["venous Doppler changed from present to absent"],
            },
            id="venous-doppler-lost",
        ),
        pytest.param(
            normal(sto2_percent=50),
            normal(sto2_percent=70),
            {"sto2": ["StO₂ fell 20 points within 60 min (70 → 50 %)"]},
            id="sto2-falling-20-points-in-an-hour",
        ),
        pytest.param(
            normal(sto2_percent=29),
            normal(sto2_percent=35),
            {"sto2": ["StO₂ 29 % < 30 %"]},
            id="sto2-below-30",
        ),
        pytest.param(
            normal(colour="black"),
            normal(),
            {"necrosis": ["colour black"]},
            id="black-is-necrosis",
        ),
    ],
)
def test_default_rule_set_flags_the_classic_patterns(current, previous, expected):
    history = [] if previous is None else [check(60, **previous)]
    evaluation = evaluate(DEFAULT_RULE_SET, check(**current), history)
    assert {m.rule_id: list(m.reasons) for m in evaluation.matches} == expected
    severities = {rule.id: rule.severity for rule in DEFAULT_RULE_SET.rules}
    if expected:
        assert evaluation.severity == max(
            (severities[rule_id] for rule_id in expected), key=[Severity.AMBER, Severity.RED].index
        )
    else:
        assert evaluation.severity is None


def test_default_rule_set_temperature_flag_is_amber():
    evaluation = evaluate(
        DEFAULT_RULE_SET, check(**normal(flap_temperature_c=33.0, control_temperature_c=35.1)), []
    )
    assert evaluation.severity == Severity.AMBER


def test_default_overdue_rule_is_amber():
    rule = overdue_rule(DEFAULT_RULE_SET)
    assert rule is not None and rule.severity == Severity.AMBER


# --- JSON form --------------------------------------------------------------------------------

RICH_DEFINITION = {
    "rules": [
        {
            "id": "combined-signs",
            "name": "Two signs together",
            "severity": "amber",
            "action": "Recheck within 15 minutes.",
            "match": {"at_least": 2},
            "enabled": False,
            "conditions": [
                {"field": "colour", "op": "not_in", "value": ["pink"]},
                {"field": "sto2_percent", "op": "<=", "value": 45.5},
                {"field": "sto2_percent", "op": "drop_within", "value": 15, "minutes": 90},
                {"field": "temperature_difference_c", "op": "rise_since_previous", "value": 1},
                {
                    "field": "turgor",
                    "op": "changed_from",
                    "from": ["soft", "firm"],
                    "to": ["tense"],
                },
            ],
        },
        {
            "id": "overdue",
            "name": "Check overdue",
            "severity": "red",
            "action": "Check now.",
            "match": "all",
            "enabled": True,
            "conditions": [],
        },
    ],
    "note": "Stricter oximetry after the March audit",
}


def test_json_round_trips_exactly():
    rule_set = parse_rule_set(RICH_DEFINITION)
    assert rule_set_to_json(rule_set) == RICH_DEFINITION
    assert parse_rule_set(json.loads(json.dumps(rule_set_to_json(rule_set)))) == rule_set
    assert rule_set.rules[0].match == AtLeast(2)
    assert rule_set.rules[0].conditions[2] == Condition(
        "sto2_percent", "drop_within", value=15, minutes=90
    )


def test_default_rule_set_round_trips_through_json_text():
    definition = json.loads(json.dumps(rule_set_to_json(DEFAULT_RULE_SET)))
    assert parse_rule_set(definition) == DEFAULT_RULE_SET
    assert rule_set_to_json(parse_rule_set(definition)) == definition


def test_match_enabled_and_note_may_be_left_out():
    rule_set = parse_rule_set(
        {
            "rules": [
                {k: v for k, v in rule_json(COLOUR_PALE).items() if k not in ("match", "enabled")}
            ]
        }
    )
    assert rule_set == RuleSet(
        rules=(
            Rule(
                id="test",
                name="Test rule",
                severity=Severity.RED,
                action="Call the registrar.",
                conditions=(Condition("colour", "in", value=("pale", "white")),),
                match="any",
                enabled=True,
            ),
        ),
        note="",
    )


# --- validation -------------------------------------------------------------------------------


def with_condition(condition: Any, **rule: Any) -> dict[str, Any]:
    """A rule set whose second rule, "venous", has a bad third condition."""
    return {
        "rules": [
            rule_json(COLOUR_PALE, id="arterial"),
            rule_json(
                {"field": "colour", "op": "in", "value": ["blue"]},
                {"field": "capillary_refill", "op": "in", "value": ["brisk"]},
                condition,
                **{"id": "venous", **rule},
            ),
        ]
    }


def with_rule(**changes: Any) -> dict[str, Any]:
    """A rule set whose first rule, "arterial", has the given keys changed (None: removed)."""
    rule = {**rule_json(COLOUR_PALE, id="arterial"), **changes}
    return {"rules": [{key: value for key, value in rule.items() if value is not None}]}


C3 = 'Rule 2 "venous", condition 3: '
R1 = 'Rule 1 "arterial": '
COLOURS = "pink, pale, white, mottled, dusky, blue, purple, black, not_assessable"


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        pytest.param(
            with_condition({"field": "colur", "op": "in", "value": ["pink"]}),
            C3 + 'unknown field "colur"; allowed: colour, capillary_refill, doppler_arterial, '
            "doppler_venous, turgor, pinprick, flap_temperature_c, control_temperature_c, "
            "capillary_refill_s, sto2_percent, temperature_difference_c",
            id="unknown-field",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": ">=", "value": 3}),
            C3 + 'operator ">=" needs a numeric field; "colour" is a choice',
            id="numeric-operator-on-a-choice",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "in", "value": ["low"]}),
            C3 + 'operator "in" needs a choice field; "sto2_percent" is a number',
            id="choice-operator-on-a-number",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": ["grey"]}),
            C3 + f'"grey" is not a colour; allowed: {COLOURS}',
            id="unknown-choice",
        ),
        pytest.param(
            with_condition({"field": "capillary_refill", "op": "not_in", "value": ["fast"]}),
            C3 + '"fast" is not a capillary refill category; allowed: brisk, normal, sluggish, '
            "absent, not_assessable",
            id="unknown-refill-choice",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": ["pale", "pale"]}),
            C3 + '"value" lists "pale" twice',
            id="duplicate-choice",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": []}),
            C3 + '"value" must list at least one choice',
            id="empty-choice-list",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": "pale"}),
            C3 + '"value" must be a list of choices, not text',
            id="choice-list-given-as-text",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": ["pale", 3]}),
            C3 + '"value" item 2 must be text, not a number',
            id="choice-that-is-a-number",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": ["pale"] * (MAX_CHOICES + 1)}),
            C3 + f'"value" lists {MAX_CHOICES + 1} choices; at most {MAX_CHOICES}',
            id="too-many-choices",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "=>", "value": ["pale"]}),
            C3 + 'unknown operator "=>"; allowed: in, not_in, >=, >, <=, <, ==, '
            "drop_since_previous, rise_since_previous, drop_within, changed_from",
            id="unknown-operator",
        ),
        pytest.param(
            with_condition({"field": "colour", "value": ["pale"]}),
            C3 + 'missing "op"',
            id="missing-operator",
        ),
        pytest.param(
            with_condition({"op": "in", "value": ["pale"]}),
            C3 + 'missing "field"',
            id="missing-field",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in"}),
            C3 + 'missing "value"',
            id="missing-value",
        ),
        pytest.param(
            with_condition({"field": "colour", "op": "in", "value": ["pale"], "valu": 1}),
            C3 + 'unexpected key "valu" for operator "in"; expected: field, op, value',
            id="unknown-condition-key",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": 30, "minutes": 60}),
            C3 + 'unexpected key "minutes" for operator "<"; expected: field, op, value',
            id="minutes-on-a-comparison",
        ),
        pytest.param(
            with_condition("colour in pale"),
            C3 + "must be an object, not text",
            id="condition-not-an-object",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": "30"}),
            C3 + '"value" must be a number, not text',
            id="number-given-as-text",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": True}),
            C3 + '"value" must be a number, not true/false',
            id="boolean-is-not-a-number",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": math.nan}),
            C3 + '"value" must be a finite number, not nan',
            id="nan",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": math.inf}),
            C3 + '"value" must be a finite number, not inf',
            id="infinity",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "<", "value": 300}),
            C3 + '"value" 300 is outside what "sto2_percent" can be (0 to 100)',
            id="threshold-outside-the-fields-range",
        ),
        pytest.param(
            with_condition(
                {"field": "flap_temperature_c", "op": "drop_since_previous", "value": 0}
            ),
            C3 + 'operator "drop_since_previous" needs "value" to be the size of the change: '
            'above 0 and at most 23 for "flap_temperature_c", not 0',
            id="trend-of-zero",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "rise_since_previous", "value": -5}),
            C3 + 'operator "rise_since_previous" needs "value" to be the size of the change: '
            'above 0 and at most 100 for "sto2_percent", not -5',
            id="negative-trend",
        ),
        pytest.param(
            with_condition({"field": "sto2_percent", "op": "drop_within", "value": 20}),
            C3 + 'operator "drop_within" needs "minutes", a whole number from 1 to 10080; '
            "it is missing",
            id="drop-within-without-minutes",
        ),
        pytest.param(
            with_condition(
                {"field": "sto2_percent", "op": "drop_within", "value": 20, "minutes": 0}
            ),
            C3 + 'operator "drop_within" needs "minutes", a whole number from 1 to 10080; got 0',
            id="drop-within-zero-minutes",
        ),
        pytest.param(
            with_condition(
                {"field": "sto2_percent", "op": "drop_within", "value": 20, "minutes": 7.5}
            ),
            C3 + 'operator "drop_within" needs "minutes", a whole number from 1 to 10080; got 7.5',
            id="drop-within-fractional-minutes",
        ),
        pytest.param(
            with_condition(
                {"field": "sto2_percent", "op": "drop_within", "value": 20, "minutes": "60"}
            ),
            C3 + 'operator "drop_within" needs "minutes", a whole number from 1 to 10080; got text',
            id="drop-within-minutes-as-text",
        ),
        pytest.param(
            with_condition({"field": "doppler_venous", "op": "changed_from", "from": ["present"]}),
            C3 + 'missing "to"',
            id="changed-from-without-to",
        ),
        pytest.param(
            with_condition(
                {
                    "field": "doppler_venous",
                    "op": "changed_from",
                    "from": ["present"],
                    "to": ["not_assessed"],
                }
            ),
            C3 + '"not_assessed" records that nothing was observed, so it cannot be part of a '
            'change; "to" allows: present, absent',
            id="changed-to-not-assessed",
        ),
        pytest.param(
            with_condition(
                {
                    "field": "doppler_venous",
                    "op": "changed_from",
                    "from": ["present"],
                    "to": ["weak"],
                }
            ),
            C3 + '"weak" is not a venous Doppler finding; allowed: present, absent',
            id="venous-doppler-cannot-be-weak",
        ),
        pytest.param(
            with_condition(
                {
                    "field": "doppler_venous",
                    "op": "changed_from",
                    "value": ["present"],
                    "from": ["present"],
                    "to": ["absent"],
                }
            ),
            C3
            + 'unexpected key "value" for operator "changed_from"; expected: field, op, from, to',
            id="changed-from-with-value",
        ),
        pytest.param(
            with_rule(conditions=[]),
            R1 + "no conditions",
            id="no-conditions",
        ),
        pytest.param(
            with_rule(conditions={"field": "colour"}),
            R1 + '"conditions" must be a list, not an object',
            id="conditions-not-a-list",
        ),
        pytest.param(
            with_rule(conditions=[COLOUR_PALE] * (MAX_CONDITIONS + 1)),
            R1 + f"at most {MAX_CONDITIONS} conditions, not {MAX_CONDITIONS + 1}",
            id="too-many-conditions",
        ),
        pytest.param(
            with_rule(severity="orange"),
            R1 + 'unknown severity "orange"; allowed: amber, red',
            id="unknown-severity",
        ),
        pytest.param(
            with_rule(severity=2),
            R1 + '"severity" must be text, not a number',
            id="severity-not-text",
        ),
        pytest.param(
            with_rule(match={"at_least": 2}),
            R1 + 'match {"at_least": 2} needs a number between 1 and 1 (the number of conditions)',
            id="at-least-more-than-conditions",
        ),
        pytest.param(
            with_rule(match={"at_least": 0}),
            R1 + 'match {"at_least": 0} needs a number between 1 and 1 (the number of conditions)',
            id="at-least-zero",
        ),
        pytest.param(
            with_rule(match={"at_least": 1.5}),
            R1 + 'match "at_least" must be a whole number, not a number',
            id="at-least-fraction",
        ),
        pytest.param(
            with_rule(match="most"),
            R1 + '"match" must be "any", "all" or {"at_least": N}',
            id="unknown-match",
        ),
        pytest.param(
            with_rule(enabled="yes"),
            R1 + '"enabled" must be true or false, not text',
            id="enabled-not-boolean",
        ),
        pytest.param(with_rule(name="  "), R1 + '"name" must not be empty', id="blank-name"),
        pytest.param(with_rule(action=None), R1 + 'missing "action"', id="missing-action"),
        pytest.param(
            with_rule(name="x" * 121), R1 + '"name" is longer than 120 characters', id="long-name"
        ),
        pytest.param(
            with_rule(action=["Call"]), R1 + '"action" must be text, not a list', id="action-list"
        ),
        pytest.param(
            with_rule(colour="pale"),
            R1 + 'unknown key "colour"; expected: id, name, severity, action, match, enabled, '
            "recheck_minutes, conditions",
            id="unknown-rule-key",
        ),
        pytest.param(
            with_rule(id="Arterial Rule"),
            'Rule 1 "Arterial Rule": id "Arterial Rule" must be a slug of at most 40 characters: '
            "lowercase letters, digits and single hyphens, starting with a letter",
            id="id-not-a-slug",
        ),
        pytest.param(
            with_rule(id="a" * 41),
            f'Rule 1 "{"a" * 40}…": id "{"a" * 40}…" must be a slug of at most 40 characters: '
            "lowercase letters, digits and single hyphens, starting with a letter",
            id="id-too-long",
        ),
        pytest.param(with_rule(id=None), 'Rule 1: missing "id"', id="missing-id"),
        pytest.param(with_rule(id=7), 'Rule 1: "id" must be text, not a number', id="id-number"),
        pytest.param(
            {"rules": [rule_json(COLOUR_PALE, id="venous"), rule_json(NOT_PINK, id="venous")]},
            'Rule 2 "venous": id "venous" is already used by rule 1',
            id="duplicate-id",
        ),
        pytest.param(
            {"rules": [rule_json(COLOUR_PALE, id="overdue")]},
            'Rule 1 "overdue": the overdue rule must have no conditions: it fires on a missed '
            "check, found by the schedule",
            id="overdue-with-conditions",
        ),
        pytest.param({"rules": ["venous"]}, "Rule 1: must be an object, not text", id="rule-text"),
        pytest.param({"note": "x"}, 'Rule set: missing "rules"', id="missing-rules"),
        pytest.param(
            {"rules": {"venous": {}}},
            'Rule set: "rules" must be a list, not an object',
            id="rules-not-a-list",
        ),
        pytest.param(
            {"rules": [rule_json(COLOUR_PALE, id=f"r{n}") for n in range(MAX_RULES + 1)]},
            f"Rule set: at most {MAX_RULES} rules, not {MAX_RULES + 1}",
            id="too-many-rules",
        ),
        pytest.param(
            {"rules": [], "note": 5},
            'Rule set: "note" must be text, not a number',
            id="note-not-text",
        ),
        pytest.param(
            {"rules": [], "note": "x" * 2001},
            'Rule set: "note" is longer than 2000 characters',
            id="note-too-long",
        ),
        pytest.param(
            {"rules": [], "version": 2},
            'Rule set: unknown key "version"; expected: rules, note',
            id="unknown-rule-set-key",
        ),
        pytest.param(
            ["not", "an", "object"],
            'Rule set: must be an object with "rules", not a list',
            id="not-an-object",
        ),
    ],
)
def test_each_problem_names_the_rule_and_condition(definition, message):
    assert message in problem_messages(definition)


def test_every_problem_is_reported_not_just_the_first():
    definition = {
        "rules": [
            rule_json(
                {"field": "colur", "op": "in", "value": ["pink"]},
                {"field": "colour", "op": ">=", "value": 3},
                id="venous",
                severity="orange",
            ),
            rule_json(id="arterial"),
            rule_json(COLOUR_PALE, id="venous"),
        ]
    }
    with pytest.raises(RuleSetError) as raised:
        parse_rule_set(definition)
    located = [(p.rule_index, p.rule_id, p.condition_index) for p in raised.value.problems]
    assert located == [
        (0, "venous", None),
        (0, "venous", 0),
        (0, "venous", 1),
        (1, "arterial", None),
        (2, "venous", None),
    ]
    assert str(raised.value).count("\n") == 4


def test_choice_lists_may_name_not_observed_answers_for_in():
    rule_set = one_rule({"field": "doppler_venous", "op": "in", "value": ["not_assessed"]})
    assert rule_set.rules[0].conditions[0].value == ("not_assessed",)


# --- dry run: alarm burden ---------------------------------------------------------------------


def test_compare_rule_sets_counts_flagged_checks_per_rule():
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    for rule in definition["rules"]:
        if rule["id"] == "temperature":
            rule["conditions"][0]["value"] = 2.5
        if rule["id"] == "necrosis":
            rule["enabled"] = False
    proposed = parse_rule_set(definition)
    cases = [
        (check(**normal()), [check(60, **normal())]),
        (check(**normal(flap_temperature_c=33.0, control_temperature_c=35.0)), []),
        (check(**normal(colour="black")), iter([check(60, **normal())])),
        (check(**normal(colour="blue", flap_temperature_c=32.0, control_temperature_c=35.0)), []),
    ]
    assert compare_rule_sets(DEFAULT_RULE_SET, proposed, cases) == {
        "current": {
            "arterial": 0,
            "venous": 1,
            "necrosis": 1,
            "temperature": 2,
            "doppler-change": 0,
            "sto2": 0,
        },
        "proposed": {
            "arterial": 0,
            "venous": 1,
            "necrosis": 0,
            "temperature": 1,
            "doppler-change": 0,
            "sto2": 0,
        },
        "total": {
            "checks": 4,
            "current": 3,
            "proposed": 1,
            # No case carries the schedule's interval: no rechecks are counted.
            "current_rechecks": 0,
            "proposed_rechecks": 0,
        },
    }


# --- properties -------------------------------------------------------------------------------

FLOATS = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-1000, 1000)
)


def _choice_strategy(field: str) -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(), st.sampled_from(CATEGORICAL_FIELDS[field].values()), st.text(max_size=5)
    )


CHECKS = st.builds(
    CheckValues,
    taken_at=st.datetimes(
        min_value=datetime(2026, 11, 24), max_value=datetime(2026, 11, 26), timezones=st.just(UTC)
    ),
    colour=_choice_strategy("colour"),
    flap_temperature_c=FLOATS,
    control_temperature_c=FLOATS,
    capillary_refill=_choice_strategy("capillary_refill"),
    capillary_refill_s=FLOATS,
    doppler_arterial=_choice_strategy("doppler_arterial"),
    doppler_venous=_choice_strategy("doppler_venous"),
    turgor=_choice_strategy("turgor"),
    pinprick=_choice_strategy("pinprick"),
    sto2_percent=FLOATS,
)


def _observed(field: str) -> list[str]:
    return [v for v in CATEGORICAL_FIELDS[field].values() if v not in NOT_OBSERVED]


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["choice", "compare", "trend", "window", "change"]))
    if kind in ("choice", "change"):
        field = draw(st.sampled_from(sorted(CATEGORICAL_FIELDS)))
        if kind == "choice":
            values = CATEGORICAL_FIELDS[field].values()
            chosen = draw(st.lists(st.sampled_from(values), min_size=1, unique=True))
            return {"field": field, "op": draw(st.sampled_from(["in", "not_in"])), "value": chosen}
        observed = st.lists(st.sampled_from(_observed(field)), min_size=1, unique=True)
        return {"field": field, "op": "changed_from", "from": draw(observed), "to": draw(observed)}
    field = draw(st.sampled_from(sorted(NUMERIC_FIELDS)))
    low, high = NUMERIC_FIELDS[field]
    if kind == "compare":
        op = draw(st.sampled_from([">=", ">", "<=", "<", "=="]))
        return {"field": field, "op": op, "value": draw(st.floats(low, high))}
    size = draw(st.floats(0, high - low, exclude_min=True))
    if kind == "trend":
        op = draw(st.sampled_from(["drop_since_previous", "rise_since_previous"]))
        return {"field": field, "op": op, "value": size}
    minutes = draw(st.integers(1, 24 * 60))
    return {"field": field, "op": "drop_within", "value": size, "minutes": minutes}


@st.composite
def rule_sets(draw: st.DrawFn) -> dict[str, Any]:
    rules = []
    for number in range(draw(st.integers(0, 5))):
        rule_conditions = draw(st.lists(conditions(), min_size=1, max_size=4))
        match = draw(
            st.one_of(
                st.sampled_from(["any", "all"]),
                st.builds(lambda n: {"at_least": n}, st.integers(1, len(rule_conditions))),
            )
        )
        rules.append(
            rule_json(
                *rule_conditions,
                id=f"rule-{number}",
                severity=draw(st.sampled_from(["amber", "red"])),
                match=match,
                enabled=draw(st.booleans()),
            )
        )
    if draw(st.booleans()):
        rules.append(rule_json(id=OVERDUE_RULE_ID, severity="amber"))
    return {"rules": rules, "note": draw(st.text(max_size=20))}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(definition=rule_sets(), current=CHECKS, history=st.lists(CHECKS, max_size=6))
def test_evaluate_never_raises_and_flags_only_enabled_check_rules(definition, current, history):
    rule_set = parse_rule_set(definition)
    assert rule_set_to_json(rule_set) == definition
    evaluation = evaluate(rule_set, current, history)
    enabled = {r.id for r in rule_set.rules if r.enabled and r.id != OVERDUE_RULE_ID}
    assert {m.rule_id for m in evaluation.matches} <= enabled
    assert all(m.reasons for m in evaluation.matches)
    assert (evaluation.severity is None) == (not evaluation.matches)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    definition=rule_sets(),
    current=CHECKS,
    history=st.lists(CHECKS, max_size=10),
    keep=st.integers(1, 6),
)
def test_a_flaps_newest_checks_judge_a_check_as_its_whole_history_when_said_enough(
    definition, current, history, keep
):
    rule_set = parse_rule_set(definition)
    earlier = sorted(
        (c for c in history if c.taken_at < current.taken_at), key=lambda c: c.taken_at
    )
    newest = earlier[-keep:]
    if recent_history_is_enough(rule_set, current, newest):
        assert evaluate(rule_set, current, newest) == evaluate(rule_set, current, earlier)


def test_a_trend_window_reaching_past_the_newest_checks_needs_the_older_ones():
    rule_set = one_rule({"field": "sto2_percent", "op": "drop_within", "value": 15, "minutes": 120})
    now = check(0, sto2_percent=55)
    history = [check(100, sto2_percent=75), check(20, sto2_percent=60), check(10, sto2_percent=58)]
    assert not recent_history_is_enough(rule_set, now, history[-2:])
    assert evaluate(rule_set, now, history).matches
    assert not evaluate(rule_set, now, history[-2:]).matches  # what reading too little misses


def test_a_temperature_recorded_only_long_ago_is_still_the_previous_one():
    rule_set = one_rule(numeric("flap_temperature_c", "drop_since_previous", 1.5))
    now = check(0, flap_temperature_c=33.0)
    long_ago = [
        check(600, flap_temperature_c=35.5),
        *(check(m, colour="pink") for m in range(60, 0, -1)),
    ]
    assert not recent_history_is_enough(rule_set, now, long_ago[-48:])
    assert evaluate(rule_set, now, long_ago).matches  # the whole history flags the fall


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    data=st.one_of(
        JSON_VALUES,
        st.builds(lambda rules: {"rules": rules}, st.lists(JSON_VALUES, max_size=3)),
        st.builds(
            lambda conditions: {"rules": [rule_json(*conditions)]},
            st.lists(
                st.dictionaries(
                    st.sampled_from(["field", "op", "value", "minutes", "from", "to"]), JSON_VALUES
                ),
                min_size=1,
                max_size=3,
            ),
        ),
    )
)
def test_parse_rule_set_refuses_junk_with_rule_set_error_only(data):
    try:
        parse_rule_set(data)
    except RuleSetError as error:
        assert error.problems
        assert all(problem.message for problem in error.problems)
