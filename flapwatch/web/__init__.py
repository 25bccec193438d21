"""HTML side of flapwatch: blueprints by feature, shared request plumbing and filters."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid

import sqlalchemy.exc
from flask import Flask, Response, abort, current_app, g, render_template, request, session
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from flapwatch.api import error_response_for, is_api_request, register_api
from flapwatch.db import EXTENSION_KEY, get_session
from flapwatch.domain.text import has_control_characters
from flapwatch.models import LoginSession, User, utcnow
from flapwatch.services import Forbidden, InvalidInput, NotFound
from flapwatch.web import health, presenters

csrf = CSRFProtect()
login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = "Please log in to continue."
login_manager.login_message_category = "info"
login_manager.session_protection = "strong"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session's user, if its log-in has not been ended on the server (log-out on another
    copy of the cookie, a password reset, deactivation): in the same one query."""
    from flapwatch.services.tokens import token_digest
    from flapwatch.web.auth import LOGIN_TOKEN

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


def register_web(app: Flask) -> None:
    from flapwatch.web import (
        admin,
        auth,
        checks,
        compliance,
        escalations,
        exports,
        review,
        rules,
        ward,
    )

    csrf.init_app(app)
    login_manager.init_app(app)
    for blueprint in (
        auth.bp,
        ward.bp,
        checks.bp,
        escalations.bp,
        review.bp,
        exports.bp,
        compliance.bp,
        health.bp,
        rules.bp,
        admin.bp,
    ):
        app.register_blueprint(blueprint)
    register_api(app)
    review.init_chart_cache(app)

    app.before_request(_assign_request_id)
    app.before_request(_refuse_control_characters_in_the_address)
    # The sweep first: it commits in a session of its own, and the request's session must
    # not have started reading (loading the user) before, or it would not see the sweep's
    # escalations on SQLite.
    app.before_request(_sweep_now_and_then)
    app.before_request(auth.enforce_idle_logoff)
    app.after_request(_response_headers)
    app.after_request(_log_request)
    presenters.register(app)

    @app.errorhandler(NotFound)
    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int] | Response:
        if is_api_request():
            return error_response_for(error)
        return render_template(
            "error.html",
            title="Not found",
            status=404,
            message="There is nothing here, or it is not in your units.",
        ), 404

    @app.errorhandler(Forbidden)
    @app.errorhandler(403)
    def forbidden(error: Exception) -> tuple[str, int] | Response:
        if is_api_request():
            return error_response_for(error)
        message = (
            error.message
            if isinstance(error, Forbidden)
            else ("Your role does not give access to this page.")
        )
        return render_template("error.html", title="Not allowed", status=403, message=message), 403

    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError) -> tuple[str, int] | Response:
        if is_api_request():
            return error_response_for(error)
        return render_template(
            "error.html",
            title="Form expired",
            status=400,
            message="This form was open too long or came from elsewhere. "
            "Go back, reload the page and enter it again.",
        ), 400

    @app.errorhandler(InvalidInput)
    def invalid(error: InvalidInput) -> tuple[str, int] | Response:
        if is_api_request():
            return error_response_for(error)
        details = "; ".join(error.problems.values())
        return render_template(
            "error.html", title="Not saved", status=400, message=f"{error.message} {details}"
        ), 400

    @app.errorhandler(sqlalchemy.exc.OperationalError)
    @app.errorhandler(sqlalchemy.exc.InterfaceError)
    @app.errorhandler(sqlalchemy.exc.TimeoutError)
    def database_unavailable(error: Exception) -> tuple[str, int, dict[str, str]] | Response:
        """The database did not answer (down, unreachable, locked past the busy timeout, or
        the pool exhausted): 503, saying so, rather than an error page. The pool checks each
        connection before use, so service comes back by itself when the database does."""
        current_app.logger.error(
            "database unavailable (request %s): %s", g.get("request_id"), error, exc_info=error
        )
        retry = {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}
        if is_api_request():
            from flapwatch.api.framework import error_response

            return error_response(
                503,
                "unavailable",
                "The database is not answering; nothing was saved. Retry later with the same "
                "Idempotency-Key.",
                headers=retry,
            )
        # Rendered without the context processors: they would ask the database for the user.
        template = current_app.jinja_env.get_template("unavailable.html")
        page = template.render(request_id=g.get("request_id", ""))
        return page, 503, retry

    @app.errorhandler(Exception)
    def anything_else(error: Exception) -> Response | HTTPException:
        """Under /api/ every failure is JSON; the pages keep Flask's own handling."""
        if isinstance(error, HTTPException) and (error.code or 500) < 400:
            return error  # a routing redirect, not a failure
        if is_api_request():
            if not isinstance(error, HTTPException):
                current_app.logger.exception("API request failed", exc_info=error)
            return error_response_for(error)
        if isinstance(error, HTTPException):
            return error
        raise error


def _refuse_control_characters_in_the_address() -> None:
    """A NUL or escape in the path or a query parameter is never a ward's: 400, before any of
    it reaches a query (PostgreSQL cannot even compare with a NUL)."""
    values = [request.path, *(v for values in request.args.listvalues() for v in values)]
    if any(has_control_characters(value) for value in values):
        abort(400, "The address contains a control character.")


def _assign_request_id() -> None:
    g.started = time.perf_counter()
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    g.now = utcnow()


REQUEST_LOG = logging.getLogger("flapwatch.requests")


def _log_request(response: Response) -> Response:
    """One JSON line a request: what was asked, by whom, the answer and how long it took
    (README "Production"). Read from the session, so it costs no query."""
    if request.endpoint == "static" or not current_app.config.get("REQUEST_LOG", True):
        return response
    started = g.get("started")
    REQUEST_LOG.info(
        json.dumps(
            {
                "at": utcnow().isoformat(timespec="milliseconds"),
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "endpoint": request.endpoint,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)
                if started is not None
                else None,
                "user_id": session.get("_user_id"),
                "client": request.remote_addr,
            }
        )
    )
    return response


_SWEEP_EVERY_SECONDS = 60
_last_sweep = {"at": 0.0}
_sweep_lock = threading.Lock()


def _sweep_now_and_then() -> None:
    """Escalate overdue checks from ordinary traffic, at most once a minute per process.

    Cron running `flapwatch sweep` is the dependable way; this keeps a ward without cron safe.
    """
    if not current_app.config.get("SWEEP_ON_REQUESTS", True) or request.endpoint in (
        health.ENDPOINTS
    ):
        return
    now = time.monotonic()
    if now - _last_sweep["at"] < _SWEEP_EVERY_SECONDS or not _sweep_lock.acquire(blocking=False):
        return
    try:
        _last_sweep["at"] = now
        from flapwatch.services.escalations import sweep_overdue

        with current_app.extensions[EXTENSION_KEY]() as sweep_session:
            sweep_overdue(sweep_session)
    except Exception:  # a failed sweep must never turn a nurse's page into an error
        current_app.logger.exception("overdue sweep failed")
    finally:
        _sweep_lock.release()


# Only the site's own files run or style a page: no inline script or style anywhere (an
# injected one would not run), nothing framed, forms post only here.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS_SECONDS = 365 * 24 * 3600
UNAVAILABLE_RETRY_SECONDS = 30


def _response_headers(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        # Behind HTTPS (directly, or a trusted proxy's X-Forwarded-Proto): HTTPS from now on.
        response.headers["Strict-Transport-Security"] = f"max-age={HSTS_SECONDS}; includeSubDomains"
    if request.endpoint != "static":
        # Patient data must not linger in a shared tablet's cache after logoff.
        response.headers["Cache-Control"] = "no-store"
    return response
