"""Conditions in the coordinator's words: the rule pages and the trend chart's thresholds."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from flapwatch.domain.checks import CATEGORICAL_FIELDS
from flapwatch.domain.rules import (
    CATEGORICAL_OPERATORS,
    CHANGED_FROM,
    COMPARISONS,
    FIELD_PHRASES,
    TEMPERATURE_DIFFERENCE,
    Condition,
)


def _capitalised(words: str) -> str:
    return words[:1].upper() + words[1:]


def field_label(name: str) -> str:
    if name == TEMPERATURE_DIFFERENCE:
        return "ΔT (control − flap temperature)"
    return _capitalised(FIELD_PHRASES.get(name, name))


def _choice_label(field_name: str, value: str) -> str:
    vocabulary = CATEGORICAL_FIELDS.get(field_name)
    if vocabulary is None or value not in vocabulary.values():
        return value
    return str(vocabulary(value).label).lower()


def _either(field_name: str, values: Sequence[str]) -> str:
    labels = [_choice_label(field_name, value) for value in values]
    if len(labels) < 2:
        return "".join(labels)
    return f"{', '.join(labels[:-1])} or {labels[-1]}"


def plain_number(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _amount(field_name: str, number: float, *, change: bool = False) -> str:
    if field_name.endswith("temperature_c") or field_name == TEMPERATURE_DIFFERENCE:
        return f"{number:.1f} °C"
    if field_name == "sto2_percent":
        return f"{plain_number(number)} points" if change else f"{plain_number(number)} %"
    return f"{plain_number(number)} s"


def describe_condition(condition: Condition) -> str:
    """'colour is pale, white or mottled', 'ΔT ≥ 1.8 °C', 'StO₂ falls ≥ 20 points within 60 min'."""
    name, op = condition.field, condition.op
    words = FIELD_PHRASES.get(name, name)
    if op in CATEGORICAL_OPERATORS:
        choices = condition.value if isinstance(condition.value, tuple) else ()
        verb = "is" if op == "in" else "is not"
        return f"{words} {verb} {_either(name, choices)}"
    if op == CHANGED_FROM:
        before, after = _either(name, condition.from_values), _either(name, condition.to_values)
        return f"{words} changes from {before} to {after}"
    value = condition.value if isinstance(condition.value, int | float) else 0.0
    if op in COMPARISONS:
        return f"{words} {COMPARISONS[op][0]} {_amount(name, value)}"
    size = _amount(name, value, change=True)
    if op == "drop_within":
        return f"{words} falls ≥ {size} within {condition.minutes} min"
    verb = "falls" if op == "drop_since_previous" else "rises"
    return f"{words} {verb} ≥ {size} since the previous check"


def reasons_by_rule(reasons: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Reasons ("rule: finding") grouped under their rule, first seen first, without repeats.

    An escalation gathers every flag's reasons; grouped, a surgeon reads each rule once.
    """
    grouped: dict[str, list[str]] = {}
    for reason in reasons:
        rule, separator, finding = reason.partition(": ")
        if not separator:
            rule, finding = "", reason
        findings = grouped.setdefault(rule, [])
        if finding not in findings:
            findings.append(finding)
    return list(grouped.items())
