"""Inputs that used to crash or freeze the server (issue 22), over real sockets.

Each case runs against one server of its own, with a second client probing PING the
whole time: the server must stay alive, the probe must keep being answered, and the
attacker gets the reply Redis gives. Where Redis's behaviour is the reference, the
same commands run on a real redis-server too.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import hiredis
import pytest
import redis

from tests.conftest import RunningServer, start_redis, start_tokenginx, stop_process
from tests.integration.differential import Probe

BUSY = "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_tokenginx("--no-persistence")
    yield srv
    stop_process(srv.proc)


@pytest.fixture(scope="module")
def reference() -> Iterator[RunningServer]:
    srv = start_redis()
    yield srv
    stop_process(srv.proc)


@pytest.fixture(params=["tokenginx", "redis"])
def either(request: pytest.FixtureRequest, server: RunningServer,
           reference: RunningServer) -> RunningServer:
    """Each test twice: on our server, and on redis-server, which validates the test."""
    return server if request.param == "tokenginx" else reference


@pytest.fixture
def busy_either(either: RunningServer) -> Iterator[RunningServer]:
    """``either`` with scripts turning busy after 100 ms (restored afterwards)."""
    admin = client(either)
    admin.config_set("busy-reply-threshold", 100)
    yield either
    admin.config_set("busy-reply-threshold", 5000)
    admin.close()


def client(srv: RunningServer, **kw: Any) -> redis.Redis:
    kw.setdefault("socket_timeout", 10)
    return redis.Redis(port=srv.port, protocol=2, **kw)


def best_of(n: int, f: Any) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def assert_alive(srv: RunningServer) -> None:
    assert srv.proc.poll() is None, "the server died"
    c = client(srv)
    assert c.ping() is True
    c.close()


# -- Lua ----------------------------------------------------------------------------------
def _outcome(srv: RunningServer, script: str, *args: Any) -> Any:
    c = client(srv)
    try:
        return c.eval(script, 0, *args)
    except redis.ResponseError as e:
        return "error: " + str(e).split(" script:")[0]
    finally:
        c.close()


@pytest.mark.parametrize(
    ("script", "crashed"),
    [
        ("return {unpack({1,2,3}, 0, 2147483647)}", True),
        ("return {unpack({1,2,3}, -2147483648, 2147483647)}", True),
        ("local r = {unpack({}, 1, 1e10)} return r", True),
        ("local r = {unpack({}, -2^31 + 1, 2^31 - 1)} return r", True),
        ("local r = {unpack({}, 0/0, 1)} return #r", False),
        ("local r = {unpack({}, 1, 1e300)} return #r", False),
        ("local r = {unpack({1, 2}, -1e300, 2)} return r", False),
        ("return {unpack({1, 2, 3}, '2', '3')}", False),
    ],
)
def test_unpack_of_any_range_answers_as_redis(
    server: RunningServer, reference: RunningServer, script: str, crashed: bool
) -> None:
    ours, theirs = _outcome(server, script), _outcome(reference, script)
    assert ours == theirs
    if crashed:  # these killed the process with a segmentation fault
        assert ours == "error: user_script:1: too many results to unpack"
    assert_alive(server)


def test_a_tail_called_unpack_of_a_huge_range_is_an_error(server: RunningServer) -> None:
    # (Redis prefixes "user_script:1:"; our bounded unpack is a Lua function, whose
    # caller's frame a tail call discards, so the message has no position.)
    c = client(server)
    with pytest.raises(redis.ResponseError, match="too many results to unpack"):
        c.eval("return unpack({}, 1, 1e10)", 0)
    assert_alive(server)


def test_unpack_limits_match_redis(server: RunningServer, reference: RunningServer) -> None:
    for n, ok in ((7999, True), (8000, False)):
        outcomes = []
        for srv in (server, reference):
            c = client(srv)
            try:
                outcomes.append(c.eval("return #{unpack(ARGV)}", 0, *range(n)))
            except redis.ResponseError as e:
                outcomes.append("too many results to unpack" in str(e))
            c.close()
        assert outcomes == ([n, n] if ok else [True, True])


def test_a_script_eating_memory_fails_alone(server: RunningServer) -> None:
    c = client(server)
    with Probe(server) as probe, pytest.raises(redis.ResponseError, match="not enough memory"):
        c.eval("local t = {} for i = 1, 1e6 do t[i] = string.rep('x', 1024 * 1024) .. i end", 0)
    assert not probe.errors
    assert c.eval("return 1", 0) == 1
    assert_alive(server)


def _busy_script(srv: RunningServer, script: str) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        c = client(srv, socket_timeout=30)
        try:
            out["reply"] = c.eval(script, 0)
        except redis.RedisError as e:
            out["reply"] = e
        c.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _wait_busy(c: redis.Redis, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            c.get("probe")
        except redis.ResponseError as e:
            if str(e) == BUSY:
                return
            raise
        time.sleep(0.01)
    raise AssertionError("the script never became busy")


def test_a_busy_script_gets_busy_replies_and_script_kill(busy_either: RunningServer) -> None:
    srv = busy_either
    connected_before = client(srv)
    connected_before.ping()
    thread, out = _busy_script(srv, "local i = 0 while true do i = i + 1 end")
    _wait_busy(connected_before)
    # A connection opened while busy is served too (this is what redis-cli does).
    fresh = client(srv)
    with pytest.raises(redis.ResponseError, match="^BUSY "):
        fresh.set("k", "v")
    t0 = time.perf_counter()
    assert fresh.execute_command("SCRIPT", "KILL") == b"OK"
    assert time.perf_counter() - t0 < 1
    thread.join(10)
    assert isinstance(out["reply"], redis.ResponseError)
    assert "Script killed by user with SCRIPT KILL" in str(out["reply"])
    # Afterwards everything is normal, on both the old and the new connection.
    assert fresh.set("k", "v") is True and connected_before.get("k") == b"v"
    with pytest.raises(redis.ResponseError, match="^NOTBUSY"):
        fresh.execute_command("SCRIPT", "KILL")


def test_a_busy_script_that_wrote_is_unkillable(busy_either: RunningServer) -> None:
    srv = busy_either
    script = "redis.call('set', 'w', '1') local i = 0 while i < 2e8 do i = i + 1 end return i"
    thread, out = _busy_script(srv, script)
    other = client(srv)
    _wait_busy(other)
    with pytest.raises(redis.ResponseError, match="^UNKILLABLE Sorry the script already"):
        other.execute_command("SCRIPT", "KILL")
    with pytest.raises(redis.ResponseError, match="^BUSY "):
        other.execute_command("SHUTDOWN")  # only SHUTDOWN NOSAVE is allowed
    thread.join(120)
    assert out["reply"] == 200_000_000
    assert other.get("w") == b"1"


@pytest.mark.parametrize("wrote", [False, True], ids=["read-only", "wrote"])
def test_sigterm_stops_a_busy_script_and_the_server(tmp_path: Any, wrote: bool) -> None:
    srv = start_tokenginx("--fsync", "always", "--set", "scripting.busy_reply_threshold_ms=100")
    try:
        c = client(srv)
        c.set("before", "kept")
        body = "while true do end"
        if wrote:
            body = "redis.call('set', 'partial', 'x') " + body
        thread, out = _busy_script(srv, body)
        _wait_busy(c)
        t0 = time.monotonic()
        os.kill(srv.pid, signal.SIGTERM)
        srv.proc.wait(10)
        assert time.monotonic() - t0 < 5
        thread.join(10)
        assert isinstance(out["reply"], redis.RedisError)
    finally:
        stop_process(srv.proc)
    # The data directory holds what was acknowledged, and none of a killed script's writes.
    again = start_tokenginx("--data-dir", srv.data_dir)
    try:
        c = client(again)
        assert c.get("before") == b"kept"
        assert c.get("partial") is None
    finally:
        stop_process(again.proc)


# -- glob patterns ------------------------------------------------------------------------
@pytest.mark.parametrize("stars", [10, 20])
def test_many_star_patterns_answer_at_once(server: RunningServer, stars: int) -> None:
    c = client(server)
    c.flushall()
    c.set("a" * 40, "v")
    pattern = "*a" * stars + "*b"
    sub = client(server).pubsub()
    sub.psubscribe(pattern)
    with Probe(server) as probe:
        assert best_of(3, lambda: c.keys(pattern)) < 0.01
        assert c.keys(pattern) == []
        assert best_of(3, lambda: c.scan(0, match=pattern, count=100)) < 0.01
        assert best_of(3, lambda: c.publish("a" * 40, "m")) < 0.01
        assert c.keys("*a" * stars) == [b"a" * 40]
    assert not probe.errors and probe.worst < 0.5
    sub.close()
    assert_alive(server)


def test_a_pattern_over_the_limit_is_refused(server: RunningServer) -> None:
    c = client(server)
    too_long = "a*" * 2049
    for call in (lambda: c.keys(too_long), lambda: c.scan(0, match=too_long)):
        with pytest.raises(redis.ResponseError, match=r"^pattern too long \(more than 4096 bytes\)"):
            call()
    sub = client(server).pubsub()
    with pytest.raises(redis.ResponseError, match="pattern too long"):
        sub.psubscribe(too_long)
        sub.get_message(timeout=2)
    sub.close()
    assert_alive(server)


# -- transactions and memory --------------------------------------------------------------
class Raw:
    """One connection speaking RESP2 by hand: replies exactly as sent (no client-side
    parsing of QUEUED or of transaction results)."""

    def __init__(self, srv: RunningServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        self.reader = hiredis.Reader()

    def __call__(self, *args: Any) -> Any:
        parts = [str(a).encode() if not isinstance(a, bytes) else a for a in args]
        frame = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)
        self.sock.sendall(frame)
        while True:
            reply = self.reader.gets()
            if reply is not False:
                break
            self.reader.feed(self.sock.recv(65536))
        if isinstance(reply, hiredis.ReplyError):
            return "ERR:" + str(reply)
        return reply

    def close(self) -> None:
        self.sock.close()


def test_out_of_memory_aborts_transactions_as_redis(either: RunningServer) -> None:
    srv = either
    admin, tx = client(srv), Raw(srv)
    admin.flushall()
    try:
        # Queued under the limit, then memory is full at EXEC: the whole EXEC is refused.
        assert tx("MULTI") == b"OK"
        assert tx("SET", "a", "b") == b"QUEUED"
        admin.config_set("maxmemory", 1)  # an empty keyspace is already over 1 byte
        assert tx("EXEC") == (
            "ERR:EXECABORT Transaction discarded because of: "
            "OOM command not allowed when used memory > 'maxmemory'."
        )
        assert admin.exists("a") == 0
        # Nothing is queued while over the limit; EXEC then discards the transaction.
        assert tx("MULTI") == b"OK"
        assert tx("GET", "a").startswith("ERR:OOM command not allowed")
        assert tx("EXEC") == "ERR:EXECABORT Transaction discarded because of previous errors."
        assert tx("DISCARD") == "ERR:ERR DISCARD without MULTI"
    finally:
        admin.config_set("maxmemory", 0)


def test_transaction_edge_cases_as_redis(either: RunningServer) -> None:
    srv = either
    c = Raw(srv)
    c("FLUSHALL")
    assert c("MULTI") == b"OK"
    assert c("SET", "a", "b") == b"QUEUED"
    assert c("EXEC", "extra") == (
        "ERR:EXECABORT Transaction discarded because of: "
        "wrong number of arguments for 'exec' command"
    )
    assert c("EXEC") == "ERR:ERR EXEC without MULTI"
    # WATCH on a key that never existed survives FLUSHALL (Redis 7) ...
    assert c("WATCH", "nokey") == b"OK"
    c("FLUSHALL")
    assert c("MULTI") == b"OK" and c("PING") == b"QUEUED"
    assert c("EXEC") == [b"PONG"]
    # ... one that existed does not.
    c("SET", "k", "v")
    assert c("WATCH", "k") == b"OK"
    c("FLUSHALL")
    assert c("MULTI") == b"OK" and c("PING") == b"QUEUED"
    assert c("EXEC") is None
    # EXPIRE with seconds whose milliseconds overflow is an error, not a delete.
    c("SET", "k", "v")
    assert c("EXPIRE", "k", "-9223372036854776") == (
        "ERR:ERR invalid expire time in 'expire' command"
    )
    assert c("EXISTS", "k") == 1
    assert c("EXPIRE", "k", "-9223372036854775") == 1
    assert c("EXISTS", "k") == 0
    c.close()


def test_running_out_of_lua_memory_anywhere_never_kills_the_server() -> None:
    # With the ceiling hit inside lupa's own calls (building a reply, a decoded JSON,
    # the next script's setup) the process used to abort ("PANIC: unprotected error in
    # call to Lua API") or hang with the runtime's lock taken.
    srv = start_tokenginx("--no-persistence", "--set", "scripting.max_memory_mb=8")
    try:
        c = client(srv)
        c.set("big", b"x" * 3_000_000)
        hungry = [
            "local t = {} for i = 1, 200000 do t[i] = {i} end return #t",
            "return #cjson.decode('[' .. string.rep('[],', 300000) .. '1]')",
            "local t = {} for i = 1, 1e6 do t[i] = string.rep('x', 100) .. i end return #t",
            "local t = {} for i = 1, 1e5 do t[i] = i end local s = cjson.encode(t) "
            "local u = {} for i = 1, 30 do u[i] = cjson.decode(s) end return #u",
            "return #cjson.encode({redis.call('get', 'big'), redis.call('get', 'big')})",
            "local s = cmsgpack.pack(redis.call('get', 'big'), redis.call('get', 'big')) return #s",
            "return {pcall(function() local t = {} for i = 1, 1e6 do t[i] = tostring(i) .. 'x' end end)}",
        ]
        for script in hungry:
            try:
                c.eval(script, 0)
            except redis.ResponseError as e:
                assert "not enough memory" in str(e)
            assert srv.proc.poll() is None, f"the server died on: {script}"
            # ... and the next script runs normally.
            assert c.eval("local t = {} for i = 1, 100 do t[i] = redis.call('ping') end return #t", 0) == 100
    finally:
        stop_process(srv.proc)
