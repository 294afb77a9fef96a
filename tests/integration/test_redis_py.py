"""Real redis-py 8 clients against tokenginx-server.

Most tests are parametrized over ``target``: the shared tokenginx process and a real
redis-server (``reference_redis``). The redis-server runs validate the test itself; a
failure that only shows on ``[tokenginx-…]`` is a server bug. Tests whose subject is
tokenginx-specific (INFO's ``tokenginx_version``) check that part on tokenginx only.

redis-py 8 speaks RESP3 by default (it opens every connection with ``HELLO 3``); tests
that care take ``protocol`` 2 and 3 through ``both_protocols``.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    ExecAbortError,
    LockError,
    LockNotOwnedError,
    ResponseError,
    WatchError,
)
from redis.retry import Retry

from tests.conftest import RunningServer, start_redis, start_tokenginx, stop_process

Connect = Callable[..., redis.Redis]

# AuthenticationError is a ConnectionError, which redis-py 8 retries with back-off (~3 s):
# clients expected to fail authentication get no retries.
NO_RETRY = Retry(NoBackoff(), 0)

both_protocols = pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])


@dataclass
class Target:
    """One server under test: ``name`` is "tokenginx" or "redis" (the reference)."""

    name: str
    port: int
    pid: int

    def client(self, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)


@pytest.fixture(params=["tokenginx", "redis"])
def target(request: pytest.FixtureRequest) -> Target:
    fixture = "tokenginx" if request.param == "tokenginx" else "reference_redis"
    srv: RunningServer = request.getfixturevalue(fixture)
    return Target(request.param, srv.port, srv.pid)


@pytest.fixture
def protocol() -> int:
    """Default RESP version; ``both_protocols`` overrides it by direct parametrization."""
    return 3


@pytest.fixture
def connect(target: Target) -> Iterator[Connect]:
    """Factory for extra clients on ``target``; all are closed after the test."""
    made: list[redis.Redis] = []

    def make(**kwargs: Any) -> redis.Redis:
        c = target.client(**kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def client(connect: Connect, protocol: int) -> redis.Redis:
    c = connect(protocol=protocol)
    c.flushall()
    return c


def wait_message(p: redis.client.PubSub, timeout: float = 5.0) -> dict[str, Any]:
    """The next pub/sub message (confirmations included), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = p.get_message(timeout=0.1)
        if msg is not None:
            return msg
    pytest.fail(f"no pub/sub message within {timeout}s")


def assert_no_message(p: redis.client.PubSub, wait: float = 0.2) -> None:
    msg = p.get_message(timeout=wait)
    assert msg is None, f"unexpected pub/sub message {msg!r}"


# -- raw RESP, for what redis-py hides (push frames, exact error text on one connection) ----
class RawConn:
    """A bare socket speaking RESP2/RESP3; replies come back as (type_char, value)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.f = self.sock.makefile("rb")

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def send(self, *args: str | bytes) -> None:
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))

    def call(self, *args: str | bytes) -> tuple[str, Any]:
        self.send(*args)
        return self.read()

    def read(self) -> tuple[str, Any]:
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection closed mid-reply: {line!r}")
        kind, body = chr(line[0]), line[1:-2]
        if kind in "+-":
            return kind, body.decode()
        if kind == ":":
            return kind, int(body)
        if kind == "_":
            return kind, None
        if kind in "$=":
            n = int(body)
            if n < 0:
                return kind, None
            data = self.f.read(n + 2)[:-2]
            return kind, data
        if kind in "*~>":
            n = int(body)
            return kind, None if n < 0 else [self.read()[1] for _ in range(n)]
        if kind == "%":
            return kind, {self.read()[1]: self.read()[1] for _ in range(int(body))}
        raise AssertionError(f"unexpected RESP type {line!r}")


RawFactory = Callable[[], RawConn]


@pytest.fixture
def raw(target: Target) -> Iterator[RawFactory]:
    conns: list[RawConn] = []

    def make() -> RawConn:
        c = RawConn(target.port)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


# -- sync client basics ------------------------------------------------------------------
@both_protocols
def test_sync_client_basics(client: redis.Redis, connect: Connect,
                            protocol: int) -> None:
    assert client.ping() is True
    assert client.echo("hi") == b"hi"
    assert client.set("user:1", "alice") is True
    assert client.get("user:1") == b"alice"
    assert client.get("missing") is None
    assert client.mset({"a": "1", "b": "2"}) is True
    assert client.mget("a", "b", "missing") == [b"1", b"2", None]
    assert client.incr("a") == 2
    assert client.incrby("a", 10) == 12
    assert client.incrbyfloat("b", 0.5) == 2.5
    assert client.exists("a", "b", "missing") == 2
    assert client.type("a") == b"string"
    assert client.type("missing") == b"none"
    assert client.delete("a", "b", "missing") == 2
    assert client.setnx("n", "x") is True
    assert client.setnx("n", "y") is False
    assert client.getset("n", "z") == b"x"
    assert client.getdel("n") == b"z"
    assert client.dbsize() == 1

    text = connect(protocol=protocol, decode_responses=True)
    assert text.set("unicode", "会话 ✓") is True
    assert text.get("unicode") == "会话 ✓"
    assert text.strlen("unicode") == len("会话 ✓".encode())


# -- redis.asyncio -----------------------------------------------------------------------
@both_protocols
def test_asyncio_client(client: redis.Redis, target: Target, protocol: int) -> None:
    async def main() -> None:
        c = aioredis.Redis(host="127.0.0.1", port=target.port, protocol=protocol,
                           socket_timeout=10)
        try:
            assert await c.ping() is True
            assert await c.set("oauth:token:async", "v", ex=60) is True
            assert await c.get("oauth:token:async") == b"v"
            assert 0 < await c.ttl("oauth:token:async") <= 60

            await asyncio.gather(*(c.incr("hits") for _ in range(50)))
            assert await c.get("hits") == b"50"

            async with c.pipeline(transaction=True) as pipe:
                pipe.set("x", 1).incr("x").get("x")
                assert await pipe.execute() == [True, 2, b"2"]

            ps = c.pubsub()
            try:
                await ps.subscribe("async-ch")
                confirm = await ps.get_message(timeout=5)
                assert confirm is not None and confirm["type"] == "subscribe"
                assert await c.publish("async-ch", "hello") == 1
                msg = None
                for _ in range(50):
                    msg = await ps.get_message(timeout=0.1)
                    if msg is not None:
                        break
                assert msg is not None
                assert (msg["type"], msg["channel"], msg["data"]) == (
                    "message", b"async-ch", b"hello")
            finally:
                await ps.aclose()

            assert await c.delete("oauth:token:async") == 1
        finally:
            await c.aclose()

        url = aioredis.from_url(f"redis://127.0.0.1:{target.port}/2", protocol=protocol,
                                decode_responses=True)
        try:
            await url.set("db2-key", "in db 2")
        finally:
            await url.aclose()

    asyncio.run(main())
    assert client.exists("db2-key") == 0
    db2 = target.client(db=2)
    try:
        assert db2.get("db2-key") == b"in db 2"
    finally:
        db2.close()


# -- connection pools under threads ------------------------------------------------------
@pytest.mark.parametrize("blocking", [False, True], ids=["ConnectionPool", "BlockingPool"])
def test_connection_pool_many_threads(client: redis.Redis, target: Target,
                                      blocking: bool) -> None:
    threads, rounds, max_conns = 16, 40, 6 if blocking else 50
    name = f"pool-test-{os.getpid()}-{time.monotonic_ns()}"  # closed pools may linger a bit
    if blocking:
        pool: redis.ConnectionPool = redis.BlockingConnectionPool(
            host="127.0.0.1", port=target.port, max_connections=max_conns, timeout=10,
            client_name=name, socket_timeout=10)
    else:
        pool = redis.ConnectionPool(host="127.0.0.1", port=target.port,
                                    max_connections=max_conns, client_name=name,
                                    socket_timeout=10)
    shared = redis.Redis(connection_pool=pool)
    peak = 0
    peak_lock = threading.Lock()

    def worker(n: int) -> None:
        nonlocal peak
        for i in range(rounds):
            shared.incr("counter")
            shared.set(f"w:{n}", i)
            assert shared.get(f"w:{n}") == str(i).encode()
        names = [c["name"] for c in shared.client_list()]
        with peak_lock:
            peak = max(peak, names.count(name))

    try:
        with ThreadPoolExecutor(threads) as ex:
            for fut in [ex.submit(worker, n) for n in range(threads)]:
                fut.result()
        assert client.get("counter") == str(threads * rounds).encode()
        assert client.mget([f"w:{n}" for n in range(threads)]) == [
            str(rounds - 1).encode()] * threads
        assert 1 <= peak <= max_conns
    finally:
        pool.disconnect()


# -- pipelines and transactions ----------------------------------------------------------
@pytest.mark.parametrize("transaction", [False, True], ids=["plain", "multi"])
def test_pipeline(client: redis.Redis, transaction: bool) -> None:
    with client.pipeline(transaction=transaction) as pipe:
        pipe.set("p:a", "1").incr("p:a").get("p:a").exists("p:a", "p:none")
        pipe.expire("p:a", 100).ttl("p:a").delete("p:a").get("p:a")
        assert pipe.execute() == [True, 2, b"2", 1, True, 100, 1, None]
    assert client.exists("p:a") == 0


def test_pipeline_large(client: redis.Redis) -> None:
    n = 10_000
    with client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.set(f"big:{i}", i)
        assert pipe.execute() == [True] * n
    with client.pipeline(transaction=False) as pipe:
        for i in range(n):
            pipe.get(f"big:{i}")
        assert pipe.execute() == [str(i).encode() for i in range(n)]
    with client.pipeline(transaction=True) as pipe:
        for _ in range(n):
            pipe.incr("big:counter")
        assert pipe.execute() == list(range(1, n + 1))
    assert client.dbsize() == n + 1


def test_transaction_retries_on_watch_error(client: redis.Redis,
                                            connect: Connect) -> None:
    other = connect()
    client.set("balance", 100)
    calls = 0

    def withdraw(pipe: redis.client.Pipeline) -> None:
        nonlocal calls
        calls += 1
        balance = int(pipe.get("balance"))  # immediate mode: runs after WATCH
        if calls == 1:
            other.incrby("balance", 50)  # a concurrent writer touches the watched key
        pipe.multi()
        pipe.set("balance", balance - 30)

    assert client.transaction(withdraw, "balance") == [True]
    assert calls == 2, "the first EXEC should have failed with WatchError and been retried"
    assert client.get("balance") == b"120"

    # and value_from_callable returns what the function returned, on the first try here
    assert client.transaction(lambda pipe: pipe.get("balance"), "balance",
                              value_from_callable=True) == b"120"


def test_multi_exec_queue_time_error_aborts(client: redis.Redis, raw: RawFactory) -> None:
    with client.pipeline(transaction=True) as pipe:
        pipe.set("q:a", 1)
        pipe.execute_command("SET", "q:b")  # wrong arity: rejected at queue time
        pipe.set("q:c", 3)
        with pytest.raises(ResponseError) as ei:
            pipe.execute()
    assert "wrong number of arguments for 'set' command" in str(ei.value)
    assert client.exists("q:a", "q:b", "q:c") == 0

    # The same conversation on the wire, to see EXECABORT itself.
    c = raw()
    assert c.call("MULTI") == ("+", "OK")
    assert c.call("SET", "q:a", "1") == ("+", "QUEUED")
    kind, text = c.call("NOSUCHCMD", "x")
    assert (kind, text[:32]) == ("-", "ERR unknown command 'NOSUCHCMD',")
    assert c.call("EXEC") == (
        "-", "EXECABORT Transaction discarded because of previous errors.")
    assert client.exists("q:a") == 0

    # redis-py maps the EXECABORT prefix to ExecAbortError
    conn = client.connection_pool.get_connection()
    try:
        conn.send_command("MULTI")
        assert conn.read_response() == b"OK"
        conn.send_command("GET")
        with pytest.raises(ResponseError, match="wrong number of arguments for 'get'"):
            conn.read_response()
        conn.send_command("EXEC")
        with pytest.raises(ExecAbortError, match="Transaction discarded because of previous"):
            conn.read_response()
    finally:
        client.connection_pool.release(conn)


def test_multi_exec_exec_time_error_does_not_roll_back(client: redis.Redis) -> None:
    client.set("e:s", "not a number")
    with client.pipeline(transaction=True) as pipe:
        pipe.set("e:a", 1).incr("e:s").set("e:c", 3)
        res = pipe.execute(raise_on_error=False)
    assert res[0] is True and res[2] is True
    assert isinstance(res[1], ResponseError)
    assert "value is not an integer or out of range" in str(res[1])
    assert client.mget("e:a", "e:c") == [b"1", b"3"]

    client.delete("e:a", "e:c")
    with client.pipeline(transaction=True) as pipe:
        pipe.set("e:a", 1).incr("e:s").set("e:c", 3)
        with pytest.raises(ResponseError, match="value is not an integer"):
            pipe.execute()
    assert client.mget("e:a", "e:c") == [b"1", b"3"]


def test_multi_exec_state_errors(raw: RawFactory) -> None:
    c = raw()
    assert c.call("EXEC") == ("-", "ERR EXEC without MULTI")
    assert c.call("DISCARD") == ("-", "ERR DISCARD without MULTI")
    assert c.call("MULTI") == ("+", "OK")
    assert c.call("MULTI") == ("-", "ERR MULTI calls can not be nested")
    assert c.call("WATCH", "k") == ("-", "ERR WATCH inside MULTI is not allowed")
    assert c.call("DISCARD") == ("+", "OK")
    assert c.call("PING") == ("+", "PONG")


def test_watch_then_key_expiry_aborts_exec(client: redis.Redis) -> None:
    client.set("w:sess", "v", px=100)
    with client.pipeline() as pipe:
        pipe.watch("w:sess")
        assert pipe.get("w:sess") == b"v"
        time.sleep(0.25)  # the watched key expires between WATCH and EXEC
        pipe.multi()
        pipe.set("w:sess", "renewed")
        with pytest.raises(WatchError):
            pipe.execute()
    assert client.get("w:sess") is None

    # control: without expiry or writers the same transaction commits
    client.set("w:sess", "v")
    with client.pipeline() as pipe:
        pipe.watch("w:sess")
        pipe.multi()
        pipe.set("w:sess", "renewed")
        assert pipe.execute() == [True]
    assert client.get("w:sess") == b"renewed"

    # UNWATCH forgets the key: a later write by someone else does not abort
    with client.pipeline() as pipe:
        pipe.watch("w:sess")
        pipe.unwatch()
        client.set("w:sess", "other writer")
        pipe.multi()
        pipe.set("w:sess", "mine")
        assert pipe.execute() == [True]


# -- locks -------------------------------------------------------------------------------
def test_lock_acquire_contention_and_timeout(client: redis.Redis) -> None:
    """The acquire side of redis-py's Lock (SET NX PX); releasing needs scripting."""
    lock = client.lock("lock:res", timeout=0.3)
    assert lock.acquire(blocking=False) is True
    assert lock.locked() and lock.owned()
    assert 0 < client.pttl("lock:res") <= 300

    other = client.lock("lock:res", timeout=5)
    assert other.acquire(blocking=False) is False
    assert other.owned() is False
    # blocking acquire waits until the first lock's 300 ms timeout frees the name
    t0 = time.monotonic()
    assert other.acquire(blocking=True, blocking_timeout=3, token="other") is True
    assert time.monotonic() - t0 >= 0.1
    assert client.get("lock:res") == b"other"
    assert lock.owned() is False

    timed_out = client.lock("lock:res", timeout=5, blocking_timeout=0.1)
    assert timed_out.acquire() is False


def test_lock_release_extend(client: redis.Redis) -> None:
    """Lock.release/extend/reacquire run Lua (EVALSHA, SCRIPT LOAD on NOSCRIPT)."""
    assert client.eval("return 1", 0) == 1, "EVAL is needed by redis-py's Lock"

    lock = client.lock("lock:res", timeout=1.0)
    assert lock.acquire(blocking=False)
    assert lock.extend(2) is True  # adds 2 s to the remaining ~1 s
    assert 2000 < client.pttl("lock:res") <= 3000
    assert lock.extend(5, replace_ttl=True) is True
    assert 4000 < client.pttl("lock:res") <= 5000
    assert lock.reacquire() is True
    assert 0 < client.pttl("lock:res") <= 1000
    lock.release()
    assert client.exists("lock:res") == 0
    with pytest.raises(LockError):  # raised by redis-py itself: it no longer holds a token
        lock.release()

    # a lock whose timeout passed is no longer ours: release/extend refuse
    short = client.lock("lock:short", timeout=0.1)
    assert short.acquire(blocking=False)
    time.sleep(0.2)
    thief = client.lock("lock:short", timeout=5)
    assert thief.acquire(blocking=False)
    stale_token = short.local.token
    with pytest.raises(LockNotOwnedError):
        short.release()
    short.local.token = stale_token  # release() forgot it; extend must ask the server
    with pytest.raises(LockNotOwnedError):
        short.extend(1)
    assert client.exists("lock:short") == 1
    thief.release()

    # a blocked acquirer gets the lock when the holder releases from another thread
    holder = client.lock("lock:b", timeout=5, thread_local=False)
    assert holder.acquire()
    releaser = threading.Timer(0.2, holder.release)
    releaser.start()
    waiter = client.lock("lock:b", timeout=5, sleep=0.02)
    try:
        assert waiter.acquire(blocking_timeout=3)
    finally:
        releaser.join()
    waiter.release()

    with client.lock("lock:cm", timeout=2):
        assert client.exists("lock:cm") == 1
    assert client.exists("lock:cm") == 0


# -- pub/sub -----------------------------------------------------------------------------
@both_protocols
def test_pubsub_subscribe_psubscribe(client: redis.Redis) -> None:
    base_numpat = client.pubsub_numpat()
    p = client.pubsub()
    try:
        p.subscribe("news", "alerts")
        assert [wait_message(p) for _ in range(2)] == [
            {"type": "subscribe", "pattern": None, "channel": b"news", "data": 1},
            {"type": "subscribe", "pattern": None, "channel": b"alerts", "data": 2},
        ]
        p.psubscribe("user:*")
        assert wait_message(p) == {
            "type": "psubscribe", "pattern": None, "channel": b"user:*", "data": 3}

        assert client.publish("news", "hello") == 1
        assert wait_message(p) == {
            "type": "message", "pattern": None, "channel": b"news", "data": b"hello"}
        assert client.publish("user:42", "login") == 1
        assert wait_message(p) == {
            "type": "pmessage", "pattern": b"user:*", "channel": b"user:42", "data": b"login"}
        assert client.publish("nobody", "x") == 0

        # other tests' subscribers may still be going away on the shared server: filter
        assert sorted(client.pubsub_channels("[an][le]*s")) == [b"alerts", b"news"]
        assert client.pubsub_channels("n*") == [b"news"]
        assert client.pubsub_numsub("news", "nobody") == [(b"news", 1), (b"nobody", 0)]
        assert client.pubsub_numpat() == base_numpat + 1

        p.unsubscribe("news")
        assert wait_message(p) == {
            "type": "unsubscribe", "pattern": None, "channel": b"news", "data": 2}
        assert client.publish("news", "after") == 0
        assert_no_message(p)

        p.punsubscribe()
        assert wait_message(p)["type"] == "punsubscribe"
        p.unsubscribe()
        last = wait_message(p)
        assert (last["type"], last["channel"], last["data"]) == ("unsubscribe", b"alerts", 0)
        assert client.pubsub_numpat() == base_numpat
    finally:
        p.close()


@both_protocols
def test_pubsub_run_in_thread(client: redis.Redis) -> None:
    got: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(msg: dict[str, Any]) -> None:
        got.append(msg)
        if len(got) == 3:
            done.set()

    base_numpat = client.pubsub_numpat()
    p = client.pubsub(ignore_subscribe_messages=True)
    p.subscribe(**{"events": handler})
    p.psubscribe(**{"evt:*": handler})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    try:
        deadline = time.monotonic() + 5
        while client.pubsub_numsub("events")[0][1] != 1 or (
            client.pubsub_numpat() != base_numpat + 1):
            assert time.monotonic() < deadline, "subscriptions never registered"
            time.sleep(0.01)
        assert client.publish("events", "one") == 1
        assert client.publish("evt:login", "two") == 1
        assert client.publish("events", "three") == 1
        assert done.wait(5), f"handler saw only {got!r}"
    finally:
        worker.stop()
        worker.join(5)
        p.close()
    assert [(m["type"], m["channel"], m["data"]) for m in got] == [
        ("message", b"events", b"one"),
        ("pmessage", b"evt:login", b"two"),
        ("message", b"events", b"three"),
    ]


def test_pubsub_resp3_push_frames(client: redis.Redis, raw: RawFactory) -> None:
    """In RESP3 pub/sub traffic is push (``>``) frames and normal commands still work."""
    c = raw()
    kind, hello = c.call("HELLO", "3")
    assert kind == "%" and hello[b"proto"] == 3
    assert c.call("SUBSCRIBE", "ch") == (">", [b"subscribe", b"ch", 1])
    assert c.call("PING") == ("+", "PONG")
    assert c.call("SET", "k", "v") == ("+", "OK")  # allowed while subscribed in RESP3
    assert c.call("GET", "k") == ("$", b"v")
    assert client.publish("ch", "payload") == 1
    assert c.read() == (">", [b"message", b"ch", b"payload"])
    assert c.call("PSUBSCRIBE", "c*") == (">", [b"psubscribe", b"c*", 2])
    assert client.publish("ch", "both") == 2
    assert sorted([c.read(), c.read()]) == [
        (">", [b"message", b"ch", b"both"]),
        (">", [b"pmessage", b"c*", b"ch", b"both"]),
    ]
    assert c.call("UNSUBSCRIBE", "ch") == (">", [b"unsubscribe", b"ch", 1])

    # RESP2 subscribed mode: arrays, and only the pub/sub commands are allowed
    c2 = raw()
    assert c2.call("SUBSCRIBE", "ch") == ("*", [b"subscribe", b"ch", 1])
    assert c2.call("PING") == ("*", [b"pong", b""])
    assert c2.call("GET", "k") == ("-", (
        "ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / "
        "RESET are allowed in this context"))


def test_keyspace_notification_on_expiry(client: redis.Redis) -> None:
    assert client.config_set("notify-keyspace-events", "Ex")
    p = client.pubsub()
    try:
        p.subscribe("__keyevent@0__:expired", "__keyevent@0__:set")
        p.psubscribe("__keyspace@0__:*")
        for _ in range(3):
            assert wait_message(p)["type"] in ("subscribe", "psubscribe")
        client.set("sess:short", "v", px=100)
        client.set("sess:long", "v", ex=100)
        # nobody reads sess:short: the server's active expiry must find it
        msg = wait_message(p, timeout=3)
        assert msg == {"type": "message", "pattern": None,
                       "channel": b"__keyevent@0__:expired", "data": b"sess:short"}
        assert_no_message(p)  # no 'set' event (flag $ is off), no keyspace channel (K is off)
        assert client.exists("sess:short") == 0
        client.delete("sess:long")  # DEL is not an expiry
        assert_no_message(p)
    finally:
        p.close()
        client.config_set("notify-keyspace-events", "")


# -- databases, clients, HELLO, INFO, CONFIG ---------------------------------------------
def test_select_db_isolation(client: redis.Redis, connect: Connect) -> None:
    db3 = connect(db=3)
    assert client.set("k", "db0") and db3.set("k", "db3") and db3.set("only3", "x", ex=100)
    assert client.get("k") == b"db0"
    assert db3.get("k") == b"db3"
    assert client.exists("only3") == 0
    assert (client.dbsize(), db3.dbsize()) == (1, 2)

    keyspace = client.info("keyspace")
    assert keyspace["db0"]["keys"] == 1 and keyspace["db0"]["expires"] == 0
    assert keyspace["db3"]["keys"] == 2 and keyspace["db3"]["expires"] == 1
    assert "db1" not in keyspace

    one = connect(single_connection_client=True)
    assert one.execute_command("SELECT", 3) is True
    assert one.get("only3") == b"x"
    with pytest.raises(ResponseError, match="^DB index is out of range$"):
        one.execute_command("SELECT", 16)
    assert one.get("only3") == b"x"  # a failed SELECT keeps the current db

    assert db3.flushdb() is True
    assert db3.dbsize() == 0
    assert client.get("k") == b"db0"
    assert "db3" not in client.info("keyspace")


@both_protocols
def test_client_commands(client: redis.Redis, connect: Connect,
                         protocol: int) -> None:
    me = connect(protocol=protocol, single_connection_client=True, decode_responses=True)
    assert me.client_getname() is None
    assert me.client_setname("worker-1") is True
    assert me.client_getname() == "worker-1"
    with pytest.raises(ResponseError, match="Client names cannot contain spaces"):
        me.client_setname("bad name")
    cid = me.client_id()
    assert isinstance(cid, int) and cid > 0

    entries = client.client_list()
    mine = [e for e in entries if e["id"] == str(cid)]
    assert len(mine) == 1, entries
    entry = mine[0]
    assert entry["name"] == "worker-1"
    assert entry["db"] == "0"
    assert entry["addr"].startswith("127.0.0.1:")
    assert entry["laddr"].endswith(":" + str(client.connection_pool.connection_kwargs["port"]))
    assert entry["resp"] == str(protocol)
    assert [e["id"] for e in client.client_list(client_id=[cid])] == [str(cid)]
    assert str(cid) not in [e["id"] for e in client.client_list(_type="pubsub")]
    assert me.client_info()["name"] == "worker-1"

    assert client.client_kill_filter(_id=cid) == 1
    assert client.client_kill_filter(_id=2**40) == 0
    assert all(e["id"] != str(cid) for e in client.client_list())
    # redis-py reconnects on the next command: a new connection, a new id, no name
    assert me.client_id() != cid
    assert me.client_getname() is None


def test_hello3_map(connect: Connect) -> None:
    c = connect(protocol=3, single_connection_client=True, decode_responses=True)
    hello = c.execute_command("HELLO", "3")
    assert hello["server"] == "redis"
    assert hello["version"].startswith("7.")
    assert hello["proto"] == 3
    assert hello["id"] == c.client_id()
    assert hello["mode"] == "standalone"
    assert hello["role"] == "master"
    assert hello["modules"] == []
    with pytest.raises(ResponseError, match="^NOPROTO unsupported protocol version$"):
        c.execute_command("HELLO", "4")


def test_info(client: redis.Redis, target: Target) -> None:
    client.set("a", 1)
    client.set("b", 2, ex=100)
    info = client.info()
    assert str(info["redis_version"]).startswith("7.")
    assert info["process_id"] == target.pid
    assert info["tcp_port"] == target.port
    assert isinstance(info["uptime_in_seconds"], int) and info["uptime_in_seconds"] >= 0
    assert info["arch_bits"] in (32, 64)
    assert info["db0"] == {"keys": 2, "expires": 1, "avg_ttl": info["db0"]["avg_ttl"]}
    if target.name == "tokenginx":
        import tokenginx

        assert str(info["tokenginx_version"]) == tokenginx.__version__

    assert client.info("keyspace") == {"db0": info["db0"]}
    server = client.info("server")
    assert server["tcp_port"] == target.port and "db0" not in server
    assert client.info("clients")["connected_clients"] >= 1


def test_config_get_set(connect: Connect) -> None:
    c = connect(decode_responses=True)
    saved = c.config_get("maxmemory", "timeout", "notify-keyspace-events")
    assert set(saved) == {"maxmemory", "timeout", "notify-keyspace-events"}
    try:
        assert c.config_set("maxmemory", "100mb") is True
        assert c.config_get("maxmemory") == {"maxmemory": "104857600"}
        assert c.config_set("timeout", 300) is True
        assert c.config_get("timeout") == {"timeout": "300"}
        assert c.config_set("notify-keyspace-events", "Ex") is True
        assert c.config_get("notify-keyspace-events") == {"notify-keyspace-events": "xE"}
        assert c.config_set("notify-keyspace-events", "KEA") is True
        assert c.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}
        assert {"maxmemory", "maxmemory-policy"} <= set(c.config_get("maxmemory*"))
        assert c.config_get("no-such-param") == {}
        with pytest.raises(ResponseError, match=(
                r"^CONFIG SET failed \(possibly related to argument 'maxmemory'\)")):
            c.config_set("maxmemory", "lots")
        with pytest.raises(ResponseError, match=(
                "^Unknown option or number of arguments for CONFIG SET - 'no-such-param'$")):
            c.config_set("no-such-param", "1")
    finally:
        c.config_set("maxmemory", saved["maxmemory"])
        c.config_set("timeout", saved["timeout"])
        c.config_set("notify-keyspace-events", saved["notify-keyspace-events"])
    assert c.config_get("maxmemory", "timeout", "notify-keyspace-events") == saved


# -- errors ------------------------------------------------------------------------------
def _error(fn: Callable[[], Any]) -> ResponseError:
    with pytest.raises(ResponseError) as ei:
        fn()
    return ei.value


@both_protocols
def test_error_replies_map_to_redis_py_exceptions(client: redis.Redis, connect: Connect,
                                                  protocol: int) -> None:
    e = _error(lambda: client.execute_command("GET"))
    assert type(e) is ResponseError
    assert str(e) == "wrong number of arguments for 'get' command"
    assert str(_error(lambda: client.execute_command("SET", "k"))) == (
        "wrong number of arguments for 'set' command")
    assert str(_error(lambda: client.execute_command("SET", "k", "v", "NX", "XX"))) == (
        "syntax error")
    client.set("s", "text")
    assert str(_error(lambda: client.incr("s"))) == "value is not an integer or out of range"
    assert str(_error(lambda: client.incrbyfloat("s", 1))) == "value is not a valid float"
    assert str(_error(lambda: client.expire("s", "soon"))) == (
        "value is not an integer or out of range")

    # AUTH on a server without a password
    no_retry = connect(protocol=protocol, retry=NO_RETRY)
    with pytest.raises(AuthenticationError) as ae:
        no_retry.execute_command("AUTH", "whatever")
    assert str(ae.value).startswith(
        "AUTH <password> called without any password configured for the default user")
    with pytest.raises(AuthenticationWrongNumberOfArgsError):
        client.execute_command("AUTH")
    assert client.ping() is True

    # Redis leaves a space after every quoted argument, and after the colon without any
    assert str(_error(lambda: client.execute_command("NOSUCH", "a", "b"))) == (
        "unknown command 'NOSUCH', with args beginning with: 'a' 'b' ")
    assert str(_error(lambda: client.execute_command("NOSUCH"))) == (
        "unknown command 'NOSUCH', with args beginning with: ")


def test_wrongtype_error(client: redis.Redis) -> None:
    client.hset("h", "f", "v")
    e = _error(lambda: client.get("h"))
    assert type(e) is ResponseError
    assert str(e) == "WRONGTYPE Operation against a key holding the wrong kind of value"
    assert str(_error(lambda: client.incr("h"))).startswith("WRONGTYPE ")
    client.set("s", "v")
    assert str(_error(lambda: client.hget("s", "f"))).startswith("WRONGTYPE ")


@pytest.fixture(scope="module", params=["tokenginx", "redis"])
def auth_server(request: pytest.FixtureRequest) -> Iterator[Target]:
    start = start_tokenginx if request.param == "tokenginx" else start_redis
    srv = start("--requirepass", "s3cret")
    yield Target(request.param, srv.port, srv.pid)
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@both_protocols
def test_requirepass(auth_server: Target, protocol: int) -> None:
    opened: list[redis.Redis] = []

    def make(**kwargs: Any) -> redis.Redis:
        kwargs.setdefault("retry", NO_RETRY)
        c = auth_server.client(protocol=protocol, **kwargs)
        opened.append(c)
        return c

    try:
        # No credentials: RESP2 gets NOAUTH on the first command; RESP3's HELLO 3 is refused.
        with pytest.raises(AuthenticationError) as ei:
            make().get("k")
        anonymous_error = str(ei.value)  # checked last, so a wrong text hides nothing else
        with pytest.raises(AuthenticationError,
                           match="^invalid username-password pair or user is disabled.$"):
            make(password="wrong").ping()
        with pytest.raises(AuthenticationError, match="^invalid username-password pair"):
            make(username="alice", password="s3cret").ping()

        good = make(password="s3cret", single_connection_client=True)
        assert good.ping() is True
        assert good.set("k", "v") is True
        named = make(username="default", password="s3cret")
        assert named.get("k") == b"v"

        with pytest.raises(AuthenticationWrongNumberOfArgsError):
            good.execute_command("AUTH")
        with pytest.raises(AuthenticationError, match="^invalid username-password pair"):
            good.execute_command("AUTH", "nope")
        assert good.execute_command("AUTH", "default", "s3cret") is True
        assert good.get("k") == b"v"
    finally:
        for c in opened:
            c.close()

    # on the wire: NOAUTH before AUTH, HELLO 3 AUTH in one step
    c = RawConn(auth_server.port)
    try:
        assert c.call("GET", "k") == ("-", "NOAUTH Authentication required.")
        kind, hello = c.call("HELLO", "3", "AUTH", "default", "s3cret")
        assert kind == "%" and hello[b"proto"] == 3
        assert c.call("GET", "k") == ("$", b"v")
    finally:
        c.close()

    if protocol == 2:
        assert anonymous_error == "Authentication required."
    else:
        assert anonymous_error.startswith(
            "HELLO must be called with the client already authenticated, otherwise the HELLO")


def test_monitor_redacts_credentials(client: redis.Redis, connect: Connect) -> None:
    mon_client = connect(protocol=2)
    with mon_client.monitor() as m:
        c = connect(username="default", password="sekrit-pw", protocol=3)
        c.set("mon:k", "v")
        c.echo("END-OF-TEST")
        seen = []
        while True:
            cmd = m.next_command()["command"]
            seen.append(cmd)
            if "END-OF-TEST" in cmd:
                break
    assert not [s for s in seen if "sekrit-pw" in s], seen
    assert "HELLO 3 AUTH (redacted) (redacted)" in seen
    assert "SET mon:k v" in seen


# -- SCAN --------------------------------------------------------------------------------
def test_scan_iter_with_concurrent_deletes(client: redis.Redis,
                                           connect: Connect) -> None:
    keep = [b"keep:%d" % i for i in range(2500)]
    gone = [b"gone:%d" % i for i in range(2500)]
    with client.pipeline(transaction=False) as pipe:
        for chunk in range(0, 2500, 500):
            pipe.mset({k: b"1" for k in keep[chunk:chunk + 500]})
            pipe.mset({k: b"1" for k in gone[chunk:chunk + 500]})
        pipe.execute()
    assert client.dbsize() == 5000

    deleter = connect()
    doomed = list(gone)
    random.Random(7).shuffle(doomed)
    seen: Counter[bytes] = Counter()
    for i, key in enumerate(client.scan_iter(count=100)):
        seen[key] += 1
        if i % 100 == 99 and doomed:  # about once a page, while the scan is under way
            deleter.delete(*doomed[:150])
            del doomed[:150]
    assert not doomed, "the scan finished before the deleter did; make pages smaller"

    missing = set(keep) - set(seen)
    assert not missing, f"{len(missing)} keys present throughout were never returned"
    dups = {k: n for k, n in seen.items() if n > 1}
    assert not dups, f"keys returned more than once: {list(dups.items())[:10]}"
    assert set(seen) <= set(keep) | set(gone)

    # MATCH and TYPE filters, and a COUNT larger than the keyspace
    assert sorted(client.scan_iter(match="keep:1?", count=10_000)) == sorted(
        b"keep:%d" % i for i in range(10, 20))
    assert len(set(client.scan_iter(_type="string", count=1000))) == len(keep)
    assert list(client.scan_iter(_type="hash")) == []


# -- expiry ------------------------------------------------------------------------------
def test_set_expiry_options(client: redis.Redis) -> None:
    assert client.set("k", "v", ex=100) is True
    assert 99 <= client.ttl("k") <= 100
    assert client.set("k", "v", px=100_000) is True
    assert 99_000 < client.pttl("k") <= 100_000
    now = time.time()
    assert client.set("k", "v", exat=int(now) + 100) is True
    assert 98 <= client.ttl("k") <= 100
    assert client.set("k", "v", pxat=int(now * 1000) + 100_000) is True
    assert 98_000 < client.pttl("k") <= 100_000
    assert int(now) + 99 <= client.expiretime("k") <= int(now) + 101

    assert client.set("k", "v2", keepttl=True) is True
    assert client.ttl("k") > 90 and client.get("k") == b"v2"
    assert client.set("k", "v3") is True
    assert client.ttl("k") == -1

    assert client.set("k", "v4", get=True) == b"v3"
    assert client.get("k") == b"v4"
    assert client.set("new", "x", get=True) is None
    assert client.get("new") == b"x"
    assert client.set("k", "nx", nx=True) is None
    assert client.set("absent", "xx", xx=True) is None
    assert client.exists("absent") == 0

    for bad in ({"ex": 0}, {"ex": -1}, {"px": 0}):
        with pytest.raises(ResponseError, match="^invalid expire time in 'set' command$"):
            client.set("k", "v", **bad)
    with pytest.raises(ResponseError, match="^syntax error$"):
        client.execute_command("SET", "k", "v", "EX", "10", "PX", "100")

    assert client.set("past", "v", exat=int(now) - 10) is True  # already expired: gone
    assert client.exists("past") == 0

    # Redis.setex/psetex are deprecated in redis-py 8: send the commands themselves
    assert client.execute_command("SETEX", "sx", 100, "v") is True
    assert 99 <= client.ttl("sx") <= 100
    assert client.execute_command("PSETEX", "psx", 100_000, "v") is True
    assert client.pttl("psx") > 99_000
    assert client.getex("sx", persist=True) == b"v" and client.ttl("sx") == -1
    assert client.getex("sx", ex=50) == b"v" and 49 <= client.ttl("sx") <= 50

    assert client.set("short", "v", px=100) is True
    time.sleep(0.2)
    assert client.get("short") is None
    assert client.ttl("short") == -2


def test_expire_options_and_ttl_codes(client: redis.Redis) -> None:
    assert client.ttl("nope") == -2
    assert client.pttl("nope") == -2
    assert client.expire("nope", 10) is False
    client.set("k", "v")
    assert client.ttl("k") == -1
    assert client.pttl("k") == -1
    assert client.expiretime("k") == -1

    assert client.expire("k", 100, xx=True) is False  # XX: no TTL yet
    assert client.expire("k", 100, gt=True) is False  # no TTL counts as infinite
    assert client.expire("k", 100, nx=True) is True
    assert client.expire("k", 200, nx=True) is False
    assert client.expire("k", 200, xx=True) is True
    assert 199 <= client.ttl("k") <= 200
    assert client.expire("k", 100, gt=True) is False
    assert client.expire("k", 300, gt=True) is True
    assert client.expire("k", 400, lt=True) is False
    assert client.expire("k", 50, lt=True) is True
    assert 49 <= client.ttl("k") <= 50

    client.set("p", "v")
    assert client.expire("p", 100, lt=True) is True  # infinite > 100
    assert client.pexpire("p", 5000, lt=True) is True
    assert 4000 < client.pttl("p") <= 5000

    with pytest.raises(ResponseError, match=(
            "^NX and XX, GT or LT options at the same time are not compatible$")):
        client.expire("k", 10, nx=True, xx=True)
    with pytest.raises(ResponseError, match=(
            "^GT and LT options at the same time are not compatible$")):
        client.expire("k", 10, gt=True, lt=True)

    assert client.persist("k") is True
    assert client.ttl("k") == -1
    assert client.persist("k") is False

    assert client.expire("k", 0) is True  # EXPIRE 0 deletes
    assert client.exists("k") == 0
    client.set("k", "v")
    assert client.expire("k", -5) is True
    assert client.exists("k") == 0
    client.set("k", "v")
    assert client.pexpire("k", 0) is True
    assert client.exists("k") == 0
    client.set("k", "v")
    assert client.expireat("k", int(time.time()) - 1) is True
    assert client.get("k") is None


# -- binary safety -----------------------------------------------------------------------
@both_protocols
def test_binary_safe_values(client: redis.Redis) -> None:
    every_byte = bytes(range(256))
    assert client.set(b"bin", every_byte) is True
    assert client.get(b"bin") == every_byte
    assert client.strlen(b"bin") == 256
    assert client.append(b"bin", b"\r\n\x00") == 259
    assert client.getrange(b"bin", 250, -1) == every_byte[250:] + b"\r\n\x00"

    assert client.set(every_byte, b"binary key") is True
    assert client.get(every_byte) == b"binary key"
    assert every_byte in client.keys("*")

    with client.pipeline(transaction=False) as pipe:
        for b in range(256):
            pipe.set(b"byte:" + bytes([b]), bytes([b]))
        pipe.execute()
    assert client.mget([b"byte:" + bytes([b]) for b in range(256)]) == [
        bytes([b]) for b in range(256)]

    assert client.set(b"empty", b"") is True
    assert client.get(b"empty") == b""
    assert client.exists(b"empty") == 1
    assert client.set(b"crlf", b"\r\n") is True
    assert client.get(b"crlf") == b"\r\n"

    big = os.urandom(1 << 20)
    assert client.set(b"big", big) is True
    assert client.get(b"big") == big
    assert client.strlen(b"big") == 1 << 20
    assert client.getrange(b"big", 1000, 1999) == big[1000:2000]
