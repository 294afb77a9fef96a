"""HTTP request heads: size and field limits, head and body timeouts (slowloris)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningServer, start_tokenginx, stop_process


@pytest.fixture(scope="module")
def srv() -> Iterator[RunningServer]:
    s = start_tokenginx(
        "--no-persistence",
        "--set", "http.header_timeout_s=1",
        "--set", "http.body_timeout_s=1",
    )
    yield s
    stop_process(s.proc)


def _conn(srv: RunningServer) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", srv.http_port))
    s.settimeout(10)
    return s


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        out += chunk
    return out


def test_a_1_mib_header_is_refused_with_431(srv: RunningServer) -> None:
    s = _conn(srv)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
    assert _read_all(s).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")


def test_ten_thousand_headers_are_refused_with_431(srv: RunningServer) -> None:
    s = _conn(srv)
    fields = b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
    assert _read_all(s).startswith(b"HTTP/1.1 431 ")


def test_heads_within_the_limits_are_served(srv: RunningServer) -> None:
    headers = {f"x-h{i}": "v" * 200 for i in range(90)}
    r = httpx.get(srv.http_url + "/health", headers=headers)
    assert r.status_code == 200


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /health HTTP/1.1\r\n", b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: a"],
    ids=["nothing", "request-line", "half-a-header"],
)
def test_a_head_that_never_completes_is_closed(srv: RunningServer, sent: bytes) -> None:
    s = _conn(srv)
    if sent:
        s.sendall(sent)
    t0 = time.monotonic()
    out = _read_all(s)
    assert time.monotonic() - t0 < 5
    assert out.startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_a_stalled_body_is_closed(srv: RunningServer) -> None:
    s = _conn(srv)
    s.sendall(b"POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 100\r\n\r\n{\"key\"")
    t0 = time.monotonic()
    _read_all(s)  # the server closes: nothing complete was sent, no reply is owed
    assert time.monotonic() - t0 < 5


def test_slowloris_connections_are_all_closed_and_others_served(srv: RunningServer) -> None:
    socks = []
    for _ in range(200):
        s = _conn(srv)
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    served: list[int] = []

    def probe() -> None:
        for _ in range(10):
            served.append(httpx.get(srv.http_url + "/health", timeout=5).status_code)
            time.sleep(0.05)

    t = threading.Thread(target=probe)
    t.start()
    t.join(30)
    assert served == [200] * 10
    time.sleep(1.5)
    closed = 0
    for s in socks:
        s.settimeout(5)
        if _read_all(s).startswith(b"HTTP/1.1 408"):
            closed += 1
        s.close()
    assert closed == 200


def test_keep_alive_requests_still_work(srv: RunningServer) -> None:
    with httpx.Client(base_url=srv.http_url) as c:
        for _ in range(3):
            assert c.get("/health").status_code == 200
            time.sleep(0.3)
        r = c.post("/api/v1/sessions", json={"key": "session:h", "value": {"u": 1}, "ttl": 60})
        assert r.status_code == 201
