"""Generic sessions (any key), batches, key listing: contract §3.3, §3.4, §3.8."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tokenginx.transport.http.calls import Door, opt_int, req_str, str_list
from tokenginx.transport.http.endpoints import (
    ANY,
    BASE64_PATTERN,
    INT,
    KEY_IN,
    NULLABLE_TIME,
    STR,
    TTL_IN,
    Endpoint,
    obj,
    request_obj,
    success_of,
)
from tokenginx.transport.http.envelope import ApiError, invalid, json_response, not_found, success
from tokenginx.transport.http.values import BASE64, decode_value, encode_value, text

KEY_TYPES = ("string", "hash", "set")


def rfc3339(ms: int) -> str:
    seconds = ms // 1000
    if 0 <= seconds < _YEAR_10000:  # time.gmtime is twice as fast as datetime.strftime
        return _RFC3339(*time.gmtime(seconds)[:6])
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_RFC3339 = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format
_YEAR_10000 = 253402300800  # Unix seconds of 10000-01-01: datetime's range ends before it


def expiry_fields(now_ms: int, pttl: int) -> dict[str, Any]:
    """``ttl`` in seconds (-1 = no expiry) and ``expires_at`` (null without expiry)."""
    if pttl < 0:
        return {"ttl": -1, "expires_at": None}
    return {"ttl": (pttl + 999) // 1000, "expires_at": rfc3339(now_ms + pttl)}


# The batch endpoints' names: GET/HEAD/DELETE of these paths answer 405 (their resource
# is the POST batch operation), so such keys are reachable over RESP only.
BATCH_NAMES = frozenset({"batch/get", "batch/set", "batch/delete"})


def _key(request: Request) -> bytes:
    key = request.path_params["key"]
    if not key:
        raise invalid("key", "must not be empty")
    if key in BATCH_NAMES:
        raise ApiError(405, "METHOD_NOT_ALLOWED", "Method not allowed", headers={"Allow": "POST"})
    return key.encode("utf-8", "surrogateescape")


def _set_argv(key: bytes, value: bytes, ttl: int) -> list[bytes]:
    argv = [b"SET", key, value]
    if ttl > 0:
        argv += [b"EX", str(ttl).encode()]
    return argv


def _value_in(body: dict[str, Any], prefix: str = "") -> bytes:
    if "value" not in body:
        raise invalid(prefix + "value", "is required")
    encoding = body.get("encoding")
    if encoding is None:
        encoding = "json"
    if encoding not in ("json", BASE64):
        raise invalid(prefix + "encoding", "must be 'json' or 'base64'")
    try:
        return encode_value(body["value"], encoding)
    except (ValueError, TypeError) as e:
        raise invalid(prefix + "value", str(e)) from None


def build(door: Door) -> list[Endpoint]:
    config = door.server.config
    state = door.state
    max_items = config.limits.multibulk_len - 1

    async def create(request: Request) -> Response:
        body = await door.json_body(request)
        key = req_str(body, "key")
        value = _value_in(body)
        ttl = opt_int(body, "ttl", 0) or 0
        client = door.client(request)
        kb = key.encode()
        door.call(client, *_set_argv(kb, value, ttl))
        data = {"key": key, **expiry_fields(state.clock(), ttl * 1000 if ttl else -1)}
        return success(data, "Session created", 201)

    async def get(request: Request) -> Response:
        key = _key(request)
        client = door.client(request)
        raw = door.call(client, b"GET", key)
        if raw is None:
            raise not_found("Session not found")
        pttl = door.call(client, b"PTTL", key)
        value, encoding = decode_value(raw)
        session: dict[str, Any] = {
            "key": text(key),
            "value": value,
            "created_at": None,
            **expiry_fields(state.clock(), pttl),
        }
        if encoding:
            session["encoding"] = encoding
        # decisions.md §9: the fields at the top level (seed 000 reads session['value'])
        # and the same object under "data" (the contract's envelope).
        return json_response({"status": "success", **session, "data": session})

    async def head(request: Request) -> Response:
        key = _key(request)
        client = door.client(request)
        exists = door.call(client, b"EXISTS", key)
        return Response(status_code=200 if exists else 404)

    async def delete(request: Request) -> Response:
        key = _key(request)
        client = door.client(request)
        if not door.call(client, b"DEL", key):
            raise not_found("Session not found")
        return success(message="Session deleted")

    async def set_ttl(request: Request) -> Response:
        key = _key(request)
        body = await door.json_body(request)
        if body.get("ttl") is None:
            raise invalid("ttl", "is required")
        ttl = opt_int(body, "ttl", 0) or 0
        client = door.client(request)
        if ttl > 0:
            found = door.call(client, b"EXPIRE", key, str(ttl).encode())
        else:  # 0 removes the expiry, as ttl 0 means "never expires" on create
            found = door.call(client, b"EXISTS", key) and (door.call(client, b"PERSIST", key) or True)
        if not found:
            raise not_found("Session not found")
        pttl = door.call(client, b"PTTL", key)
        return success({"key": text(key), **expiry_fields(state.clock(), pttl)})

    async def batch_get(request: Request) -> Response:
        body = await door.json_body(request)
        keys = str_list(body, "keys", max_items=max_items)
        client = door.client(request)
        data: dict[str, Any] = {}
        if keys:
            values = door.call(client, b"MGET", *(k.encode() for k in keys))
            for k, raw in zip(keys, values):
                data[k] = None if raw is None else decode_value(raw)[0]
        return success(data)

    async def batch_set(request: Request) -> Response:
        body = await door.json_body(request)
        items = body.get("sessions")
        if not isinstance(items, list):
            raise invalid("sessions", "must be an array of {key, value, ttl} objects")
        if len(items) > max_items:
            raise invalid("sessions", f"must have at most {max_items} items")
        argvs = []
        for i, item in enumerate(items):
            prefix = f"sessions[{i}]."
            if not isinstance(item, dict):
                raise invalid(f"sessions[{i}]", "must be an object")
            key = req_str(item, "key", prefix=prefix)
            value = _value_in(item, prefix)
            ttl = opt_int(item, "ttl", 0, prefix=prefix) or 0
            argvs.append(_set_argv(key.encode(), value, ttl))
        client = door.client(request)
        created = 0
        errors = []
        for i, argv in enumerate(argvs):
            reply = door.gate.execute(client, argv)
            if isinstance(reply, Exception):
                errors.append({"index": i, "key": text(argv[1]), "reason": str(reply)})
            else:
                created += 1
        return success({"created": created, "failed": len(errors), "errors": errors})

    async def batch_delete(request: Request) -> Response:
        body = await door.json_body(request)
        keys = str_list(body, "keys", max_items=max_items)
        client = door.client(request)
        deleted = door.call(client, b"DEL", *(k.encode() for k in keys)) if keys else 0
        return success({"deleted": deleted})

    async def list_keys(request: Request) -> Response:
        q = request.query_params
        pattern = q.get("pattern", "*") or "*"
        cursor = _query_int(q.get("cursor"), "cursor", 0, 0, 2**63 - 1)
        count = _query_int(q.get("count"), "count", 100, 1, 10000)
        argv = [b"SCAN", str(cursor).encode(), b"MATCH", pattern.encode(), b"COUNT", str(count).encode()]
        kind = q.get("type")
        if kind is not None:
            if kind not in KEY_TYPES:
                raise invalid("type", "must be one of " + ", ".join(KEY_TYPES))
            argv += [b"TYPE", kind.encode()]
        client = door.client(request)
        next_cursor, keys = door.call(client, *argv)
        return success({"cursor": int(next_cursor), "keys": [text(k) for k in keys]})

    session_out = obj(
        {
            "key": STR,
            "value": ANY,
            "ttl": {"type": "integer", "minimum": -1},
            "created_at": NULLABLE_TIME,
            "expires_at": NULLABLE_TIME,
            "encoding": {"const": "base64"},
        },
        ["key", "value", "ttl", "created_at", "expires_at"],
    )
    expiry_out = obj(
        {"key": STR, "ttl": {"type": "integer", "minimum": -1}, "expires_at": NULLABLE_TIME},
        ["key", "ttl", "expires_at"],
    )
    value_in = {
        "key": KEY_IN,
        "value": {"description": "Any JSON value; a base64 string when encoding is base64"},
        "ttl": {**TTL_IN, "description": "Seconds to live; 0 or absent = no expiry"},
        "encoding": {"enum": ["json", "base64"]},
    }
    keys_in = obj({"keys": {"type": "array", "items": KEY_IN}}, ["keys"])
    session_in = {
        **request_obj(value_in, ["key", "value"]),
        # with encoding base64 the value is standard padded base64
        "if": {"properties": {"encoding": {"const": "base64"}}, "required": ["encoding"]},
        "then": {"properties": {"value": {"type": "string", "pattern": BASE64_PATTERN}}},
    }
    sessions_tag = "sessions"
    return [
        Endpoint(
            "POST", "/api/v1/sessions/batch/get", batch_get, "Get many sessions", "batch",
            "batchGet", request=keys_in,
            responses={200: ("Values by key; missing keys are null", success_of({"type": "object"}))},
        ),
        Endpoint(
            "POST", "/api/v1/sessions/batch/set", batch_set, "Set many sessions", "batch",
            "batchSet",
            request=obj({"sessions": {"type": "array", "items": session_in}}, ["sessions"]),
            responses={200: ("Counts", success_of(obj(
                {"created": INT, "failed": INT,
                 "errors": {"type": "array", "items": obj({"index": INT, "key": STR, "reason": STR})}},
                ["created", "failed"],
            )))},
        ),
        Endpoint(
            "POST", "/api/v1/sessions/batch/delete", batch_delete, "Delete many sessions", "batch",
            "batchDelete", request=keys_in,
            responses={200: ("Number deleted", success_of(obj({"deleted": INT}, ["deleted"])))},
        ),
        Endpoint(
            "POST", "/api/v1/sessions", create, "Create or replace a session", sessions_tag,
            "createSession", request=session_in,
            responses={201: ("Created", success_of(expiry_out, message=True))},
        ),
        Endpoint(
            "PATCH", "/api/v1/sessions/{key:path}/ttl", set_ttl, "Change a session's TTL",
            sessions_tag, "setSessionTtl",
            request=obj({"ttl": {**TTL_IN, "description": "Seconds; 0 removes the expiry"}}, ["ttl"]),
            responses={200: ("New TTL", success_of(expiry_out)), 404: ("No such session", None)},
        ),
        Endpoint(
            "GET", "/api/v1/sessions/{key:path}", get, "Read a session", sessions_tag, "getSession",
            responses={
                200: ("The session; its fields also at the top level", {
                    **session_out,
                    "properties": {**session_out["properties"], "status": {"const": "success"}, "data": session_out},
                    "required": [*session_out["required"], "status", "data"],
                }),
                404: ("No such session (or expired)", None),
            },
        ),
        Endpoint(
            "HEAD", "/api/v1/sessions/{key:path}", head, "Does a session exist", sessions_tag,
            "sessionExists", responses={200: ("Exists", None), 404: ("Does not exist", None)},
        ),
        Endpoint(
            "DELETE", "/api/v1/sessions/{key:path}", delete, "Delete a session", sessions_tag,
            "deleteSession",
            responses={200: ("Deleted", success_of(message=True)), 404: ("No such session", None)},
        ),
        Endpoint(
            "GET", "/api/v1/keys", list_keys, "List keys by pattern (cursor pagination)", "keys",
            "listKeys",
            query=[
                {"name": "pattern", "in": "query", "schema": {"type": "string", "default": "*"}},
                {"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "count", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}},
                {"name": "type", "in": "query", "schema": {"enum": list(KEY_TYPES)}},
            ],
            responses={200: ("A page of keys; cursor 0 means the end", success_of(obj(
                {"cursor": {"type": "integer", "minimum": 0}, "keys": {"type": "array", "items": STR}},
                ["cursor", "keys"],
            )))},
        ),
    ]


def _query_int(raw: str | None, name: str, default: int, lo: int, hi: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if not lo <= value <= hi:
        raise invalid(name, f"must be between {lo} and {hi}")
    return value



