"""Notifications on this phone: the escalation queue's switch sends the browser's Web Push
subscription here (JSON, with the page's CSRF token in X-CSRFToken), or takes it back."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_login import login_required
from werkzeug.wrappers import Response

from flapwatch.db import get_session
from flapwatch.http.access import current_actor
from flapwatch.services import InvalidInput
from flapwatch.services.push import active_subscriptions, subscribe, unsubscribe

bp = Blueprint("push", __name__, url_prefix="/push")


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


def _refused(refused: InvalidInput) -> tuple[Response, int]:
    return jsonify({"message": refused.message, "fields": refused.problems}), 422


@bp.post("/subscriptions")
@login_required
def add() -> tuple[Response, int]:
    body = _body()
    keys = body.get("keys") if isinstance(body.get("keys"), dict) else {}
    try:
        subscribed = subscribe(
            get_session(),
            current_actor(),
            body.get("endpoint"),
            keys.get("p256dh"),
            keys.get("auth"),
            user_agent=request.headers.get("User-Agent"),
            allow_http=bool(current_app.config.get("PUSH_ALLOW_HTTP_ENDPOINTS")),
        )
    except InvalidInput as refused:
        return _refused(refused)
    phones = len(active_subscriptions(get_session(), subscribed.subscription.user_id))
    return jsonify({"on": True, "phones": phones}), 201 if subscribed.created else 200


@bp.post("/subscriptions/remove")
@login_required
def remove() -> tuple[Response, int]:
    removed = unsubscribe(get_session(), current_actor(), _body().get("endpoint"))
    return jsonify({"on": False, "removed": removed}), 200
