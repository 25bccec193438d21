"""Health for a load balancer or an orchestrator: is the process up, can it serve?

`/healthz` answers from the process alone (restart it if this fails); `/readyz` also reaches
the database and checks that its schema is at the migrations' head (send no traffic to it
until this passes: a server started before `flapwatch init-db` finished would fail requests).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from flapwatch.db import engine_of
from flapwatch.migrate import current_revision, head_revision

bp = Blueprint("health", __name__)

# Requests of the health endpoints run no sweep, no log-in and no logoff check.
ENDPOINTS = frozenset({"health.healthz", "health.readyz"})


@bp.route("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


@bp.route("/readyz")
def readyz() -> tuple[Response, int]:
    try:
        revision = current_revision(engine_of(current_app))
    except Exception as error:  # noqa: BLE001 - any failure to reach the database
        current_app.logger.warning("not ready: database unreachable: %s", error)
        return jsonify(status="not ready", problem="The database cannot be reached."), 503
    head = head_revision()
    if revision != head:
        return (
            jsonify(
                status="not ready",
                problem=f"The database schema is at {revision}, not {head}: run flapwatch init-db.",
            ),
            503,
        )
    return jsonify(status="ready", database="ok", migration=revision), 200
