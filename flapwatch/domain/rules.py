"""Escalation rules: parse and validate a unit's rule set, and evaluate it on a check.

Pure functions (DESIGN.md §2 "Rule set", "Flag"; §3 default rule set). A rule set arrives as
JSON from the API, an import or the admin form; `parse_rule_set` turns it into frozen values
or raises `RuleSetError` listing every problem, each naming the rule and the condition.

What a missing observation means (DESIGN.md §2: "a condition on a field that the check did
not record is not met"):

- A field left empty (None) meets no condition.
- A "nothing observed" answer (`not_assessable`, `not_assessed`, `not_done`) never meets
  `not_in`, a trend or `changed_from`: a buried flap's `not_assessable` colour is "not pink",
  but it is not a sign, and alarming on it would teach the ward to ignore alarms. It meets
  `in` only when the rule lists it by name, so a unit can choose to flag, say, a Doppler that
  was not assessed.
- For `changed_from` a "nothing observed" check is skipped like an empty one when looking for
  the previous check: present → not assessed → absent is still a lost signal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, TypeVar

from flapwatch.domain.checks import (
    CATEGORICAL_FIELDS,
    NUMERIC_RANGES,
    TEMPERATURE_RANGE_C,
    CheckValues,
)
from flapwatch.domain.vocabulary import NOT_OBSERVED, Labelled, Severity

_T = TypeVar("_T")

OVERDUE_RULE_ID = "overdue"
TEMPERATURE_DIFFERENCE = "temperature_difference_c"

# Control minus flap, each within the probe's plausible range.
_TEMPERATURE_SPAN = TEMPERATURE_RANGE_C[1] - TEMPERATURE_RANGE_C[0]
NUMERIC_FIELDS: dict[str, tuple[float, float]] = {
    **NUMERIC_RANGES,
    TEMPERATURE_DIFFERENCE: (-_TEMPERATURE_SPAN, _TEMPERATURE_SPAN),
}

CATEGORICAL_OPERATORS = ("in", "not_in")
COMPARISONS: dict[str, tuple[str, Callable[[float, float], bool]]] = {
    ">=": ("≥", lambda a, b: a >= b),
    ">": (">", lambda a, b: a > b),
    "<=": ("≤", lambda a, b: a <= b),
    "<": ("<", lambda a, b: a < b),
    "==": ("=", lambda a, b: a == b),
}
TREND_OPERATORS = ("drop_since_previous", "rise_since_previous", "drop_within")
CHANGED_FROM = "changed_from"
OPERATORS = (*CATEGORICAL_OPERATORS, *COMPARISONS, *TREND_OPERATORS, CHANGED_FROM)

# Limits against a pasted or hostile definition: far above any real unit's needs.
MAX_RULES = 100
MAX_CONDITIONS = 50
MAX_CHOICES = 20
MAX_ID_LENGTH = 40
MAX_NAME_LENGTH = 120
MAX_ACTION_LENGTH = 500
MAX_NOTE_LENGTH = 2000
# A trend window longer than a week reaches back before most monitoring even started.
MAX_WINDOW_MINUTES = 7 * 24 * 60

_SLUG = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_RULE_KEYS = (
    "id",
    "name",
    "severity",
    "action",
    "match",
    "enabled",
    "recheck_minutes",
    "conditions",
)
# A rule's recheck: how soon the next check falls due while its escalation is unanswered.
RECHECK_MINUTES_RANGE = (5, 240)
_RULE_SET_KEYS = ("rules", "note")

# How each field reads in a reason shown to the nurse.
FIELD_PHRASES: dict[str, str] = {
    "colour": "colour",
    "capillary_refill": "capillary refill",
    "doppler_arterial": "arterial Doppler",
    "doppler_venous": "venous Doppler",
    "turgor": "turgor",
    "pinprick": "pinprick",
    "flap_temperature_c": "flap temperature",
    "control_temperature_c": "control temperature",
    TEMPERATURE_DIFFERENCE: "ΔT",
    "capillary_refill_s": "capillary refill time",
    "sto2_percent": "StO₂",
}
_CHOICE_NOUNS: dict[str, str] = {
    "colour": "colour",
    "capillary_refill": "capillary refill category",
    "doppler_arterial": "arterial Doppler finding",
    "doppler_venous": "venous Doppler finding",
    "turgor": "turgor finding",
    "pinprick": "pinprick result",
}


@dataclass(frozen=True)
class AtLeast:
    """`{"at_least": n}`: the rule matches when n or more of its conditions are met."""

    n: int


MatchMode = Literal["any", "all"] | AtLeast


@dataclass(frozen=True)
class Condition:
    """One test on a check. `value` is a tuple of choices for in/not_in, else a number."""

    field: str
    op: str
    value: float | tuple[str, ...] | None = None
    minutes: int | None = None
    from_values: tuple[str, ...] = ()
    to_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    severity: Severity
    action: str
    conditions: tuple[Condition, ...]
    match: MatchMode = "any"
    enabled: bool = True
    # While the escalation this rule opened is unacknowledged, the next check falls due this
    # many minutes after the latest (None: the schedule's bands alone).
    recheck_minutes: int | None = None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    note: str = ""


@dataclass(frozen=True)
class RuleMatch:
    """A rule that flagged the check, and the met conditions in the nurse's words."""

    rule_id: str
    name: str
    severity: Severity
    action: str
    reasons: tuple[str, ...]
    recheck_minutes: int | None = None


@dataclass(frozen=True)
class Evaluation:
    """The flag on a check: every matching rule, and the highest severity (None: no flag)."""

    matches: tuple[RuleMatch, ...]
    severity: Severity | None

    @property
    def recheck_minutes(self) -> int | None:
        """The soonest recheck any matching rule asks for."""
        asked = [m.recheck_minutes for m in self.matches if m.recheck_minutes is not None]
        return min(asked, default=None)


@dataclass(frozen=True)
class RuleProblem:
    """Why a definition was refused. Indexes count from 0; the message counts from 1."""

    rule_index: int | None
    rule_id: str | None
    condition_index: int | None
    message: str


class RuleSetError(ValueError):
    """A rule set that cannot be used; `problems` lists all that is wrong with it."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(problem.message for problem in self.problems))


# --- the default rule set (DESIGN.md §3) -------------------------------------------------------

_CALL_REGISTRAR = "Call the on-call plastic surgery registrar now and stay with the patient."
_RECHECK = "Recheck within 15 minutes and inform the nurse in charge."
# Rechecks while an escalation waits for a surgeon (DESIGN.md §2b). Red: every 15 minutes. A
# compromised flap is saved by the time from the first sign to theatre (salvaged flaps reached
# it a median 71 min after the sign, lost ones 103 min: Devine 2001): a sign that worsens
# while the surgeon is on the way is what the surgeon must hear next, and at the hourly
# interval of the first day it could wait most of that hour. Amber: every 30 minutes, the
# closest interval any common schedule keeps in the first day (Canniesburn): one cooling or
# one soft sign is often the probe or the room, and a look half an hour on tells a trend from
# a one-off (Khouri & Shaw 1992's 1.8 °C is a change, not a value).
RED_RECHECK_MINUTES = 15
AMBER_RECHECK_MINUTES = 30


def _choices(field: str, op: str, *values: str) -> Condition:
    return Condition(field, op, value=values)


DEFAULT_RULE_SET = RuleSet(
    note="Default rule set (DESIGN.md §3): an evidence-based starting point for the unit to adapt.",
    rules=(
        # Classic clinical signs of arterial insufficiency: a pale, cold, flaccid flap that
        # does not refill or bleed, or a lost arterial signal.
        Rule(
            id="arterial",
            name="Arterial insufficiency suspected",
            severity=Severity.RED,
            recheck_minutes=RED_RECHECK_MINUTES,
            action=_CALL_REGISTRAR,
            conditions=(
                _choices("colour", "in", "pale", "white", "mottled"),
                _choices("capillary_refill", "in", "sluggish", "absent"),
                _choices("turgor", "in", "flaccid"),
                _choices("pinprick", "in", "slow_none"),
                _choices("doppler_arterial", "in", "absent"),
            ),
        ),
        # Classic clinical signs of venous congestion: a dusky, tense flap that refills too
        # fast and bleeds dark blood, or a lost venous signal.
        Rule(
            id="venous",
            name="Venous congestion suspected",
            severity=Severity.RED,
            recheck_minutes=RED_RECHECK_MINUTES,
            action=_CALL_REGISTRAR,
            conditions=(
                _choices("colour", "in", "dusky", "blue", "purple"),
                _choices("capillary_refill", "in", "brisk"),
                _choices("turgor", "in", "tense"),
                _choices("pinprick", "in", "dark_rapid"),
                _choices("doppler_venous", "in", "absent"),
            ),
        ),
        Rule(
            id="necrosis",
            name="Flap necrosis suspected",
            severity=Severity.RED,
            recheck_minutes=RED_RECHECK_MINUTES,
            action=_CALL_REGISTRAR,
            conditions=(_choices("colour", "in", "black"),),
        ),
        # Khouri & Shaw 1992, 600 free flaps: a temperature difference of more than 1.8 °C
        # (flap cooler than control, or a fall) detected compromise with 98 % sensitivity
        # and a 75 % positive predictive value: amber, to recheck and look for other signs.
        Rule(
            id="temperature",
            name="Flap cooling",
            severity=Severity.AMBER,
            recheck_minutes=AMBER_RECHECK_MINUTES,
            action=_RECHECK,
            conditions=(
                Condition(TEMPERATURE_DIFFERENCE, ">=", value=1.8),
                Condition("flap_temperature_c", "drop_since_previous", value=1.8),
            ),
        ),
        # Loss of a previously present Doppler signal, handheld or implantable.
        Rule(
            id="doppler-change",
            name="Doppler signal lost",
            severity=Severity.RED,
            recheck_minutes=RED_RECHECK_MINUTES,
            action=_CALL_REGISTRAR,
            conditions=(
                Condition(
                    "doppler_arterial",
                    CHANGED_FROM,
                    from_values=("present",),
                    to_values=("weak", "absent"),
                ),
                Condition(
                    "doppler_venous", CHANGED_FROM, from_values=("present",), to_values=("absent",)
                ),
            ),
        ),
        # Tissue-oximetry alarm practice: an absolute low, or a fall of 20 points or more
        # within an hour (cf. Keller 2009, near-infrared spectroscopy in 208 free flaps).
        Rule(
            id="sto2",
            name="Low or falling StO₂",
            severity=Severity.RED,
            recheck_minutes=RED_RECHECK_MINUTES,
            action=_CALL_REGISTRAR,
            conditions=(
                Condition("sto2_percent", "<", value=30),
                Condition("sto2_percent", "drop_within", value=20, minutes=60),
            ),
        ),
        # A missed observation: found by the schedule sweep (next_due_at + grace), not here.
        Rule(
            id=OVERDUE_RULE_ID,
            name="Flap check overdue",
            severity=Severity.AMBER,
            action="Check the flap now; if it cannot be checked, inform the nurse in charge.",
            conditions=(),
        ),
    ),
)


# --- evaluating a check ------------------------------------------------------------------------

_SEVERITY_RANK = {Severity.AMBER: 1, Severity.RED: 2}


def evaluate(rule_set: RuleSet, check: CheckValues, history: Iterable[CheckValues]) -> Evaluation:
    """Which rules this check meets, given the flap's earlier checks (in any order).

    `history` holds current values only: amendments applied, entered-in-error left out.
    """
    earlier = sorted(
        (past for past in history if past.taken_at < check.taken_at), key=lambda c: c.taken_at
    )
    matches: list[RuleMatch] = []
    for rule in rule_set.rules:
        if not rule.enabled or rule.id == OVERDUE_RULE_ID:
            continue
        reasons = [
            reason
            for condition in rule.conditions
            if (reason := _reason_if_met(condition, check, earlier)) is not None
        ]
        if _enough_met(rule, len(reasons)):
            matches.append(
                RuleMatch(
                    rule.id,
                    rule.name,
                    Severity(rule.severity),
                    rule.action,
                    tuple(reasons),
                    rule.recheck_minutes,
                )
            )
    severity = max((m.severity for m in matches), key=_SEVERITY_RANK.__getitem__, default=None)
    return Evaluation(matches=tuple(matches), severity=severity)


def recent_history_is_enough(
    rule_set: RuleSet, check: CheckValues, newest_earlier: Sequence[CheckValues]
) -> bool:
    """Whether a flap's newest checks before `check` (not all of them) judge it exactly as
    its whole history would, so that a long-monitored flap need not be read in full.

    True when every trend window the rules open on `check` starts after the oldest of them,
    and every field they compare with its previous value has one among them. The rest of the
    history is older than all of these (taken_at, then id), so neither can reach it.
    """
    if not newest_earlier:
        return False
    oldest = min(past.taken_at for past in newest_earlier)
    for rule in rule_set.rules:
        if not rule.enabled or rule.id == OVERDUE_RULE_ID:
            continue
        for condition in rule.conditions:
            field, op = condition.field, condition.op
            if op == "drop_within":
                if _number(check, field) is None or condition.minutes is None:
                    continue
                if oldest >= check.taken_at - timedelta(minutes=condition.minutes):
                    return False
            elif op in ("drop_since_previous", "rise_since_previous"):
                if _number(check, field) is None:
                    continue
                if all(_number(past, field) is None for past in newest_earlier):
                    return False
            elif op == CHANGED_FROM:
                if _observed_choice(check, field) is None:
                    continue
                if all(_observed_choice(past, field) is None for past in newest_earlier):
                    return False
    return True


def overdue_rule(rule_set: RuleSet) -> Rule | None:
    """The enabled `overdue` rule, which the schedule sweep applies; None switches it off."""
    for rule in rule_set.rules:
        if rule.id == OVERDUE_RULE_ID and rule.enabled:
            return rule
    return None


def compare_rule_sets(
    current: RuleSet,
    proposed: RuleSet,
    cases: Iterable[tuple[CheckValues, Iterable[CheckValues]]]
    | Iterable[tuple[CheckValues, Iterable[CheckValues], int]],
) -> dict[str, dict[str, int]]:
    """Alarm burden of a proposed rule set against the current one, on past checks.

    Returns `{"current": {rule_id: checks flagged}, "proposed": {...}, "total": {"checks": n,
    "current": checks flagged by any rule, "proposed": ..., "current_rechecks": ...,
    "proposed_rechecks": ...}}`. Every rule evaluated on checks is listed, with 0 when it
    flags nothing; `overdue` is not (it is not about checks). A case may carry the schedule's
    interval (minutes) at its check: a flag whose rules ask for a recheck sooner than that adds
    the checks that fall due before the next scheduled one (an hourly flap flagged by a rule
    with a 15-minute recheck: 3), the extra checks the rechecks cost if nobody acknowledged.
    """
    counts = {name: _zero_counts(rule_set) for name, rule_set in _named(current, proposed)}
    total = {
        "checks": 0,
        "current": 0,
        "proposed": 0,
        "current_rechecks": 0,
        "proposed_rechecks": 0,
    }
    for check, history, *interval in cases:
        earlier = list(history)
        total["checks"] += 1
        for name, rule_set in _named(current, proposed):
            evaluation = evaluate(rule_set, check, earlier)
            for match in evaluation.matches:
                counts[name][match.rule_id] += 1
            total[name] += bool(evaluation.matches)
            recheck = evaluation.recheck_minutes
            if interval and recheck is not None and recheck < interval[0]:
                total[f"{name}_rechecks"] += -(-interval[0] // recheck) - 1
    return {**counts, "total": total}


def _named(current: RuleSet, proposed: RuleSet) -> tuple[tuple[str, RuleSet], ...]:
    return (("current", current), ("proposed", proposed))


def _zero_counts(rule_set: RuleSet) -> dict[str, int]:
    return {rule.id: 0 for rule in rule_set.rules if rule.id != OVERDUE_RULE_ID}


def _enough_met(rule: Rule, met: int) -> bool:
    if met == 0:
        return False
    if rule.match == "any":
        return True
    if rule.match == "all":
        return met == len(rule.conditions)
    return isinstance(rule.match, AtLeast) and met >= rule.match.n


def _reason_if_met(
    condition: Condition, check: CheckValues, earlier: Sequence[CheckValues]
) -> str | None:
    field, op = condition.field, condition.op
    if op in CATEGORICAL_OPERATORS:
        return _choice_reason(condition, check)
    if op == CHANGED_FROM:
        return _change_reason(condition, check, earlier)
    current = _number(check, field)
    threshold = condition.value
    if current is None or not isinstance(threshold, int | float):
        return None
    phrase = FIELD_PHRASES[field]
    if op in COMPARISONS:
        symbol, holds = COMPARISONS[op]
        if not holds(current, threshold):
            return None
        return f"{phrase} {_amount(field, current)} {symbol} {_amount(field, threshold)}"
    if op == "drop_within" and condition.minutes is not None:
        start = check.taken_at - timedelta(minutes=condition.minutes)
        in_window = [
            value
            for past in earlier
            if past.taken_at >= start and (value := _number(past, field)) is not None
        ]
        if not in_window:
            return None
        highest = max(in_window)
        if _difference(highest, current) < threshold:
            return None
        return (
            f"{phrase} fell {_change(field, highest - current)} within {condition.minutes} min "
            f"({_span(field, highest, current)})"
        )
    previous = _previous(earlier, lambda past: _number(past, field))
    if previous is None:
        return None
    if op == "drop_since_previous" and _difference(previous, current) >= threshold:
        verb, size = "fell", previous - current
    elif op == "rise_since_previous" and _difference(current, previous) >= threshold:
        verb, size = "rose", current - previous
    else:
        return None
    return (
        f"{phrase} {verb} {_change(field, size)} since the previous check "
        f"({_span(field, previous, current)})"
    )


def _choice_reason(condition: Condition, check: CheckValues) -> str | None:
    value = _choice(check, condition.field)
    choices = condition.value if isinstance(condition.value, tuple) else ()
    phrase = FIELD_PHRASES[condition.field]
    if value is None:
        return None
    if condition.op == "in" and value in choices:
        return f"{phrase} {_label(value)}"
    if condition.op == "not_in" and value not in choices and value not in NOT_OBSERVED:
        expected = " or ".join(_label_of(condition.field, choice) for choice in choices)
        return f"{phrase} {_label(value)} (not {expected})"
    return None


def _change_reason(
    condition: Condition, check: CheckValues, earlier: Sequence[CheckValues]
) -> str | None:
    field = condition.field
    current = _observed_choice(check, field)
    if current is None or current not in condition.to_values:
        return None
    previous = _previous(earlier, lambda past: _observed_choice(past, field))
    if previous is None or previous == current or previous not in condition.from_values:
        return None
    return f"{FIELD_PHRASES[field]} changed from {_label(previous)} to {_label(current)}"


def _previous(
    earlier: Sequence[CheckValues], read: Callable[[CheckValues], _T | None]
) -> _T | None:
    """The value in the latest earlier check that recorded one."""
    for past in reversed(earlier):
        value = read(past)
        if value is not None:
            return value
    return None


def _number(check: CheckValues, field: str) -> float | None:
    value = getattr(check, field, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def _choice(check: CheckValues, field: str) -> Labelled | None:
    """The recorded answer as its vocabulary member; an answer outside it counts as none."""
    value = getattr(check, field, None)
    vocabulary = CATEGORICAL_FIELDS[field]
    if not isinstance(value, str) or value not in vocabulary.values():
        return None
    return vocabulary(value)


def _observed_choice(check: CheckValues, field: str) -> Labelled | None:
    value = _choice(check, field)
    return None if value is None or value in NOT_OBSERVED else value


def _difference(a: float, b: float) -> float:
    # Rounded so that 36.3 → 34.5 counts as the 1.8 °C fall the nurse sees, not 1.79999….
    return round(a - b, 6)


def _label(value: Labelled) -> str:
    return value.label.lower()


def _label_of(field: str, value: str) -> str:
    return _label(CATEGORICAL_FIELDS[field](value))


def _is_temperature(field: str) -> bool:
    return field.endswith("temperature_c") or field == TEMPERATURE_DIFFERENCE


def _plain(number: float) -> str:
    return f"{number:.1f}".removesuffix(".0")


def _figure(field: str, number: float) -> str:
    return f"{number:.1f}" if _is_temperature(field) else _plain(number)


def _unit(field: str) -> str:
    if _is_temperature(field):
        return "°C"
    return "%" if field == "sto2_percent" else "s"


def _amount(field: str, number: float) -> str:
    return f"{_figure(field, number)} {_unit(field)}"


def _change(field: str, size: float) -> str:
    if field == "sto2_percent":
        figure = _plain(size)
        return f"{figure} point" if figure == "1" else f"{figure} points"
    return _amount(field, size)


def _span(field: str, before: float, after: float) -> str:
    return f"{_figure(field, before)} → {_amount(field, after)}"


# --- JSON form ---------------------------------------------------------------------------------


def rule_set_to_json(rule_set: RuleSet) -> dict[str, Any]:
    """The JSON form of DESIGN.md §2; `parse_rule_set` reads it back to an equal RuleSet."""
    return {
        "rules": [_rule_to_json(rule) for rule in rule_set.rules],
        "note": rule_set.note,
    }


def _rule_to_json(rule: Rule) -> dict[str, Any]:
    match: Any = {"at_least": rule.match.n} if isinstance(rule.match, AtLeast) else rule.match
    return {
        "id": rule.id,
        "name": rule.name,
        "severity": str(Severity(rule.severity)),
        "action": rule.action,
        "match": match,
        "enabled": rule.enabled,
        **({"recheck_minutes": rule.recheck_minutes} if rule.recheck_minutes is not None else {}),
        "conditions": [_condition_to_json(condition) for condition in rule.conditions],
    }


def _condition_to_json(condition: Condition) -> dict[str, Any]:
    data: dict[str, Any] = {"field": condition.field, "op": condition.op}
    if condition.op == CHANGED_FROM:
        data["from"] = list(condition.from_values)
        data["to"] = list(condition.to_values)
    elif isinstance(condition.value, tuple):
        data["value"] = list(condition.value)
    else:
        data["value"] = condition.value
    if condition.op == "drop_within":
        data["minutes"] = condition.minutes
    return data


def parse_rule_set(data: Mapping[str, Any]) -> RuleSet:
    """Read the JSON form; raise RuleSetError listing every problem found."""
    parser = _Parser()
    rule_set = parser.rule_set(data)
    if parser.problems or rule_set is None:
        raise RuleSetError(parser.problems)
    return rule_set


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _quoted(text: object) -> str:
    shown = str(text)
    if len(shown) > MAX_ID_LENGTH:
        shown = shown[:MAX_ID_LENGTH] + "…"
    return f'"{shown}"'


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values)


class _Parser:
    """Collects every problem while building the rule set; a None result means refused."""

    def __init__(self) -> None:
        self.problems: list[RuleProblem] = []

    def _report(
        self,
        message: str,
        rule_index: int | None = None,
        rule_id: str | None = None,
        condition_index: int | None = None,
    ) -> None:
        if rule_index is None:
            where = "Rule set"
        else:
            where = f"Rule {rule_index + 1}"
            if rule_id is not None:
                where += f" {_quoted(rule_id)}"
            if condition_index is not None:
                where += f", condition {condition_index + 1}"
        self.problems.append(
            RuleProblem(rule_index, rule_id, condition_index, f"{where}: {message}")
        )

    def _reporter(
        self, rule_index: int, rule_id: str | None, condition_index: int
    ) -> Callable[[str], None]:
        return lambda message: self._report(message, rule_index, rule_id, condition_index)

    def rule_set(self, data: object) -> RuleSet | None:
        if not isinstance(data, Mapping):
            self._report(f'must be an object with "rules", not {_json_type(data)}')
            return None
        for key in data:
            if key not in _RULE_SET_KEYS:
                self._report(f"unknown key {_quoted(key)}; expected: {_listed(_RULE_SET_KEYS)}")
        note = data.get("note", "")
        if not isinstance(note, str):
            self._report(f'"note" must be text, not {_json_type(note)}')
            note = ""
        elif len(note) > MAX_NOTE_LENGTH:
            self._report(f'"note" is longer than {MAX_NOTE_LENGTH} characters')
        if "rules" not in data:
            self._report('missing "rules"')
            return None
        raw_rules = data["rules"]
        if not isinstance(raw_rules, list):
            self._report(f'"rules" must be a list, not {_json_type(raw_rules)}')
            return None
        if len(raw_rules) > MAX_RULES:
            self._report(f"at most {MAX_RULES} rules, not {len(raw_rules)}")
            return None
        rules: list[Rule] = []
        first_index_of: dict[str, int] = {}
        for index, raw in enumerate(raw_rules):
            rule = self.rule(index, raw)
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            if isinstance(raw_id, str):
                if raw_id in first_index_of:
                    first = first_index_of[raw_id] + 1
                    self._report(
                        f"id {_quoted(raw_id)} is already used by rule {first}", index, raw_id
                    )
                first_index_of.setdefault(raw_id, index)
            if rule is not None:
                rules.append(rule)
        return RuleSet(rules=tuple(rules), note=note)

    def rule(self, index: int, raw: object) -> Rule | None:
        if not isinstance(raw, Mapping):
            self._report(f"must be an object, not {_json_type(raw)}", index)
            return None
        raw_id = raw.get("id")
        rule_id = raw_id if isinstance(raw_id, str) else None
        before = len(self.problems)

        def report(message: str) -> None:
            self._report(message, index, rule_id)

        for key in raw:
            if key not in _RULE_KEYS:
                report(f"unknown key {_quoted(key)}; expected: {_listed(_RULE_KEYS)}")
        if "id" not in raw:
            report('missing "id"')
        elif rule_id is None:
            report(f'"id" must be text, not {_json_type(raw_id)}')
        elif len(rule_id) > MAX_ID_LENGTH or not _SLUG.fullmatch(rule_id):
            report(
                f"id {_quoted(rule_id)} must be a slug of at most {MAX_ID_LENGTH} characters: "
                "lowercase letters, digits and single hyphens, starting with a letter"
            )
        name = self._text(raw, "name", MAX_NAME_LENGTH, report)
        action = self._text(raw, "action", MAX_ACTION_LENGTH, report)
        severity = raw.get("severity")
        if "severity" not in raw:
            report('missing "severity"')
        elif not isinstance(severity, str):
            report(f'"severity" must be text, not {_json_type(severity)}')
        elif severity not in Severity.values():
            report(f"unknown severity {_quoted(severity)}; allowed: {_listed(Severity.values())}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            report(f'"enabled" must be true or false, not {_json_type(enabled)}')
        recheck = raw.get("recheck_minutes")
        low, high = RECHECK_MINUTES_RANGE
        if recheck is not None and (
            isinstance(recheck, bool) or not isinstance(recheck, int) or not low <= recheck <= high
        ):
            report(f'"recheck_minutes" must be a whole number of minutes from {low} to {high}')
        elif recheck is not None and rule_id == OVERDUE_RULE_ID:
            report('the overdue rule has no "recheck_minutes": its schedule is the unit\'s')
        conditions = self.conditions(index, rule_id, raw, report)
        raw_conditions = raw.get("conditions")
        count = len(raw_conditions) if isinstance(raw_conditions, list) else None
        match = self.match(raw.get("match", "any"), count, report)
        if len(self.problems) > before or conditions is None or match is None:
            return None
        assert rule_id is not None and name is not None and action is not None
        return Rule(
            id=rule_id,
            name=name,
            severity=Severity(severity),
            action=action,
            conditions=conditions,
            match=match,
            enabled=enabled,
            recheck_minutes=recheck,
        )

    @staticmethod
    def _text(
        raw: Mapping[str, Any], key: str, limit: int, report: Callable[[str], None]
    ) -> str | None:
        if key not in raw:
            report(f"missing {_quoted(key)}")
            return None
        value = raw[key]
        if not isinstance(value, str):
            report(f"{_quoted(key)} must be text, not {_json_type(value)}")
            return None
        if not value.strip():
            report(f"{_quoted(key)} must not be empty")
            return None
        if len(value) > limit:
            report(f"{_quoted(key)} is longer than {limit} characters")
            return None
        return value

    def conditions(
        self,
        index: int,
        rule_id: str | None,
        raw: Mapping[str, Any],
        report: Callable[[str], None],
    ) -> tuple[Condition, ...] | None:
        if "conditions" not in raw:
            report('missing "conditions"')
            return None
        raw_conditions = raw["conditions"]
        if not isinstance(raw_conditions, list):
            report(f'"conditions" must be a list, not {_json_type(raw_conditions)}')
            return None
        if rule_id == OVERDUE_RULE_ID:
            if raw_conditions:
                report(
                    "the overdue rule must have no conditions: it fires on a missed check, "
                    "found by the schedule"
                )
                return None
            return ()
        if not raw_conditions:
            report("no conditions")
            return None
        if len(raw_conditions) > MAX_CONDITIONS:
            report(f"at most {MAX_CONDITIONS} conditions, not {len(raw_conditions)}")
            return None
        parsed = [
            self.condition(raw_condition, self._reporter(index, rule_id, number))
            for number, raw_condition in enumerate(raw_conditions)
        ]
        if any(condition is None for condition in parsed):
            return None
        return tuple(condition for condition in parsed if condition is not None)

    @staticmethod
    def match(
        raw: object, condition_count: int | None, report: Callable[[str], None]
    ) -> MatchMode | None:
        """None count: the conditions are unreadable, so N cannot be checked against them."""
        if raw == "any" or raw == "all":
            return "any" if raw == "any" else "all"
        if isinstance(raw, Mapping) and list(raw) == ["at_least"]:
            n = raw["at_least"]
            if isinstance(n, bool) or not isinstance(n, int):
                report(f'match "at_least" must be a whole number, not {_json_type(n)}')
                return None
            if condition_count is not None and not 1 <= n <= condition_count:
                report(
                    f'match {{"at_least": {n}}} needs a number between 1 and '
                    f"{condition_count} (the number of conditions)"
                )
                return None
            return AtLeast(n)
        report('"match" must be "any", "all" or {"at_least": N}')
        return None

    def condition(self, raw: object, report: Callable[[str], None]) -> Condition | None:
        if not isinstance(raw, Mapping):
            report(f"must be an object, not {_json_type(raw)}")
            return None
        field, op = raw.get("field"), raw.get("op")
        fine = True
        if "field" not in raw:
            report('missing "field"')
            fine = False
        elif not isinstance(field, str) or (
            field not in CATEGORICAL_FIELDS and field not in NUMERIC_FIELDS
        ):
            shown = _quoted(field) if isinstance(field, str) else _json_type(field)
            allowed = _listed([*CATEGORICAL_FIELDS, *NUMERIC_FIELDS])
            report(f"unknown field {shown}; allowed: {allowed}")
            fine = False
        if "op" not in raw:
            report('missing "op"')
            return None
        if not isinstance(op, str) or op not in OPERATORS:
            shown = _quoted(op) if isinstance(op, str) else _json_type(op)
            report(f"unknown operator {shown}; allowed: {_listed(OPERATORS)}")
            return None
        expected = _condition_keys(op)
        for key in raw:
            if key not in expected:
                report(
                    f'unexpected key {_quoted(key)} for operator "{op}"; '
                    f"expected: {_listed(expected)}"
                )
                fine = False
        if not fine:
            return None
        assert isinstance(field, str)
        categorical_op = op in CATEGORICAL_OPERATORS or op == CHANGED_FROM
        if categorical_op and field not in CATEGORICAL_FIELDS:
            report(f'operator "{op}" needs a choice field; "{field}" is a number')
            return None
        if not categorical_op and field not in NUMERIC_FIELDS:
            report(f'operator "{op}" needs a numeric field; "{field}" is a choice')
            return None
        if op in CATEGORICAL_OPERATORS:
            choices = self.choices(raw, "value", field, report, allow_not_observed=True)
            return None if choices is None else Condition(field, op, value=choices)
        if op == CHANGED_FROM:
            from_values = self.choices(raw, "from", field, report, allow_not_observed=False)
            to_values = self.choices(raw, "to", field, report, allow_not_observed=False)
            if from_values is None or to_values is None:
                return None
            return Condition(field, op, from_values=from_values, to_values=to_values)
        value = self.number(raw, field, op, report)
        minutes = self.minutes(raw, report) if op == "drop_within" else None
        if value is None or (op == "drop_within" and minutes is None):
            return None
        return Condition(field, op, value=value, minutes=minutes)

    @staticmethod
    def choices(
        raw: Mapping[str, Any],
        key: str,
        field: str,
        report: Callable[[str], None],
        *,
        allow_not_observed: bool,
    ) -> tuple[str, ...] | None:
        if key not in raw:
            report(f'missing "{key}"')
            return None
        values = raw[key]
        if not isinstance(values, list):
            report(f'"{key}" must be a list of choices, not {_json_type(values)}')
            return None
        if not values:
            report(f'"{key}" must list at least one choice')
            return None
        if len(values) > MAX_CHOICES:
            report(f'"{key}" lists {len(values)} choices; at most {MAX_CHOICES}')
            return None
        vocabulary = CATEGORICAL_FIELDS[field].values()
        allowed = [v for v in vocabulary if allow_not_observed or v not in NOT_OBSERVED]
        fine = True
        seen: set[str] = set()
        for number, value in enumerate(values, start=1):
            if not isinstance(value, str):
                report(f'"{key}" item {number} must be text, not {_json_type(value)}')
                fine = False
            elif value not in vocabulary:
                report(
                    f"{_quoted(value)} is not a {_CHOICE_NOUNS[field]}; allowed: {_listed(allowed)}"
                )
                fine = False
            elif value not in allowed:
                report(
                    f'"{value}" records that nothing was observed, so it cannot be part of a '
                    f'change; "{key}" allows: {_listed(allowed)}'
                )
                fine = False
            elif value in seen:
                report(f'"{key}" lists "{value}" twice')
                fine = False
            else:
                seen.add(value)
        return tuple(values) if fine else None

    @staticmethod
    def number(
        raw: Mapping[str, Any], field: str, op: str, report: Callable[[str], None]
    ) -> float | None:
        if "value" not in raw:
            report('missing "value"')
            return None
        value = raw["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            report(f'"value" must be a number, not {_json_type(value)}')
            return None
        if not math.isfinite(value):
            report(f'"value" must be a finite number, not {value}')
            return None
        low, high = NUMERIC_FIELDS[field]
        if op in COMPARISONS:
            if not low <= value <= high:
                report(
                    f'"value" {_plain(value)} is outside what "{field}" can be '
                    f"({_plain(low)} to {_plain(high)})"
                )
                return None
        elif not 0 < value <= high - low:
            report(
                f'operator "{op}" needs "value" to be the size of the change: above 0 and at '
                f'most {_plain(high - low)} for "{field}", not {_plain(value)}'
            )
            return None
        return value

    @staticmethod
    def minutes(raw: Mapping[str, Any], report: Callable[[str], None]) -> int | None:
        minutes = raw.get("minutes")
        valid = isinstance(minutes, int) and not isinstance(minutes, bool)
        if not valid or not 0 < minutes <= MAX_WINDOW_MINUTES:
            shown = "it is missing" if "minutes" not in raw else f"got {_shown(minutes)}"
            report(
                f'operator "drop_within" needs "minutes", a whole number from 1 to '
                f"{MAX_WINDOW_MINUTES}; {shown}"
            )
            return None
        return minutes


def _shown(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return _json_type(value)


def _condition_keys(op: str) -> tuple[str, ...]:
    if op == CHANGED_FROM:
        return ("field", "op", "from", "to")
    if op == "drop_within":
        return ("field", "op", "value", "minutes")
    return ("field", "op", "value")
