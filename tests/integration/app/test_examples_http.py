"""The seed README's examples (examples/pyliteflux/) run as scripts against real
sockets; these tests drive their HTTP parts. Each script is started as its own process
with the ports given through the TOKENGINX_* environment, which ``Server()`` reads."""

from __future__ import annotations

import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, stop_process, wait_for_ping
from tests.integration.app._server import example_env

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "pyliteflux"


@dataclass
class Example:
    proc: subprocess.Popen
    http: httpx.Client
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = self.log()
            if text in log:
                return log
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged; log was:\n{self.log()}")


def start_example(name: str, cwd: str | None = None, **extra_env: str) -> Iterator[Example]:
    """Run ``examples/pyliteflux/<name>`` (or a path) on free ports until the fixture ends."""
    port, http_port = free_port(), free_port()
    env = example_env(port, http_port, **{"TOKENGINX_LOG_LEVEL": "info", **extra_env})
    workdir = cwd or tempfile.mkdtemp(prefix="tokenginx-example-")
    log_path = Path(workdir) / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, str(EXAMPLES / name)], cwd=workdir, env=env,
                                stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_ping(port, proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=15) as client:
            yield Example(proc, client, log_path)
    finally:
        stop_process(proc)
    log = log_path.read_text(errors="replace")
    assert "Traceback" not in log, f"{name} logged an error:\n{log}"


def example(name: str, cwd: str | None = None):
    @pytest.fixture(scope="module")
    def fixture() -> Iterator[Example]:
        yield from start_example(name, cwd)

    return fixture


hello = example("hello.py")
chat = example("chat.py")
middleware = example("middleware.py")
global_context = example("global_context.py")
scenario_auth = example("scenario_auth.py")
scenario_performance = example("scenario_performance.py")
scenario_tracing = example("scenario_tracing.py")
response_json = example("response_json.py")
response_httpjson = example("response_httpjson.py")
response_complex = example("response_complex.py")
route_params = example("route_params.py")
request_params = example("request_params.py")
tcp_push = example("tcp_push.py")
middleware_params = example("middleware_params.py")
background_params = example("background_params.py")

DOWNLOAD_DIR = tempfile.mkdtemp(prefix="tokenginx-download-")
DOWNLOAD = os.urandom(100_000)
(Path(DOWNLOAD_DIR) / "large_file.txt").write_bytes(DOWNLOAD)
response_stream = example("response_stream.py", cwd=DOWNLOAD_DIR)


def test_hello(hello):
    r = hello.http.get("/hello")
    assert r.status_code == 200 and r.json() == {"message": "Hello, World!"}


def test_chat_http_part(chat):
    r = chat.http.get("/hello", params={"client_id": "127.0.0.1:1"})
    assert r.json() == {
        "message": "Hello via HTTP GET!",
        "target_client": "127.0.0.1:1",
        "query_params": {"client_id": "127.0.0.1:1"},
    }


def test_middleware_example(middleware):
    r = middleware.http.get("/user")
    assert r.json() == {"error": "Unauthorized", "authenticated": False}
    r = middleware.http.get("/user", headers={"Authorization": "t", "X-Request-ID": "mid-1"})
    assert r.json() == {
        "message": "User info",
        "user": {"id": 1, "name": "user1"},
        "request_id": "mid-1",
        "authenticated": True,
    }
    middleware.wait_log("Request processed in")


def test_global_context_example(global_context):
    r = global_context.http.get("/data", headers={"X-Request-ID": "data-1"})
    assert r.json() == {"data": [{"id": 1, "name": "user1"}], "cached": ["user1"], "request_id": "data-1"}
    r = global_context.http.get("/async")
    assert r.json() == {"message": "Task scheduled"}
    global_context.wait_log("Background task ")


def test_scenario_auth(scenario_auth):
    assert scenario_auth.http.get("/admin").status_code == 403
    r = scenario_auth.http.get("/admin", headers={"Authorization": "Bearer user-token"})
    assert r.status_code == 403 and r.json() == {"error": "Access denied"}
    r = scenario_auth.http.get("/admin", headers={"Authorization": "Bearer admin-token"})
    assert r.status_code == 200 and r.json() == {"message": "Welcome, admin!"}


def test_scenario_performance(scenario_performance):
    r = scenario_performance.http.get("/report")
    assert len(r.json()["queries"]) == 2
    log = scenario_performance.wait_log("Performance metrics")
    assert "'sql_queries': 2" in log


def test_scenario_tracing(scenario_tracing):
    body = scenario_tracing.http.get("/trace").json()
    assert body["data"] == sum(range(1000))
    assert len(body["trace_id"]) == 36
    assert [t["event"] for t in body["traces"]] == ["processing", "completed"]
    other = scenario_tracing.http.get("/trace").json()
    assert other["trace_id"] != body["trace_id"]


@pytest.mark.parametrize("name", ["config_options.py", "config_params.py"])
def test_config_examples(name, monkeypatch):
    for var in [v for v in os.environ if v.startswith("TOKENGINX_")]:
        monkeypatch.delenv(var)
    server = runpy.run_path(str(EXAMPLES / name))["server"]
    cfg = server.config
    assert cfg.server.http_addr == "127.0.0.1:8000" and cfg.server.tcp_addr == "127.0.0.1:8001"
    assert cfg.tcp_keep_alive and cfg.server.tcp_keepalive > 0 and cfg.info
    assert (cfg.http_host, cfg.http_port, cfg.tcp_host, cfg.tcp_port) == ("127.0.0.1", 8000, "127.0.0.1", 8001)


def test_response_json(response_json):
    assert response_json.http.get("/hello").json() == {"message": "Hello, World!"}


def test_response_stream_sse_streams(response_stream):
    t0 = time.monotonic()
    with response_stream.http.stream("GET", "/stream") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["cache-control"] == "no-cache"
        events = []
        for line in r.iter_lines():
            if line:
                events.append((line, time.monotonic() - t0))
            if len(events) == 2:
                break
    assert [e for e, _ in events] == ["data: 0", "data: 1"]
    # the generator sleeps 1 s per event and makes 10: the first arrives long before the end
    assert events[0][1] < 5


def test_response_stream_download(response_stream):
    r = response_stream.http.get("/download")
    assert r.status_code == 200 and r.content == DOWNLOAD
    assert r.headers["content-disposition"] == "attachment; filename=large_file.txt"
    assert "content-length" not in r.headers  # chunked, not buffered into one body


def test_response_httpjson(response_httpjson):
    r = response_httpjson.http.get("/api/user")
    assert r.json() == {"id": 1, "name": "John"}
    assert r.headers["x-custom-header"] == "value" and r.headers["access-control-allow-origin"] == "*"
    r = response_httpjson.http.get("/api/error")
    assert r.status_code == 404 and r.headers["x-error-type"] == "NotFound"
    assert r.json() == {"error": "Not Found", "code": "404"}
    r = response_httpjson.http.get("/api/custom")
    assert r.json()["message"] == "Custom serialization"
    assert r.json()["timestamp"][:2] == "20" and "T" in r.json()["timestamp"]


def test_response_complex(response_complex):
    r = response_complex.http.get("/api/complex")
    assert r.json() == {"message": "Regular JSON response"}
    r = response_complex.http.get("/api/complex", params={"type": "error"})
    assert r.status_code == 400 and r.headers["x-error-details"] == "Invalid type"
    r = response_complex.http.get("/api/complex", params={"type": "stream"})
    assert r.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(x) for x in r.text.splitlines()] == [{"count": i} for i in range(5)]


def test_route_params(route_params):
    c = route_params.http
    assert c.get("/hello").json() == {"message": "Hello, World!"}
    r = c.post("/user", json={"name": "n"})
    assert r.status_code == 201 and r.json() == {"created": {"name": "n"}}
    assert c.get("/user/5").json() == {"id": "5"}
    assert c.get("/files/docs/a.txt").json() == {"path": "docs/a.txt"}


def test_request_params(request_params):
    c = request_params.http
    assert c.get("/search", params={"keyword": "sso"}).json() == {"keyword": "sso", "page": "1"}
    assert c.get("/search", params={"keyword": "sso", "page": "3"}).json()["page"] == "3"
    assert c.get("/user/1/posts/2").json() == {"user_id": "1", "post_id": "2"}
    assert c.post("/upload", data={"file_name": "a.txt", "content": "x"}).json() == {"file_name": "a.txt"}
    assert c.post("/api/data", json={"a": [1]}).json() == {"received": {"a": [1]}}


def test_tcp_push_http_part(tcp_push):
    assert tcp_push.http.get("/broadcast").json() == {"status": "broadcasted"}
    assert tcp_push.http.get("/push", params={"client_id": "127.0.0.1:9", "message": "m"}).json() == {
        "status": "sent"
    }


def test_middleware_params(middleware_params):
    assert middleware_params.http.get("/custom").json() == {
        "custom_attr": "custom_value",
        "processed_by": "MyMiddleware",
    }


def test_background_params(background_params):
    r = background_params.http.get("/task", params={"user_id": "7"})
    assert r.json() == {"message": "Task scheduled"}
    assert "Processing important task for user 7" not in background_params.log()  # after 5 s
    background_params.wait_log("Processing important task for user 7", timeout=15)


# -- docs/extending.md ----------------------------------------------------------------
DOC = Path(__file__).resolve().parents[3] / "docs" / "extending.md"


def doc_blocks() -> list[str]:
    import re

    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.fixture(scope="module")
def notes_app() -> Iterator[Example]:
    app = next(b for b in doc_blocks() if "notes_app.py" in b)
    workdir = tempfile.mkdtemp(prefix="tokenginx-doc-")
    script = Path(workdir) / "notes_app.py"
    script.write_text(app, encoding="utf-8")
    yield from start_example(str(script), workdir, TOKENGINX_SECURITY_API_KEYS="adminkey")


def test_doc_example_app(notes_app):
    c = notes_app.http
    assert c.post("/notes/login", data={"user": "alice", "password": "x"}).status_code == 401
    r = c.post("/notes/login", data={"user": "alice", "password": "wonderland"})
    assert r.status_code == 201
    sid = r.json()["session"]
    r = c.post("/notes/login", json={"user": "alice", "password": "wonderland"})
    assert r.status_code == 201 and r.json()["session"] != sid
    assert c.put("/notes/n1", content=b"hello").status_code == 401
    me = {"X-Session": sid}
    assert c.put("/notes/n1", content=b"hello", headers=me).json() == {"saved": "notes:alice:n1"}
    assert c.get("/notes/n1", headers=me).text == "hello"
    assert c.get("/notes/n2", headers=me).status_code == 404
    assert c.delete(f"/notes/admin/sessions/{sid}").status_code == 401
    r = c.delete(f"/notes/admin/sessions/{sid}", headers={"X-API-Key": "adminkey"})
    assert r.json() == {"revoked": True}
    assert c.get("/notes/n1", headers=me).status_code == 401
    with c.stream("GET", "/notes/clock") as r:
        assert [x for x in r.iter_lines() if x] == [f"data: tick {i}" for i in range(3)]
    paths = c.get("/openapi.json").json()["paths"]
    assert "/notes/{note_id}" in paths and "/api/v1/sessions" in paths
    assert paths["/notes/admin/sessions/{sid}"]["delete"]["security"]
    notes_app.wait_log("login of alice")
    notes_app.wait_log("GET /notes/n1 ")


def test_doc_isolation_snippet(capsys):
    block = next(b for b in doc_blocks() if "routes = RouteRegistry()" in b)
    exec(compile(block, str(DOC), "exec"), {"__name__": "doc_snippet"})
    port = int(capsys.readouterr().out.strip())
    assert port > 0
