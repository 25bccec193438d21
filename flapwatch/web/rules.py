"""A unit's escalation rule set: view, edit, dry run against history, publish, import/export.

The editor is a plain form, one fieldset per rule and one row per condition, that works
without JavaScript (rows are added by submit buttons). It becomes the JSON of DESIGN.md §2
and the domain's parser judges it, so the form, an imported file and the API accept and
refuse exactly the same rule sets; each refusal is shown on the rule or condition it names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange

from flapwatch.db import get_session
from flapwatch.domain.checks import CATEGORICAL_FIELDS
from flapwatch.domain.rule_words import describe_condition, field_label, plain_number
from flapwatch.domain.rules import (
    CATEGORICAL_OPERATORS,
    CHANGED_FROM,
    COMPARISONS,
    MAX_NOTE_LENGTH,
    NUMERIC_FIELDS,
    OPERATORS,
    OVERDUE_RULE_ID,
    TREND_OPERATORS,
    AtLeast,
    Condition,
    Rule,
    RuleProblem,
    RuleSet,
    RuleSetError,
    parse_rule_set,
    rule_set_to_json,
)
from flapwatch.domain.vocabulary import Severity
from flapwatch.http.access import MANAGERS, current_actor, roles_required
from flapwatch.models import RuleSetVersion, Unit, utcnow
from flapwatch.services import InvalidInput, NotFound
from flapwatch.services.escalations import current_rule_set, publish_rule_set
from flapwatch.services.rule_sets import (
    DEFAULT_DRY_RUN_DAYS,
    DRY_RUN_DAYS,
    DryRun,
    dry_run,
    published_version,
    rule_set_history,
    unit_for_rules,
)
from flapwatch.web.forms import SafeForm, attach_problems

bp = Blueprint("rules", __name__, url_prefix="/admin/units/<int:unit_id>/rules")

Page = str | Response | tuple[str, int]

# A rule set is a few kilobytes; a file a thousand times larger is not one.
MAX_IMPORT_BYTES = 1024 * 1024

# --- conditions in the coordinator's words --------------------------------------------------

OPERATOR_WORDS: dict[str, str] = {
    "in": "is one of",
    "not_in": "is none of",
    **{op: symbol for op, (symbol, _holds) in COMPARISONS.items()},
    "drop_since_previous": "falls since last check by ≥",
    "rise_since_previous": "rises since last check by ≥",
    "drop_within": "falls within N minutes by ≥",
    CHANGED_FROM: "changes from … to …",
}
CHOICE_OPERATORS = (*CATEGORICAL_OPERATORS, CHANGED_FROM)


def describe_match(rule: Rule) -> str:
    if rule.id == OVERDUE_RULE_ID:
        return (
            "Flags a flap when no check is recorded by the time it falls due plus the grace "
            "period of the unit's schedule."
        )
    if len(rule.conditions) == 1:
        return "Flags a check when:"
    if isinstance(rule.match, AtLeast):
        return f"Flags a check when at least {rule.match.n} of these are found:"
    if rule.match == "all":
        return "Flags a check when all of these are found:"
    return "Flags a check when any of these is found:"


# --- the editor form ---------------------------------------------------------------------


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


FIELD_CHOICES = [
    SelectChoice("", "Choose a field"),
    *(SelectChoice(name, field_label(name), optgroup="Findings") for name in CATEGORICAL_FIELDS),
    *(SelectChoice(name, field_label(name), optgroup="Measurements") for name in NUMERIC_FIELDS),
]
OPERATOR_CHOICES = [
    SelectChoice("", "Choose a test"),
    *(
        SelectChoice(op, OPERATOR_WORDS[op], optgroup="For findings")
        for op in OPERATORS
        if op in CHOICE_OPERATORS
    ),
    *(
        SelectChoice(op, OPERATOR_WORDS[op], optgroup="For measurements")
        for op in OPERATORS
        if op not in CHOICE_OPERATORS
    ),
]
MATCH_CHOICES = [
    SelectChoice("any", "any condition is found"),
    SelectChoice("all", "all conditions are found"),
    SelectChoice("at_least", "at least N conditions are found"),
]


class ConditionRow(Form):
    field = SelectField("Field", choices=FIELD_CHOICES, validate_choice=False)
    op = SelectField("Test", choices=OPERATOR_CHOICES, validate_choice=False)
    value = StringField("Value", filters=[_strip])
    minutes = StringField("Minutes (N)", filters=[_strip])
    from_values = StringField("From", filters=[_strip])
    to_values = StringField("To", filters=[_strip])
    remove = BooleanField("Remove")


class RuleRow(Form):
    rule_id = StringField("Id", filters=[_strip])
    rule_name = StringField("Name", filters=[_strip])
    severity = SelectField(
        "Severity",
        choices=[SelectChoice(s.value, s.label) for s in reversed(Severity)],
        validate_choice=False,
    )
    action = TextAreaField("Action shown to the nurse", filters=[_strip])
    match = SelectField("Flags when", choices=MATCH_CHOICES, validate_choice=False)
    at_least = StringField("N", filters=[_strip])
    enabled = BooleanField("Enabled")
    recheck_minutes = StringField("Recheck every (min) while unanswered", filters=[_strip])
    remove = BooleanField("Remove this rule")
    conditions = FieldList(FormField(ConditionRow))


class RuleSetForm(SafeForm):
    rules = FieldList(FormField(RuleRow))
    days = IntegerField(
        "Dry run over the last … days",
        default=DEFAULT_DRY_RUN_DAYS,
        invalid_value_message="Days must be a whole number, e.g. 14.",
        validators=[
            InputRequired(message="Days is required for a dry run."),
            NumberRange(
                min=DRY_RUN_DAYS[0],
                max=DRY_RUN_DAYS[1],
                message=f"Days must be from {DRY_RUN_DAYS[0]} to {DRY_RUN_DAYS[1]}.",
            ),
        ],
    )
    note = TextAreaField(
        "Change note",
        filters=[_strip],
        validators=[
            Length(
                max=MAX_NOTE_LENGTH,
                message=f"Change note can be at most {MAX_NOTE_LENGTH} characters.",
            )
        ],
    )


class ImportForm(SafeForm):
    file = FileField("A JSON file exported from flapwatch")
    json_text = TextAreaField("…or paste the JSON")


NEW_CONDITION: dict[str, Any] = {"field": "", "op": ""}
NEW_RULE: dict[str, Any] = {
    "severity": Severity.AMBER.value,
    "match": "any",
    "enabled": True,
    "conditions": [NEW_CONDITION],
}


def _condition_row(condition: Condition) -> dict[str, Any]:
    value = condition.value
    return {
        "field": condition.field,
        "op": condition.op,
        "value": ", ".join(value) if isinstance(value, tuple) else _number_text(value),
        "minutes": "" if condition.minutes is None else str(condition.minutes),
        "from_values": ", ".join(condition.from_values),
        "to_values": ", ".join(condition.to_values),
    }


def _number_text(value: float | None) -> str:
    return "" if value is None else plain_number(value)


def _rule_row(rule: Rule) -> dict[str, Any]:
    at_least = isinstance(rule.match, AtLeast)
    return {
        "rule_id": rule.id,
        "rule_name": rule.name,
        "severity": str(Severity(rule.severity)),
        "action": rule.action,
        "match": "at_least" if at_least else rule.match,
        "at_least": str(rule.match.n) if isinstance(rule.match, AtLeast) else "",
        "enabled": rule.enabled,
        "recheck_minutes": "" if rule.recheck_minutes is None else str(rule.recheck_minutes),
        "conditions": [_condition_row(condition) for condition in rule.conditions],
    }


def editor_form(rule_set: RuleSet) -> RuleSetForm:
    """The editor filled in from a rule set, not from the request."""
    return RuleSetForm(
        formdata=None,
        data={"rules": [_rule_row(rule) for rule in rule_set.rules], "note": ""},
    )


# --- from the form to the JSON form ----------------------------------------------------------


@dataclass
class Draft:
    """The JSON a submitted editor stands for, and where each of its items sits in the form.

    Rows ticked "remove" and rows left blank are not part of the rule set, so the JSON's
    indexes (which the parser's problems name) differ from the form's rows.
    """

    definition: dict[str, Any]
    rule_rows: list[int] = field(default_factory=list)
    condition_rows: list[list[int]] = field(default_factory=list)

    def rule_number(self, row: int) -> int | None:
        """The rule's number in the rule set as the parser counts it (None: left out)."""
        return self.rule_rows.index(row) + 1 if row in self.rule_rows else None

    def condition_number(self, row: int, condition_row: int) -> int | None:
        if row not in self.rule_rows:
            return None
        kept = self.condition_rows[self.rule_rows.index(row)]
        return kept.index(condition_row) + 1 if condition_row in kept else None


def _blank_condition(row: ConditionRow) -> bool:
    return not any(
        (row.field.data, row.op.data, row.value.data, row.minutes.data)
        + (row.from_values.data, row.to_values.data)
    )


def _blank_rule(row: RuleRow) -> bool:
    typed = (row.rule_id.data, row.rule_name.data, row.action.data)
    return not any(typed) and all(_blank_condition(entry.form) for entry in row.conditions.entries)


def _whole_or_text(text: str) -> int | str:
    return int(text) if re.fullmatch(r"[+-]?\d+", text) else text


def _number_or_text(text: str) -> float | int | str:
    """A number as typed ('1.8', '1,8', '20'); anything else stays text for the parser."""
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def _choices_typed(field_name: str, text: str) -> list[str]:
    """'Pale, white, Not assessable' → ['pale', 'white', 'not_assessable']."""
    vocabulary = CATEGORICAL_FIELDS.get(field_name)
    known: dict[str, str] = {}
    if vocabulary is not None:
        for member in vocabulary:
            for spelling in (member.value, member.value.replace("_", " "), member.label):
                known[spelling.lower()] = member.value
    typed = [part.strip() for part in text.split(",") if part.strip()]
    return [known.get(part.lower(), part) for part in typed]


_KEYS_OF_OPERATOR = {CHANGED_FROM: ("from", "to"), "drop_within": ("value", "minutes")}


def _condition_json(row: ConditionRow) -> dict[str, Any]:
    """What the parser should judge; a key the test does not take is kept only if typed."""
    name, op = row.field.data or "", row.op.data or ""
    data: dict[str, Any] = {}
    if name:
        data["field"] = name
    if op:
        data["op"] = op
    expected = _KEYS_OF_OPERATOR.get(op, ("value",)) if op in OPERATORS else ()
    typed = {
        "value": row.value.data or "",
        "minutes": row.minutes.data or "",
        "from": row.from_values.data or "",
        "to": row.to_values.data or "",
    }
    for key, text in typed.items():
        if key not in expected and not text:
            continue
        if key in ("from", "to") or (key == "value" and op in CATEGORICAL_OPERATORS):
            data[key] = _choices_typed(name, text)
        elif key == "minutes":
            data[key] = _whole_or_text(text)
        elif op in COMPARISONS or op in TREND_OPERATORS:
            data[key] = _number_or_text(text)
        else:
            data[key] = text
    return data


def _rule_json(row: RuleRow, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    match: Any = row.match.data or "any"
    if match == "at_least":
        match = {"at_least": _whole_or_text(row.at_least.data or "")}
    return {
        "id": row.rule_id.data or "",
        "name": row.rule_name.data or "",
        "severity": row.severity.data or "",
        "action": row.action.data or "",
        "match": match,
        "enabled": bool(row.enabled.data),
        **(
            {"recheck_minutes": _whole_or_text(row.recheck_minutes.data)}
            if row.recheck_minutes.data
            else {}
        ),
        "conditions": conditions,
    }


def draft_of(form: RuleSetForm) -> Draft:
    draft = Draft(definition={"rules": []})
    for row_index, entry in enumerate(form.rules.entries):
        row: RuleRow = entry.form
        if row.remove.data or _blank_rule(row):
            continue
        conditions, kept = [], []
        for condition_index, condition_entry in enumerate(row.conditions.entries):
            condition: ConditionRow = condition_entry.form
            if condition.remove.data or _blank_condition(condition):
                continue
            conditions.append(_condition_json(condition))
            kept.append(condition_index)
        draft.definition["rules"].append(_rule_json(row, conditions))
        draft.rule_rows.append(row_index)
        draft.condition_rows.append(kept)
    return draft


def _keep_unknown_choices(form: RuleSetForm) -> None:
    """A value the selects do not offer (a forged or mistyped one) stays shown as typed."""
    for entry in form.rules.entries:
        row: RuleRow = entry.form
        selects = [row.severity, row.match]
        for condition_entry in row.conditions.entries:
            selects += [condition_entry.form.field, condition_entry.form.op]
        for select in selects:
            offered = {choice.value for choice in select.choices}
            if select.data and select.data not in offered:
                select.choices = [*select.choices, SelectChoice(select.data, select.data)]


# --- problems, each on its rule or condition ---------------------------------------------------


@dataclass
class PlacedProblems:
    """The parser's problems on the form's rows, and all of them for the summary."""

    summary: list[tuple[str, str | None]] = field(default_factory=list)
    on_rule: dict[int, list[str]] = field(default_factory=dict)
    on_condition: dict[tuple[int, int], list[str]] = field(default_factory=dict)

    def add(self, message: str, row: int | None = None, condition_row: int | None = None) -> None:
        if row is None:
            self.summary.append((message, None))
        elif condition_row is None:
            self.on_rule.setdefault(row, []).append(message)
            self.summary.append((message, f"rule-{row}"))
        else:
            self.on_condition.setdefault((row, condition_row), []).append(message)
            self.summary.append((message, f"rule-{row}-condition-{condition_row}"))

    def __bool__(self) -> bool:
        return bool(self.summary)


def place_problems(problems: Sequence[RuleProblem], draft: Draft) -> PlacedProblems:
    placed = PlacedProblems()
    for problem in problems:
        index = problem.rule_index
        if index is None or not 0 <= index < len(draft.rule_rows):
            placed.add(problem.message)
            continue
        row = draft.rule_rows[index]
        kept = draft.condition_rows[index]
        condition = problem.condition_index
        if condition is None or not 0 <= condition < len(kept):
            placed.add(problem.message, row)
        else:
            placed.add(problem.message, row, kept[condition])
    return placed


# --- pages ---------------------------------------------------------------------------------------


def _readable(definition: dict[str, Any]) -> RuleSet | None:
    """A stored version as values; None if today's parser no longer reads it."""
    try:
        return parse_rule_set(definition)
    except RuleSetError:
        return None


def _render(template: str, **context: Any) -> str:
    return render_template(
        template, describe_condition=describe_condition, describe_match=describe_match, **context
    )


@bp.route("/")
@roles_required(*MANAGERS)
def current(unit_id: int) -> str:
    session, actor = get_session(), current_actor()
    unit = unit_for_rules(session, actor, unit_id)
    history = rule_set_history(session, actor, unit.id)
    if not history:
        raise NotFound(f"Unit {unit.code} has no rule set.")
    shown = history[0]
    return _render(
        "rules/current.html",
        unit=unit,
        shown=shown,
        in_force=shown.number,
        rule_set=_readable(shown.record.definition),
        history=history,
    )


@bp.route("/versions/<int:version>")
@roles_required(*MANAGERS)
def version(unit_id: int, version: int) -> str:
    session, actor = get_session(), current_actor()
    unit = unit_for_rules(session, actor, unit_id)
    shown = published_version(session, actor, unit.id, version)
    in_force = current_rule_set(session, unit.id).version
    return _render(
        "rules/version.html",
        unit=unit,
        shown=shown,
        in_force=in_force,
        rule_set=_readable(shown.record.definition),
    )


def _editor(
    unit: Unit,
    in_force: RuleSetVersion,
    form: RuleSetForm,
    *,
    based_on: int,
    draft: Draft | None = None,
    problems: PlacedProblems | None = None,
    general: Sequence[str] = (),
    result: DryRun | None = None,
    import_form: ImportForm | None = None,
    import_problems: Sequence[str] = (),
    notice: str | None = None,
) -> str:
    _keep_unknown_choices(form)
    return _render(
        "rules/edit.html",
        unit=unit,
        in_force=in_force,
        form=form,
        based_on=based_on,
        draft=draft or draft_of(form),
        problems=problems or PlacedProblems(),
        general=list(general),
        result=result,
        import_form=import_form or ImportForm(formdata=None),
        import_problems=list(import_problems),
        notice=notice,
        field_label=field_label,
        vocabularies={name: enum.choices() for name, enum in CATEGORICAL_FIELDS.items()},
    )


def _publish_conflict(
    unit: Unit,
    in_force: RuleSetVersion,
    form: RuleSetForm,
    proposed: RuleSet,
    based_on: int,
    draft: Draft,
) -> str:
    """Another coordinator published while this draft was open: publishing it would silently
    undo their change, so the draft comes back with a dry run against their version."""
    message = (
        f"Version {in_force.version} was published while you were editing, so your draft was "
        "not published. Compare it with the new version below, then publish again."
    )
    days = form.days.data if not form.days.errors and form.days.data else DEFAULT_DRY_RUN_DAYS
    result = dry_run(
        get_session(), current_actor(), unit.id, proposed, days, g.get("now") or utcnow()
    )
    return _editor(
        unit, in_force, form, based_on=based_on, draft=draft, general=[message], result=result
    )


@bp.route("/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(unit_id: int) -> Page:
    session, actor = get_session(), current_actor()
    unit = unit_for_rules(session, actor, unit_id)
    in_force = current_rule_set(session, unit.id)
    if request.method == "GET":
        start = in_force
        if request.args.get("from", "").isdigit():
            start = published_version(session, actor, unit.id, int(request.args["from"])).record
        rule_set = _readable(start.definition)
        form = editor_form(rule_set or RuleSet(rules=()))
        return _editor(unit, in_force, form, based_on=start.version)

    form = RuleSetForm()
    form.validate()
    based_on = request.form.get("based_on", type=int) or in_force.version
    action = request.form.get("action", "dry_run")
    if action == "add_rule":
        form.rules.append_entry(NEW_RULE)
        return _editor(unit, in_force, form, based_on=based_on)
    if action.startswith("add_condition-"):
        row = _whole_or_text(action.removeprefix("add_condition-"))
        if isinstance(row, int) and 0 <= row < len(form.rules.entries):
            form.rules.entries[row].form.conditions.append_entry(NEW_CONDITION)
        return _editor(unit, in_force, form, based_on=based_on)

    draft = draft_of(form)
    try:
        proposed = parse_rule_set(draft.definition)
    except RuleSetError as refused:
        problems = place_problems(refused.problems, draft)
        page = _editor(unit, in_force, form, based_on=based_on, draft=draft, problems=problems)
        return page, 400

    if action == "publish":
        seen = request.form.get("in_force_seen", type=int)
        if seen is not None and seen != in_force.version:
            return _publish_conflict(unit, in_force, form, proposed, based_on, draft), 409
        general: list[str] = []
        if not form.note.errors:
            try:
                published = publish_rule_set(
                    session, actor, unit.id, draft.definition, form.note.data or ""
                )
            except InvalidInput as refused:
                general = attach_problems(form, refused.problems)
            else:
                flash(
                    f"Rule set version {published.version} is now in force on {unit.name}: "
                    "the next check recorded is evaluated by it.",
                    "success",
                )
                return redirect(url_for(".current", unit_id=unit.id))
        return _editor(unit, in_force, form, based_on=based_on, draft=draft, general=general), 400

    if form.days.errors:
        return _editor(unit, in_force, form, based_on=based_on, draft=draft), 400
    now = g.get("now") or utcnow()
    result = dry_run(session, actor, unit.id, proposed, form.days.data or 0, now)
    return _editor(unit, in_force, form, based_on=based_on, draft=draft, result=result)


@bp.route("/export")
@roles_required(*MANAGERS)
def export(unit_id: int) -> Response:
    session, actor = get_session(), current_actor()
    unit = unit_for_rules(session, actor, unit_id)
    in_force = current_rule_set(session, unit.id)
    body = {**rule_set_to_json(parse_rule_set(in_force.definition)), "note": in_force.note}
    code = re.sub(r"[^A-Za-z0-9_-]", "_", unit.code)
    response = Response(
        json.dumps(body, indent=2, ensure_ascii=False) + "\n",
        mimetype="application/json",
    )
    response.headers["Content-Disposition"] = (
        f"attachment; filename=rules-{code}-v{in_force.version}.json"
    )
    return response


def _imported_text(form: ImportForm) -> tuple[str | None, str | None]:
    """The JSON text uploaded or pasted, or why there is none."""
    upload = form.file.data
    if upload is not None and upload.filename:
        raw = upload.read(MAX_IMPORT_BYTES + 1)
        if len(raw) > MAX_IMPORT_BYTES:
            return None, "The file is larger than 1 MB: a rule set is a few kilobytes."
        try:
            return raw.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            return None, "The file is not UTF-8 text: choose the JSON file flapwatch exported."
    pasted = (form.json_text.data or "").strip()
    if pasted:
        return pasted, None
    return None, "Choose a JSON file, or paste the rule set's JSON."


def _import_problems(text: str) -> tuple[RuleSet | None, list[str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        return None, [
            f"This is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
        ]
    try:
        return parse_rule_set(data), []
    except RuleSetError as refused:
        return None, [problem.message for problem in refused.problems]


@bp.route("/import", methods=["POST"])
@roles_required(*MANAGERS)
def import_json(unit_id: int) -> Page:
    session, actor = get_session(), current_actor()
    unit = unit_for_rules(session, actor, unit_id)
    in_force = current_rule_set(session, unit.id)
    import_form = ImportForm()
    text, missing = _imported_text(import_form)
    if text is None:
        imported, problems = None, [missing or "Nothing to import."]
    else:
        imported, problems = _import_problems(text)
    if imported is None:
        form = editor_form(_readable(in_force.definition) or RuleSet(rules=()))
        page = _editor(
            unit,
            in_force,
            form,
            based_on=in_force.version,
            import_form=import_form,
            import_problems=problems,
        )
        return page, 400
    count = len(imported.rules)
    notice = (
        f"Loaded {count} rule{'s' if count != 1 else ''} into the editor. Nothing changes on "
        "the ward until you publish with a change note."
    )
    if imported.note:
        notice += f" The file's note: “{imported.note}”"
    return _editor(unit, in_force, editor_form(imported), based_on=in_force.version, notice=notice)
