"""A real tokenginx-server with the CAS server on, its users, a browser helper, and a
local HTTP receiver standing in for the applications (service URLs, proxy callbacks,
single-logout endpoints)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process

PASSWORD = "correct horse battery"
USERS = {
    "alice": {"email": "alice@example.com", "nickname": "Al <&> \"Ace\""},
    "bob": {"email": "bob@example.com", "nickname": "Bobby"},
    # each used by one logout test only, so their TGT counts are exact
    "carol": {"email": "carol@example.com"},
    "dave": {},
    "erin": {},  # disabled and enabled again by a login test
}
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Hit:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the applications received. Paths containing ``/fail`` answer 404; ``/redir``
    redirects to ``/pgt`` and ``/redir-away`` to a host off the allow-list."""

    port: int
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, pred, timeout: float = 10.0) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [h for h in self.hits if pred(h)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no matching request within {timeout}s; got {self.hits!r}")

    def matching(self, pred) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if pred(h)]


def _start_receiver() -> tuple[Receiver, ThreadingHTTPServer]:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            hit = Hit(self.command, parts.path, parse_qs(parts.query), dict(self.headers), body)
            rec = holder["r"]
            with rec.lock:
                rec.hits.append(hit)
            if parts.path == "/redir":  # a proxy callback that moved
                self.send_response(302)
                self.send_header("Location", f"/pgt?{parts.query}")
            elif parts.path == "/redir-away":  # …to a place that is not a service
                self.send_response(302)
                self.send_header("Location", f"http://evil.example/pgt?{parts.query}")
            else:
                self.send_response(404 if "/fail" in parts.path else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST = _record

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = Receiver(httpd.server_address[1])
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return holder["r"], httpd


@pytest.fixture(scope="package")
def receiver() -> Iterator[Receiver]:
    rec, httpd = _start_receiver()
    yield rec
    httpd.shutdown()
    httpd.server_close()


def start_cas(*extra: str) -> RunningServer:
    return start_tokenginx(
        "--set", "cas.server.enabled=true",
        "--set", "cas.server.services=http://127.0.0.1",
        *extra,
    )


def add_users(srv: RunningServer) -> None:
    with httpx.Client(base_url=srv.http_url, timeout=10) as c:
        for name, profile in USERS.items():
            r = c.post("/api/v1/admin/users", json={"username": name, "password": PASSWORD, **profile})
            assert r.status_code == 201, r.text


@pytest.fixture(scope="package")
def cas_server() -> Iterator[RunningServer]:
    """CAS and OAuth servers on, http proxy callbacks allowed (tests run without TLS)."""
    srv = start_cas("--set", "cas.server.allow_http_proxy_callback=true",
                    "--set", "cas.server.callback_timeout_s=3",
                    "--set", "oauth.server.enabled=true")
    try:
        add_users(srv)
        yield srv
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture
def browser(cas_server: RunningServer) -> Iterator[httpx.Client]:
    """A fresh browser (own cookie jar) that does not follow redirects."""
    with httpx.Client(base_url=cas_server.http_url, timeout=15, follow_redirects=False) as c:
        yield c


@pytest.fixture
def r(cas_server: RunningServer) -> Iterator[redis.Redis]:
    client = redis.Redis(port=cas_server.port, socket_timeout=10, decode_responses=True)
    yield client
    client.close()


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, f"no CSRF token in the page: {html[:500]}"
    return m.group(1)


def sign_in(browser: httpx.Client, service: str | None, user: str = "alice",
            password: str = PASSWORD, **extra: str) -> httpx.Response:
    """GET the login page, then POST its form as a user would."""
    params = {"service": service} if service else {}
    params.update(extra)
    page = browser.get("/cas/login", params=params)
    assert page.status_code == 200, page.text
    form = {"csrf": csrf_of(page.text), "username": user, "password": password}
    form.update({k: v for k, v in params.items()})
    return browser.post("/cas/login", data=form)


def ticket_of(response: httpx.Response, service: str) -> str:
    assert response.status_code == 302, (response.status_code, response.text[:500])
    location = response.headers["location"]
    base, _, query = location.partition("?")
    assert base == service.split("?")[0], location
    tickets = parse_qs(query)["ticket"]
    assert len(tickets) == 1 and tickets[0].startswith("ST-"), location
    return tickets[0]
