"""What the pages (`flapwatch.web`) and the JSON API (`flapwatch.api`) both stand on: who is
calling and what their role opens, the log-in session and its CSRF token, what happens around
every request, errors in the caller's language, and the files both send."""

from __future__ import annotations

from flask import Flask

from flapwatch.http import downloads, errors, health, photos, requests, sessions


def register_http(app: Flask) -> None:
    photos.init_photos(app)  # before the CSRF check reads a photo's body
    sessions.csrf.init_app(app)
    sessions.login_manager.init_app(app)
    app.register_blueprint(health.bp)
    downloads.init_chart_cache(app)
    requests.register_request_hooks(app)
    app.before_request(sessions.enforce_idle_logoff)
    app.context_processor(sessions.idle_limits)
    errors.register_error_handlers(app)
