"""Application HTTP routes on a real server: methods, parameters, bodies, responses,
middleware, auth, background tasks, streaming, errors, shadowing, OpenAPI."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import datetime, timezone

import httpx
import pytest

from tests.integration.app._server import serving, url
from tokenginx.app import (
    HTTPJSONResponse,
    Middleware,
    Route,
    RouteRegistry,
    StreamResponse,
    g,
)
from tokenginx.app.routes import DEFAULT_REGISTRY

API_KEY = "app-test-key"


def build_registry(events: dict) -> RouteRegistry:
    reg = RouteRegistry()

    @reg.register("/hello")
    def hello(request):
        return {"message": "Hello, World!", "request_id": g.request_id}

    @reg.register("/items/{item_id}", method="GET")
    def get_item(request):
        return {"item_id": request.path_params["item_id"], "q": request.query_params}

    @reg.register("/items/{item_id}", method="PUT")
    async def put_item(request):
        await asyncio.sleep(0)
        return {"item_id": request.path_params["item_id"], "json": request.json_data}

    @reg.register("/items/{item_id}", method="DELETE")
    def delete_item(request):
        return None, 204

    @reg.register("/items/{item_id}", method="PATCH")
    def patch_item(request):
        return {"patched": request.json_data, "method": request.method}

    @reg.register("/ping", method="HEAD")
    def head_ping(request):
        return HTTPJSONResponse(None, headers={"X-Alive": "yes"})

    @reg.register("/forms", method="POST")
    def forms(request):
        form = request.form_data
        out = {k: v if isinstance(v, str) else {"filename": v.filename, "size": len(v.data)}
               for k, v in form.items()}
        return {"form": out, "content_type": request.content_type}

    @reg.register("/echo", method="POST")
    def echo(request):
        return {
            "json": request.json_data,
            "body": request.body.decode(),
            "path": request.path,
            "method": request.method,
            "client": list(request.client_address),
            "header": request.headers.get("x-custom"),
        }

    @reg.register("/files/*")
    def files(request):
        return {"rest": request.path_params["wildcard"]}

    @reg.register("/text")
    def text(request):
        return "plain words"

    @reg.register("/tuple", method="POST")
    def created(request):
        return {"created": True}, 201

    @reg.register("/custom-json")
    def custom_json(request):
        class Enc(json.JSONEncoder):
            def default(self, o):
                if isinstance(o, datetime):
                    return o.isoformat()
                return super().default(o)

        return HTTPJSONResponse(
            {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)},
            status=202,
            headers={"X-Custom-Header": "value"},
            json_encoder=Enc,
        )

    @reg.register("/boom")
    def boom(request):
        raise RuntimeError("secret internal detail")

    @reg.register("/aboom")
    async def aboom(request):
        raise ValueError("async failure")

    @reg.register("/secure", auth=True, summary="A protected application route")
    def secure(request):
        events["secure_called"] = True
        return {"ok": True, "seen_by_middleware": getattr(request, "mw_seen", False)}

    @reg.register("/bg")
    def bg(request):
        def job(value, *, suffix):
            events["bg_request_id"] = g.request_id
            events["bg_value"] = value + suffix
            events["bg_has_user"] = hasattr(g, "user")
            events["bg_done"].set()

        g.user = "someone"
        request.bg.add(job, "v", suffix="!")
        events["handler_returned"] = time.monotonic()
        return {"scheduled": True}

    @reg.register("/bg-fail")
    def bg_fail(request):
        def failing():
            raise RuntimeError("background kaboom")

        request.bg.add(failing)
        return {"scheduled": True}

    @reg.register("/bg-async")
    def bg_async(request):
        async def job():
            await asyncio.sleep(0.01)
            events["bg_async_request_id"] = g.request_id
            events["bg_async_done"].set()

        request.bg.add(job)
        return {"scheduled": True}

    @reg.register("/sse")
    def sse(request):
        gate = events["release_stream"]

        def gen():
            yield f"data: first {g.request_id}\n\n"
            # The generator blocks until the test has seen the first event: if the
            # response were buffered, the test would never see it and this would time out.
            if not gate.wait(10):
                yield "data: timeout\n\n"
                return
            yield "data: second\n\n"

        return StreamResponse(gen(), content_type="text/event-stream",
                              headers={"Cache-Control": "no-cache"})

    @reg.register("/astream")
    def astream(request):
        async def agen():
            for i in range(3):
                await asyncio.sleep(0.01)
                yield json.dumps({"count": i}) + "\n"

        return StreamResponse(agen(), content_type="application/x-ndjson")

    @reg.register("/store/{key}", method="PUT", auth=True)
    def store_put(request):
        thread = threading.current_thread().name
        request.call("SETEX", "app:" + request.path_params["key"], 60, request.body)
        return {"stored": True, "thread": thread}

    @reg.register("/store-wrongtype", method="GET")
    def store_wrongtype(request):
        request.call("HSET", "app:hash", "f", "v")
        return request.call("GET", "app:hash")

    @reg.register("/store/{key}", method="GET")
    async def store_get(request):
        value = request.call("GET", "app:" + request.path_params["key"])
        return {"value": value.decode() if value is not None else None}

    @reg.register("/short")
    def short(request):
        return {"reached_handler": True}

    return reg


class RecordingMiddleware(Middleware):
    def __init__(self, events: dict) -> None:
        self.events = events

    def process_request(self, request):
        self.events.setdefault("order", []).append(("req", "recording", request.path))
        g.from_middleware = "mw"
        request.mw_seen = True
        if request.path == "/short":
            return {"short_circuited": True}
        return None

    def process_response(self, request, response):
        self.events.setdefault("order", []).append(("resp", "recording", request.path))
        if isinstance(response, dict):
            response["g_from_middleware"] = g.from_middleware
            response["g_request_id"] = g.request_id
        return response


class SecondMiddleware(Middleware):
    def __init__(self, events: dict) -> None:
        self.events = events

    async def process_request(self, request):
        self.events.setdefault("order", []).append(("req", "second", request.path))
        return None

    def process_response(self, request, response):
        self.events.setdefault("order", []).append(("resp", "second", request.path))
        return response


@pytest.fixture(scope="module")
def app_server():
    events: dict = {
        "bg_done": threading.Event(),
        "bg_async_done": threading.Event(),
        "release_stream": threading.Event(),
    }

    def setup(server):
        server.middleware_manager.add_middleware(RecordingMiddleware(events))
        server.middleware_manager.add_middleware(SecondMiddleware(events), protocol="both")

    overrides = {"security.api_keys": [API_KEY], "limits.http_body_bytes": 64 * 1024}
    with serving(build_registry(events), setup, **overrides) as server:
        yield server, events


@pytest.fixture
def client(app_server):
    server, _ = app_server
    with httpx.Client(base_url=url(server), timeout=10) as c:
        yield c


def test_get_json_and_request_id(client):
    r = client.get("/hello", headers={"X-Request-ID": "req-123"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["message"] == "Hello, World!"
    assert body["request_id"] == "req-123" == r.headers["x-request-id"]
    assert body["g_request_id"] == "req-123"


def test_generated_request_id_matches_header(client):
    r = client.get("/hello")
    assert r.json()["request_id"] == r.headers["x-request-id"]


def test_path_and_query_params(client):
    r = client.get("/items/42", params={"a": "1", "b": "x y"})
    assert r.json()["item_id"] == "42"
    assert r.json()["q"] == {"a": "1", "b": "x y"}


def test_put_async_handler_with_json(client):
    r = client.put("/items/7", json={"name": "seven"})
    assert r.status_code == 200
    assert r.json()["json"] == {"name": "seven"} and r.json()["item_id"] == "7"


def test_delete_no_content(client):
    r = client.delete("/items/7")
    assert r.status_code == 204 and r.content == b""


def test_patch(client):
    r = client.patch("/items/7", json={"x": 1})
    assert r.json()["patched"] == {"x": 1} and r.json()["method"] == "PATCH"


def test_head_route(client):
    r = client.head("/ping")
    assert r.status_code == 200 and r.headers["x-alive"] == "yes" and r.content == b""


def test_head_on_get_route(client):
    r = client.head("/hello")
    assert r.status_code == 200 and r.content == b""


def test_urlencoded_form(client):
    r = client.post("/forms", data={"file_name": "a.txt", "content": "hi"})
    assert r.json()["form"] == {"file_name": "a.txt", "content": "hi"}


def test_multipart_form(client):
    r = client.post("/forms", data={"field": "v"}, files={"up": ("x.bin", b"12345", "application/octet-stream")})
    assert r.json()["form"] == {"field": "v", "up": {"filename": "x.bin", "size": 5}}
    assert r.json()["content_type"] == "multipart/form-data"


def test_json_with_charset_and_request_fields(client):
    r = client.post(
        "/echo",
        content=b'{"k": [1, 2]}',
        headers={"Content-Type": "application/json; charset=utf-8", "X-Custom": "yes"},
    )
    body = r.json()
    assert body["json"] == {"k": [1, 2]}
    assert body["body"] == '{"k": [1, 2]}'
    assert body["path"] == "/echo" and body["method"] == "POST"
    assert body["client"][0] == "127.0.0.1" and body["client"][1] > 0
    assert body["header"] == "yes"


def test_invalid_json_is_400_envelope(client):
    r = client.post("/echo", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["status"] == "error" and r.json()["error"]["code"] == "INVALID_REQUEST"


def test_non_json_body_has_no_json_data(client):
    r = client.post("/echo", content=b"raw", headers={"Content-Type": "text/plain"})
    assert r.json()["json"] is None and r.json()["body"] == "raw"


def test_body_over_the_limit_is_413(client):
    r = client.post("/echo", content=b"x" * (65 * 1024), headers={"Content-Type": "text/plain"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_malformed_multipart_is_400(client):
    r = client.post("/forms", content=b"--nope\r\ngarbage",
                    headers={"Content-Type": "multipart/form-data; boundary=zzz"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_REQUEST"


def test_wildcard(client):
    assert client.get("/files/a/b/c.txt").json()["rest"] == "a/b/c.txt"
    assert client.get("/files/one").json()["rest"] == "one"


def test_text_and_tuple(client):
    r = client.get("/text")
    assert r.text == "plain words" and r.headers["content-type"].startswith("text/plain")
    r = client.post("/tuple")
    assert r.status_code == 201 and r.json()["created"] is True


def test_http_json_response_with_encoder_status_headers(client):
    r = client.get("/custom-json")
    assert r.status_code == 202
    assert r.headers["x-custom-header"] == "value"
    assert r.json()["at"] == "2024-01-02T03:04:05+00:00"


@pytest.mark.parametrize("path", ["/boom", "/aboom"])
def test_handler_error_is_500_envelope_and_server_survives(client, path):
    r = client.get(path)
    assert r.status_code == 500
    assert r.json() == {"status": "error", "error": {"code": "INTERNAL_ERROR", "message": "Internal server error"}}
    assert "secret" not in r.text
    assert client.get("/hello").status_code == 200


def test_404_and_405_like_builtin(client):
    r = client.get("/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    r = client.post("/hello")
    assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert "GET" in r.headers["allow"]


def test_auth_route_requires_api_key_before_middleware(app_server, client):
    _, events = app_server
    events["order"] = []
    events.pop("secure_called", None)
    r = client.get("/secure")
    assert r.status_code == 401 and r.json()["error"]["code"] == "UNAUTHORIZED"
    assert events["order"] == [], "application middleware ran for an unauthenticated request"
    assert "secure_called" not in events
    r = client.get("/secure", headers={"X-API-Key": "wrong"})
    assert r.status_code == 401
    r = client.get("/secure", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["seen_by_middleware"] is True


def test_open_route_works_without_key_even_with_auth_configured(client):
    assert client.get("/hello").status_code == 200


def test_middleware_order_and_short_circuit(app_server, client):
    _, events = app_server
    events["order"] = []
    r = client.get("/hello")
    assert r.json()["g_from_middleware"] == "mw"
    assert events["order"] == [
        ("req", "recording", "/hello"),
        ("req", "second", "/hello"),
        ("resp", "second", "/hello"),
        ("resp", "recording", "/hello"),
    ]
    events["order"] = []
    r = client.get("/short")
    assert r.json()["short_circuited"] is True and "reached_handler" not in r.json()
    # the short-circuiting middleware's process_response still runs; the later one never saw it
    assert events["order"] == [("req", "recording", "/short"), ("resp", "recording", "/short")]


def test_background_task_runs_after_response_with_fresh_g(app_server, client):
    _, events = app_server
    events["bg_done"].clear()
    r = client.get("/bg", headers={"X-Request-ID": "bg-req-1"})
    assert r.json()["scheduled"] is True
    assert events["bg_done"].wait(5)
    assert events["bg_value"] == "v!"
    assert events["bg_request_id"] == "bg-req-1"
    assert events["bg_has_user"] is False  # the request's g.user is not copied


def test_async_background_task(app_server, client):
    _, events = app_server
    events["bg_async_done"].clear()
    client.get("/bg-async", headers={"X-Request-ID": "bg-async-1"})
    assert events["bg_async_done"].wait(5)
    assert events["bg_async_request_id"] == "bg-async-1"


def test_background_failure_is_logged(app_server, client):
    server, _ = app_server
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tokenginx.app")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        failed_before = server.background.failed
        r = client.get("/bg-fail", headers={"X-Request-ID": "bg-fail-1"})
        assert r.status_code == 200
        assert server.background.wait_idle(5)
        deadline = time.monotonic() + 5
        while not records and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert server.background.failed == failed_before + 1
    assert records, "the failure was not logged"
    rec = records[0]
    assert "failing" in rec.getMessage() and rec.exc_info is not None
    assert "background kaboom" in str(rec.exc_info[1])
    assert rec.request_id == "bg-fail-1"  # type: ignore[attr-defined]


def test_stream_sends_first_chunk_before_generator_finishes(app_server, client):
    _, events = app_server
    events["release_stream"].clear()
    with client.stream("GET", "/sse", headers={"X-Request-ID": "sse-1"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        lines = r.iter_lines()
        first = next(lines)
        assert first == "data: first sse-1"  # g is visible inside the generator
        events["release_stream"].set()
        rest = [line for line in lines if line]
    assert rest == ["data: second"]


def test_async_stream(client):
    r = client.get("/astream")
    assert [json.loads(x) for x in r.text.splitlines()] == [{"count": 0}, {"count": 1}, {"count": 2}]
    assert r.headers["content-type"].startswith("application/x-ndjson")


def test_request_call_runs_commands_through_the_gate(client):
    r = client.put("/store/k1", content=b"v1", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and r.json()["stored"] is True
    assert r.json()["thread"].startswith("tokenginx-app")  # a sync handler, off the loop
    r = client.get("/store/k1", headers={"X-API-Key": API_KEY})
    assert r.json()["value"] == "v1"
    # an open route calls the store as the application (trusted), with no credentials
    assert client.get("/store/k1").json()["value"] == "v1"
    # the auth=True route refuses the anonymous caller before the handler runs
    assert client.put("/store/k2", content=b"x").status_code == 401
    assert client.get("/store/k2").json()["value"] is None
    r = client.get("/store/missing", headers={"X-API-Key": API_KEY})
    assert r.json()["value"] is None


def test_refused_command_is_the_rest_error_envelope(client):
    r = client.get("/store-wrongtype")
    assert r.status_code == 409 and r.json()["error"]["code"] == "WRONG_TYPE"


def test_openapi_lists_app_routes(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert "/api/v1/sessions" in paths  # built-ins still there
    assert set(paths["/items/{item_id}"]) == {"get", "put", "delete", "patch"}
    assert paths["/files/{wildcard}"]["get"]["parameters"][0]["name"] == "wildcard"
    secure = paths["/secure"]["get"]
    assert secure["summary"] == "A protected application route"
    assert secure["security"] and secure["tags"] == ["application"]
    assert paths["/hello"]["get"]["security"] == []


def test_builtin_api_unaffected(client):
    r = client.get("/api/v1/sessions/nothing-here", headers={"X-API-Key": API_KEY})
    assert r.status_code == 404 and r.json()["status"] == "error"


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/sessions/{key}", "GET"), ("/metrics", "GET"), ("/openapi.json", "GET"),
     ("/api/v1/sessions", "POST"), ("/", "GET"), ("/health", "HEAD")],
)
def test_shadowing_a_builtin_route_is_refused_at_start(path, method):
    reg = RouteRegistry()
    reg.register(path, method=method)(lambda request: {})
    with pytest.raises(RuntimeError, match="shadow the built-in route"), serving(reg):
        pass


def test_non_shadowing_neighbours_are_fine():
    reg = RouteRegistry()
    reg.register("/api/user")(lambda request: {"user": 1})
    reg.register("/metrics", method="POST")(lambda request: {"posted": True})
    with serving(reg) as server, httpx.Client(base_url=url(server), timeout=5) as c:
        assert c.get("/api/user").json() == {"user": 1}
        assert c.post("/metrics").json() == {"posted": True}
        assert c.get("/metrics").headers["content-type"].startswith("text/plain")


def test_literal_paths_win_over_parameters_and_wildcards():
    reg = RouteRegistry()
    reg.register("/n/*")(lambda request: "wildcard")
    reg.register("/n/{id}")(lambda request: "param")
    reg.register("/n/clock")(lambda request: "literal")
    with serving(reg) as server, httpx.Client(base_url=url(server), timeout=5) as c:
        assert c.get("/n/clock").text == "literal"
        assert c.get("/n/5").text == "param"
        assert c.get("/n/5/6").text == "wildcard"


def test_registries_are_isolated_between_servers():
    a, b = RouteRegistry(), RouteRegistry()
    a.register("/which")(lambda request: {"server": "a"})
    b.register("/which")(lambda request: {"server": "b"})
    before = len(DEFAULT_REGISTRY)
    with serving(a) as sa, serving(b) as sb:
        assert httpx.get(url(sa, "/which")).json() == {"server": "a"}
        assert httpx.get(url(sb, "/which")).json() == {"server": "b"}
        assert sa.routes is a and sb.routes is b
    assert len(DEFAULT_REGISTRY) == before


def test_module_level_route_feeds_default_registry_used_by_server():
    handler = Route.register("/default-registry-probe")(lambda request: {"default": True})
    route = next(r for r in DEFAULT_REGISTRY.http_routes() if r.path == "/default-registry-probe")
    try:
        assert route.handler is handler
        from tests.integration.app._server import app_config
        from tokenginx.server import Server

        server = Server(app_config())
        assert server.routes is DEFAULT_REGISTRY
        with serving(DEFAULT_REGISTRY) as running:
            assert httpx.get(url(running, "/default-registry-probe")).json() == {"default": True}
    finally:
        DEFAULT_REGISTRY.remove(route)


def test_stop_waits_for_background_tasks():
    finished = threading.Event()
    reg = RouteRegistry()

    @reg.register("/slow-bg")
    def slow_bg(request):
        def job():
            time.sleep(0.5)
            finished.set()

        request.bg.add(job)
        return {"ok": True}

    with serving(reg) as server:
        assert httpx.get(url(server, "/slow-bg")).json() == {"ok": True}
        assert not finished.is_set()
    # serving() returns once server.run() has returned: the task has completed by then
    assert finished.is_set()
