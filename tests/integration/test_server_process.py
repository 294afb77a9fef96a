"""The server as a process: lifecycle, limits and bad input over real sockets."""

from __future__ import annotations

import signal
import socket
import time

import pytest
import redis

from tests.conftest import start_tokenginx, stop_process


def raw(port: int, payload: bytes, read_until: bytes | None = None, timeout: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            chunks += data
            if read_until is not None and chunks.endswith(read_until):
                break
        return chunks


def test_sigterm_shuts_down_cleanly():
    srv = start_tokenginx()
    r = redis.Redis(port=srv.port)
    r.set("k", "v")
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(timeout=15) == 0
    err = srv.proc.stderr.read().decode()
    stop_process(srv.proc)
    r.close()
    assert "Traceback" not in err


def test_inline_and_pipelined_raw_protocol(tokenginx):
    out = raw(tokenginx.port, b"PING\r\nSET a 1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nGET a\r\n",
              read_until=b"$1\r\n1\r\n$1\r\n1\r\n")
    assert out == b"+PONG\r\n+OK\r\n$1\r\n1\r\n$1\r\n1\r\n"


def test_protocol_error_replies_then_closes(tokenginx):
    out = raw(tokenginx.port, b"*1\r\n$4\r\nPING\r\n*1\r\n*1\r\n")
    assert out == b"+PONG\r\n-ERR Protocol error: expected '$', got '*'\r\n"
    # The server is still fine for everyone else.
    assert redis.Redis(port=tokenginx.port).ping()


def test_oversized_bulk_is_refused_without_buffering(tokenginx):
    header = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$99999999999\r\n"
    out = raw(tokenginx.port, header + b"x" * 70000)
    assert out == b"-ERR Protocol error: invalid bulk length\r\n"


def test_unbalanced_inline_quotes(tokenginx):
    out = raw(tokenginx.port, b'SET "a b\r\n')
    assert out == b"-ERR Protocol error: unbalanced quotes in request\r\n"


def test_garbage_never_kills_the_server(tokenginx):
    import random

    rnd = random.Random(7)
    for _ in range(50):
        payload = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 400)))
        try:
            raw(tokenginx.port, payload, timeout=0.3)
        except OSError:
            pass
    assert redis.Redis(port=tokenginx.port).ping()


def test_maxclients():
    srv = start_tokenginx("--maxclients", "2")
    try:
        a = socket.create_connection(("127.0.0.1", srv.port))
        b = socket.create_connection(("127.0.0.1", srv.port))
        a.sendall(b"PING\r\n")
        assert a.recv(100) == b"+PONG\r\n"
        b.sendall(b"PING\r\n")
        assert b.recv(100) == b"+PONG\r\n"
        out = raw(srv.port, b"PING\r\n")
        assert out == b"-ERR max number of clients reached\r\n"
        a.close()
        b.close()
    finally:
        stop_process(srv.proc)


def test_idle_timeout_closes_idle_clients_only():
    srv = start_tokenginx("--timeout", "1")
    try:
        idle = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        sub = redis.Redis(port=srv.port).pubsub()
        sub.subscribe("ch")
        time.sleep(2.6)
        idle.settimeout(5)
        assert idle.recv(10) == b""  # closed by the server
        assert sub.get_message(timeout=1)["type"] == "subscribe"  # subscribers are exempt
        assert redis.Redis(port=srv.port).publish("ch", "x") == 1
    finally:
        stop_process(srv.proc)


def test_slow_subscriber_is_disconnected_at_the_hard_limit():
    srv = start_tokenginx("--set", "server.pubsub_output_hard_bytes=1000000")
    try:
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"SUBSCRIBE ch\r\n")
        time.sleep(0.2)
        pub = redis.Redis(port=srv.port)
        payload = b"x" * 10000
        receivers = [pub.publish("ch", payload) for _ in range(2000)]
        assert receivers[0] == 1 and receivers[-1] == 0
        info = pub.info("stats")
        assert info["client_output_buffer_limit_disconnections"] == 1
        s.close()
    finally:
        stop_process(srv.proc)


def test_backpressure_on_a_client_that_does_not_read(tokenginx):
    """A client pipelining without reading replies must not make the server buffer
    its replies without bound: reading from it pauses instead."""
    def rss_kb() -> int:
        with open(f"/proc/{tokenginx.pid}/status") as f:
            return int(f.read().split("VmRSS:")[1].split()[0])

    before = rss_kb()
    s = socket.create_connection(("127.0.0.1", tokenginx.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    r = redis.Redis(port=tokenginx.port)
    r.set("big", b"x" * 100_000)
    req = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n" * 200
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            sent += s.send(req)
        except BlockingIOError:
            time.sleep(0.05)
    # 20 MB of replies are owed per 200 requests sent; the server stopped reading
    # instead of queueing gigabytes of them.
    assert sent > 0
    assert rss_kb() - before < 150_000
    assert r.ping()
    s.close()


@pytest.mark.parametrize("resp", [2, 3])
def test_big_values_roundtrip(tokenginx, resp):
    r = redis.Redis(port=tokenginx.port, protocol=resp)
    value = bytes(range(256)) * 40960  # 10 MiB
    r.set("big", value)
    assert r.get("big") == value
