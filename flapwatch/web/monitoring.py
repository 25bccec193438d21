"""The ward's real day on the tablet: pausing a flap's monitoring and resuming it, and a check
that could not be done (one tap on the board, one on the reason)."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import HiddenField, RadioField, TextAreaField
from wtforms.validators import Length, Optional

from flapwatch.db import get_session
from flapwatch.domain.checks import NOTES_MAX_LENGTH
from flapwatch.domain.vocabulary import NotDoneReason, PauseReason
from flapwatch.http.access import CLINICAL, current_actor, roles_required
from flapwatch.services import InvalidInput
from flapwatch.services.monitoring import (
    EXPECTED_MINUTES_CHOICES,
    record_not_done,
    resume,
    start_pause,
)
from flapwatch.services.ward import flap_record
from flapwatch.web.forms import SafeForm, SelectChoice, attach_problems, choices_of
from flapwatch.web.presenters import clock

bp = Blueprint("monitoring", __name__)


def _note(label: str) -> TextAreaField:
    return TextAreaField(
        label,
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            Length(max=NOTES_MAX_LENGTH, message=f"{label}: at most {NOTES_MAX_LENGTH} characters.")
        ],
    )


class PauseForm(SafeForm):
    reason = RadioField(
        "Why is monitoring paused?",
        choices=choices_of(PauseReason),
        validators=[Optional()],
    )
    expected_minutes = RadioField(
        "Expected back in",
        choices=[SelectChoice("", "Not known")]
        + [
            SelectChoice(str(m), f"{m // 60} h" if m >= 60 else f"{m} min")
            for m in EXPECTED_MINUTES_CHOICES
        ],
        validators=[Optional()],
        default="",
    )
    note = _note("Note")
    # Set by the page that warned of an open escalation: the nurse asked again, and confirmed.
    despite_open_escalation = HiddenField()


class ResumeForm(SafeForm):
    note = _note("Note")


class NotDoneForm(SafeForm):
    reason = RadioField(
        "Why could the check not be done?",
        choices=choices_of(NotDoneReason),
        validators=[Optional()],
    )
    note = _note("Note")


@bp.route("/reconstructions/<int:reconstruction_id>/pause", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def pause(reconstruction_id: int) -> str | Response | tuple[str, int]:
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    form = PauseForm()
    general_errors: list[str] = []
    warning: str | None = None
    if form.validate_on_submit():
        minutes = form.expected_minutes.data
        try:
            start_pause(
                session,
                actor,
                reconstruction_id,
                reason=form.reason.data or "",
                note=form.note.data or "",
                expected_minutes=int(minutes) if minutes and minutes.isdigit() else None,
                despite_open_escalation=form.despite_open_escalation.data == "yes",
                now=g.now,
            )
        except InvalidInput as refused:
            problems = dict(refused.problems)
            warning = problems.pop("despite_open_escalation", None)
            if not form.reason.data:
                problems["reason"] = "Choose why monitoring is paused."
            general_errors = attach_problems(form, problems)
        else:
            patient = record.status.patient
            flash(f"Monitoring of {patient.name} (bed {patient.bed or '—'}) is paused.", "success")
            return redirect(url_for("ward.board", code=record.unit.code))
    page = render_template(
        "monitoring/pause.html",
        form=form,
        record=record,
        general_errors=general_errors,
        warning=warning,
    )
    return (page, 400) if request.method == "POST" and not warning else page


@bp.route("/reconstructions/<int:reconstruction_id>/resume", methods=["POST"])
@roles_required(*CLINICAL)
def resume_monitoring(reconstruction_id: int) -> Response:
    session, actor = get_session(), current_actor()
    form = ResumeForm()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    if form.validate_on_submit():
        try:
            resume(session, actor, reconstruction_id, note=form.note.data or "", now=g.now)
        except InvalidInput as refused:
            flash(refused.message + " " + " ".join(refused.problems.values()), "error")
        else:
            patient = record.status.patient
            flash(
                f"Monitoring of {patient.name} (bed {patient.bed or '—'}) resumed: the next "
                f"check is due now ({clock(g.now, record.unit)}).",
                "success",
            )
    else:
        flash("Monitoring was not resumed: the page had expired. Try again.", "error")
    target = request.form.get("next") or ""
    if target == "flap":
        return redirect(url_for("checks.flap", reconstruction_id=reconstruction_id))
    return redirect(url_for("ward.board", code=record.unit.code))


@bp.route("/reconstructions/<int:reconstruction_id>/not-done", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def not_done(reconstruction_id: int) -> str | Response | tuple[str, int]:
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    form = NotDoneForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            saved = record_not_done(
                session,
                actor,
                reconstruction_id,
                taken_at=g.now,
                reason=form.reason.data or "",
                note=form.note.data or "",
                now=g.now,
            )
        except InvalidInput as refused:
            problems = dict(refused.problems)
            if not form.reason.data:
                problems["reason"] = "Choose why the check could not be done."
            general_errors = attach_problems(form, problems)
        else:
            after = record.schedule.not_done_minutes
            patient = record.status.patient
            flash(
                f"Check not done for {patient.name} (bed {patient.bed or '—'}): "
                f"{saved.reason.label.lower()}. The next check is due in {after} min.",
                "success",
            )
            return redirect(url_for("ward.board", code=record.unit.code))
    page = render_template(
        "monitoring/not_done.html", form=form, record=record, general_errors=general_errors
    )
    return (page, 400) if request.method == "POST" else page
