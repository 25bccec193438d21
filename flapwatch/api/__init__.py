"""JSON API v1 and its OpenAPI document (DESIGN.md §4), over the same services as the pages."""

from __future__ import annotations

from flask import Flask

from flapwatch.api import endpoints  # noqa: F401  (declares the operations)
from flapwatch.api.framework import ApiError, bp
from flapwatch.http.errors import error_response
from flapwatch.http.sessions import csrf


def register_api(app: Flask) -> None:
    # Tokens are not cookies: a forged cross-site request cannot carry one. Session-cookie
    # callers are held to the CSRF token when they authenticate (framework._authenticate).
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_error_handler(ApiError, _api_error)


def _api_error(error: ApiError) -> object:
    return error_response(error.status, error.code, error.message, error.fields, error.headers)
