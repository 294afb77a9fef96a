"""The OpenAPI 3.1 document, generated from the same endpoint list the routes are."""

from __future__ import annotations

import re
from typing import Any

from tokenginx.transport.http.endpoints import ERROR, Endpoint
from tokenginx.version import __version__

_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def openapi_path(path: str) -> str:
    """Starlette's ``{key:path}`` → OpenAPI's ``{key}``."""
    return _PARAM.sub(r"{\1}", path)


def document(endpoints: list[Endpoint], auth_required: bool) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        op: dict[str, Any] = {
            "operationId": ep.operation_id,
            "summary": ep.summary,
            "tags": [ep.tag],
            "responses": {},
        }
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "minLength": 1},
                "description": "URL-encoded; may contain ':' and '/'" if name == "key" else "",
            }
            for name in _PARAM.findall(ep.path)
        ]
        params += ep.query
        if params:
            op["parameters"] = params
        if ep.request is not None:
            content = {"application/json": {"schema": ep.request}}
            if ep.form:
                content["application/x-www-form-urlencoded"] = {"schema": ep.request}
            op["requestBody"] = {"required": True, "content": content}
        for status, (description, schema) in ep.responses.items():
            response: dict[str, Any] = {"description": description}
            if schema is not None and ep.method != "HEAD":
                ctype = ep.content_type if status < 300 else "application/json"
                if status >= 400:
                    schema = ERROR
                response["content"] = {ctype: {"schema": schema}}
            op["responses"][str(status)] = response
        if ep.method != "HEAD":
            op["responses"]["default"] = {
                "description": "Error envelope (400 invalid request, 401, 404, 409 wrong type, "
                "413 body too large, 503 loading, 507 out of memory …)",
                "content": {"application/json": {"schema": ERROR}},
            }
        else:
            op["responses"].setdefault("401", {"description": "Authentication required"})
        # Without authentication configured every operation is open, as Redis without a
        # password; the document says so rather than promising a check that is off.
        if ep.auth and auth_required:
            op["security"] = [{"bearer": []}, {"basic": []}, {"apiKey": []}]
        else:
            op["security"] = []
        paths.setdefault(openapi_path(ep.path), {})[ep.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "TokenginX REST API",
            "version": __version__,
            "description": "Sessions, OAuth tokens, SAML sessions and CAS tickets over HTTP. "
            "The same store and the same gate as the Redis protocol on port 6380 and gRPC on 9090.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "An API key (security.api_keys) or the requirepass password"},
                "basic": {"type": "http", "scheme": "basic",
                          "description": "User 'default' and the requirepass password or an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
    }
