"""Log in and out, switch user, the page's report that it is in use, the day or night theme,
and the service worker that keeps a tablet's checks offline. Logoff without use is
flapwatch.http.sessions'."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

from flask import (
    Blueprint,
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

from flapwatch.db import get_session
from flapwatch.http.access import current_actor
from flapwatch.http.sessions import LOGIN_TOKEN, SEEN_AT, log_off_idle
from flapwatch.services.login import (
    LoginLimits,
    LoginLocked,
    authenticate,
    record_logout,
    start_login_session,
)
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
        return log_off_idle()
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
