"""The coordinator's rule set pages: read, edit, dry run, publish, import and export.

Forms are filled in as a browser would: the test reads the editor's fields from the page,
changes some, and posts them back with the button pressed.
"""

from __future__ import annotations

import html
import io
import json
import re
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flapwatch.domain.rules import DEFAULT_RULE_SET, rule_set_to_json
from flapwatch.domain.vocabulary import Role
from flapwatch.models import Check, Reconstruction, RuleSetVersion, Unit
from flapwatch.services.escalations import publish_rule_set
from tests.conftest import Factory, count_queries

NORMAL: dict[str, Any] = dict(
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


# --- reading pages like a browser ----------------------------------------------------------------


class _FormFields(HTMLParser):
    """The name → value pairs one form would submit (ticked boxes, chosen options, text)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self.select: str | None = None
        self.options: list[tuple[str, bool]] = []
        self.textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.inside = found.get("id") == self.form_id
        elif not self.inside:
            return
        elif tag == "input" and found.get("name"):
            kind = found.get("type", "text")
            if kind in ("submit", "button", "file") or (
                kind == "checkbox" and "checked" not in found
            ):
                return
            self.fields[found["name"]] = found.get("value", "")
        elif tag == "select":
            self.select, self.options = found.get("name"), []
        elif tag == "option" and self.select:
            self.options.append((found.get("value", ""), "selected" in found))
        elif tag == "textarea":
            self.textarea = found.get("name")
            self.fields[self.textarea or ""] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            chosen = [value for value, selected in self.options if selected]
            self.fields[self.select] = (chosen or [value for value, _ in self.options])[0]
            self.select = None
        elif tag == "textarea" and self.textarea:
            # A browser drops the newline that opens a textarea's content.
            self.fields[self.textarea] = self.fields[self.textarea].removeprefix("\r\n")
            self.fields[self.textarea] = self.fields[self.textarea].removeprefix("\n")
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea:
            self.fields[self.textarea] += data


def editor_fields(page: str) -> dict[str, str]:
    parser = _FormFields("rule-editor")
    parser.feed(page)
    assert parser.fields, "no rule editor on the page"
    return parser.fields


def typed(fields: dict[str, str]) -> dict[str, str]:
    """What the coordinator entered: the fields without the (time-stamped) CSRF token."""
    return {name: value for name, value in fields.items() if name != "csrf_token"}


def rule_row(fields: dict[str, str], rule_id: str) -> int:
    for name, value in fields.items():
        found = re.fullmatch(r"rules-(\d+)-rule_id", name)
        if found and value == rule_id:
            return int(found.group(1))
    raise AssertionError(f"no rule {rule_id} in the editor")


def condition_row(fields: dict[str, str], row: int, field: str, op: str | None = None) -> int:
    for name, value in fields.items():
        found = re.fullmatch(rf"rules-{row}-conditions-(\d+)-field", name)
        if found and value == field:
            index = int(found.group(1))
            if op is None or fields[f"rules-{row}-conditions-{index}-op"] == op:
                return index
    raise AssertionError(f"no condition on {field} in rule row {row}")


def condition_count(fields: dict[str, str], row: int) -> int:
    return len([n for n in fields if re.fullmatch(rf"rules-{row}-conditions-\d+-field", n)])


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


def burden(page: str, rule_id: str) -> tuple[str, str]:
    """The dry run's (in force, proposed) cells of one rule ('' for the totals row)."""
    found = re.search(rf'<tr data-rule="{re.escape(rule_id)}">(.*?)</tr>', page, re.S)
    assert found is not None, f"no dry-run row for {rule_id!r}"
    cells = dict(re.findall(r'data-set="(\w+)">(.*?)</td>', found.group(1), re.S))
    plain = {key: " ".join(re.sub(r"<[^>]+>", " ", value).split()) for key, value in cells.items()}
    return plain["current"], plain["proposed"]


def condition_error(page: str, row: int, index: int) -> str:
    found = re.search(
        rf'<p class="field-error" id="rule-{row}-condition-{index}-error">(.*?)</p>', page, re.S
    )
    assert found is not None, f"no error shown on rule row {row}, condition {index}"
    return html.unescape(found.group(1))


def seen(session: Session) -> Session:
    """The test's session with its snapshot and loaded rows given up for fresh ones."""
    session.rollback()
    session.expire_all()
    return session


def versions(session: Session, unit: Unit) -> list[RuleSetVersion]:
    return list(
        seen(session).scalars(
            select(RuleSetVersion)
            .where(RuleSetVersion.unit_id == unit.id)
            .order_by(RuleSetVersion.version)
        )
    )


def rules_url(unit: Unit, rest: str = "") -> str:
    return f"/admin/units/{unit.id}/rules/{rest}"


def flags(check: Check) -> set[str]:
    return {flag.rule_id for flag in check.flags}


# --- scenario -------------------------------------------------------------------------------


@pytest.fixture
def history(make: Factory, now: datetime) -> dict[str, Any]:
    """A flap with checks the default rules flag and the proposal below would not, or would."""
    unit = make.unit("PLAST-W3")
    flap = make.reconstruction(hours_ago=20 * 24)
    at = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    checks = {
        # Outside a 14-day window: counted only by a longer dry run.
        "old_pale": make.check(flap, taken_at=at(16 * 24 * 60), **{**NORMAL, "colour": "pale"}),
        "pale": make.check(flap, taken_at=at(200), **{**NORMAL, "colour": "pale"}),
        # ΔT 2.0 °C: flagged at the default 1.8, not at 2.5.
        "cool": make.check(
            flap, taken_at=at(150), **{**NORMAL, "flap_temperature_c": 33.0, "sto2_percent": 70}
        ),
        # StO₂ 70 → 52 over 90 min: no default rule; "falls ≥ 15 since previous" flags it.
        "sto2_fall": make.check(flap, taken_at=at(60), **{**NORMAL, "sto2_percent": 52}),
        "normal": make.check(flap, taken_at=at(30), **{**NORMAL, "sto2_percent": 55}),
    }
    return {"unit": unit, "flap": flap, "checks": checks}


def propose_changes(browser: Any, unit: Unit) -> dict[str, str]:
    """Disable `arterial`, raise the ΔT threshold to 2.5, add a condition to `sto2`."""
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    arterial = rule_row(fields, "arterial")
    assert fields[f"rules-{arterial}-enabled"] == "y"
    del fields[f"rules-{arterial}-enabled"]
    temperature = rule_row(fields, "temperature")
    delta = condition_row(fields, temperature, "temperature_difference_c")
    assert fields[f"rules-{temperature}-conditions-{delta}-value"] == "1.8"
    fields[f"rules-{temperature}-conditions-{delta}-value"] = "2.5"
    sto2 = rule_row(fields, "sto2")
    added = browser.post(rules_url(unit, "edit"), {**fields, "action": f"add_condition-{sto2}"})
    assert added.status_code == 200
    fields = editor_fields(text(added))
    assert f"rules-{arterial}-enabled" not in fields, "the disabled rule was not kept"
    assert fields[f"rules-{temperature}-conditions-{delta}-value"] == "2.5"
    new = condition_count(fields, sto2) - 1
    assert fields[f"rules-{sto2}-conditions-{new}-field"] == ""
    fields[f"rules-{sto2}-conditions-{new}-field"] = "sto2_percent"
    fields[f"rules-{sto2}-conditions-{new}-op"] = "drop_since_previous"
    fields[f"rules-{sto2}-conditions-{new}-value"] = "15"
    return fields


# --- reading the rules ---------------------------------------------------------------------------


def test_a_new_unit_shows_the_default_rule_set_in_force(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    assert rules_url(unit) in text(browser.get("/admin/units"))
    page = html.unescape(text(browser.get(rules_url(unit))))
    assert "In force: version 1" in page
    for rule in DEFAULT_RULE_SET.rules:
        assert rule.name in page and rule.action in page
    for words in (
        "colour is pale, white or mottled",
        "capillary refill is brisk (<1 s)",
        "ΔT ≥ 1.8 °C",
        "flap temperature falls ≥ 1.8 °C since the previous check",
        "arterial Doppler changes from present to weak or absent",
        "StO₂ < 30 %",
        "StO₂ falls ≥ 20 points within 60 min",
    ):
        assert words in page, words
    assert page.count('class="severity severity-red') == 5
    assert page.count('class="severity severity-amber') == 2
    assert "Default rule set" in page


def test_an_unknown_version_is_not_found(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    assert browser.get(rules_url(unit, "versions/1")).status_code == 200
    assert browser.get(rules_url(unit, "versions/2")).status_code == 404


# --- dry run and publishing -----------------------------------------------------------------------


def test_dry_run_counts_checks_each_rule_flags_now_and_as_proposed(
    logged_in: Any, history: dict[str, Any]
) -> None:
    unit = history["unit"]
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = propose_changes(browser, unit)
    response = browser.post(rules_url(unit, "edit"), {**fields, "action": "dry_run"})
    assert response.status_code == 200
    page = text(response)
    assert "4 checks recorded" in page
    assert burden(page, "arterial") == ("1", "0 (disabled)")
    assert burden(page, "temperature") == ("1", "0")
    assert burden(page, "sto2") == ("0", "1")
    assert burden(page, "venous") == ("0", "0")
    assert burden(page, "") == ("2", "1")
    assert 'data-rule="overdue"' not in page
    assert typed(editor_fields(page)) == typed(fields), "the dry run lost what was typed"

    longer = browser.post(rules_url(unit, "edit"), {**fields, "days": "30", "action": "dry_run"})
    assert "5 checks recorded" in text(longer)
    assert burden(text(longer), "arterial") == ("2", "0 (disabled)")


def test_dry_run_days_must_be_from_1_to_90(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    assert fields["days"] == "14"
    response = browser.post(rules_url(unit, "edit"), {**fields, "days": "91", "action": "dry_run"})
    assert response.status_code == 400
    assert "Days must be from 1 to 90." in text(response)
    assert 'id="dry-run"' not in text(response)


def test_publishing_makes_a_new_version_that_evaluates_the_next_check(
    logged_in: Any, history: dict[str, Any], make: Factory, session: Session
) -> None:
    unit, flap = history["unit"], history["flap"]
    browser, user = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = propose_changes(browser, unit)

    unexplained = browser.post(rules_url(unit, "edit"), {**fields, "action": "publish"})
    assert unexplained.status_code == 400
    assert "Say why it changes." in text(unexplained)
    assert typed(editor_fields(text(unexplained))) == typed(fields)
    assert len(versions(session, unit)) == 1

    note = "Pale alone is noisy; ΔT threshold raised after audit"
    published = browser.post(rules_url(unit, "edit"), {**fields, "note": note, "action": "publish"})
    assert published.status_code == 302
    assert published.headers["Location"].endswith(rules_url(unit))
    first, second = versions(session, unit)
    assert (second.version, second.note, second.created_by_id) == (2, note, user.id)

    page = html.unescape(text(browser.get(rules_url(unit))))
    assert "Rule set version 2 is now in force" in page
    assert "In force: version 2" in page and note in page
    assert "ΔT ≥ 2.5 °C" in page and "StO₂ falls ≥ 15 points since the previous check" in page
    assert "Version 1</a>" in page
    old = html.unescape(text(browser.get(rules_url(unit, "versions/1"))))
    assert "read-only" in old and "not in force" in old and "ΔT ≥ 1.8 °C" in old

    pale = history["checks"]["pale"]
    after = make.check(flap, **{**NORMAL, "colour": "pale"})
    seen(session)
    after = session.get(Check, after.id)
    pale = session.get(Check, pale.id)
    assert after.rule_set_version_id == second.id and "arterial" not in flags(after)
    assert pale.rule_set_version_id == first.id and flags(pale) == {"arterial"}


def test_coordinator_adds_a_rule_that_needs_all_its_conditions(
    logged_in: Any, make: Factory, session: Session
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    rules = len({n.split("-")[1] for n in fields if n.startswith("rules-")})
    added = browser.post(rules_url(unit, "edit"), {**fields, "action": "add_rule"})
    fields = editor_fields(text(added))
    row = rules
    assert fields[f"rules-{row}-rule_id"] == "" and fields[f"rules-{row}-enabled"] == "y"
    fields = editor_fields(
        text(browser.post(rules_url(unit, "edit"), {**fields, "action": f"add_condition-{row}"}))
    )
    fields.update(
        {
            f"rules-{row}-rule_id": "pale-and-cold",
            f"rules-{row}-rule_name": "Pale and cold",
            f"rules-{row}-severity": "red",
            f"rules-{row}-action": "Call the registrar now.",
            f"rules-{row}-match": "all",
            f"rules-{row}-conditions-0-field": "colour",
            f"rules-{row}-conditions-0-op": "in",
            f"rules-{row}-conditions-0-value": "Pale, white",
            f"rules-{row}-conditions-1-field": "temperature_difference_c",
            f"rules-{row}-conditions-1-op": ">=",
            f"rules-{row}-conditions-1-value": "3,0",
            "note": "Pale and cold together",
        }
    )
    response = browser.post(rules_url(unit, "edit"), {**fields, "action": "publish"})
    assert response.status_code == 302, text(response)
    added_rule = versions(session, unit)[-1].definition["rules"][-1]
    assert added_rule == {
        "id": "pale-and-cold",
        "name": "Pale and cold",
        "severity": "red",
        "action": "Call the registrar now.",
        "match": "all",
        "enabled": True,
        "conditions": [
            {"field": "colour", "op": "in", "value": ["pale", "white"]},
            {"field": "temperature_difference_c", "op": ">=", "value": 3},
        ],
    }


def test_a_removed_rule_leaves_the_draft_but_stays_shown_until_published(
    logged_in: Any, make: Factory, session: Session
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    necrosis = rule_row(fields, "necrosis")
    fields[f"rules-{necrosis}-remove"] = "y"
    page = text(browser.post(rules_url(unit, "edit"), {**fields, "action": "dry_run"}))
    assert burden(page, "necrosis") == ("0", "not in this set")
    assert editor_fields(page)[f"rules-{necrosis}-remove"] == "y"
    response = browser.post(
        rules_url(unit, "edit"), {**fields, "note": "Black is seen", "action": "publish"}
    )
    assert response.status_code == 302
    ids = [rule["id"] for rule in versions(session, unit)[-1].definition["rules"]]
    assert "necrosis" not in ids and "venous" in ids


def test_publishing_over_a_version_published_meanwhile_is_refused_until_compared(
    logged_in: Any, make: Factory, session: Session
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    fields[f"rules-{rule_row(fields, 'necrosis')}-severity"] = "amber"
    fields["note"] = "Necrosis is not an emergency here"
    colleague = make.actor(make.user(Role.UNIT_ADMIN, "PLAST-W3"))
    meanwhile = rule_set_to_json(DEFAULT_RULE_SET)
    meanwhile["rules"] = [rule for rule in meanwhile["rules"] if rule["id"] != "sto2"]
    publish_rule_set(session, colleague, unit.id, meanwhile, "No oximeters on this ward")

    refused = browser.post(rules_url(unit, "edit"), {**fields, "action": "publish"})
    assert refused.status_code == 409
    page = html.unescape(text(refused))
    assert "Version 2 was published while you were editing" in page
    # The dry run compares the draft with the colleague's version, which has no sto2 rule.
    assert "Version 2 (in force)" in page
    assert burden(page, "sto2") == ("not in this set", "0")
    again = editor_fields(page)
    assert typed(again) == {**typed(fields), "in_force_seen": "2"}
    assert len(versions(session, unit)) == 2

    published = browser.post(rules_url(unit, "edit"), {**again, "action": "publish"})
    assert published.status_code == 302
    assert [version.version for version in versions(session, unit)] == [1, 2, 3]


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "op", "value", "message"),
    [
        ("heart_rate", "in", "dusky", 'unknown field "heart_rate"'),
        ("colour", ">=", "2", 'operator ">=" needs a numeric field; "colour" is a choice'),
        ("colour", "in", "dusky, grey", '"grey" is not a colour; allowed: pink, pale'),
    ],
)
def test_an_invalid_condition_is_refused_next_to_it_with_everything_kept(
    logged_in: Any, make: Factory, session: Session, field: str, op: str, value: str, message: str
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    venous = rule_row(fields, "venous")
    fields[f"rules-{venous}-rule_name"] = "Venous congestion (edited)"
    fields.update(
        {
            f"rules-{venous}-conditions-1-field": field,
            f"rules-{venous}-conditions-1-op": op,
            f"rules-{venous}-conditions-1-value": value,
            "note": "Try a change",
        }
    )
    response = browser.post(rules_url(unit, "edit"), {**fields, "action": "publish"})
    assert response.status_code == 400
    page = text(response)
    shown = condition_error(page, venous, 1)
    assert shown.startswith(f'Rule {venous + 1} "venous", condition 2: ') and message in shown
    assert f'href="#rule-{venous}-condition-1"' in page, "no link from the summary"
    assert typed(editor_fields(page)) == typed(fields)
    assert len(versions(session, unit)) == 1


def test_problems_name_the_rows_shown_when_earlier_rows_are_removed(
    logged_in: Any, make: Factory
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    fields[f"rules-{rule_row(fields, 'arterial')}-remove"] = "y"
    venous = rule_row(fields, "venous")
    fields[f"rules-{venous}-conditions-0-remove"] = "y"
    fields[f"rules-{venous}-conditions-1-value"] = "speedy"
    page = text(browser.post(rules_url(unit, "edit"), {**fields, "action": "dry_run"}))
    # The draft has venous as rule 1 and the refill condition as its condition 1.
    assert condition_error(page, venous, 1).startswith('Rule 1 "venous", condition 1: ')
    assert '"speedy" is not a capillary refill category' in condition_error(page, venous, 1)


# --- import and export ---------------------------------------------------------------------------


def test_export_then_import_round_trips_without_publishing(
    logged_in: Any, make: Factory, session: Session
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    exported = browser.get(rules_url(unit, "export"))
    assert exported.status_code == 200
    assert exported.mimetype == "application/json"
    disposition = exported.headers["Content-Disposition"]
    assert disposition == "attachment; filename=rules-PLAST-W3-v1.json"
    assert exported.get_json() == {**rule_set_to_json(DEFAULT_RULE_SET), "note": "Default rule set"}

    response = browser.post(
        rules_url(unit, "import"), {"file": (io.BytesIO(exported.data), "rules-PLAST-W3-v1.json")}
    )
    assert response.status_code == 200
    page = text(response)
    assert "Loaded 7 rules into the editor" in page
    in_editor = editor_fields(page)
    assert typed(in_editor) == typed(editor_fields(text(browser.get(rules_url(unit, "edit")))))
    assert len(versions(session, unit)) == 1, "an import must not publish"

    published = browser.post(
        rules_url(unit, "edit"), {**in_editor, "note": "Re-imported", "action": "publish"}
    )
    assert published.status_code == 302
    first, second = versions(session, unit)
    assert second.definition["rules"] == first.definition["rules"]


def test_pasted_json_loads_into_the_editor(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    definition = rule_set_to_json(DEFAULT_RULE_SET)
    definition["rules"] = [rule for rule in definition["rules"] if rule["id"] != "sto2"]
    definition["rules"][0]["enabled"] = False
    response = browser.post(rules_url(unit, "import"), {"json_text": json.dumps(definition)})
    assert response.status_code == 200
    fields = editor_fields(text(response))
    assert "sto2" not in fields.values()
    assert "rules-0-enabled" not in fields and fields["rules-1-enabled"] == "y"


@pytest.mark.parametrize(
    ("pasted", "message"),
    [
        ('{"rules": [', "This is not valid JSON: Expecting value at line 1, column 12."),
        ("[]", 'Rule set: must be an object with "rules", not a list'),
        (
            json.dumps(
                {
                    "rules": [
                        {
                            "id": "venous",
                            "name": "Venous",
                            "severity": "red",
                            "action": "Call",
                            "conditions": [{"field": "colur", "op": "in", "value": ["blue"]}],
                        }
                    ]
                }
            ),
            'Rule 1 "venous", condition 1: unknown field "colur"',
        ),
    ],
)
def test_an_invalid_import_is_refused_with_precise_messages(
    logged_in: Any, make: Factory, session: Session, pasted: str, message: str
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    response = browser.post(rules_url(unit, "import"), {"json_text": pasted})
    assert response.status_code == 400
    page = html.unescape(text(response))
    assert "Not imported." in page and message in page
    assert pasted in page, "the pasted JSON was not kept"
    assert len(versions(session, unit)) == 1


def test_an_import_with_nothing_chosen_says_so(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    response = browser.post(rules_url(unit, "import"), {"json_text": "  "})
    assert response.status_code == 400
    assert "Choose a JSON file, or paste the rule set&#39;s JSON." in text(response)


# --- who may ---------------------------------------------------------------------------------


def test_a_nurse_may_not_open_or_change_the_rules(logged_in: Any, make: Factory) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.NURSE, "PLAST-W3")
    for page in ("", "versions/1", "edit", "export"):
        assert browser.get(rules_url(unit, page)).status_code == 403, page
    assert browser.post(rules_url(unit, "edit"), {"action": "publish"}).status_code == 403
    assert browser.post(rules_url(unit, "import"), {"json_text": "{}"}).status_code == 403


def test_a_coordinator_of_another_unit_finds_nothing(
    logged_in: Any, make: Factory, session: Session
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "ORTHO-W1")
    for page in ("", "versions/1", "edit", "export"):
        assert browser.get(rules_url(unit, page)).status_code == 404, page
    definition = json.dumps(rule_set_to_json(DEFAULT_RULE_SET))
    assert browser.post(rules_url(unit, "import"), {"json_text": definition}).status_code == 404
    posted = browser.post(rules_url(unit, "edit"), {"note": "mine now", "action": "publish"})
    assert posted.status_code == 404
    assert len(versions(session, unit)) == 1


def test_an_administrator_manages_every_units_rules(logged_in: Any, make: Factory) -> None:
    unit = make.unit("ORTHO-W1")
    browser, _ = logged_in(Role.ADMIN)
    assert browser.get(rules_url(unit)).status_code == 200
    assert browser.get(rules_url(unit, "edit")).status_code == 200


# --- speed ---------------------------------------------------------------------------------


def test_the_dry_run_reads_the_history_in_a_fixed_number_of_queries(
    app: Flask, logged_in: Any, make: Factory, now: datetime
) -> None:
    unit = make.unit("PLAST-W3")
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))

    def dry_run_queries() -> tuple[int, str]:
        with count_queries(app) as statements:
            response = browser.post(rules_url(unit, "edit"), {**fields, "action": "dry_run"})
        assert response.status_code == 200
        return len(statements), text(response)

    make.check(make.reconstruction(), taken_at=now - timedelta(minutes=5), **NORMAL)
    few, page = dry_run_queries()
    assert "1 check recorded" in page
    for _ in range(3):
        flap = make.reconstruction(hours_ago=30)
        for minutes in (240, 180, 120, 60):
            make.check(flap, taken_at=now - timedelta(minutes=minutes), **NORMAL)
    many, page = dry_run_queries()
    assert "13 checks recorded" in page
    assert many == few


def test_the_dry_run_leaves_out_other_units_checks(
    logged_in: Any, make: Factory, session: Session
) -> None:
    make.unit("PLAST-W3")
    elsewhere = make.reconstruction(unit="ORTHO-W1")
    make.check(elsewhere, **{**NORMAL, "colour": "pale"})
    unit = seen(session).scalars(select(Unit).where(Unit.code == "PLAST-W3")).one()
    assert session.scalar(select(func.count(Reconstruction.id))) == 1
    browser, _ = logged_in(Role.UNIT_ADMIN, "PLAST-W3")
    fields = editor_fields(text(browser.get(rules_url(unit, "edit"))))
    page = text(browser.post(rules_url(unit, "edit"), {**fields, "action": "dry_run"}))
    assert "0 checks recorded" in page
    assert burden(page, "arterial") == ("0", "0")
