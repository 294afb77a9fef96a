"""What the browser-flow tests share: a tokenginx-server with the OAuth server on and
clients from a config file, accounts made through the admin API, and a "browser"
(httpx with a cookie jar) that reads the HTML forms and posts them as a user would."""

from __future__ import annotations

import base64
import hashlib
import http.server
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import yaml

from tests.conftest import RunningServer, start_tokenginx, stop_process

PASSWORD = "correct horse battery"


@contextmanager
def idp_server(clients: list[dict[str, Any]], **idp: Any) -> Iterator[RunningServer]:
    """A server with ``oauth.server.enabled`` and these clients (and ``idp.*`` options)."""
    config = {"oauth": {"server": {"enabled": True, "clients": clients}},
              "idp": {"lockout_delay_ms": 0, **idp}}
    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="tokenginx-idp-")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f)
    srv = start_tokenginx("--config", path)
    try:
        yield srv
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)
        os.unlink(path)


def create_user(srv: RunningServer, username: str, password: str = PASSWORD, **profile: str) -> None:
    r = httpx.post(f"{srv.http_url}/api/v1/admin/users",
                   json={"username": username, "password": password, **profile}, timeout=10)
    assert r.status_code == 201, r.text


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


# -- HTML forms --------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)  # (name, value)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif self.forms and tag == "input" and a.get("name"):
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif self.forms and tag == "button" and a.get("name"):
            self.forms[-1].buttons.append((a["name"], a.get("value", "")))


def forms(html: str) -> list[Form]:
    p = _FormParser()
    p.feed(html)
    return p.forms


def only_form(response: httpx.Response) -> Form:
    found = forms(response.text)
    assert len(found) == 1, f"expected one form, got {len(found)}: {response.text[:500]}"
    return found[0]


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


class Browser:
    """One browser profile: a cookie jar; redirects are looked at, not followed (they
    go to the applications' redirect URIs, which nobody serves here)."""

    def __init__(self, srv: RunningServer) -> None:
        self.srv = srv
        self.http = httpx.Client(base_url=srv.http_url, follow_redirects=False, timeout=15)

    def close(self) -> None:
        self.http.close()

    def authorize(self, **params: str) -> httpx.Response:
        return self.http.get("/oauth/authorize", params=params)

    def submit(self, form: Form, button: tuple[str, str] | None = None,
               **values: str) -> httpx.Response:
        data = {**form.fields, **values}
        if button is not None:
            data[button[0]] = button[1]
        assert form.method == "post"
        return self.http.post(form.action, data=data)

    def sign_in(self, page: httpx.Response, username: str, password: str = PASSWORD) -> httpx.Response:
        form = only_form(page)
        assert "password" in form.fields and "csrf" in form.fields, page.text[:500]
        return self.submit(form, username=username, password=password)

    def consent(self, page: httpx.Response, decision: str = "allow") -> httpx.Response:
        assert page.status_code == 200, page.text[:500]
        form = only_form(page)
        assert ("decision", decision) in form.buttons, form
        return self.submit(form, ("decision", decision))

    def code_for(self, username: str, **params: str) -> dict[str, str]:
        """The whole front channel: authorize, sign in if asked, allow if asked; the
        query the browser was sent back with."""
        r = self.authorize(**params)
        if r.status_code == 200 and "password" in only_form(r).fields:
            r = self.sign_in(r, username)
        if r.status_code == 200:
            r = self.consent(r)
        assert r.status_code in (302, 303), (r.status_code, r.text[:500])
        location = r.headers["location"]
        assert location.startswith(params["redirect_uri"]), location
        return query(location)


# -- a back-channel logout receiver --------------------------------------------------------
class Receiver:
    """A tiny RP endpoint on a free port that records what is POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, list[str]]] = []
        self.received = received
        self.event = threading.Event()
        event = self.event

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode()
                received.append({"content_type": [self.headers.get("Content-Type", "")],
                                 "path": [self.path], **parse_qs(body)})
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                event.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/backchannel"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
