"""Log in and out."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.services.staff import authenticate, record_logout
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
def login() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("ward.home"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = authenticate(
            get_session(),
            form.username.data or "",
            form.password.data or "",
            request_id=g.get("request_id"),
            client=request.remote_addr,
        )
        if user is not None:
            session.clear()  # a fresh session for a new person on a shared tablet
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or url_for("ward.home"))
        error = "Username or password is wrong, or the account is disabled."
    return render_template("login.html", form=form, error=error)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response:
    record_logout(get_session(), current_actor())
    logout_user()
    session.clear()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
