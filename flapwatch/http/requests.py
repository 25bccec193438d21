"""What happens around every request, page or API: its id, an address with a control
character refused, the overdue sweep now and then, the security headers, and one log line."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid

from flask import Flask, Response, abort, current_app, g, request, session

from flapwatch.db import EXTENSION_KEY
from flapwatch.domain.text import has_control_characters
from flapwatch.http import health
from flapwatch.models import utcnow
from flapwatch.services.chains import advance_chains
from flapwatch.services.escalations import sweep_overdue
from flapwatch.services.live import forget_old

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
REQUEST_LOG = logging.getLogger("flapwatch.requests")

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


def register_request_hooks(app: Flask) -> None:
    """Registered before the log-in's idle check (flapwatch.http.sessions), which loads the
    user: the sweep must run before the request's session starts reading."""
    app.before_request(_assign_request_id)
    app.before_request(_refuse_control_characters_in_the_address)
    # The sweep first: it commits in a session of its own, and the request's session must
    # not have started reading (loading the user) before, or it would not see the sweep's
    # escalations on SQLite.
    app.before_request(_sweep_now_and_then)
    app.after_request(_response_headers)
    app.after_request(_log_request)


def _assign_request_id() -> None:
    g.started = time.perf_counter()
    supplied = request.headers.get("X-Request-ID", "")
    g.request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
    g.now = utcnow()


def _refuse_control_characters_in_the_address() -> None:
    """A NUL or escape in the path or a query parameter is never a ward's: 400, before any of
    it reaches a query (PostgreSQL cannot even compare with a NUL)."""
    values = [request.path, *(v for values in request.args.listvalues() for v in values)]
    if any(has_control_characters(value) for value in values):
        abort(400, "The address contains a control character.")


_SWEEP_EVERY_SECONDS = 60
_last_sweep = {"at": 0.0}
_sweep_lock = threading.Lock()


def _sweep_now_and_then() -> None:
    """Escalate overdue checks and advance the escalation chains from ordinary traffic, at
    most once a minute per process.

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
        with current_app.extensions[EXTENSION_KEY]() as sweep_session:
            sweep_overdue(sweep_session)
            advance_chains(sweep_session)
            forget_old(sweep_session)
    except Exception:  # a failed sweep must never turn a nurse's page into an error
        current_app.logger.exception("overdue sweep failed")
    finally:
        _sweep_lock.release()


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
