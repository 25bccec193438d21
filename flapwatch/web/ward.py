"""The ward board: the nurse's home screen."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.domain.vocabulary import Role
from flapwatch.http.access import READERS, current_actor, roles_required
from flapwatch.services.handover import handover as handover_of
from flapwatch.services.handover import record_handover_print
from flapwatch.services.ward import visible_units, ward_board
from flapwatch.web.presenters import live_urls

bp = Blueprint("ward", __name__)


@bp.route("/")
@login_required
def home() -> str | Response:
    units = visible_units(get_session(), current_actor())
    if len(units) == 1 and current_user.role != Role.ADMIN:
        return redirect(url_for("ward.board", code=units[0].code))
    return render_template("units.html", units=units)


@bp.route("/units/<code>/board")
@roles_required(*READERS)
def board(code: str) -> str:
    session = get_session()
    board = ward_board(session, current_actor(), code, g.now)
    return render_template("board.html", board=board, live=live_urls([board.unit], session))


@bp.route("/units/<code>/handover")
@roles_required(*READERS)
def handover(code: str) -> str:
    """The shift handover: the ward on one page for the oncoming nurse."""
    report = handover_of(get_session(), current_actor(), code, g.now)
    return render_template("handover.html", handover=report)


@bp.route("/units/<code>/handover.pdf")
@roles_required(*READERS)
def handover_pdf(code: str) -> Response:
    """The handover on A4; who printed it goes in the audit trail."""
    from flapwatch.exports.handover import handover_pdf as printed  # matplotlib, when first drawn

    session, actor = get_session(), current_actor()
    report = handover_of(session, actor, code, g.now)
    data = printed(report, generated_at=g.now, generated_by=actor.username)
    record_handover_print(session, actor, report)
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = (
        f'inline; filename="handover-{report.board.unit.code}.pdf"'
    )
    return response
