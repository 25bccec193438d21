"""Log in and out, switch user, and log off a shared tablet left unused.

A tablet logs its user off after the unit's minutes without use (a warning first; the page's
script does it). The server enforces the same limit on its own, for a tablet whose script was
not running: a request after the limit finds the user logged off. What counts as use is what
a person does: a page opened or a form sent, or the page's report that the nurse is tapping
and typing. The ward board reloading itself, and the images a page loads, do not count.
"""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from flapwatch.api import is_api_request
from flapwatch.db import get_session
from flapwatch.services.staff import (
    LoginLimits,
    LoginLocked,
    authenticate,
    record_logout,
    start_login_session,
)
from flapwatch.web import health
from flapwatch.web.access import current_actor
from flapwatch.web.forms import LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths: never send a nurse to another host after log-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("ward.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(
                get_session(),
                form.username.data or "",
                form.password.data or "",
                request_id=g.get("request_id"),
                client=request.remote_addr,
                limits=login_limits(),
            )
        except LoginLocked as locked:
            return render_template("login.html", form=form, error=locked.message), 429
        if user is not None:
            session.clear()  # a fresh session for a new person on a shared tablet
            session[LOGIN_TOKEN] = start_login_session(get_session(), user)
            login_user(user)
            session[SEEN_AT] = time.time()
            return redirect(_safe_next(request.args.get("next")) or url_for("ward.home"))
        error = "Username or password is wrong, or the account is disabled."
    return render_template("login.html", form=form, error=error)


def login_limits() -> LoginLimits:
    config = current_app.config
    return LoginLimits(
        per_account=int(config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]),
        per_address=int(config["LOGIN_MAX_FAILURES_PER_ADDRESS"]),
        window=timedelta(minutes=float(config["LOGIN_LOCKOUT_MINUTES"])),
    )


LOGOUT_MESSAGES = {
    "user": "You are logged out.",
    "switch": "Logged out. Next person: log in with your own account.",
}


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    reason = request.form.get("reason", "user")
    if reason == "idle":
        return _log_off_idle()
    reason = reason if reason in LOGOUT_MESSAGES else "user"
    record_logout(get_session(), current_actor(), reason, session.get(LOGIN_TOKEN))
    logout_user()
    session.clear()
    flash(LOGOUT_MESSAGES[reason], "info")
    return redirect(url_for("auth.login"))


@bp.route("/session/alive", methods=["POST"])
@login_required
def alive() -> tuple[str, int]:
    """The page reports that its user is tapping or typing (see enforce_idle_logoff)."""
    return "", 204


THEME_COOKIE_SECONDS = 365 * 24 * 3600


@bp.route("/theme", methods=["POST"])
def theme() -> Response:
    """Day or night (low glare): kept by this tablet's browser, whoever logs in."""
    chosen = "night" if request.form.get("theme") == "night" else "day"
    response = redirect(_safe_next(request.form.get("next")) or url_for("ward.home"))
    response.set_cookie(
        "theme",
        chosen,
        max_age=THEME_COOKIE_SECONDS,
        samesite="Lax",
        secure=request.is_secure,
        httponly=True,
    )
    return response


@bp.route("/sw.js")
def service_worker() -> Response:
    """The service worker, from the site's root so that it looks after every page."""
    response = current_app.send_static_file("sw.js")
    response.headers["Content-Type"] = "text/javascript; charset=utf-8"
    response.headers["Cache-Control"] = "no-cache"  # a new version is picked up at once
    return response


@bp.route("/offline")
def offline() -> str:
    """What the service worker shows for a page it has not kept, without a connection."""
    return render_template("offline.html")


@bp.app_context_processor
def idle_limit() -> dict[str, object]:
    return {"idle_limit_minutes": idle_limit_minutes, "idle_seconds_left": idle_seconds_left}


def idle_seconds_left() -> int:
    """What is left of the limit since the last use: a page the board reloaded by itself
    starts its countdown there, not afresh."""
    limit = idle_limit_minutes(current_user) * 60
    seen = session.get(SEEN_AT)
    if not isinstance(seen, int | float):
        return limit
    return max(0, min(limit, round(limit - (time.time() - seen))))


# --- logoff without use ------------------------------------------------------------------------

# The log-in's token (services.staff.start_login_session): the server can end it.
LOGIN_TOKEN = "login"  # noqa: S105 - a session key, not a secret
SEEN_AT = "seen_at"
IDLE_LIMIT_SECONDS = "idle_limit_seconds"


def idle_limit_minutes(user: object) -> int:
    """The shortest limit of the user's units (the site's default without a unit)."""
    units = getattr(user, "units", None) or []
    limits = [unit.idle_logoff_minutes for unit in units]
    return min(limits) if limits else int(current_app.config["IDLE_LOGOFF_MINUTES"])


# Not pages of a person: static files and the load balancer's health checks.
UNWATCHED = frozenset({None, "static", *health.ENDPOINTS})

# Pictures a page loads: never someone using the tablet (and served without the database).
IMAGE_ENDPOINTS = frozenset({"review.chart", "compliance.chart"})


def _is_use() -> bool:
    if request.method != "GET":
        return True
    if request.endpoint in IMAGE_ENDPOINTS or request.args.get("refreshed") == "1":
        return False  # an image, or the board reloading itself
    # Browsers name what a request is for: a page the person opened, or an image it loads.
    return request.headers.get("Sec-Fetch-Dest", "document") == "document"


def _log_off_idle() -> Response:
    minutes = idle_limit_minutes(current_user)
    record_logout(get_session(), current_actor(), "idle", session.get(LOGIN_TOKEN))
    logout_user()
    session.clear()
    flash(
        f"You were logged off after {minutes} minutes without use, so that no patient's "
        "record stays on a shared tablet. Log in to carry on.",
        "info",
    )
    return redirect(url_for("auth.login"))


def enforce_idle_logoff() -> Response | None:
    """Before each request of a logged-in person: log off after the limit without use.

    Read from the session alone unless the request is use: an image served from the chart
    cache needs no database, and must not start reading before the view does."""
    if request.endpoint in UNWATCHED or "_user_id" not in session:
        return None
    now = time.time()
    seen = session.get(SEEN_AT)
    limit = session.get(IDLE_LIMIT_SECONDS)
    use = _is_use()
    if use or not isinstance(limit, int):
        if not current_user.is_authenticated:
            return None
        limit = idle_limit_minutes(current_user) * 60  # a changed setting applies at once
        session[IDLE_LIMIT_SECONDS] = limit
    if isinstance(seen, int | float) and now - seen > limit:
        logged_off = _log_off_idle()
        if is_api_request():
            abort(401)  # a script is told to authenticate, in JSON
        return logged_off
    if seen is None or use:
        session[SEEN_AT] = now
    return None
