"""A person's log-in on a shared tablet: the session cookie's user, CSRF on what it sends,
and logoff after the unit's minutes without use.

A tablet logs its user off after the unit's minutes without use (a warning first; the page's
script does it). The server enforces the same limit on its own, for a tablet whose script was
not running: a request after the limit finds the user logged off. What counts as use is what
a person does: a page opened or a form sent, or the page's report that the nurse is tapping
and typing. The ward board reloading itself, and the images a page loads, do not count.
"""

from __future__ import annotations

import time

from flask import abort, current_app, flash, redirect, request, session, url_for
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.http import health
from flapwatch.http.access import current_actor
from flapwatch.http.errors import is_api_request
from flapwatch.models import LoginSession, User
from flapwatch.services.login import record_logout
from flapwatch.services.tokens import token_digest

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"

# The log-in's token (services.login.start_login_session): the server can end it.
LOGIN_TOKEN = "login"  # noqa: S105 - a session key, not a secret
SEEN_AT = "seen_at"
IDLE_LIMIT_SECONDS = "idle_limit_seconds"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session's user, if its log-in has not been ended on the server (log-out on another
    copy of the cookie, a password reset, deactivation): in the same one query."""
    login_token = session.get(LOGIN_TOKEN)
    if not user_id.isdigit() or not isinstance(login_token, str):
        return None
    return (
        get_session()
        .scalars(
            select(User)
            .join(LoginSession, LoginSession.user_id == User.id)
            .where(
                User.id == int(user_id),
                User.active.is_(True),
                LoginSession.token_hash == token_digest(login_token),
                LoginSession.ended_at.is_(None),
            )
            .options(selectinload(User.units))
        )
        .first()
    )


def idle_limits() -> dict[str, object]:
    """For every page: its countdown to logoff."""
    return {"idle_limit_minutes": idle_limit_minutes, "idle_seconds_left": idle_seconds_left}


def idle_limit_minutes(user: object) -> int:
    """The shortest limit of the user's units (the site's default without a unit)."""
    units = getattr(user, "units", None) or []
    limits = [unit.idle_logoff_minutes for unit in units]
    return min(limits) if limits else int(current_app.config["IDLE_LOGOFF_MINUTES"])


def idle_seconds_left() -> int:
    """What is left of the limit since the last use: a page the board reloaded by itself
    starts its countdown there, not afresh."""
    limit = idle_limit_minutes(current_user) * 60
    seen = session.get(SEEN_AT)
    if not isinstance(seen, int | float):
        return limit
    return max(0, min(limit, round(limit - (time.time() - seen))))


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


def log_off_idle() -> Response:
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
        logged_off = log_off_idle()
        if is_api_request():
            abort(401)  # a script is told to authenticate, in JSON
        return logged_off
    if seen is None or use:
        session[SEEN_AT] = now
    return None
