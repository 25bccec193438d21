"""Photos on the pages: served to the staff of the flap's unit, the patient's consent recorded
on the flap's page, and a photo entered in error hidden."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.http.access import CLINICAL, READERS, current_actor, roles_required
from flapwatch.http.photos import photo_response
from flapwatch.services import InvalidInput
from flapwatch.services.patients import get_reconstruction
from flapwatch.services.photos import (
    LINK_MINUTES,
    get_photo,
    hide_photo,
    photo_link_open,
    set_photo_consent,
)

bp = Blueprint("photos", __name__)

CONSENT_CHOICES = {"yes": True, "no": False, "not_asked": None}


@bp.route("/photos/<int:photo_id>")
@roles_required(*READERS)
def display(photo_id: int) -> Response:
    return photo_response(current_actor(), photo_id, "display")


@bp.route("/photos/<int:photo_id>/thumbnail")
@roles_required(*READERS)
def thumbnail(photo_id: int) -> Response:
    return photo_response(current_actor(), photo_id, "thumbnail")


@bp.route("/photos/<int:photo_id>/link")
@roles_required(*READERS)
def link(photo_id: int) -> Response | tuple[str, int]:
    """The link in an escalation's notices: after log-in, to the staff of the flap's unit, for
    30 minutes from the notice; then it says where the photo is."""
    photo = get_photo(get_session(), current_actor(), photo_id)  # 404 outside the units
    if photo_link_open(photo_id, request.args.get("expires", ""),
                       request.args.get("signature", ""), g.now):  # fmt: skip
        return photo_response(current_actor(), photo_id, "display")
    page = render_template(
        "error.html",
        title="This photo link has expired",
        message=f"A notice's photo link opens the photo for {LINK_MINUTES} minutes. The photo "
        "is on the flap's page and its escalation's page.",
        link=url_for("checks.flap", reconstruction_id=photo.reconstruction_id) + "#photos",
        link_text="Open the flap's photos",
    )
    return page, 410


@bp.route("/reconstructions/<int:reconstruction_id>/photo-consent", methods=["POST"])
@roles_required(*CLINICAL)
def consent(reconstruction_id: int) -> Response:
    """The patient's answer to photographs of this flap, from the flap's page."""
    session, actor = get_session(), current_actor()
    get_reconstruction(session, actor, reconstruction_id)  # 404 outside the actor's units
    choice = request.form.get("photo_consent", "")
    if choice not in CONSENT_CHOICES:
        flash("Choose whether the patient agreed to photographs.", "error")
    else:
        set_photo_consent(session, actor, reconstruction_id, CONSENT_CHOICES[choice])
        flash(
            {
                "yes": "Consent to photographs recorded: photos can be taken with each check.",
                "no": "Recorded: the patient declined photographs. No photo can be taken.",
                "not_asked": "Recorded: consent to photographs not yet asked.",
            }[choice],
            "success",
        )
    return redirect(url_for("checks.flap", reconstruction_id=reconstruction_id) + "#photos")


@bp.route("/photos/<int:photo_id>/hide", methods=["POST"])
@roles_required(*CLINICAL)
def hide(photo_id: int) -> Response:
    """Entered in error: hidden from every page and export, never erased."""
    session, actor = get_session(), current_actor()
    photo = get_photo(session, actor, photo_id)
    try:
        hide_photo(session, actor, photo_id, request.form.get("reason", ""))
    except InvalidInput as refused:
        flash(" ".join(refused.problems.values()), "error")
    else:
        flash("The photo was hidden as entered in error; its record is kept.", "success")
    return redirect(url_for("checks.flap", reconstruction_id=photo.reconstruction_id) + "#photos")
