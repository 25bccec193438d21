"""The surgeon's side: open escalations, acknowledging with an outcome, closing."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response
from wtforms import HiddenField, RadioField, TextAreaField
from wtforms.validators import Length, Optional

from flapwatch.db import get_session
from flapwatch.domain.rule_words import reasons_by_rule
from flapwatch.domain.schedule import hours_since
from flapwatch.domain.vocabulary import EscalationOutcome
from flapwatch.http.access import READERS, REVIEWERS, current_actor, roles_required
from flapwatch.models import Escalation
from flapwatch.services import InvalidInput
from flapwatch.services.channels import PushSettings
from flapwatch.services.escalations import (
    EXPECTED_MINUTES_CHOICES,
    acknowledge_escalation,
    attend_escalation,
    awaiting_acknowledgement,
    close_escalation,
    escalation_page,
    open_escalations,
)
from flapwatch.services.photos import photos_of
from flapwatch.services.ward import get_unit_by_code, visible_units
from flapwatch.web.forms import SafeForm, SelectChoice, attach_problems, choices_of
from flapwatch.web.presenters import live_urls
from flapwatch.web.review import chart_links

bp = Blueprint("escalations", __name__)

NOTE_MAX_LENGTH = 2000


def _note(label: str) -> TextAreaField:
    return TextAreaField(
        label,
        validators=[
            Length(
                max=NOTE_MAX_LENGTH,
                message=f"{label} can be at most {NOTE_MAX_LENGTH} characters.",
            )
        ],
    )


class AcknowledgeForm(SafeForm):
    # Optional here: the service refuses a missing outcome, with the message the page shows.
    outcome = RadioField("Outcome", choices=choices_of(EscalationOutcome), validators=[Optional()])
    note = _note("Note")
    # The last timeline event on the surgeon's screen: a sign added since is not acknowledged.
    seen_event_id = HiddenField()


class AttendForm(SafeForm):
    """ "I'm coming": minutes until the surgeon expects to be at the bedside, one button each
    (the button tapped is the answer)."""

    expected_minutes = RadioField(
        "At the bedside in",
        choices=[SelectChoice(str(m), f"{m} min") for m in EXPECTED_MINUTES_CHOICES],
        validators=[Optional()],
    )
    seen_event_id = HiddenField()


class CloseForm(SafeForm):
    closing_note = _note("Closing note")


bp.add_app_template_filter(reasons_by_rule, "by_rule")


@bp.app_context_processor
def escalation_count() -> dict[str, Callable[[], int]]:
    """For the navigation badge; a function, so pages that do not show it pay nothing."""
    return {
        "escalations_awaiting": lambda: awaiting_acknowledgement(get_session(), current_actor())
    }


@bp.route("/escalations")
@roles_required(*READERS)
def queue() -> str:
    """Open escalations across the user's units: red first, unacknowledged, oldest."""
    session, actor = get_session(), current_actor()
    code = request.args.get("unit", "").strip()
    unit = get_unit_by_code(session, actor, code) if code else None
    escalations = open_escalations(session, actor, [unit.code] if unit else None)
    return render_template(
        "escalations/queue.html",
        escalations=escalations,
        unit=unit,
        units=visible_units(session, actor),
        may_review=actor.role in REVIEWERS,
        hours_since=hours_since,
        push_key=_push_key(),
        live=live_urls([unit] if unit else visible_units(session, actor), session),
    )


def _push_key() -> str | None:
    """The server's VAPID public key, when it can send notifications at all."""
    settings = PushSettings.from_config(current_app.config)
    return settings.public_key if settings.configured else None


def _detail(
    escalation_id: int,
    *,
    acknowledge_form: AcknowledgeForm | None = None,
    attend_form: AttendForm | None = None,
    close_form: CloseForm | None = None,
    general_errors: list[str] | None = None,
) -> str:
    page = escalation_page(get_session(), current_actor(), escalation_id)
    return render_template(
        "escalations/detail.html",
        page=page,
        may_review=current_actor().role in REVIEWERS,
        # The form not being submitted starts empty, never from the other form's fields.
        acknowledge_form=acknowledge_form or AcknowledgeForm(formdata=None),
        attend_form=attend_form or AttendForm(formdata=None),
        failed="attending" if attend_form is not None else "",
        close_form=close_form or CloseForm(formdata=None),
        general_errors=general_errors or [],
        hours_since=hours_since,
        chart=chart_links(current_actor(), page.reconstruction.id),
        photos=photos_of(get_session(), [page.reconstruction.id])[page.reconstruction.id],
    )


@bp.route("/escalations/<int:escalation_id>")
@roles_required(*READERS)
def detail(escalation_id: int) -> str:
    return _detail(escalation_id)


@bp.post("/escalations/<int:escalation_id>/acknowledge")
@roles_required(*REVIEWERS)
def acknowledge(escalation_id: int) -> Response | tuple[str, int]:
    form = AcknowledgeForm()
    general_errors: list[str] = []
    # The service runs before the page loads anything: it must read the escalation fresh.
    if form.validate_on_submit():
        try:
            escalation = acknowledge_escalation(
                get_session(),
                current_actor(),
                escalation_id,
                outcome=form.outcome.data or "",
                note=form.note.data or "",
                now=g.now,
                seen_event_id=_seen(form.seen_event_id),
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            flash(_acknowledged_message(escalation), "success")
            return redirect(url_for(".detail", escalation_id=escalation.id))
    page = _detail(escalation_id, acknowledge_form=form, general_errors=general_errors)
    return page, 400


def _seen(field: HiddenField) -> int | None:
    seen = field.data or ""
    return int(seen) if seen.isdigit() else None


@bp.post("/escalations/<int:escalation_id>/attending")
@roles_required(*REVIEWERS)
def attending(escalation_id: int) -> Response | tuple[str, int]:
    form = AttendForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        minutes = form.expected_minutes.data or ""
        try:
            escalation = attend_escalation(
                get_session(),
                current_actor(),
                escalation_id,
                # Nothing chosen: the service names the field.
                expected_minutes=int(minutes) if minutes.isdigit() else -1,
                now=g.now,
                seen_event_id=_seen(form.seen_event_id),
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            patient = escalation.reconstruction.patient
            flash(
                f"The ward is told you are coming to {patient.name} (bed {patient.bed or '—'}) "
                f"in {minutes} min. Acknowledge with your decision at the bedside.",
                "success",
            )
            return redirect(url_for(".detail", escalation_id=escalation.id))
    page = _detail(escalation_id, attend_form=form, general_errors=general_errors)
    return page, 400


def _acknowledged_message(escalation: Escalation) -> str:
    reconstruction = escalation.reconstruction
    patient = reconstruction.patient
    assert escalation.outcome is not None
    message = (
        f"Acknowledged: {escalation.outcome.label}. "
        f"{patient.name} (bed {patient.bed or '—'}), {reconstruction.procedure}."
    )
    if escalation.outcome == EscalationOutcome.RETURN_TO_THEATRE:
        message += " The flap is marked returned to theatre and has left the ward board."
    return message


@bp.post("/escalations/<int:escalation_id>/close")
@roles_required(*REVIEWERS)
def close(escalation_id: int) -> Response | tuple[str, int]:
    form = CloseForm()
    general_errors: list[str] = []
    if form.validate_on_submit():
        try:
            escalation = close_escalation(
                get_session(), current_actor(), escalation_id, note=form.closing_note.data or ""
            )
        except InvalidInput as refused:
            general_errors = attach_problems(form, refused.problems)
        else:
            patient = escalation.reconstruction.patient
            flash(f"Escalation closed: {patient.name} (bed {patient.bed or '—'}).", "success")
            return redirect(url_for(".queue"))
    page = _detail(escalation_id, close_form=form, general_errors=general_errors)
    return page, 400
