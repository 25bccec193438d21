"""JSON API v1 and its OpenAPI document (DESIGN.md §4), over the same services as the pages."""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from flapwatch.services import Forbidden, InvalidInput, NotFound, ServiceError

PREFIX = "/api/"

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def register_api(app: Flask) -> None:
    from flapwatch.api import endpoints  # noqa: F401  (declares the operations)
    from flapwatch.api.framework import ApiError, bp
    from flapwatch.web import csrf

    # Tokens are not cookies: a forged cross-site request cannot carry one. Session-cookie
    # callers are held to the CSRF token when they authenticate (framework._authenticate).
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_error_handler(ApiError, error_response_for)


def is_api_request() -> bool:
    return request.path.startswith(PREFIX)


def error_response_for(error: BaseException) -> Response:
    """Any failure under /api/ as the documented JSON error: never an HTML page or a trace."""
    from flapwatch.api.framework import ApiError, error_response

    if isinstance(error, ApiError):
        return error_response(error.status, error.code, error.message, error.fields, error.headers)
    if isinstance(error, ServiceError):
        general = error.problems.get("", "")
        fields = {name: text for name, text in error.problems.items() if name}
        message = f"{error.message} {general}".strip()
        if isinstance(error, NotFound):
            return error_response(404, "not_found", message, fields)
        if isinstance(error, Forbidden):
            return error_response(403, "forbidden", message, fields)
        if isinstance(error, InvalidInput):
            return error_response(422, "unprocessable", message, fields)
        return error_response(422, "unprocessable", message, fields)
    if isinstance(error, HTTPException) and error.code is not None and error.code < 500:
        code = error.code
        headers = {name: value for name, value in error.get_headers() if name.lower() == "allow"}
        message = {
            404: "No such API path: see /api/v1/openapi.json.",
            405: "This path does not take that method: see the Allow header.",
            413: "The body is too large.",
        }.get(code, error.description or error.name)
        return error_response(code, _HTTP_CODES.get(code, "error"), message, headers=headers)
    return error_response(
        500,
        "internal_error",
        "Something went wrong on the server. Retry with the same Idempotency-Key, and quote "
        "the request id if it persists.",
    )
