"""The server-sent-events stream: the HTTP face of the keyspace event bus."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process


def read_events(resp: httpx.Response, want: int, timeout: float = 10) -> tuple[list[dict], list[str]]:
    """Parse SSE frames until ``want`` events arrived; returns (events, comments)."""
    events: list[dict] = []
    comments: list[str] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in resp.iter_lines():
        if time.monotonic() > deadline:
            break
        if line.startswith(":"):
            comments.append(line)
        elif line == "":
            if "data" in current:
                events.append({**json.loads(current["data"]), "sse": current.get("event"), "id": current.get("id")})
                if len(events) >= want:
                    break
            current = {}
        else:
            name, _, value = line.partition(":")
            current[name] = value.lstrip(" ")
    return events, comments


@pytest.fixture
def stream_server() -> Iterator[RunningServer]:
    srv = start_tokenginx("--set", "http.sse_heartbeat_seconds=0.2")
    yield srv
    stop_process(srv.proc)


def _in_background(fn) -> threading.Thread:  # type: ignore[no-untyped-def]
    def run() -> None:
        time.sleep(0.3)  # let the stream subscribe first
        fn()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_events_for_writes_over_resp_and_http(stream_server: RunningServer) -> None:
    r = redis.Redis(port=stream_server.port)
    http = httpx.Client(base_url=stream_server.http_url, timeout=10)

    def writes() -> None:
        r.set("sess:1", "a", ex=100)  # created (one event, not new+set+expire)
        r.set("sess:1", "b")  # updated
        r.set("other:1", "x")  # filtered out by the pattern
        http.post("/api/v1/sessions", json={"key": "sess:2", "value": {"u": 1}})  # created
        r.delete("sess:1")  # deleted
        r.set("sess:3", "x", px=100)  # created, then expired

    with httpx.Client(timeout=10) as c, c.stream("GET", f"{stream_server.http_url}/api/v1/events", params={"pattern": "sess:*"}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        t = _in_background(writes)
        events, _ = read_events(resp, 6)
        t.join()
    assert [(e["sse"], e["key"]) for e in events] == [
        ("created", "sess:1"),
        ("updated", "sess:1"),
        ("created", "sess:2"),
        ("deleted", "sess:1"),
        ("created", "sess:3"),
        ("expired", "sess:3"),
    ]
    assert all(e["type"] == e["sse"] and e["db"] == 0 and isinstance(e["timestamp"], int) for e in events)
    assert [int(e["id"]) for e in events] == list(range(1, 7))
    r.close()
    http.close()


def test_heartbeats_keep_idle_streams_alive(stream_server: RunningServer) -> None:
    with httpx.Client(timeout=10) as c, c.stream("GET", f"{stream_server.http_url}/api/v1/events") as resp:
        comments = []
        for line in resp.iter_lines():
            if line.startswith(":"):
                comments.append(line)
            if len(comments) >= 3:
                break
    assert comments[0] == ": connected"
    assert comments[1:] == [": keep-alive", ": keep-alive"]


def test_type_filter_and_validation(stream_server: RunningServer) -> None:
    r = redis.Redis(port=stream_server.port)
    with httpx.Client(timeout=10) as c:
        bad = c.get(f"{stream_server.http_url}/api/v1/events", params={"types": "created,bogus"})
        assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "types"
        with c.stream("GET", f"{stream_server.http_url}/api/v1/events", params={"types": "deleted"}) as resp:
            t = _in_background(lambda: (r.set("f:1", 1), r.delete("f:1")))
            events, _ = read_events(resp, 1)
            t.join()
    assert [(e["sse"], e["key"]) for e in events] == [("deleted", "f:1")]
    r.close()


def test_server_stops_with_open_streams(stream_server: RunningServer) -> None:
    c = httpx.Client(timeout=10)
    with c.stream("GET", f"{stream_server.http_url}/api/v1/events") as resp:
        next(resp.iter_lines())
        started = time.monotonic()
        stream_server.proc.terminate()
        assert stream_server.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
    c.close()
