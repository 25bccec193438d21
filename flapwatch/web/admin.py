"""Unit coordinators' and administrators' pages: units, staff, patients, reconstructions.

Every view parses a form, calls one service and redirects; a refused form comes back with
status 400, each problem on its field and everything typed still in place.
"""

from __future__ import annotations

import re
from functools import cache
from zoneinfo import available_timezones

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.domain.schedule import format_bands
from flapwatch.domain.vocabulary import ReconstructionStatus
from flapwatch.http.access import ADMINS, MANAGERS, current_actor, roles_required
from flapwatch.models import Patient, Reconstruction, SchedulePolicy, Unit, User
from flapwatch.services import Actor, InvalidInput, NotFound
from flapwatch.services.accounts import (
    create_user,
    get_staff_member,
    grantable_roles,
    may_manage_account,
    set_password,
    update_user,
)
from flapwatch.services.patients import (
    add_reconstruction,
    admit_patient,
    get_patient,
    get_reconstruction,
    set_reconstruction_status,
    update_patient,
    update_reconstruction,
)
from flapwatch.services.units import create_unit, publish_schedule_policy, update_unit
from flapwatch.services.ward import get_unit_by_code, visible_units
from flapwatch.web.admin_forms import (
    EditStaffForm,
    EditUnitForm,
    NewStaffForm,
    NewUnitForm,
    PasswordForm,
    PatientForm,
    ReconstructionForm,
    ScheduleForm,
    StatusForm,
)
from flapwatch.web.forms import LOCAL_INPUT_FORMAT, attach_problems
from flapwatch.web.presenters import zone

bp = Blueprint("admin", __name__, url_prefix="/admin")

Page = str | Response | tuple[str, int]

STATUS_CHANGED = {
    ReconstructionStatus.MONITORING: "Monitoring resumed: the flap is back on the ward board.",
    ReconstructionStatus.STOPPED: "Monitoring stopped: the flap is off the ward board.",
    ReconstructionStatus.RETURNED_TO_THEATRE: "Back to theatre: the flap is off the ward "
    "board until monitoring resumes.",
    ReconstructionStatus.DISCHARGED: "Discharged: record its final outcome on the flap's page.",
}


def _form_page(template: str, **context: object) -> str | tuple[str, int]:
    """A form as first shown (200), or sent back refused (400)."""
    page = render_template(template, **context)
    return (page, 400) if request.method == "POST" else page


@cache
def _timezone_names() -> list[str]:
    return sorted(available_timezones())


@bp.route("/")
@roles_required(*MANAGERS)
def index() -> str:
    return render_template("admin/index.html")


# --- units and their schedules ----------------------------------------------------------------


def _unit(session: Session, actor: Actor, unit_id: int) -> Unit:
    unit = session.get(Unit, unit_id)
    if unit is None or not actor.works_in(unit.code):
        raise NotFound(f"No unit {unit_id}.")
    return unit


@bp.route("/units")
@roles_required(*MANAGERS)
def units() -> str:
    session = get_session()
    shown = visible_units(session, current_actor())
    rows = session.execute(
        select(SchedulePolicy.unit_id, func.max(SchedulePolicy.version))
        .where(SchedulePolicy.unit_id.in_([unit.id for unit in shown]))
        .group_by(SchedulePolicy.unit_id)
    )
    versions = {unit_id: version for unit_id, version in rows}
    return render_template("admin/units.html", units=shown, versions=versions)


@bp.route("/units/new", methods=["GET", "POST"])
@roles_required(*ADMINS)
def new_unit() -> Page:
    form = NewUnitForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            unit = create_unit(
                get_session(),
                current_actor(),
                code=form.code.data or "",
                name=form.name.data or "",
                timezone=form.timezone.data or "",
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Unit {unit.code} created with the default monitoring schedule.", "success")
            return redirect(url_for(".units"))
    return _form_page(
        "admin/unit_form.html",
        form=form,
        unit=None,
        general_errors=general_errors,
        timezones=_timezone_names(),
    )


@bp.route("/units/<int:unit_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_unit(unit_id: int) -> Page:
    session, actor = get_session(), current_actor()
    unit = _unit(session, actor, unit_id)
    form = EditUnitForm(
        data={
            "name": unit.name,
            "timezone": unit.timezone,
            "webhook_url": unit.webhook_url,
            "idle_logoff_minutes": unit.idle_logoff_minutes,
        }
    )
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            update_unit(
                session,
                actor,
                unit.id,
                name=form.name.data or "",
                timezone=form.timezone.data or "",
                webhook_url=form.webhook_url.data or "",
                idle_logoff_minutes=form.idle_logoff_minutes.data,
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Unit {unit.code} saved.", "success")
            return redirect(url_for(".units"))
    return _form_page(
        "admin/unit_form.html",
        form=form,
        unit=unit,
        general_errors=general_errors,
        timezones=_timezone_names(),
    )


def _schedule_history(session: Session, unit_id: int) -> list[tuple[SchedulePolicy, str | None]]:
    """Every version of the unit's schedule with its author's name, newest first."""
    rows = session.execute(
        select(SchedulePolicy, User.display_name)
        .outerjoin(User, User.id == SchedulePolicy.created_by_id)
        .where(SchedulePolicy.unit_id == unit_id)
        .order_by(SchedulePolicy.version.desc())
    )
    return [(policy, author) for policy, author in rows]


@bp.route("/units/<int:unit_id>/schedule", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def schedule(unit_id: int) -> Page:
    session, actor = get_session(), current_actor()
    unit = _unit(session, actor, unit_id)
    history = _schedule_history(session, unit.id)
    if not history:
        raise NotFound(f"Unit {unit.code} has no schedule.")
    current = history[0][0]
    form = ScheduleForm(
        data={
            "bands": format_bands(current.as_value().bands),
            "grace_minutes": current.grace_minutes,
            "after_last_band_minutes": current.after_last_band_minutes,
            "not_done_minutes": current.not_done_minutes,
        }
    )
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            policy = publish_schedule_policy(
                session,
                actor,
                unit.id,
                bands=form.bands.bands,
                grace_minutes=form.grace_minutes.data or 0,
                after_last_band_minutes=form.after_last_band_minutes.data or 0,
                not_done_minutes=(
                    current.not_done_minutes
                    if form.not_done_minutes.data is None
                    else form.not_done_minutes.data
                ),
                note=form.note.data or "",
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Schedule version {policy.version} is now in force on {unit.name}.", "success")
            return redirect(url_for(".schedule", unit_id=unit.id))
    return _form_page(
        "admin/schedule.html",
        form=form,
        unit=unit,
        history=history,
        general_errors=general_errors,
        format_bands=format_bands,
    )


# --- staff -----------------------------------------------------------------------------------


@bp.route("/staff")
@roles_required(*MANAGERS)
def staff() -> str:
    session, actor = get_session(), current_actor()
    query = (
        select(User).options(selectinload(User.units)).order_by(User.display_name, User.username)
    )
    if not actor.all_units:
        query = query.where(User.units.any(Unit.code.in_(sorted(actor.unit_codes))))
    users = list(session.scalars(query))
    manageable = {user.id for user in users if may_manage_account(actor, user)}
    return render_template("admin/staff.html", users=users, manageable=manageable)


@bp.route("/staff/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new_staff() -> Page:
    session, actor = get_session(), current_actor()
    units = visible_units(session, actor)
    form = NewStaffForm(
        roles=grantable_roles(actor.role),
        units=units,
        data={"role": "nurse", "units": [units[0].code] if len(units) == 1 else []},
    )
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            user = create_user(
                session,
                actor,
                username=form.username.data or "",
                display_name=form.display_name.data or "",
                role=form.role.data or "",
                password=form.password.data or "",
                unit_codes=form.units.data or [],
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Account {user.username} created for {user.display_name}.", "success")
            return redirect(url_for(".staff"))
    return _form_page(
        "admin/staff_form.html", form=form, member=None, general_errors=general_errors
    )


@bp.route("/staff/<int:user_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_staff(user_id: int) -> Page:
    session, actor = get_session(), current_actor()
    member = get_staff_member(session, actor, user_id)
    form = EditStaffForm(
        roles=grantable_roles(actor.role),
        units=visible_units(session, actor),
        data={
            "display_name": member.display_name,
            "role": member.role.value,
            "active": member.active,
            "units": [unit.code for unit in member.units],
        },
    )
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            update_user(
                session,
                actor,
                member.id,
                display_name=form.display_name.data or "",
                role=form.role.data or "",
                active=bool(form.active.data),
                unit_codes=form.units.data or [],
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Account {member.username} saved.", "success")
            return redirect(url_for(".staff"))
    return _form_page(
        "admin/staff_form.html", form=form, member=member, general_errors=general_errors
    )


@bp.route("/staff/<int:user_id>/password", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def staff_password(user_id: int) -> Page:
    session, actor = get_session(), current_actor()
    member = get_staff_member(session, actor, user_id)
    form = PasswordForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            set_password(session, actor, member.id, form.password.data or "")
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"Password changed for {member.username}.", "success")
            return redirect(url_for(".staff"))
    return _form_page(
        "admin/password.html", form=form, member=member, general_errors=general_errors
    )


# --- patients and beds -----------------------------------------------------------------------


def _bed_order(patient: Patient) -> tuple[bool, list[str | int], str]:
    """Beds in ward order: 2 before 10, unassigned last."""
    bed = patient.bed or ""
    pieces = [int(piece) if piece.isdigit() else piece for piece in re.split(r"(\d+)", bed)]
    return (not bed, pieces, patient.name)


@bp.route("/patients")
@roles_required(*MANAGERS)
def patients() -> str:
    session, actor = get_session(), current_actor()
    units = visible_units(session, actor)
    code = request.args.get("unit") or (units[0].code if len(units) == 1 else None)
    if code is None:
        return render_template("admin/patients.html", units=units, unit=None, patients=[])
    unit = get_unit_by_code(session, actor, code)
    listed = list(
        session.scalars(
            select(Patient)
            .where(Patient.unit_id == unit.id)
            .options(selectinload(Patient.reconstructions))
        )
    )
    listed.sort(key=_bed_order)
    return render_template("admin/patients.html", units=units, unit=unit, patients=listed)


@bp.route("/patients/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new_patient() -> Page:
    session, actor = get_session(), current_actor()
    units = visible_units(session, actor)
    chosen = request.args.get("unit") or (units[0].code if len(units) == 1 else None)
    form = PatientForm(units=units, data={"unit": chosen})
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            patient = admit_patient(
                session, actor, unit_code=form.unit.data or "", details=form.details()
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"{patient.name} ({patient.mrn}) admitted to {patient.unit.name}.", "success")
            return redirect(url_for(".patients", unit=patient.unit.code))
    return _form_page(
        "admin/patient_form.html", form=form, patient=None, general_errors=general_errors
    )


@bp.route("/patients/<int:patient_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_patient(patient_id: int) -> Page:
    session, actor = get_session(), current_actor()
    patient = get_patient(session, actor, patient_id)
    form = PatientForm(
        units=visible_units(session, actor),
        data={
            "mrn": patient.mrn,
            "name": patient.name,
            "date_of_birth": patient.date_of_birth,
            "unit": patient.unit.code,
            "bed": patient.bed,
        },
    )
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            update_patient(
                session, actor, patient.id, unit_code=form.unit.data or "", details=form.details()
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"{patient.name} ({patient.mrn}) saved.", "success")
            return redirect(url_for(".patients", unit=patient.unit.code))
    return _form_page(
        "admin/patient_form.html", form=form, patient=patient, general_errors=general_errors
    )


# --- reconstructions (flaps) -----------------------------------------------------------------


@bp.route("/patients/<int:patient_id>/reconstructions/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new_reconstruction(patient_id: int) -> Page:
    session, actor = get_session(), current_actor()
    patient = get_patient(session, actor, patient_id)
    form = ReconstructionForm(zone=zone(patient.unit))
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            reconstruction = add_reconstruction(
                session, actor, patient.id, form.details(), now=g.now
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(
                f"{reconstruction.procedure} added for {patient.name}: it is on the ward board.",
                "success",
            )
            return redirect(url_for(".patients", unit=patient.unit.code))
    return _form_page(
        "admin/reconstruction_form.html",
        form=form,
        patient=patient,
        reconstruction=None,
        status_form=None,
        general_errors=general_errors,
    )


def _reconstruction_page(
    reconstruction: Reconstruction,
    form: ReconstructionForm,
    status_form: StatusForm,
    general_errors: list[str],
) -> str | tuple[str, int]:
    return _form_page(
        "admin/reconstruction_form.html",
        form=form,
        patient=reconstruction.patient,
        reconstruction=reconstruction,
        status_form=status_form,
        general_errors=general_errors,
    )


def _reconstruction_form(reconstruction: Reconstruction, **kwargs: object) -> ReconstructionForm:
    unit_zone = zone(reconstruction.patient.unit)
    return ReconstructionForm(
        zone=unit_zone,
        **kwargs,
        data={
            "procedure": reconstruction.procedure,
            "flap_kind": reconstruction.flap_kind.value,
            "site": reconstruction.site,
            "side": reconstruction.side.value,
            "surgery_end_at": reconstruction.surgery_end_at.astimezone(unit_zone).strftime(
                LOCAL_INPUT_FORMAT
            ),
            "surgeon": reconstruction.surgeon,
            "buried": reconstruction.buried,
        },
    )


@bp.route("/reconstructions/<int:reconstruction_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_reconstruction(reconstruction_id: int) -> Page:
    session, actor = get_session(), current_actor()
    reconstruction = get_reconstruction(session, actor, reconstruction_id)
    form = _reconstruction_form(reconstruction)
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            update_reconstruction(session, actor, reconstruction.id, form.details(), now=g.now)
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(f"{reconstruction.procedure} for {reconstruction.patient.name} saved.", "success")
            return redirect(url_for(".patients", unit=reconstruction.patient.unit.code))
    return _reconstruction_page(reconstruction, form, StatusForm(formdata=None), general_errors)


@bp.route("/reconstructions/<int:reconstruction_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def reconstruction_status(reconstruction_id: int) -> Page:
    session, actor = get_session(), current_actor()
    reconstruction = get_reconstruction(session, actor, reconstruction_id)
    status_form = StatusForm()
    general_errors: list[str] = []
    if status_form.validate_on_submit():
        status = ReconstructionStatus(status_form.status.data)
        try:
            set_reconstruction_status(
                session,
                actor,
                reconstruction.id,
                status,
                note=status_form.note.data or "",
                time_zero=status_form.time_zero.data or None,
                now=g.now,
            )
        except InvalidInput as refused:
            general_errors = attach_problems(status_form, refused.problems)
        else:
            patient = reconstruction.patient
            outcome = STATUS_CHANGED.get(status, f"Status set to {status.label}.")
            flash(f"{patient.name}, {reconstruction.procedure}: {outcome}", "success")
            return redirect(url_for(".patients", unit=patient.unit.code))
    # The details form is shown as stored: this request carried the status form only.
    form = _reconstruction_form(reconstruction, formdata=None)
    return _reconstruction_page(reconstruction, form, status_form, general_errors)
