"""The ward's real day on the tablet: pausing a flap's monitoring and resuming it, a check
that could not be done (one tap on the board, one on the reason), and a surgeon's schedule for
one flap over a window."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import HiddenField, IntegerField, MultipleFileField, RadioField, TextAreaField
from wtforms.validators import Length, Optional
from wtforms.widgets import HiddenInput

from flapwatch.db import get_session, write_transaction
from flapwatch.domain.schedule import interval_words
from flapwatch.domain.vocabulary import NotDoneReason, OverrideKind, PauseReason
from flapwatch.http.access import CLINICAL, SCHEDULERS, current_actor, roles_required
from flapwatch.http.photos import accepts_photos, form_photos, photo_store
from flapwatch.models import ScheduleOverride
from flapwatch.services import InvalidInput
from flapwatch.services.monitoring import (
    EXPECTED_MINUTES_CHOICES,
    OVERRIDE_INTERVAL_CHOICES,
    REASON_MAX_LENGTH,
    describe,
    record_not_done,
    resume,
    set_override,
    start_pause,
    withdraw_override,
)
from flapwatch.services.photos import attach_photos
from flapwatch.services.ward import flap_record
from flapwatch.web.forms import (
    LOCAL_INPUT_FORMAT,
    LocalDateTimeField,
    SafeForm,
    SelectChoice,
    attach_problems,
    choices_of,
    note_field,
)
from flapwatch.web.presenters import clock, override_phrase

bp = Blueprint("monitoring", __name__)


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
    note = note_field("Note")
    # Set by the page that warned of an open escalation: the nurse asked again, and confirmed.
    despite_open_escalation = HiddenField()


class ResumeForm(SafeForm):
    note = note_field("Note")


class NotDoneForm(SafeForm):
    reason = RadioField(
        "Why could the check not be done?",
        choices=choices_of(NotDoneReason),
        validators=[Optional()],
    )
    note = note_field("Note")
    photos = MultipleFileField("Photos")


OVERRIDE_HOURS_CHOICES = (1, 2, 4, 6, 8, 12, 24, 48)


class OverrideForm(SafeForm):
    kind = RadioField(
        "This flap's schedule", choices=choices_of(OverrideKind), validators=[Optional()]
    )
    interval_minutes = RadioField(
        "Checks every",
        choices=[SelectChoice(str(m), interval_words(m)) for m in OVERRIDE_INTERVAL_CHOICES],
        validators=[Optional()],
    )
    starts_at = LocalDateTimeField("From", validators=[Optional()])
    hours = RadioField(
        "For",
        choices=[SelectChoice(str(h), f"{h} h") for h in OVERRIDE_HOURS_CHOICES]
        + [SelectChoice("until", "Until…")],
        validators=[Optional()],
    )
    ends_at = LocalDateTimeField("Until", validators=[Optional()])
    reason = TextAreaField(
        "Reason",
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            Length(
                max=REASON_MAX_LENGTH, message=f"Reason: at most {REASON_MAX_LENGTH} characters."
            )
        ],
    )
    # The version being changed: a number, or the form is refused (it never silently sets a
    # new schedule beside the one the surgeon meant to change).
    replaces = IntegerField(widget=HiddenInput(), validators=[Optional()])


@bp.route("/reconstructions/<int:reconstruction_id>/schedule", methods=["GET", "POST"])
@roles_required(*SCHEDULERS)
def schedule_override(reconstruction_id: int) -> str | Response | tuple[str, int]:
    """Set the flap's own schedule for a window (or change one still to run: `?replaces=`)."""
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now)
    zone = ZoneInfo(record.unit.timezone)
    form = OverrideForm()
    form.starts_at.zone = form.ends_at.zone = zone
    # The version being changed: still to run when the link was followed (404 otherwise); by
    # the time the form comes back a colleague may have withdrawn it, which the service says.
    replaces = form.replaces.data if request.method == "POST" else None
    if request.method == "GET" and "replaces" in request.args:
        replaces = request.args.get("replaces", type=int)
        if replaces is None:
            abort(404)
    replaced: ScheduleOverride | None = next(
        (o for o in record.overrides if o.id == replaces), None
    )
    over = replaced is None or replaced.in_force_until <= g.now
    if request.method == "GET" and replaces is not None and over:
        abort(404)
    if request.method == "GET":
        form.kind.data = OverrideKind.INTERVAL.value
        form.starts_at.data = g.now.astimezone(zone).strftime(LOCAL_INPUT_FORMAT)
        form.hours.data = "2"
        if replaced is not None:
            form.kind.data = replaced.kind.value
            form.interval_minutes.data = str(replaced.interval_minutes or "")
            start = max(replaced.starts_at, g.now)
            form.starts_at.data = start.astimezone(zone).strftime(LOCAL_INPUT_FORMAT)
            form.hours.data = "until"
            form.ends_at.data = replaced.ends_at.astimezone(zone).strftime(LOCAL_INPUT_FORMAT)
            form.reason.data = replaced.reason
            form.replaces.data = replaced.id
    general_errors: list[str] = []
    if form.validate_on_submit():
        problems: dict[str, str] = {}
        start = form.starts_at.moment or g.now
        end = None
        if form.hours.data == "until":
            end = form.ends_at.moment
        elif form.hours.data and form.hours.data.isdigit():
            end = start + timedelta(hours=int(form.hours.data))
        minutes = form.interval_minutes.data
        try:
            override = set_override(
                session,
                actor,
                reconstruction_id,
                kind=form.kind.data or "",
                interval_minutes=int(minutes) if minutes and minutes.isdigit() else None,
                starts_at=start,
                ends_at=end,
                reason=form.reason.data or "",
                replaces=replaces,
                now=g.now,
            )
        except InvalidInput as refused:
            problems = dict(refused.problems)
            if not form.kind.data:
                problems["kind"] = "Choose checks at another interval, or none."
            if "ends_at" in problems and form.hours.data != "until":
                problems["hours"] = problems.pop("ends_at")
            general_errors = attach_problems(form, problems)
        else:
            patient = record.status.patient
            flash(
                f"{patient.name} (bed {patient.bed or '—'}): "
                f"{override_phrase(override, record.unit, g.now)}.",
                "success",
            )
            return redirect(url_for("checks.flap", reconstruction_id=reconstruction_id))
    page = render_template(
        "monitoring/schedule.html",
        form=form,
        record=record,
        replaced=replaced,
        general_errors=general_errors,
        describe=describe,
    )
    return (page, 400) if request.method == "POST" else page


@bp.route(
    "/reconstructions/<int:reconstruction_id>/schedule/<int:override_id>/withdraw",
    methods=["POST"],
)
@roles_required(*SCHEDULERS)
def withdraw_schedule_override(reconstruction_id: int, override_id: int) -> Response:
    session, actor = get_session(), current_actor()
    form = ResumeForm()  # a note, nothing else
    if not form.validate_on_submit():
        flash("The per-flap schedule was not withdrawn: the page had expired. Try again.", "error")
    else:
        try:
            override = withdraw_override(
                session,
                actor,
                override_id,
                note=form.note.data or "",
                reconstruction_id=reconstruction_id,
                now=g.now,
            )
        except InvalidInput as refused:
            flash(refused.message + " " + " ".join(refused.problems.values()), "error")
        else:
            flash(
                f"Per-flap schedule withdrawn ({describe(override)}): the unit's schedule "
                "applies again.",
                "success",
            )
    return redirect(url_for("checks.flap", reconstruction_id=reconstruction_id))


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
@accepts_photos
def not_done(reconstruction_id: int) -> str | Response | tuple[str, int]:
    session, actor = get_session(), current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    form = NotDoneForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            prepared = form_photos()
            with write_transaction(session):  # the entry and its photos, or neither
                saved = record_not_done(
                    session,
                    actor,
                    reconstruction_id,
                    taken_at=g.now,
                    reason=form.reason.data or "",
                    note=form.note.data or "",
                    now=g.now,
                )
                if prepared:
                    attach_photos(session, actor, photo_store(), prepared,
                                  not_done_id=saved.id, now=g.now)  # fmt: skip
        except InvalidInput as refused:
            problems = dict(refused.problems)
            if "photos" in problems:
                problems["photos"] += " Nothing was saved: choose the photos again, or none."
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
