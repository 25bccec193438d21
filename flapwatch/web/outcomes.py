"""What became of a flap, on a phone-sized page: a surgeon's decision to return it to theatre,
what was found there and what came of it, and the final outcome at discharge or later."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import DateField, IntegerField, RadioField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional
from wtforms.widgets import HiddenInput

from flapwatch.db import get_session
from flapwatch.domain.vocabulary import FinalOutcome, TheatreFinding, TheatreResult
from flapwatch.http.access import CLINICAL, OUTCOMES, current_actor, roles_required
from flapwatch.services import InvalidInput
from flapwatch.services.outcomes import (
    TheatreDetails,
    record_final_outcome,
    record_theatre_details,
    return_to_theatre,
)
from flapwatch.services.patients import back_from_theatre, get_reconstruction
from flapwatch.services.ward import flap_record
from flapwatch.web.forms import (
    LOCAL_INPUT_FORMAT,
    LocalDateTimeField,
    SafeForm,
    attach_problems,
    choices_of,
    note_field,
)

bp = Blueprint("outcomes", __name__)

Page = str | Response | tuple[str, int]


class BackFromTheatreForm(SafeForm):
    note = note_field("Note")
    # The button pressed: the schedule restarts from now, or continues from the first surgery.
    time_zero = RadioField(
        "Schedule",
        choices=[SelectChoice("restart", "Restart from now"), SelectChoice("continue", "Continue")],
        validators=[Optional()],
    )


class TheatreReturnForm(SafeForm):
    decided_at = LocalDateTimeField("Decided at", validators=[Optional()])
    note = note_field("Note")


class TheatreDetailsForm(SafeForm):
    knife_to_skin_at = LocalDateTimeField("Knife to skin", validators=[Optional()])
    findings = RadioField("Findings", choices=choices_of(TheatreFinding), validators=[Optional()])
    findings_note = note_field("Findings note")
    result = RadioField("Result", choices=choices_of(TheatreResult), validators=[Optional()])
    # The version the surgeon saw: a colleague's change meanwhile is not overwritten.
    version = IntegerField(widget=HiddenInput(), validators=[InputRequired()])


class FinalOutcomeForm(SafeForm):
    outcome = RadioField("Final outcome", choices=choices_of(FinalOutcome), validators=[Optional()])
    on = DateField(
        "Known on", invalid_value_message="Date must be a date, e.g. 2026-12-07.",
        validators=[Optional()],
    )  # fmt: skip
    note = note_field("Note")


def _back(reconstruction_id: int) -> Response:
    return redirect(
        url_for("checks.flap", reconstruction_id=reconstruction_id) + "#outcome-heading"
    )


@bp.route("/reconstructions/<int:reconstruction_id>/theatre-returns/new", methods=["GET", "POST"])
@roles_required(*OUTCOMES)
def new_theatre_return(reconstruction_id: int) -> Page:
    """Back to theatre: the decision (now, or when it was made), and the flap leaves the
    board."""
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    form = TheatreReturnForm()
    form.decided_at.zone = record.zone
    general_errors: list[str] = []
    if request.method == "GET":
        form.decided_at.data = g.now.astimezone(record.zone).strftime(LOCAL_INPUT_FORMAT)
    elif form.validate_on_submit():
        try:
            theatre_return = return_to_theatre(
                session, actor, reconstruction_id, decided_at=form.decided_at.moment,
                note=form.note.data or "", now=g.now,
            )  # fmt: skip
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            patient = record.status.patient
            flash(
                f"{patient.name} (bed {patient.bed or '—'}): return to theatre "
                f"{theatre_return.number} recorded; the flap is off the board until monitoring "
                "resumes.",
                "success",
            )
            return _back(reconstruction_id)
    page = render_template(
        "outcomes/theatre_return.html", form=form, record=record, general_errors=general_errors
    )
    return (page, 400) if request.method == "POST" else page


@bp.route(
    "/reconstructions/<int:reconstruction_id>/theatre-returns/<int:theatre_return_id>",
    methods=["GET", "POST"],
)
@roles_required(*OUTCOMES)
def theatre_details(reconstruction_id: int, theatre_return_id: int) -> Page:
    """Knife to skin, the findings and the result, as they become known."""
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    theatre_return = next((t for t in record.theatre_returns if t.id == theatre_return_id), None)
    if theatre_return is None:
        abort(404)
    form = TheatreDetailsForm()
    form.knife_to_skin_at.zone = record.zone
    general_errors: list[str] = []
    if request.method == "GET":
        knife = theatre_return.knife_to_skin_at
        form.knife_to_skin_at.data = (
            knife.astimezone(record.zone).strftime(LOCAL_INPUT_FORMAT) if knife else ""
        )
        form.findings.data = theatre_return.findings.value if theatre_return.findings else None
        form.findings_note.data = theatre_return.findings_note
        form.result.data = theatre_return.result.value if theatre_return.result else None
        form.version.data = theatre_return.version
    elif form.validate_on_submit():
        details = TheatreDetails(
            knife_to_skin_at=form.knife_to_skin_at.moment,
            findings=form.findings.data or None,
            findings_note=form.findings_note.data or "",
            result=form.result.data or None,
        )
        try:
            record_theatre_details(
                session, actor, theatre_return_id, details, version=form.version.data or 0,
                now=g.now,
            )  # fmt: skip
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Return to theatre {theatre_return.number}: recorded.", "success")
            return _back(reconstruction_id)
    page = render_template(
        "outcomes/theatre_details.html",
        form=form,
        record=record,
        theatre_return=theatre_return,
        general_errors=general_errors,
    )
    return (page, 400) if request.method == "POST" else page


@bp.route("/reconstructions/<int:reconstruction_id>/final-outcome", methods=["GET", "POST"])
@roles_required(*OUTCOMES)
def final_outcome(reconstruction_id: int) -> Page:
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    reconstruction = record.status.reconstruction
    form = FinalOutcomeForm()
    general_errors: list[str] = []
    if request.method == "GET":
        form.outcome.data = (
            reconstruction.final_outcome.value if reconstruction.final_outcome else None
        )
        form.on.data = reconstruction.final_outcome_on or g.now.astimezone(record.zone).date()
        form.note.data = reconstruction.final_outcome_note
    elif form.validate_on_submit():
        try:
            record_final_outcome(
                session, actor, reconstruction_id, outcome=form.outcome.data or "",
                on=form.on.data, note=form.note.data or "", now=g.now,
            )  # fmt: skip
        except InvalidInput as refused:
            problems = dict(refused.problems)
            if not form.outcome.data:
                problems["outcome"] = "Final outcome: choose intact, partial loss or total loss."
            general_errors = attach_problems(form, problems)
        else:
            flash(f"{record.status.patient.name}: final outcome recorded.", "success")
            return _back(reconstruction_id)
    page = render_template(
        "outcomes/final_outcome.html", form=form, record=record, general_errors=general_errors
    )
    return (page, 400) if request.method == "POST" else page


@bp.route("/reconstructions/<int:reconstruction_id>/back-from-theatre", methods=["POST"])
@roles_required(*CLINICAL)
def back_on_the_ward(reconstruction_id: int) -> Response:
    """Back from theatre at any hour: whoever receives the flap puts it on the board again."""
    session, actor = get_session(), current_actor()
    get_reconstruction(session, actor, reconstruction_id)  # another unit's: 404
    form = BackFromTheatreForm()
    if form.validate_on_submit():
        try:
            reconstruction = back_from_theatre(
                session, actor, reconstruction_id, time_zero=form.time_zero.data or "",
                note=form.note.data or "", now=g.now,
            )  # fmt: skip
        except InvalidInput as refused:
            flash(" ".join(refused.problems.values()), "error")
        else:
            flash(
                f"{reconstruction.patient.name}: back on the board, the next check due now.",
                "success",
            )
            return redirect(url_for("ward.board", code=reconstruction.patient.unit.code))
    else:
        flash(" ".join(e for errors in form.errors.values() for e in errors), "error")
    return redirect(url_for("checks.flap", reconstruction_id=reconstruction_id))
