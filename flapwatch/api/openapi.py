"""The OpenAPI 3.1 document, written from the declared operations and their pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from flapwatch.api import schemas
from flapwatch.api.framework import OPERATIONS, Operation
from flapwatch.http.access import EVERY_ROLE
from flapwatch.http.errors import Error

REF = "#/components/schemas/{model}"

_ERROR_WORDS = {
    400: "The request does not match this document: malformed JSON, a missing or unknown "
    "field, a wrong type, a value outside its vocabulary or range, a bad cursor, or a control "
    "character in the address. `fields` names each one of the body or query.",
    401: "No valid bearer token.",
    403: "The token's role may not do this.",
    404: "No such object in the token's units (objects of other units are not revealed).",
    409: "The Idempotency-Key was already used with a different request.",
    413: "The body is larger than the server accepts.",
    415: "The body is not sent as application/json.",
    422: "Well-formed, but refused by the ward's rules (for example a check time in the future, "
    "nothing assessed, monitoring ended, a bed already taken). `fields` says why.",
    501: "Not available yet.",
    503: "The database is not answering: nothing was read or saved. Retry after the "
    "Retry-After seconds, with the same Idempotency-Key.",
}

DESCRIPTION = """\
The flapwatch JSON API: devices (implantable Doppler, tissue oximetry) and hospital systems
put flap checks in and read flags, escalations and records out, through the same rules and
audit trail as the ward's tablets.

**Authentication**: `Authorization: Bearer <token>`. An administrator makes a token with
`flapwatch create-token USERNAME`; it acts with that account's role and units, and can be
revoked (`flapwatch revoke-token ID`). Objects of units the account does not work in answer
404.

**Times** are ISO 8601 with a UTC offset, in and out.

**Errors** are `{"error": {"code", "message", "fields": {name: message}, "request_id"}}`:
400 the request does not match this document, 401, 403, 404, 409, 413, 415, 422 a
well-formed request the ward's rules refuse, and 503 (`unavailable`, with Retry-After) while
the database does not answer.

**Idempotency**: send `Idempotency-Key` (e.g. a UUID) with any POST. A retry with the same
key and body gets the first answer again (with `Idempotent-Replayed: true`) and stores
nothing twice; the same key with another body is 409. Only successful answers are kept, for
7 days: a refused request may be corrected and sent again with its key.

**Lists** take `limit` (1–200, default 50) and `cursor`; pass `next_cursor` from one page to
get the next (null on the last page).
"""


def _operation_models() -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    incoming: list[type[BaseModel]] = []
    outgoing: list[type[BaseModel]] = [Error]
    for op in OPERATIONS:
        if op.body is not None and op.body not in incoming:
            incoming.append(op.body)
        if op.response is not None and op.response not in outgoing:
            outgoing.append(op.response)
    return incoming, outgoing


def _components() -> dict[str, Any]:
    incoming, outgoing = _operation_models()
    _, definitions = models_json_schema(
        [(model, "validation") for model in incoming]
        + [(model, "serialization") for model in outgoing],
        ref_template=REF,
    )
    return dict(definitions.get("$defs", {}))


def _schema_name(model: type[BaseModel], mode: str, components: dict[str, Any]) -> str:
    """pydantic suffixes a model's name when its input and output schemas differ."""
    suffixed = f"{model.__name__}-{'Input' if mode == 'validation' else 'Output'}"
    return suffixed if suffixed in components else model.__name__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _query_parameters(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        # A query parameter is present or absent; it is never JSON null.
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            prop.update(branches[0] if len(branches) == 1 else {"anyOf": branches})
        if "default" in prop and prop["default"] is None:
            del prop["default"]
        prop.pop("title", None)
        parameters.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
                **({"description": prop["description"]} if "description" in prop else {}),
            }
        )
    return parameters


def _path_parameter(name: str) -> dict[str, Any]:
    if name.endswith("_id"):
        schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": schemas.MAX_ID}
    else:
        schema = {"type": "string", "minLength": 1, "maxLength": 32, "pattern": "^[A-Za-z0-9-]+$"}
    return {"name": name, "in": "path", "required": True, "schema": schema}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a POST safe to retry: the same key and body return the first answer.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def _error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors)
    if op.roles is not None:
        statuses.add(401)
        if set(op.roles) != set(EVERY_ROLE):
            statuses.add(403)
    if op.path_parameters:
        statuses |= {400, 404}  # 400: a control character in the address
    if op.query is not None:
        statuses.add(400)
        if "unit" in op.query.model_fields:
            statuses.add(404)
    if op.body is not None:
        statuses |= {400, 413, 415}
    if op.method == "POST" and op.body is not None:
        statuses.add(409)
    if op.roles is not None:
        statuses.add(503)  # every operation that reads the database
    return sorted(statuses)


def _success(op: Operation, status: int, components: dict[str, Any]) -> dict[str, Any]:
    assert op.response is not None
    success: dict[str, Any] = {
        "description": _SUCCESS_WORDS.get(status, "OK"),
        "content": {
            "application/json": {
                "schema": _ref(_schema_name(op.response, "serialization", components))
            }
        },
    }
    headers: dict[str, Any] = {}
    if status == 201:
        headers["Location"] = {
            "description": "Where the new object can be read.",
            "schema": {"type": "string"},
        }
    if op.method == "POST" and op.body is not None:
        headers["Idempotent-Replayed"] = {
            "description": "`true` when this is the stored answer to an earlier request "
            "with the same Idempotency-Key.",
            "schema": {"type": "string", "enum": ["true"]},
        }
    if headers:
        success["headers"] = headers
    return success


_SUCCESS_WORDS = {201: "Created", 200: "OK"}


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {
        "operationId": op.endpoint,
        "summary": op.summary,
        "tags": [op.tag],
    }
    if op.description:
        document["description"] = op.description
    if op.roles is None:
        document["security"] = []
    else:
        roles = ", ".join(op.roles)
        document["description"] = (document.get("description", "") + f"\n\nRoles: {roles}.").strip()
    parameters = [_path_parameter(name) for name in op.path_parameters]
    if op.query is not None:
        parameters += _query_parameters(op.query, components)
    if op.method == "POST" and (op.body is not None or op.upload is not None):
        parameters.append(IDEMPOTENCY_KEY)
    if parameters:
        document["parameters"] = parameters
    if op.upload is not None:
        document["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": [op.upload],
                        "properties": {
                            op.upload: {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 3,
                                "items": {"type": "string", "format": "binary"},
                                "description": "1 to 3 photos: JPEG, PNG or HEIC, at most "
                                "20 MB and 50 megapixels each.",
                            }
                        },
                    },
                    "encoding": {op.upload: {"contentType": "image/jpeg, image/png, image/heic"}},
                }
            },
        }
    if op.body is not None:
        document["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref(_schema_name(op.body, "validation", components))
                }
            },
        }
    responses: dict[str, Any] = {}
    if op.media_type is not None and op.media_type.endswith("+json"):
        # A JSON document of another standard's (a FHIR Bundle): an object, described there.
        responses[str(op.status)] = {
            "description": f"The document ({op.media_type}).",
            "content": {
                op.media_type: {
                    "schema": {
                        "type": "object",
                        "required": ["resourceType"],
                        "properties": {"resourceType": {"type": "string"}},
                    }
                }
            },
        }
    elif op.media_type is not None:
        responses[str(op.status)] = {
            "description": f"The file ({op.media_type}).",
            "content": {op.media_type: {"schema": {"type": "string", "format": "binary"}}},
        }
    elif op.response is not None:
        for status in (op.status, *op.also):
            responses[str(status)] = _success(op, status, components)
    elif 501 not in op.errors:
        responses[str(op.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    for status in _error_statuses(op):
        responses[str(status)] = {
            "description": _ERROR_WORDS[status],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    document["responses"] = responses
    return document


def openapi_document(server_url: str = "/api/v1") -> dict[str, Any]:
    components = _components()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "flapwatch API",
            "version": "1",
            "description": DESCRIPTION,
        },
        "servers": [{"url": server_url}],
        "security": [{"bearerAuth": []}],
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A token from `flapwatch create-token USERNAME`.",
                }
            },
        },
    }
