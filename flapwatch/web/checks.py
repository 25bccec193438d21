"""Recording a flap check, and the flap page with its checks."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from flapwatch.db import get_session, write_transaction
from flapwatch.domain.checks import CheckValues
from flapwatch.http.access import CLINICAL, READERS, current_actor, roles_required
from flapwatch.http.photos import accepts_photos, form_photos, photo_store
from flapwatch.imaging import Photo as PreparedPhoto
from flapwatch.models import Check, IdempotencyRecord
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.checks import RecordedCheck, amend_check, check_history, record_check
from flapwatch.services.idempotency import Answer, form_fingerprint, key_problem, once
from flapwatch.services.photos import attach_photos
from flapwatch.services.ward import FlapRecord, flagged_check, flap_record
from flapwatch.web.forms import LOCAL_INPUT_FORMAT, AmendForm, CheckForm, attach_problems
from flapwatch.web.presenters import clock, relative, zone
from flapwatch.web.review import chart_links

bp = Blueprint("checks", __name__)

# The API's answer to a recorded check (session, actor, reconstruction id, what was recorded),
# handed over by create_app: the ward's form keeps it under the form's key.
CheckAnswer = Callable[[Session, Actor, int, RecordedCheck], Answer]
CHECK_ANSWER_KEY = "flapwatch.check_answer"


@bp.route("/reconstructions/<int:reconstruction_id>")
@roles_required(*READERS)
def flap(reconstruction_id: int) -> str:
    record = flap_record(get_session(), current_actor(), reconstruction_id, g.now)
    return render_template(
        "flap.html",
        record=record,
        chart=chart_links(current_actor(), reconstruction_id),
    )


@bp.route("/reconstructions/<int:reconstruction_id>/checks/new", methods=["GET", "POST"])
@roles_required(*CLINICAL)
@accepts_photos
def new_check(reconstruction_id: int) -> str | Response | tuple[str, int]:
    session = get_session()
    actor = current_actor()
    record = flap_record(session, actor, reconstruction_id, g.now, all_checks=False)
    unit_zone = zone(record.unit)
    form = CheckForm(zone=unit_zone)
    general_errors: list[str] = []
    if request.method == "GET":
        form.taken_at.data = g.now.astimezone(unit_zone).strftime(LOCAL_INPUT_FORMAT)
        form.idempotency_key.data = str(uuid.uuid4())
    elif form.validate_on_submit():
        try:
            saved = _record_once(session, actor, reconstruction_id, form, form_photos())
        except InvalidInput as refused:
            if "photos" in refused.problems:
                refused.problems["photos"] += (
                    " The check was not saved: choose the photos again, or save without them."
                )
            general_errors = attach_problems(form, refused.problems)
        else:
            if isinstance(saved, IdempotencyRecord):
                return _already_saved(saved, record)
            if saved.evaluation.matches:
                return redirect(url_for("checks.flagged", check_id=saved.check.id))
            patient = record.status.patient
            due = saved.next_due_at or g.now  # a nurse's check ends a pause: never None here
            flash(
                f"Check saved for {patient.name} (bed {patient.bed or '—'}). Next check due at "
                f"{clock(due, record.unit)} ({relative(due, g.now)}).",
                "success",
            )
            return redirect(url_for("ward.board", code=record.unit.code))
    status = 400 if request.method == "POST" else 200
    page = render_template(
        "check_form.html", form=form, record=record, general_errors=general_errors
    )
    return (page, status) if status != 200 else page


def _record_once(
    session: Session,
    actor: Actor,
    reconstruction_id: int,
    form: CheckForm,
    photos: list[PreparedPhoto],
) -> RecordedCheck | IdempotencyRecord:
    """Record the check, once: the form carries a key made when it was opened, so Save sent
    twice (a double tap, a retry after the connection dropped, the tablet sending it again
    through the API) stores one check, and its photos once. Returns the earlier record when it
    was already saved."""

    def record() -> RecordedCheck:
        with write_transaction(session):  # the check and its photos, or neither
            saved = record_check(session, actor, reconstruction_id, form.values(), now=g.now)
            if photos:
                attach_photos(session, actor, photo_store(), photos, check_id=saved.check.id,
                              now=g.now)  # fmt: skip
        return saved

    key = (form.idempotency_key.data or "").strip()
    if not key or key_problem(key) or actor.user_id is None:
        return record()
    check_answer: CheckAnswer = current_app.extensions[CHECK_ANSWER_KEY]
    api_path = url_for("api.record_check", reconstruction_id=reconstruction_id)
    return once(
        session,
        actor.user_id,
        key,
        form_fingerprint(api_path),
        record,
        lambda saved: check_answer(session, actor, reconstruction_id, saved),
    )


def _already_saved(earlier: IdempotencyRecord, record: FlapRecord) -> Response:
    check_id = int(earlier.body["id"])
    if earlier.body.get("severity"):
        return redirect(url_for("checks.flagged", check_id=check_id))
    flash("This check was already saved; it is not stored twice.", "success")
    return redirect(url_for("ward.board", code=record.unit.code))


@bp.route("/checks/<int:check_id>/flagged")
@roles_required(*READERS)
def flagged(check_id: int) -> str:
    """What the nurse must do now: severity, reasons and each matched rule's action."""
    check = flagged_check(get_session(), current_actor(), check_id)
    record = flap_record(get_session(), current_actor(), check.reconstruction_id, g.now)
    return render_template("flagged.html", check=check, record=record)


@bp.route("/checks/<int:check_id>/amend", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def amend(check_id: int) -> str | Response | tuple[str, int]:
    """Correct a recorded check, or withdraw it as entered in error, with a reason."""
    session, actor = get_session(), current_actor()
    versions = check_history(session, actor, check_id)
    latest = versions[-1]
    if latest.id != check_id:
        flash("This check has been corrected since: this is its latest version.", "info")
        return redirect(url_for(".amend", check_id=latest.id))
    record = flap_record(session, actor, latest.reconstruction_id, g.now)
    form = AmendForm(zone=zone(record.unit))
    general_errors: list[str] = []
    if latest.entered_in_error:
        general_errors = ["This check was withdrawn as entered in error; it cannot be changed."]
    elif request.method == "GET":
        form.fill_from(latest.values())
    elif form.validate_on_submit() or form.entered_in_error.data:
        try:
            amended = amend_check(
                session,
                actor,
                check_id,
                reason=form.reason.data or "",
                values=None if form.entered_in_error.data else _keep_seconds(form, latest),
                entered_in_error=bool(form.entered_in_error.data),
                now=g.now,
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            if set(amended.flags_after) - set(amended.flags_before):
                return redirect(url_for(".flagged", check_id=amended.check.id))
            what = (
                "withdrawn as entered in error" if amended.check.entered_in_error else "corrected"
            )
            due = (
                f"Next check due at {clock(amended.next_due_at, record.unit)}."
                if amended.next_due_at is not None
                else "Monitoring is paused."
            )
            flash(
                f"Check of {clock(amended.check.taken_at, record.unit)} {what} "
                f"(version {amended.check.version}). {due}",
                "success",
            )
            return redirect(url_for(".flap", reconstruction_id=latest.reconstruction_id))
    page = render_template(
        "amend_check.html",
        form=form,
        record=record,
        check=latest,
        versions=versions,
        general_errors=general_errors,
    )
    return (page, 400) if request.method == "POST" else page


@bp.route("/checks/<int:check_id>/history")
@roles_required(*READERS)
def history(check_id: int) -> str:
    """Every version of a check: who recorded or corrected it, when, why, and what it said."""
    session, actor = get_session(), current_actor()
    versions = check_history(session, actor, check_id)
    record = flap_record(session, actor, versions[0].reconstruction_id, g.now)
    return render_template("check_history.html", versions=versions, record=record)


def _keep_seconds(form: AmendForm, latest: Check) -> CheckValues:
    """The form's values; a time left as it was keeps its seconds (the form shows minutes),
    so a correction of something else does not move the check by a few seconds."""
    values = form.values()
    shown = latest.taken_at.astimezone(UTC).replace(second=0, microsecond=0)
    if values.taken_at == shown:
        values = replace(values, taken_at=latest.taken_at)
    return values
