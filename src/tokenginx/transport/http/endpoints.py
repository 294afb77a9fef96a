"""The declaration an endpoint is built from: route, handler and its OpenAPI description.

One list of :class:`Endpoint` produces both the Starlette routes and the OpenAPI
document, so the document cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Endpoint:
    method: str
    path: str  # Starlette syntax: {key:path} for keys that may contain '/'
    handler: Handler
    summary: str
    tag: str
    operation_id: str
    auth: bool = True
    request: dict[str, Any] | None = None  # JSON schema of the body
    form: bool = False  # also accepts application/x-www-form-urlencoded
    query: list[dict[str, Any]] = field(default_factory=list)  # OpenAPI parameter objects
    responses: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    content_type: str = "application/json"  # of the success responses


# -- reusable schema fragments -----------------------------------------------------------
def obj(properties: dict[str, Any], required: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def request_obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A request body schema: optional fields may also be ``null`` (treated as absent)."""
    req = set(required or [])
    props = {name: schema if name in req else nullable(schema) for name, schema in properties.items()}
    return obj(props, required)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        return {**schema, "type": [*kinds, "null"]} if "null" not in kinds else schema
    return schema  # no type constraint: null is already allowed


# Standard base64 with padding, as the server decodes it (validate=True).
BASE64_PATTERN = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ANY: dict[str, Any] = {}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
TIME = {"type": "string", "format": "date-time"}
TTL_IN = {"type": "integer", "minimum": 0, "maximum": 315360000}
KEY_IN = {"type": "string", "minLength": 1}
STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

ERROR = obj(
    {
        "status": {"const": "error"},
        "error": obj(
            {
                "code": STR,
                "message": STR,
                "details": obj({"field": STR, "reason": STR}),
            },
            ["code", "message"],
        ),
    },
    ["status", "error"],
)


def success_of(data: dict[str, Any] | None = None, message: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"status": {"const": "success"}}
    required = ["status"]
    if message:
        props["message"] = STR
        required.append("message")
    if data is not None:
        props["data"] = data
        required.append("data")
    return obj(props, required)
