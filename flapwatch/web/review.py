"""The surgeon's review: a unit's flaps as small trend charts by concern, each flap's chart
(PNG or SVG, cached by data version) and its printable report.

A page that shows a chart has already checked that its reader may see the flap and has read
the flap's data version, so it links the image with a signature over (reader, flap, size,
format, version, expiry). Such a link is served straight from the chart cache: the signature,
the reader's own session cookie and the file on disk are enough, without the database. That
is what keeps a review page of thirty small charts as light as one page. The link is worth
nothing to anyone else (it is bound to the session that asked for the page), and it expires
after `LINK_SECONDS`: a reader whose access is withdrawn keeps, for at most that long, the
pictures of flaps whose pages they already had open. A link that is unsigned, expired, for
another session or for a chart no longer cached is served the ordinary way: log-in, role,
unit and the data version read afresh.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from flapwatch.charts.spec import FULL, PHONE, SMALL, STYLE, VARIANTS, image_size
from flapwatch.db import get_session
from flapwatch.http.access import READERS, current_actor, roles_required
from flapwatch.http.downloads import chart_cache, chart_image, chart_response, report_response
from flapwatch.services import Actor
from flapwatch.services.review import ChartSubject, chart_subject, chart_subjects, review_board

bp = Blueprint("review", __name__)

LINK_SECONDS = 600


# --- signed links ------------------------------------------------------------------------------


def _signature(
    user_id: str, reconstruction_id: int, size: str, fmt: str, version: str, expires: int
) -> str:
    secret = current_app.secret_key
    secret_bytes = secret if isinstance(secret, bytes) else str(secret).encode()
    key = hashlib.sha256(b"flapwatch chart link\x00" + secret_bytes).digest()
    message = f"{user_id}|{reconstruction_id}|{size}|{fmt}|{version}|{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def chart_link(subject: ChartSubject, *, size: str = "full", fmt: str = "png") -> str:
    """The chart's address for the logged-in reader, signed for this version of its data."""
    version = subject.version(STYLE)
    expires = int(time.time()) + LINK_SECONDS
    user_id = str(current_user.get_id())
    return url_for(
        "review.chart",
        reconstruction_id=subject.reconstruction_id,
        fmt=fmt,
        size=None if size == "full" else size,
        v=version,
        e=expires,
        s=_signature(user_id, subject.reconstruction_id, size, fmt, version, expires),
    )


def chart_links(actor: Actor, reconstruction_id: int) -> dict[str, object]:
    """What a page showing a flap's chart links to: the PNG (and the phone's narrower one,
    each with its size in pixels), the SVG and the report."""
    subject = chart_subject(get_session(), actor, reconstruction_id, g.now)
    return {
        "png": chart_link(subject),
        "size": image_size(FULL, sto2=subject.has_sto2),
        "phone_png": chart_link(subject, size=PHONE.name),
        "phone_size": image_size(PHONE, sto2=subject.has_sto2),
        "svg": chart_link(subject, fmt="svg"),
        "report": url_for("review.report", reconstruction_id=reconstruction_id),
    }


def _signed_cached_chart(reconstruction_id: int, size: str, fmt: str) -> Response | None:
    """The cached chart a valid signed link names, else None (serve it the ordinary way)."""
    version, expires, signature = (request.args.get(name, "") for name in ("v", "e", "s"))
    user_id = session.get("_user_id")
    if not (version and expires.isdigit() and signature and isinstance(user_id, str)):
        return None
    if int(expires) < time.time():
        return None
    # As Flask-Login's strong session protection does on every other request: a session
    # cookie carried to another browser or address is not this reader.
    if session.get("_id") != current_app.login_manager._session_identifier_generator():  # type: ignore[attr-defined]
        return None
    expected = _signature(user_id, reconstruction_id, size, fmt, version, int(expires))
    if not hmac.compare_digest(expected, signature):
        return None
    data = chart_cache().get(reconstruction_id, size, fmt, version)
    if data is None:
        return None
    return chart_image(data, reconstruction_id, fmt, cached=True)


# --- pages -------------------------------------------------------------------------------------


@bp.route("/units/<code>/review")
@roles_required(*READERS)
def unit_review(code: str) -> str:
    db, actor = get_session(), current_actor()
    board = review_board(db, actor, code, g.now)
    subjects = chart_subjects(db, actor, [flap.reconstruction.id for flap in board.flaps], g.now)
    links = {flap_id: chart_link(subject, size="small") for flap_id, subject in subjects.items()}
    return render_template("review.html", board=board, links=links, small_size=image_size(SMALL))


@roles_required(*READERS)
def _chart_for_reader(reconstruction_id: int, size: str, fmt: str) -> Response:
    return chart_response(current_actor(), reconstruction_id, size, fmt)


@bp.route("/reconstructions/<int:reconstruction_id>/chart.<any(png, svg):fmt>")
def chart(reconstruction_id: int, fmt: str) -> Response:
    size = request.args.get("size", "full")
    if size not in VARIANTS:
        abort(404)
    return _signed_cached_chart(reconstruction_id, size, fmt) or _chart_for_reader(
        reconstruction_id, size, fmt
    )


# Who may open it, for the access policy test: the ordinary path enforces exactly this, and a
# signed link is only ever made for a reader who passed it.
chart.allowed_roles = frozenset(READERS)  # type: ignore[attr-defined]


@bp.route("/reconstructions/<int:reconstruction_id>/report.pdf")
@roles_required(*READERS)
def report(reconstruction_id: int) -> Response:
    return report_response(current_actor(), reconstruction_id)
