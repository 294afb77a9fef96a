"""The session API of contract §3.3–3.4 over a real socket, checked against RESP."""

from __future__ import annotations

import base64
import json
import socket

import httpx
import pytest
import redis

from tests.conftest import RunningServer


def test_create_get_delete_roundtrip(api: httpx.Client, r: redis.Redis) -> None:
    created = api.post("/api/v1/sessions", json={"key": "oauth:token:abc123", "value": {"user_id": "u1"}, "ttl": 3600})
    assert created.status_code == 201
    body = created.json()
    assert body["status"] == "success" and body["message"] == "Session created"
    assert body["data"]["key"] == "oauth:token:abc123"
    assert body["data"]["expires_at"].endswith("Z")

    got = api.get("/api/v1/sessions/oauth:token:abc123")
    assert got.status_code == 200
    session = got.json()
    # decisions.md §9: top-level fields and the same object under data
    assert session["value"] == {"user_id": "u1"} == session["data"]["value"]
    assert 3599 <= session["ttl"] <= 3600 and session["data"]["ttl"] == session["ttl"]
    assert session["status"] == "success"

    # written over HTTP → compact JSON text over RESP, with the TTL
    assert r.get("oauth:token:abc123") == b'{"user_id":"u1"}'
    assert 3599 <= r.ttl("oauth:token:abc123") <= 3600

    assert api.head("/api/v1/sessions/oauth:token:abc123").status_code == 200
    deleted = api.delete("/api/v1/sessions/oauth:token:abc123")
    assert deleted.status_code == 200
    assert deleted.json() == {"status": "success", "message": "Session deleted"}
    assert r.exists("oauth:token:abc123") == 0
    assert api.head("/api/v1/sessions/oauth:token:abc123").status_code == 404
    missing = api.delete("/api/v1/sessions/oauth:token:abc123")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert api.get("/api/v1/sessions/oauth:token:abc123").status_code == 404


@pytest.mark.parametrize("key", ["a:b/c:d", "with space", "ünïcødé:ключ", "slash/at/end/"])
def test_keys_with_colons_and_slashes_raw_and_percent_encoded(api: httpx.Client, r: redis.Redis, key: str) -> None:
    assert api.post("/api/v1/sessions", json={"key": key, "value": 1}).status_code == 201
    encoded = "".join(c if c.isalnum() else "".join(f"%{b:02X}" for b in c.encode()) for c in key)
    for path in (key, encoded):
        got = api.get(f"/api/v1/sessions/{path}")
        assert got.status_code == 200, path
        assert got.json()["key"] == key
    assert r.get(key.encode()) == b"1"
    patched = api.patch(f"/api/v1/sessions/{encoded}/ttl", json={"ttl": 50})
    assert patched.status_code == 200 and patched.json()["data"]["ttl"] == 50
    assert api.delete(f"/api/v1/sessions/{encoded}").status_code == 200
    assert r.exists(key.encode()) == 0


def test_values_written_over_resp_read_over_http(api: httpx.Client, r: redis.Redis) -> None:
    r.set("s:json", json.dumps({"username": "john", "roles": ["a"]}), ex=60)
    r.set("s:text", "plain text, not JSON")
    r.set("s:binary", b"\x00\xff\xfe binary")
    assert api.get("/api/v1/sessions/s:json").json()["value"] == {"username": "john", "roles": ["a"]}
    text = api.get("/api/v1/sessions/s:text").json()
    assert text["value"] == "plain text, not JSON" and "encoding" not in text
    binary = api.get("/api/v1/sessions/s:binary").json()
    assert binary["encoding"] == "base64"
    assert base64.b64decode(binary["value"]) == b"\x00\xff\xfe binary"
    assert binary["ttl"] == -1 and binary["expires_at"] is None


def test_binary_value_round_trips_through_base64(api: httpx.Client, r: redis.Redis) -> None:
    raw = bytes(range(256))
    body = {"key": "bin", "value": base64.b64encode(raw).decode(), "encoding": "base64"}
    assert api.post("/api/v1/sessions", json=body).status_code == 201
    assert r.get("bin") == raw
    got = api.get("/api/v1/sessions/bin").json()
    assert got["encoding"] == "base64" and base64.b64decode(got["value"]) == raw
    bad = api.post("/api/v1/sessions", json={**body, "value": "***"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "value"


def test_ttl_patch_and_persist(api: httpx.Client, r: redis.Redis) -> None:
    api.post("/api/v1/sessions", json={"key": "t", "value": "v", "ttl": 10})
    resp = api.patch("/api/v1/sessions/t/ttl", json={"ttl": 7200})
    assert resp.status_code == 200
    assert resp.json()["data"]["ttl"] == 7200 and r.ttl("t") == 7200
    resp = api.patch("/api/v1/sessions/t/ttl", json={"ttl": 0})
    assert resp.json()["data"] == {"key": "t", "ttl": -1, "expires_at": None}
    assert r.ttl("t") == -1
    assert api.patch("/api/v1/sessions/nope/ttl", json={"ttl": 5}).status_code == 404
    # a key that itself ends in /ttl can still be read with GET
    api.post("/api/v1/sessions", json={"key": "x/ttl", "value": 2})
    assert api.get("/api/v1/sessions/x/ttl").json()["value"] == 2


def test_expired_session_is_gone(api: httpx.Client, r: redis.Redis) -> None:
    r.set("short", "v", px=50)
    import time

    time.sleep(0.12)
    assert api.get("/api/v1/sessions/short").status_code == 404
    assert api.head("/api/v1/sessions/short").status_code == 404


def test_wrong_type_is_409(api: httpx.Client, r: redis.Redis) -> None:
    r.hset("h", "f", "v")
    resp = api.get("/api/v1/sessions/h")
    assert resp.status_code == 409
    assert resp.json()["error"]["code"] == "WRONG_TYPE"
    assert r.hgetall("h") == {b"f": b"v"}


def test_batch_get_set_delete(api: httpx.Client, r: redis.Redis) -> None:
    sessions = [{"key": f"b:{i}", "value": {"n": i}, "ttl": 100} for i in range(50)]
    resp = api.post("/api/v1/sessions/batch/set", json={"sessions": sessions})
    assert resp.json()["data"] == {"created": 50, "failed": 0, "errors": []}
    assert r.ttl("b:7") == 100
    got = api.post("/api/v1/sessions/batch/get", json={"keys": ["b:1", "b:2", "missing"]}).json()
    assert got["data"] == {"b:1": {"n": 1}, "b:2": {"n": 2}, "missing": None}
    deleted = api.post("/api/v1/sessions/batch/delete", json={"keys": ["b:1", "b:2", "missing"]})
    assert deleted.json()["data"] == {"deleted": 2}
    assert r.exists("b:1", "b:2", "b:3") == 1
    bad = api.post("/api/v1/sessions/batch/set", json={"sessions": [{"key": "ok", "value": 1}, {"key": "x", "value": 1, "ttl": -5}]})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["field"] == "sessions[1].ttl"
    assert r.exists("ok") == 0  # validated as a whole before anything is written


def test_keys_cursor_pagination_covers_everything(api: httpx.Client, r: redis.Redis) -> None:
    r.mset({f"page:{i}": i for i in range(1000)})
    r.set("other", 1)
    seen: set[str] = set()
    cursor = 0
    pages = 0
    while True:
        data = api.get("/api/v1/keys", params={"pattern": "page:*", "cursor": cursor, "count": 100}).json()["data"]
        assert isinstance(data["cursor"], int)
        seen.update(data["keys"])
        cursor = data["cursor"]
        pages += 1
        if cursor == 0:
            break
    assert seen == {f"page:{i}" for i in range(1000)}
    assert pages > 1


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/sessions", {"value": 1}, "key"),
        ("POST", "/api/v1/sessions", {"key": 5, "value": 1}, "key"),
        ("POST", "/api/v1/sessions", {"key": "k"}, "value"),
        ("POST", "/api/v1/sessions", {"key": "k", "value": 1, "ttl": "60"}, "ttl"),
        ("POST", "/api/v1/sessions", {"key": "k", "value": 1, "ttl": -1}, "ttl"),
        ("POST", "/api/v1/sessions", {"key": "k", "value": 1, "ttl": True}, "ttl"),
        ("POST", "/api/v1/sessions", {"key": "k", "value": 1, "ttl": 10**12}, "ttl"),
        ("POST", "/api/v1/sessions", [1, 2], "body"),
        ("PATCH", "/api/v1/sessions/k/ttl", {}, "ttl"),
        ("POST", "/api/v1/sessions/batch/get", {"keys": "k"}, "keys"),
        ("POST", "/api/v1/sessions/batch/get", {"keys": ["a", 3]}, "keys[1]"),
        ("POST", "/api/v1/sessions/batch/set", {"sessions": {}}, "sessions"),
    ],
)
def test_invalid_requests_name_the_field(api: httpx.Client, method: str, path: str, body: object, field: str) -> None:
    resp = api.request(method, path, json=body)
    assert resp.status_code == 400
    error = resp.json()
    assert error["status"] == "error"
    assert error["error"]["code"] == "INVALID_REQUEST"
    assert error["error"]["details"]["field"] == field


def test_malformed_json_and_wrong_query(api: httpx.Client) -> None:
    resp = api.post("/api/v1/sessions", content=b'{"key": ', headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["details"]["field"] == "body"
    resp = api.get("/api/v1/keys", params={"cursor": "abc"})
    assert resp.status_code == 400 and resp.json()["error"]["details"]["field"] == "cursor"
    resp = api.get("/api/v1/keys", params={"count": "0"})
    assert resp.status_code == 400 and resp.json()["error"]["details"]["field"] == "count"


def test_body_over_limit_is_413_and_server_survives() -> None:
    from tests.conftest import start_tokenginx, stop_process

    srv = start_tokenginx("--set", "limits.http_body_bytes=1000")
    try:
        with httpx.Client(base_url=srv.http_url, timeout=10) as api:
            resp = api.post("/api/v1/sessions", json={"key": "k", "value": "x" * 2000})
            assert resp.status_code == 413
            assert resp.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

            def chunks():  # no Content-Length: the limit applies while streaming
                for _ in range(10):
                    yield b"x" * 500

            resp = api.post("/api/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"})
            assert resp.status_code == 413
            assert api.post("/api/v1/sessions", json={"key": "k", "value": "small"}).status_code == 201
    finally:
        stop_process(srv.proc)


def test_unknown_route_and_method_use_the_envelope(api: httpx.Client) -> None:
    resp = api.get("/api/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "NOT_FOUND"
    resp = api.put("/api/v1/keys")
    assert resp.status_code == 405 and resp.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


def test_request_id_echo_and_generation(api: httpx.Client) -> None:
    resp = api.get("/api/v1/health", headers={"X-Request-ID": "req-42"})
    assert resp.headers["x-request-id"] == "req-42"
    generated = api.get("/api/v1/nothing").headers["x-request-id"]
    assert len(generated) == 32 and generated != api.get("/api/v1/nothing").headers["x-request-id"]


def test_gzip_when_accepted(api: httpx.Client, r: redis.Redis) -> None:
    r.set("big", json.dumps({"blob": "z" * 20000}))
    resp = api.get("/api/v1/sessions/big", headers={"Accept-Encoding": "gzip"})
    assert resp.headers["content-encoding"] == "gzip"
    assert resp.json()["value"]["blob"] == "z" * 20000
    plain = api.get("/api/v1/sessions/big", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers


def test_keep_alive_serves_many_requests_on_one_connection(http_server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", http_server.http_port), timeout=10) as s:
        request = b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
        s.sendall(request * 3)  # pipelined, too
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = s.recv(65536)
            assert chunk, "connection closed early"
            data += chunk


def test_cors_off_by_default(api: httpx.Client) -> None:
    resp = api.get("/api/v1/health", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in resp.headers


def test_cors_when_configured() -> None:
    from tests.conftest import start_tokenginx, stop_process

    srv = start_tokenginx("--set", "http.cors_origins=https://app.example")
    try:
        with httpx.Client(base_url=srv.http_url, timeout=10) as api:
            pre = api.options("/api/v1/sessions", headers={
                "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type"})
            assert pre.status_code == 200
            assert pre.headers["access-control-allow-origin"] == "https://app.example"
            other = api.get("/api/v1/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        stop_process(srv.proc)
