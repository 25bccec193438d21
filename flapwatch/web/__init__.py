"""HTML side of flapwatch: blueprints by feature, shared request plumbing and filters."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid

from flask import Flask, Response, current_app, g, render_template, request, session
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from flapwatch.api import error_response_for, is_api_request, register_api
from flapwatch.db import EXTENSION_KEY, get_session
from flapwatch.models import User, utcnow
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
    if not user_id.isdigit():
        return None
    user = get_session().get(User, int(user_id), options=[selectinload(User.units)])
    return user if user is not None and user.active else None


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


def _response_headers(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        # Patient data must not linger in a shared tablet's cache after logoff.
        response.headers["Cache-Control"] = "no-store"
    return response
