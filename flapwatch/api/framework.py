"""How an API operation is declared once and becomes a route, its checks and its OpenAPI entry.

`@operation(...)` names the method, path, roles, query, body and response models of a view.
From that one declaration the route is registered, the caller authenticated and their role
checked, the query and body validated into pydantic models, a POST made idempotent, the
answer serialised, and the OpenAPI document written. The view itself only calls services.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, request
from flask_login import current_user
from pydantic import BaseModel, ValidationError

from flapwatch.api import schemas
from flapwatch.db import get_session, write_transaction
from flapwatch.domain.checks import FIELD_LABELS, RANGE_TEXT
from flapwatch.http.access import actor_of
from flapwatch.http.errors import json_response
from flapwatch.http.photos import accepts_photos, uploads_of
from flapwatch.http.sessions import csrf
from flapwatch.services import Actor, InvalidInput
from flapwatch.services.idempotency import (
    Answer,
    fingerprint,
    form_fingerprint,
    key_problem,
    once,
)
from flapwatch.services.photos import Upload
from flapwatch.services.tokens import user_for_token

bp = Blueprint("api", __name__, url_prefix="/api/v1")

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_PATH_PARAMETER = re.compile(r"{(\w+)}")


class ApiError(Exception):
    """An answer other than success: becomes `{"error": {code, message, fields}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


@dataclass(frozen=True)
class Reply:
    """What a view answers: a model, and for a creation its status and Location."""

    model: BaseModel
    status: int | None = None
    location: str | None = None

    def answer(self, status: int) -> Answer:
        """As it is sent and kept under an Idempotency-Key; `status` unless it names its own."""
        return Answer(
            self.status or status, self.model.model_dump(mode="json", by_alias=True), self.location
        )


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: str
    summary: str
    description: str
    tag: str
    # None: open to anyone without a token (the OpenAPI document itself).
    roles: tuple[str, ...] | None
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...] = field(default=())
    # Other success statuses it may answer with the same response model.
    also: tuple[int, ...] = field(default=())
    # A file rather than JSON (a chart, a report): its media type.
    media_type: str | None = None
    # A multipart/form-data body of files (photos) under this field, instead of JSON.
    upload: str | None = None

    @property
    def path_parameters(self) -> list[str]:
        return _PATH_PARAMETER.findall(self.path)


OPERATIONS: list[Operation] = []


def _flask_rule(path: str) -> str:
    def converter(match: re.Match[str]) -> str:
        name = match.group(1)
        return f"<int:{name}>" if name.endswith("_id") else f"<{name}>"

    return _PATH_PARAMETER.sub(converter, path)


def operation(
    method: str,
    path: str,
    *,
    summary: str,
    tag: str,
    roles: tuple[str, ...] | None,
    response: type[BaseModel] | None,
    status: int = 200,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    description: str = "",
    errors: tuple[int, ...] = (),
    also: tuple[int, ...] = (),
    media_type: str | None = None,
    upload: str | None = None,
) -> Callable[[Callable[..., Reply | BaseModel | Response]], Callable[..., Response]]:
    """Declare an API operation; the decorated view receives `actor`, `session`, `query` and
    `body` (when declared) and the path parameters, and returns a model or a Reply."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        op = Operation(
            method=method,
            path=path,
            endpoint=view.__name__,
            summary=summary,
            description=description,
            tag=tag,
            roles=roles,
            query=query,
            body=body,
            response=response,
            status=status,
            errors=errors,
            also=also,
            media_type=media_type,
            upload=upload,
        )

        def handle(**path_values: Any) -> Response:
            return _handle(op, view, path_values)

        if upload is not None:
            accepts_photos(handle)

        handle.__name__ = view.__name__
        handle.__doc__ = view.__doc__
        # The access-control test reads this, as it reads the HTML views' roles.
        handle.allowed_roles = frozenset(roles) if roles is not None else None  # type: ignore[attr-defined]
        bp.add_url_rule(
            _flask_rule(path), endpoint=view.__name__, view_func=handle, methods=[method]
        )
        OPERATIONS.append(op)
        return handle

    return decorate


def _handle(op: Operation, view: Callable[..., Any], path_values: dict[str, Any]) -> Response:
    actor = _authenticate() if op.roles is not None else None
    for name, value in path_values.items():
        if isinstance(value, int) and value > schemas.MAX_ID:
            raise ApiError(404, "not_found", f"No such {name.removesuffix('_id')}: {value}.")
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            raise ApiError(404, "not_found", f"Nothing is called that ({name}).")
    kwargs: dict[str, Any] = dict(path_values)
    if actor is not None:
        if actor.role not in op.roles:  # type: ignore[operator]
            raise ApiError(
                403, "forbidden", f"A {actor.role.replace('_', ' ')} cannot {op.summary.lower()}."
            )
        kwargs["actor"] = actor
    kwargs["session"] = get_session()
    if op.query is not None:
        query = op.query
        kwargs["query"] = _validated(lambda: query.model_validate(dict(request.args)))
    payload: Any = None
    if op.body is not None:
        payload, kwargs["body"] = _parse_body(op.body)
    if op.upload is not None:
        payload, kwargs["uploads"] = _parse_upload(op.upload)
    if op.method in SAFE_METHODS:
        result = view(**kwargs)
        if isinstance(result, Response):
            return result
        return _sent(_as_reply(result).answer(op.status), replayed=False)
    assert actor is not None
    return _write(op, actor, payload, lambda: _as_reply(view(**kwargs)))


def _as_reply(result: Reply | BaseModel) -> Reply:
    return result if isinstance(result, Reply) else Reply(result)


def _write(op: Operation, actor: Actor, payload: Any, call: Callable[[], Reply]) -> Response:
    """One transaction for the whole request; with an Idempotency-Key, its answer is stored
    in that transaction too, and a retry gets the stored answer."""
    session = get_session()
    key = request.headers.get("Idempotency-Key")
    if key is None or op.method != "POST" or actor.user_id is None:
        with write_transaction(session):
            answer = call().answer(op.status)
        return _sent(answer, replayed=False)
    if (problem := key_problem(key)) is not None:
        raise ApiError(400, "invalid_request", problem, {"Idempotency-Key": problem})
    request_fingerprint = fingerprint(op.method, request.path, payload)
    outcome = once(
        session, actor.user_id, key, request_fingerprint, lambda: call().answer(op.status), _itself
    )
    if isinstance(outcome, Answer):
        return _sent(outcome, replayed=False)
    if outcome.fingerprint not in (request_fingerprint, form_fingerprint(request.path)):
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was already used for a different request: send a new key "
            "for a new request.",
            {"Idempotency-Key": "Already used for a different request."},
        )
    return _sent(Answer(outcome.status_code, outcome.body, outcome.location), replayed=True)


def _itself(answer: Answer) -> Answer:
    return answer


def _sent(answer: Answer, *, replayed: bool) -> Response:
    response = json_response(answer.body, answer.status)
    if answer.location:
        response.headers["Location"] = answer.location
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


# --- who is calling --------------------------------------------------------------------------


def _authenticate() -> Actor:
    """A bearer token; or, for the ward's own pages, the logged-in session with its CSRF
    token on anything that writes."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        user = (
            user_for_token(get_session(), token.strip())
            if scheme.lower() == "bearer" and token.strip()
            else None
        )
        if user is None:
            raise ApiError(
                401,
                "unauthorized",
                "The token is not valid: unknown, revoked or expired, or its account is "
                "deactivated. Send 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": 'Bearer realm="flapwatch", error="invalid_token"'},
            )
        return actor_of(user)
    if current_user.is_authenticated:
        if request.method not in SAFE_METHODS:
            csrf.protect()
        return actor_of(current_user)
    raise ApiError(
        401,
        "unauthorized",
        "Authentication required: send 'Authorization: Bearer <token>' "
        "(flapwatch create-token USERNAME makes one).",
        headers={"WWW-Authenticate": 'Bearer realm="flapwatch"'},
    )


# --- validation ------------------------------------------------------------------------------


def _validated(validate: Callable[[], BaseModel]) -> BaseModel:
    try:
        return validate()
    except ValidationError as error:
        raise ApiError(
            400,
            "invalid_request",
            "The request was refused: see the fields.",
            problems_of(error),
        ) from None


def _parse_body(model: type[BaseModel]) -> tuple[Any, BaseModel]:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the body as JSON with 'Content-Type: application/json'.",
        )
    raw = request.get_data(cache=True)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
    return payload, _validated(lambda: model.model_validate_json(raw))


def _parse_upload(name: str) -> tuple[Any, list[Upload] | None]:
    """The files of a multipart body's field `name` (None: the body is not multipart; the
    view says so once it has found what they are for, so that the answer says nothing of an
    object of another unit), and what a retry is known by: the SHA-256 of each (the same
    photos sent again under one Idempotency-Key are the same request)."""
    if request.mimetype != "multipart/form-data":
        return None, None
    uploads = uploads_of(request.files.getlist(name))
    return [hashlib.sha256(upload.data).hexdigest() for upload in uploads], uploads


def require_uploads(uploads: list[Upload] | None, name: str) -> list[Upload]:
    """The files sent, or the reason none were."""
    if uploads is None:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send the photos as multipart/form-data, each file in a part named '{name}'.",
        )
    if not uploads:
        raise InvalidInput("No photo was sent.", {name: f"Send 1 to 3 files named '{name}'."})
    return uploads


def problems_of(error: ValidationError) -> dict[str, str]:
    """pydantic's errors, one message per field, in the ward's words."""
    problems: dict[str, str] = {}
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"] if not _is_type_tag(part)]
        name = ".".join(location) or "body"
        problems.setdefault(name, _phrase(name, item))
    return problems


# pydantic names the branch of a union it tried ("float", "str", "function-after[...]").
def _is_type_tag(part: Any) -> bool:
    return isinstance(part, str) and (
        part in ("str", "int", "float", "bool", "date", "datetime", "list", "dict", "none")
        or "[" in part
        or part.startswith(("function-", "constrained-", "literal"))
        or (part[:1].isupper() and part not in FIELD_LABELS)
    )


def _phrase(name: str, item: Any) -> str:
    kind = item["type"]
    label = FIELD_LABELS.get(name, name.replace("_", " ").capitalize())
    if kind == "missing":
        return f"{label} is required."
    if kind == "extra_forbidden":
        return f"'{name}' is not a field of this request."
    if name in RANGE_TEXT and kind in (
        "greater_than_equal",
        "less_than_equal",
        "finite_number",
    ):
        return f"{label} must be between {RANGE_TEXT[name]}."
    if kind in (
        "timezone_aware",
        "datetime_type",
        "datetime_parsing",
        "datetime_from_date_parsing",
    ):
        return (
            f"{label} must be an ISO 8601 time with its UTC offset, e.g. 2026-11-25T14:30:00+00:00."
        )
    message = str(item["msg"]).replace("Input should be", "must be").replace("Value error, ", "")
    return f"{label} {message[0].lower()}{message[1:]}." if message else f"{label} is not valid."


# --- pages -----------------------------------------------------------------------------------


def encode_cursor(position: Iterable[Any]) -> str:
    text = json.dumps(list(position), separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _fits(value: Any, kind: type) -> bool:
    """A value a cursor of ours can hold: exactly that type (a JSON true is not an id), ids
    within the database's integers, short strings."""
    if type(value) is not kind:
        return False
    if kind is int:
        return 0 <= value <= schemas.MAX_ID
    return not isinstance(value, str) or len(value) <= 64


def decode_cursor(cursor: str | None, shape: tuple[type, ...]) -> list[Any] | None:
    """The position a cursor stands for, or a 400 naming `cursor` if it is not one of ours."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        position = json.loads(text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        position = None
    if (
        not isinstance(position, list)
        or len(position) != len(shape)
        or not all(_fits(value, kind) for value, kind in zip(position, shape, strict=True))
    ):
        raise ApiError(
            400,
            "invalid_request",
            "The cursor is not valid: pass next_cursor from the previous page unchanged.",
            {"cursor": "Not a cursor from this list."},
        )
    return position
