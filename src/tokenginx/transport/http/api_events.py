"""``GET /api/v1/events``: keyspace events as a server-sent-events stream.

The HTTP face of the same event bus that feeds RESP keyspace notifications: each
change to a key matching ``pattern`` becomes one SSE message whose ``event`` is
``created``, ``updated``, ``deleted``, ``expired``, ``evicted``, ``revoked`` or
``consumed`` and whose ``data`` is a JSON object. Comment lines keep idle streams
alive through proxies. A subscriber that cannot keep up (more than
:data:`MAX_PENDING` undelivered events) gets an ``overflow`` event and is closed
rather than letting its backlog grow without bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tokenginx.storage.events import KeyEvent
from tokenginx.storage.glob import MAX_PATTERN_BYTES, compile_glob
from tokenginx.transport.http.api_sessions import _query_int
from tokenginx.transport.http.calls import Door
from tokenginx.transport.http.endpoints import Endpoint
from tokenginx.transport.http.envelope import invalid
from tokenginx.transport.http.values import text

MAX_PENDING = 10_000

# Redis event names → the stream's event types. Anything else that changes a value is
# an update; "expire"/"persist" (a TTL change) too.
_TYPES = {
    "new": "created",
    "del": "deleted",
    "rename_from": "deleted",
    "expired": "expired",
    "evicted": "evicted",
    "revoked": "revoked",
    "consumed": "consumed",
}
EVENT_TYPES = ("created", "updated", "deleted", "expired", "evicted", "revoked", "consumed")


def event_type(redis_event: str) -> str:
    return _TYPES.get(redis_event, "updated")


class EventStream:
    """One subscriber's queue: filled synchronously by the bus, drained by the response."""

    def __init__(self, keyspace: Any, db: int, pattern: bytes, types: set[str]) -> None:
        self.keyspace = keyspace
        self.db = db
        self.match = compile_glob(pattern)
        self.types = types
        self.pending: deque[tuple[str, bytes]] = deque()
        self.wakeup = asyncio.Event()
        self.overflowed = False
        self._last: tuple[bytes, str, int] | None = None

    def on_event(self, ev: KeyEvent) -> None:
        if ev.db != self.db or not self.match(ev.key):
            return
        kind = event_type(ev.event)
        # One write is one message. A SET of a new key signals "new", "set" and maybe
        # "expire" within one write (one step of the keyspace's dirty counter): the
        # stream shows it once, as created. A revocation or consumption is followed by
        # the key's "del": the stream shows the revocation only.
        dirty = self.keyspace.dirty
        last = self._last
        if last is not None and last[0] == ev.key:
            if kind == "updated" and last[2] == dirty:
                return
            if kind == "deleted" and last[1] in ("revoked", "consumed"):
                self._last = None
                return
        self._last = (ev.key, kind, dirty)
        if kind not in self.types:
            return
        if len(self.pending) >= MAX_PENDING:
            self.overflowed = True
        else:
            payload = {
                "type": kind,
                "key": text(ev.key),
                "db": ev.db,
                "event": ev.event,
                "timestamp": int(time.time() * 1000),
            }
            self.pending.append((kind, orjson.dumps(payload)))
        self.wakeup.set()


def build(door: Door) -> list[Endpoint]:
    state = door.state
    config = door.server.config

    async def events(request: Request) -> Response:
        q = request.query_params
        pattern = q.get("pattern", "*") or "*"
        if len(pattern.encode("utf-8", "surrogateescape")) > MAX_PATTERN_BYTES:
            raise invalid("pattern", f"longer than {MAX_PATTERN_BYTES} bytes")
        db = _query_int(q.get("db"), "db", 0, 0, config.server.databases - 1)
        types = set(EVENT_TYPES)
        if q.get("types"):
            types = {t.strip() for t in q["types"].split(",") if t.strip()}
            unknown = types - set(EVENT_TYPES)
            if unknown:
                raise invalid("types", "unknown event type(s): " + ", ".join(sorted(unknown)))
        door.client(request)  # authentication
        stream = EventStream(state.keyspace, db, pattern.encode("utf-8", "surrogateescape"), types)
        stopping: asyncio.Event = request.app.state.stopping
        heartbeat = config.http.sse_heartbeat_seconds
        unsubscribe = state.keyspace.on_change(stream.on_event)

        async def body() -> AsyncIterator[bytes]:
            seq = 0
            try:
                yield b"retry: 3000\n: connected\n\n"
                while not stopping.is_set():
                    if not stream.pending and not stream.overflowed:
                        stream.wakeup.clear()
                        try:
                            await asyncio.wait_for(stream.wakeup.wait(), heartbeat)
                        except asyncio.TimeoutError:
                            yield b": keep-alive\n\n"
                            continue
                    out = []
                    while stream.pending:
                        kind, data = stream.pending.popleft()
                        seq += 1
                        out.append(b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, kind.encode(), data))
                    if stream.overflowed:
                        out.append(b'event: overflow\ndata: {"reason":"subscriber too slow"}\n\n')
                        yield b"".join(out)
                        return
                    if out:
                        yield b"".join(out)
            finally:
                unsubscribe()

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return [
        Endpoint(
            "GET", "/api/v1/events", events, "Stream keyspace events (server-sent events)", "events",
            "events",
            query=[
                {"name": "pattern", "in": "query", "schema": {"type": "string", "default": "*"},
                 "description": "Glob over keys, as Redis KEYS/PSUBSCRIBE"},
                {"name": "db", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "types", "in": "query", "schema": {"type": "string"},
                 "description": "Comma-separated subset of " + ", ".join(EVENT_TYPES)},
            ],
            responses={200: ("An endless text/event-stream", {"type": "string"})},
            content_type="text/event-stream",
        )
    ]
