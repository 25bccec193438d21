"""Starting a flap's monitoring on the ward's tablet, at any hour, in two screens: the MRN
from the wristband, then the patient (found, or registered now) and the flap."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from flapwatch.db import get_session
from flapwatch.http.access import CLINICAL, current_actor, roles_required
from flapwatch.models import Unit
from flapwatch.services import InvalidInput
from flapwatch.services.admissions import find_by_mrn, start_monitoring
from flapwatch.services.patients import get_patient, transfer_patient
from flapwatch.services.ward import flap_record, get_unit_by_code
from flapwatch.web.admin_forms import StartMonitoringForm
from flapwatch.web.forms import LOCAL_INPUT_FORMAT, LocalDateTimeField, SafeForm, attach_problems
from flapwatch.web.presenters import clock, relative

bp = Blueprint("admissions", __name__)

Page = str | Response | tuple[str, int]


@bp.route("/units/<code>/start")
@roles_required(*CLINICAL)
def find_patient(code: str) -> str:
    """Screen 1: the MRN."""
    unit = get_unit_by_code(get_session(), current_actor(), code)
    return render_template("admissions/find.html", unit=unit)


@bp.route("/units/<code>/start/flap", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def start_flap(code: str) -> Page:
    """Screen 2: the patient found by MRN on the user's wards (or registered now) and the
    flap; saved, the flap is on the board with its first check due."""
    session, actor = get_session(), current_actor()
    unit = get_unit_by_code(session, actor, code)
    form = StartMonitoringForm(zone=ZoneInfo(unit.timezone))
    general_errors: list[str] = []
    found = None
    if request.method == "GET":
        mrn = request.args.get("mrn", "").strip()
        if not mrn:
            return redirect(url_for("admissions.find_patient", code=unit.code))
        found = find_by_mrn(session, actor, mrn)
        form.mrn.data = mrn
        if found is not None:
            form.patient_id.data = found.id
            form.bed.data = found.bed
    else:
        if form.patient_id.data is not None:
            found = find_by_mrn(session, actor, form.mrn.data or "")
            if found is None or found.id != form.patient_id.data:
                found = None
                form.patient_id.data = None  # not theirs to add to: register instead
        if form.validate_on_submit():
            try:
                started = start_monitoring(
                    session, actor, unit_code=unit.code, flap=form.details(),
                    patient_id=found.id if found else None, patient=form.patient(),
                    bed=form.bed.data, now=g.now,
                )  # fmt: skip
            except InvalidInput as refused:
                general_errors = attach_problems(form, refused.problems)
            else:
                patient = started.patient
                again = " (re-admitted)" if started.readmitted else ""
                record = flap_record(session, actor, started.reconstruction.id, g.now,
                                     all_checks=False)  # fmt: skip
                due = record.status.next_due_at or g.now
                flash(
                    f"{patient.name}{again}, bed {patient.bed or '—'}: "
                    f"{started.reconstruction.procedure} is on the board; its first check is "
                    f"due at {clock(due, unit)} ({relative(due, g.now)}).",
                    "success",
                )
                return redirect(url_for("ward.board", code=unit.code))
    page = render_template(
        "admissions/start.html",
        unit=unit,
        form=form,
        found=found,
        general_errors=general_errors,
    )
    return (page, 400) if request.method == "POST" else page


class TransferForm(SafeForm):
    to_unit = SelectField("To ward", validate_choice=False, validators=[Optional()])
    at = LocalDateTimeField("At", validators=[Optional()])
    bed = StringField(
        "Bed on the new ward",
        filters=[lambda v: v.strip() if v else v],
        validators=[Length(max=32, message="Bed: at most 32 characters.")],
    )
    note = TextAreaField(
        "Note", validators=[Length(max=2000, message="Note: at most 2000 characters.")]
    )


@bp.route("/patients/<int:patient_id>/transfer", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def transfer(patient_id: int) -> Page:
    """Move a patient and their flaps to another ward at a moment (ICU → ward 3)."""
    session, actor = get_session(), current_actor()
    patient = get_patient(session, actor, patient_id)
    zone = ZoneInfo(patient.unit.timezone)
    form = TransferForm()
    form.at.zone = zone
    units = [
        u for u in session.scalars(select(Unit).order_by(Unit.code)) if u.id != patient.unit_id
    ]
    form.to_unit.choices = [SelectChoice("", "Choose a ward")] + [
        SelectChoice(u.code, f"{u.name} ({u.code})") for u in units
    ]
    general_errors: list[str] = []
    if request.method == "GET":
        form.at.data = g.now.astimezone(zone).strftime(LOCAL_INPUT_FORMAT)
    elif form.validate_on_submit():
        try:
            moved = transfer_patient(
                session, actor, patient_id, to_unit=form.to_unit.data or "",
                at=form.at.moment, bed=form.bed.data, note=form.note.data or "", now=g.now,
            )  # fmt: skip
        except InvalidInput as refused:
            problems = dict(refused.problems)
            if not form.to_unit.data:
                problems["to_unit"] = "To ward: choose the ward the patient goes to."
            general_errors = attach_problems(form, problems)
        else:
            flash(f"{moved.name} transferred to {moved.unit.name}.", "success")
            if actor.works_in(moved.unit.code):
                return redirect(url_for("ward.board", code=moved.unit.code))
            return redirect(url_for("ward.home"))
    page = render_template(
        "admissions/transfer.html", form=form, patient=patient, general_errors=general_errors
    )
    return (page, 400) if request.method == "POST" else page
