"""The sign-in and consent pages in a real browser (Debian's chromium, headless): they
render styled under their own Content-Security-Policy, and their forms are there."""

from __future__ import annotations

import http.server
import struct
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chromium import run_chromium
from tests.conftest import RunningServer
from tests.integration.oauth.browser_support import Browser, create_user, idp_server

CB = "http://127.0.0.1:9/cb"
WIDTH, HEIGHT = 900, 1000
AUTHORIZE = (f"/oauth/authorize?client_id=web&redirect_uri={CB}&response_type=code"
             "&scope=openid%20profile%20email&state=s1")


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    clients = [{"client_id": "web", "client_secret": "web-secret", "name": "Chromium Test App",
                "redirect_uris": [CB], "scopes": ["openid", "profile", "email"]}]
    with idp_server(clients) as s:
        create_user(s, "alice")
        yield s


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    return run_chromium("--hide-scrollbars", *args)


def screenshot(url: str) -> bytes:
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "page.png"
        chromium(f"--screenshot={path}", f"--window-size={WIDTH},{HEIGHT}", url)
        return path.read_bytes()


def dump_dom(url: str) -> str:
    return chromium("--dump-dom", url).stdout


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the pixel rows (RGB or RGBA, 8 bits) of a PNG, with the scanline
    filters undone (PNG spec §9)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line if bpp == 3 else b"".join(
            line[i:i + 3] for i in range(0, stride, 4))))
        prev = line
    return width, height, rows


def pixel(rows: list[bytes], x: int, y: int) -> tuple[int, int, int]:
    r, g, b = rows[y][3 * x:3 * x + 3]
    return r, g, b


def assert_rendered_page(png: bytes) -> None:
    width, height, rows = decode_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    colours = {row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12)}
    assert len(colours) > 100, f"only {len(colours)} colours: a blank or unstyled page"
    # The stylesheet applied (the CSP admits it by hash): a blue gradient behind a
    # white card.
    r, g, b = pixel(rows, 5, 5)
    assert b > 120 and b > r + 40, (r, g, b)
    assert pixel(rows, WIDTH // 2, HEIGHT // 2) == (255, 255, 255) or any(
        pixel(rows, WIDTH // 2, y) == (255, 255, 255) for y in range(HEIGHT // 3, 2 * HEIGHT // 3))


def test_login_page_renders_in_chromium(srv: RunningServer) -> None:
    url = srv.http_url + AUTHORIZE
    assert_rendered_page(screenshot(url))
    dom = dump_dom(url)
    assert '<form method="post" action="/oauth/login">' in dom
    assert 'name="username"' in dom and 'type="password"' in dom and 'name="password"' in dom
    assert 'name="csrf"' in dom and 'name="client_id" value="web"' in dom
    assert "Sign in" in dom


class _Proxy:
    """Forwards GETs to the server with a signed-in browser's cookies, so chromium sees
    the consent page exactly as the server sends it (headers included)."""

    def __init__(self, upstream: httpx.Client) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                r = upstream.get(self.path, headers={"Accept-Encoding": "identity"})
                self.send_response(r.status_code)
                for name, value in r.headers.multi_items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection",
                                            "content-encoding", "date", "server"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_consent_page_renders_in_chromium(srv: RunningServer) -> None:
    browser = Browser(srv)
    proxy = _Proxy(browser.http)
    try:
        consent = browser.sign_in(browser.http.get(AUTHORIZE), "alice")
        assert consent.status_code == 200 and "Allow access" in consent.text
        url = proxy.url + AUTHORIZE  # still no consent given: the page again
        assert_rendered_page(screenshot(url))
        dom = dump_dom(url)
        assert '<form method="post" action="/oauth/consent">' in dom
        assert 'name="decision" value="allow"' in dom and 'name="decision" value="deny"' in dom
        assert "Chromium Test App" in dom and "Read your e-mail address" in dom
        assert 'name="csrf"' in dom
    finally:
        proxy.close()
        browser.close()
