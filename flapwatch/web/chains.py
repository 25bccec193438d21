"""A unit's contacts and escalation chain, kept by its coordinators: who is paged, how, and
after how many minutes without an acknowledgement."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import FieldList, Form, FormField, HiddenField, SelectField, StringField, TextAreaField
from wtforms.validators import Length

from flapwatch.db import get_session
from flapwatch.domain.chains import ADDRESS_FIELD, NOTE_MAX_LENGTH
from flapwatch.http.access import MANAGERS, current_actor, roles_required
from flapwatch.models import Unit
from flapwatch.services import InvalidInput, NotFound
from flapwatch.services.chains import (
    contacts_of,
    current_chains,
    current_contacts,
    publish_chains,
    publish_contacts,
)
from flapwatch.web.forms import SafeForm

bp = Blueprint("chains", __name__, url_prefix="/admin")

# Empty rows below the ones in force, for a contact or a step to be added.
SPARE_ROWS = 2
SEVERITIES = ("red", "amber")
# A contact row's field for each kind of channel, one address a line.
ROW_CHANNELS = {"webhooks": "webhook", "emails": "email", "phones": "push"}


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


class ContactRow(Form):
    name = StringField("Name", filters=[_strip])
    webhooks = TextAreaField("Webhook URLs, one a line", filters=[_strip])
    emails = TextAreaField("E-mail addresses, one a line", filters=[_strip])
    phones = TextAreaField("Phones of (usernames), one a line", filters=[_strip])


class ContactsForm(SafeForm):
    part = HiddenField(default="contacts")
    contacts = FieldList(FormField(ContactRow))
    note = TextAreaField(
        "Why this version",
        filters=[_strip],
        validators=[Length(max=NOTE_MAX_LENGTH, message="The note is too long.")],
    )


class StepRow(Form):
    after_minutes = StringField("After (minutes)", filters=[_strip])
    notify = SelectField("Page", choices=[], validate_choice=False)


class ChainForm(SafeForm):
    part = HiddenField(default="chain")
    red = FieldList(FormField(StepRow))
    amber = FieldList(FormField(StepRow))
    note = TextAreaField(
        "Why this version",
        filters=[_strip],
        validators=[Length(max=NOTE_MAX_LENGTH, message="The note is too long.")],
    )


def _unit(unit_id: int) -> Unit:
    unit = get_session().get(Unit, unit_id)
    if unit is None or not current_actor().works_in(unit.code):
        raise NotFound(f"No unit {unit_id}.")
    return unit


def _contacts_form(definition: list[dict[str, Any]]) -> ContactsForm:
    rows = [
        {
            "name": c["name"],
            **{
                field: "\n".join(
                    ch[ADDRESS_FIELD[kind]] for ch in c["channels"] if ch["kind"] == kind
                )
                for field, kind in ROW_CHANNELS.items()
            },
        }
        for c in definition
    ]
    return ContactsForm(data={"contacts": rows + [{}] * SPARE_ROWS})


def _chain_form(definition: dict[str, list[dict[str, Any]]]) -> ChainForm:
    return ChainForm(
        data={
            severity: [
                {"after_minutes": str(step["after_minutes"]), "notify": step["notify"]}
                for step in definition[severity]
            ]
            + [{}] * SPARE_ROWS
            for severity in SEVERITIES
        }
    )


def _sent_contacts(form: ContactsForm) -> tuple[list[dict[str, Any]], list[int]]:
    """The contacts as the service takes them, and the form row of each (blank rows left)."""
    contacts: list[dict[str, Any]] = []
    rows: list[int] = []
    for row, entry in enumerate(form.contacts.entries):
        name = entry.form.name.data or ""
        channels = [
            {"kind": kind, ADDRESS_FIELD[kind]: line.strip()}
            for field, kind in ROW_CHANNELS.items()
            for line in (entry.form[field].data or "").splitlines()
            if line.strip()
        ]
        if not name and not channels:
            continue
        contacts.append({"name": name, "channels": channels})
        rows.append(row)
    return contacts, rows


def _sent_chains(form: ChainForm) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[int]]]:
    chains: dict[str, list[dict[str, Any]]] = {}
    rows: dict[str, list[int]] = {}
    for severity in SEVERITIES:
        chains[severity], rows[severity] = [], []
        for row, entry in enumerate(getattr(form, severity).entries):
            after, notify = entry.form.after_minutes.data or "", entry.form.notify.data or ""
            if not after and not notify:
                continue
            minutes: Any = int(after) if after.isdigit() else (after or None)
            chains[severity].append({"after_minutes": minutes, "notify": notify})
            rows[severity].append(row)
    return chains, rows


def _field_of(form: SafeForm, place: str, rows: dict[str, list[int]]) -> tuple[Any, str] | None:
    """The form field a service problem names, and how the summary names its row:
    "contacts.1.channels.0.url" is the second contact row's webhooks (".address": its e-mail
    addresses), "chains.red.2.notify" the third red step's contact."""
    parts = place.split(".")
    if place == "note":
        return form.note, ""
    if parts[0] == "contacts" and len(parts) >= 2 and parts[1].isdigit():
        row = rows["contacts"][int(parts[1])]
        leaf = "name"
        if len(parts) >= 3 and parts[2] == "channels":
            leaf = {"address": "emails", "user": "phones"}.get(parts[-1], "webhooks")
        return form.contacts.entries[row].form[leaf], f"Contact {row + 1}: "
    if parts[0] == "chains" and len(parts) >= 3 and parts[2].isdigit():
        row = rows[parts[1]][int(parts[2])]
        leaf = parts[3] if len(parts) > 3 else "notify"
        return getattr(form, parts[1]).entries[row].form[
            leaf
        ], f"{parts[1].capitalize()} step {row + 1}: "
    return None


def _attach(form: SafeForm, problems: dict[str, str], rows: dict[str, list[int]]) -> list[str]:
    """Each problem on its field; the summary's lines for those not shown there by the
    summary itself (the rows' fields, and the form as a whole)."""
    general: list[str] = []
    for place, why in problems.items():
        found = _field_of(form, place, rows)
        if found is None:
            general.append(why)
            continue
        field, row = found
        field.errors = [*field.errors, why]
        if row:
            general.append(f"{row}{why}")
    return general


@bp.route("/units/<int:unit_id>/chain", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(unit_id: int) -> str | Response | tuple[str, int]:
    session, actor = get_session(), current_actor()
    unit = _unit(unit_id)
    contacts_version = current_contacts(session, unit.id)
    chain_version = current_chains(session, unit.id)
    contacts_form = _contacts_form(contacts_version.definition)
    chain_form = _chain_form(chain_version.definition)
    general_errors: dict[str, list[str]] = {"contacts": [], "chain": []}
    part = request.form.get("part")
    if part == "contacts":
        contacts_form = ContactsForm()
        if contacts_form.validate_on_submit():
            contacts, rows = _sent_contacts(contacts_form)
            try:
                published = publish_contacts(
                    session, actor, unit.code, contacts, contacts_form.note.data or ""
                )
            except InvalidInput as refused:
                general_errors["contacts"] = _attach(
                    contacts_form, refused.problems, {"contacts": rows}
                )
            else:
                return _published("Contacts", published.version.version, published.changed, unit)
    elif part == "chain":
        chain_form = ChainForm()
        if chain_form.validate_on_submit():
            chains, rows = _sent_chains(chain_form)
            try:
                published = publish_chains(
                    session, actor, unit.code, chains, chain_form.note.data or ""
                )
            except InvalidInput as refused:
                general_errors["chain"] = _attach(chain_form, refused.problems, rows)
            else:
                return _published(
                    "The escalation chain", published.version.version, published.changed, unit
                )
    names = [contact.name for contact in contacts_of(contacts_version)]
    for severity in SEVERITIES:
        for entry in getattr(chain_form, severity).entries:
            entry.form.notify.choices = [("", "—"), *((name, name) for name in names)]
    page = render_template(
        "admin/chain.html",
        unit=unit,
        contacts_form=contacts_form,
        chain_form=chain_form,
        contacts_version=contacts_version,
        chain_version=chain_version,
        general_errors=general_errors,
        severities=SEVERITIES,
    )
    return (page, 400) if request.method == "POST" else page


def _published(what: str, version: int, changed: bool, unit: Unit) -> Response:
    if changed:
        flash(f"{what} version {version} is now in force on {unit.name}.", "success")
    else:
        flash(f"Nothing changed: {what.lower()} version {version} stays in force.", "info")
    return redirect(url_for(".edit", unit_id=unit.id))
