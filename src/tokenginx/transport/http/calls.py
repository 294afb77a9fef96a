"""From an HTTP request to gate calls: who is calling, the body, and the call itself.

Every REST endpoint turns its request into one or more argument vectors and runs them
through :meth:`Gate.execute` with a per-request :class:`Client` of kind ``"http"`` —
the same path a RESP command takes, so auth, limits, statistics, persistence and
keyspace events behave identically whichever door was used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request

from tokenginx.client import Client
from tokenginx.errors import CommandError
from tokenginx.gate.auth import authenticate_header
from tokenginx.transport.http.envelope import ApiError, from_command_error, invalid, unauthorized

if TYPE_CHECKING:
    from tokenginx.server import Server


class Door:
    """What every endpoint needs: the server, and helpers bound to it."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.state = server.state
        self.gate = server.gate
        self.body_limit = server.config.limits.http_body_bytes

    def client(self, request: Request) -> Client:
        """A client for this request, authenticated from its headers or refused (401)."""
        peer = request.scope.get("client")
        addr = f"{peer[0]}:{peer[1]}" if peer else ""
        client = Client(self.state, kind="http", addr=addr)
        if not client.authenticated:
            # The first of each header, as Headers.get gives it, without building Headers.
            authorization = api_key = None
            for name, value in request.scope["headers"]:
                if name == b"authorization":
                    if authorization is None:
                        authorization = value.decode("latin-1")
                elif name == b"x-api-key" and api_key is None:
                    api_key = value.decode("latin-1")
            if not authenticate_header(client, authorization, api_key):
                raise unauthorized()
        return client

    def call(self, client: Client, *argv: bytes) -> Any:
        """Run one command through the gate; an error reply becomes an :class:`ApiError`."""
        reply = self.gate.execute(client, list(argv))
        if isinstance(reply, CommandError):
            raise from_command_error(reply)
        return reply

    async def raw_body(self, request: Request) -> bytes:
        """The request body, within the size limit (413 beyond it, even when streamed)."""
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise invalid("Content-Length", "must be an integer") from None
            if declared > self.body_limit:
                raise too_large(self.body_limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.body_limit:
                raise too_large(self.body_limit)
            chunks.append(chunk)
        return b"".join(chunks)

    async def json_body(self, request: Request) -> dict[str, Any]:
        """The request body as a JSON object."""
        return parse_json_object(await self.raw_body(request))

    async def form_or_json(self, request: Request) -> dict[str, Any]:
        """Form fields (RFC 7662/7009 style) or a JSON object, by Content-Type."""
        raw = await self.raw_body(request)
        ctype = request.headers.get("content-type", "")
        if ctype.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded":
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise invalid("body", "form data must be UTF-8") from None
            return dict(parse_qsl(text, keep_blank_values=True))
        return parse_json_object(raw)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        raise invalid("body", "a JSON object is required")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise invalid("body", f"invalid JSON: {e}") from None
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    return body


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "PAYLOAD_TOO_LARGE",
        "Request body too large",
        {"field": "body", "reason": f"must be at most {limit} bytes (limits.http_body_bytes)"},
    )


# -- field validation: each names the offending field in the 400 -----------------------
def req_str(body: dict[str, Any], field: str, *, allow_empty: bool = False, prefix: str = "") -> str:
    value = body.get(field)
    name = prefix + field
    if value is None:
        raise invalid(name, "is required")
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if not value and not allow_empty:
        raise invalid(name, "must not be empty")
    return value


def opt_str(body: dict[str, Any], field: str, default: str = "", prefix: str = "") -> str:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(prefix + field, "must be a string")
    return value


def opt_int(
    body: dict[str, Any], field: str, default: int | None, *, minimum: int = 0, prefix: str = ""
) -> int | None:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 3600.0 is the integer 3600
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(prefix + field, "must be an integer")
    if value < minimum:
        raise invalid(prefix + field, f"must be at least {minimum}")
    if value > MAX_TTL:
        raise invalid(prefix + field, f"must be at most {MAX_TTL}")
    return value


def str_list(body: dict[str, Any], field: str, *, max_items: int) -> list[str]:
    value = body.get(field)
    if value is None:
        raise invalid(field, "is required")
    if not isinstance(value, list):
        raise invalid(field, "must be an array of strings")
    if len(value) > max_items:
        raise invalid(field, f"must have at most {max_items} items")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise invalid(f"{field}[{i}]", "must be a non-empty string")
    return value


def opt_object(body: dict[str, Any], field: str, prefix: str = "") -> dict[str, Any] | None:
    value = body.get(field)
    if value is not None and not isinstance(value, dict):
        raise invalid(prefix + field, "must be an object")
    return value


def str_map(body: dict[str, Any], field: str, prefix: str = "") -> dict[str, str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(prefix + field, "must be an object of strings")
    return value


# Ten years in seconds: beyond that a TTL is almost certainly a unit mistake (ms for s),
# and it keeps expiry arithmetic far from integer overflow in every client.
MAX_TTL = 10 * 365 * 24 * 3600
