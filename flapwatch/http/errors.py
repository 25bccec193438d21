"""Every failure answered in the caller's language: under /api/ the documented JSON error,
never an HTML page or a trace; on the pages, a page a nurse can act on."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import sqlalchemy.exc
from flask import Flask, Response, current_app, g, render_template, request
from flask_wtf.csrf import CSRFError
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import HTTPException

from flapwatch.services import Forbidden, InvalidInput, NotFound, ServiceError

API_PREFIX = "/api/"
UNAVAILABLE_RETRY_SECONDS = 30

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


# The body of every API answer that is not a success (the OpenAPI document's Error). No
# docstrings: they would become the document's descriptions.
class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="Stable machine-readable code, e.g. invalid_request, unprocessable."
    )
    message: str = Field(description="What went wrong, in words a person can act on.")
    fields: dict[str, str] = Field(
        default_factory=dict, description="Each refused field (dotted path) and why."
    )
    request_id: str | None = Field(default=None, description="Quote this when reporting it.")


class Error(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def json_response(body: Any, status: int) -> Response:
    return Response(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: Iterable[tuple[str, str]] | dict[str, str] = (),
) -> Response:
    body = Error(
        error=ErrorDetail(
            code=code, message=message, fields=fields or {}, request_id=g.get("request_id")
        )
    )
    response = json_response(body.model_dump(mode="json"), status)
    for name, value in dict(headers).items():
        response.headers[name] = value
    return response


def error_response_for(error: BaseException) -> Response:
    """Any failure under /api/ as the documented JSON error."""
    if isinstance(error, ServiceError):
        general = error.problems.get("", "")
        fields = {name: text for name, text in error.problems.items() if name}
        message = f"{error.message} {general}".strip()
        if isinstance(error, NotFound):
            return error_response(404, "not_found", message, fields)
        if isinstance(error, Forbidden):
            return error_response(403, "forbidden", message, fields)
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


def register_error_handlers(app: Flask) -> None:
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
