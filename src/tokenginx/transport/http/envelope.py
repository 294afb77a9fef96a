"""Response shapes of the REST API: the success envelope, the error envelope, and the
mapping of gate errors (Redis-style prefixes) to HTTP status codes.

``{"status":"success","message"?,"data"?}`` and
``{"status":"error","error":{"code","message","details"?}}`` (contract §3.2).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from tokenginx.errors import CommandError

JSON = "application/json"


class ApiError(Exception):
    """An error answered with the error envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def invalid(field: str, reason: str) -> ApiError:
    """400 INVALID_REQUEST naming the offending field."""
    return ApiError(400, "INVALID_REQUEST", "Invalid request parameters", {"field": field, "reason": reason})


def not_found(message: str = "Not found") -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "UNAUTHORIZED",
        "Authentication required",
        headers={"WWW-Authenticate": 'Bearer realm="tokenginx"'},
    )


# Redis error prefix → (HTTP status, envelope code)
_BY_PREFIX: dict[str, tuple[int, str]] = {
    "NOAUTH": (401, "UNAUTHORIZED"),
    "WRONGPASS": (401, "UNAUTHORIZED"),
    "NOPERM": (403, "FORBIDDEN"),
    "WRONGTYPE": (409, "WRONG_TYPE"),
    "OOM": (507, "INSUFFICIENT_STORAGE"),
    "MISCONF": (503, "SERVICE_UNAVAILABLE"),
    "LOADING": (503, "SERVICE_UNAVAILABLE"),
    "BUSY": (503, "SERVICE_UNAVAILABLE"),
}


def from_command_error(err: CommandError) -> ApiError:
    """Translate a gate error into the envelope; the Redis text is kept as the message."""
    text = str(err)
    prefix = err.prefix
    message = text[len(prefix) + 1 :] if text.startswith(prefix + " ") else text
    if prefix == "ERR" and message.startswith("internal error"):
        return ApiError(500, "INTERNAL_ERROR", message)
    if prefix.startswith("ERR") and "rate limit" in message:
        return ApiError(429, "RATE_LIMIT_EXCEEDED", message)
    status, code = _BY_PREFIX.get(prefix, (400, "INVALID_REQUEST"))
    return ApiError(status, code, message)


def dumps(data: Any) -> bytes:
    return orjson.dumps(data)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, JSON)


def success(data: Any = None, message: str | None = None, status: int = 200) -> Response:
    body: dict[str, Any] = {"status": "success"}
    if message is not None:
        body["message"] = message
    if data is not None:
        body["data"] = data
    return Response(orjson.dumps(body), status, None, JSON)


def error_response(err: ApiError) -> Response:
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details is not None:
        error["details"] = err.details
    return Response(orjson.dumps({"status": "error", "error": error}), err.status, err.headers, JSON)
