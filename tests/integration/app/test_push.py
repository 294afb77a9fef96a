"""``server.push_message`` and ``server.connections`` on a real server: to one client and
to all, from threads and coroutines, to line-mode, RESP3 and subscribed RESP2 clients
(raw sockets and redis-py), and the seed's chat example end to end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis

from tests.conftest import free_port, stop_process, wait_for_ping
from tests.integration.app._server import example_env, serving
from tests.integration.app._tcp import PushFrame, RawClient
from tokenginx.app import RouteRegistry
from tokenginx.server import Server

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "pyliteflux"


def build_registry() -> RouteRegistry:
    reg = RouteRegistry()

    @reg.register("hello", protocol="tcp")
    def hello(request):
        return {"client_id": request.client_id}

    @reg.register("notify", protocol="tcp")
    async def notify(request):
        # From a coroutine on the event loop: delivered before this reply is written.
        count = request.server.push_message(request.data["message"], request.data.get("to"))
        return {"queued": count}

    @reg.register("clients", protocol="tcp")
    def clients(request):
        return sorted(request.server._active_connections.keys())

    return reg


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serving(build_registry()) as s:
        yield s


def jline(command: str, data: object = None) -> bytes:
    return orjson.dumps({"command": command, "data": data}) + b"\n"


def line_client(server: Server) -> RawClient:
    """A client in line mode (it sent a JSON line), as the seed's clients are."""
    c = RawClient(server.port)
    c.send(jline("hello"))
    assert c.json() == {"client_id": c.client_id}
    return c


def push_from_thread(server: Server, message: object, client_id: str | None = None) -> int:
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(server.push_message(message, client_id)))
    t.start()
    t.join(10)
    return result[0]


def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_push_to_one_client_from_a_thread(server: Server) -> None:
    with line_client(server) as a, line_client(server) as b:
        assert push_from_thread(server, "only for a", a.client_id) == 1
        assert a.json() == {"push": "only for a"}
        assert b.nothing_pending()


def test_unknown_client_id_queues_nothing(server: Server) -> None:
    with line_client(server):
        assert push_from_thread(server, "x", "10.9.9.9:1") == 0
        assert server.push_message("x", "not-an-id") == 0


def test_broadcast_reaches_every_client_that_can_take_it(server: Server) -> None:
    with (
        line_client(server) as line1,
        line_client(server) as line2,
        RawClient(server.port) as resp3,
        RawClient(server.port) as resp2_sub,
        RawClient(server.port) as resp2_plain,
    ):
        resp3.send(b"HELLO 3\r\n")
        assert isinstance(resp3.resp(), dict)
        resp2_sub.send(b"SUBSCRIBE news\r\n")
        assert resp2_sub.resp() == [b"subscribe", b"news", 1]
        resp2_plain.send(b"PING\r\n")
        assert resp2_plain.resp() == "PONG"
        ids = {line1.client_id, line2.client_id, resp3.client_id, resp2_sub.client_id}
        wait_until(lambda: ids <= {i for i, c in server.connections.items() if c.receives_push})

        assert push_from_thread(server, {"event": "revoked", "sid": "s1"}) == 4
        expected = {"push": {"event": "revoked", "sid": "s1"}}
        assert line1.json() == expected
        assert line2.json() == expected
        frame = resp3.resp()
        assert isinstance(frame, PushFrame)
        assert frame[:2] == [b"message", b"tokenginx:push"]
        assert orjson.loads(frame[2]) == {"event": "revoked", "sid": "s1"}
        assert resp2_sub.resp() == [b"message", b"tokenginx:push", b'{"event":"revoked","sid":"s1"}']
        # A RESP2 client outside pub/sub mode would read a push as its next reply: skipped.
        assert resp2_plain.nothing_pending()
        resp2_plain.send(b"PING\r\n")
        assert resp2_plain.resp() == "PONG"


def test_push_from_a_coroutine(server: Server) -> None:
    with line_client(server) as a, line_client(server) as b:
        a.send(jline("notify", {"message": "from a coroutine", "to": b.client_id}))
        assert a.json() == {"queued": 1}
        assert b.json() == {"push": "from a coroutine"}
        # Pushing to yourself from your own handler: the push comes before the reply.
        a.send(jline("notify", {"message": "to myself", "to": a.client_id}))
        assert a.json() == {"push": "to myself"}
        assert a.json() == {"queued": 1}

        async def on_the_loop() -> int:
            return server.push_message("from run_coroutine_threadsafe", a.client_id)

        loop = server._loop
        assert loop is not None
        assert asyncio.run_coroutine_threadsafe(on_the_loop(), loop).result(5) == 1
        assert a.json() == {"push": "from run_coroutine_threadsafe"}


def test_redis_py_resp3_client_receives_pushes(server: Server) -> None:
    r = redis.Redis(port=server.port, protocol=3, decode_responses=True)
    p = r.pubsub()
    p.subscribe("unrelated")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    wait_until(lambda: any(c.resp_version == 3 and c.subscriptions for c in server.connections.values()))
    assert push_from_thread(server, "session revoked") >= 1
    msg = p.get_message(timeout=5)
    assert msg == {"type": "message", "pattern": None, "channel": "tokenginx:push", "data": "session revoked"}
    p.close()
    r.close()


def test_connections_lists_clients_by_ip_port(server: Server) -> None:
    with line_client(server) as a, RawClient(server.port) as b:
        b.send(b"PING\r\n")
        assert b.resp() == "PONG"
        conns = server.connections
        assert conns[a.client_id].data_type == "json"
        assert conns[a.client_id].receives_push
        assert conns[b.client_id].data_type == "resp"
        assert not conns[b.client_id].receives_push
        assert conns[b.client_id].client_address == (b.client_id.split(":")[0], int(b.client_id.split(":")[1]))
        a.send(jline("clients"))
        listed = a.json()
        assert a.client_id in listed and b.client_id in listed
        gone = a.client_id
    wait_until(lambda: gone not in server.connections)


def test_push_of_an_unserializable_message_fails_in_the_caller(server: Server) -> None:
    with pytest.raises(TypeError):
        server.push_message(object())


def test_push_before_start_and_after_stop() -> None:
    server = Server(routes=RouteRegistry())
    assert server.push_message("nobody") == 0
    assert server.connections == {}


# -- the seed's chat example (examples/pyliteflux/chat.py) -------------------------------------
@pytest.fixture(scope="module")
def chat() -> Iterator[tuple[int, int]]:
    port, http_port = free_port(), free_port()
    env = example_env(port, http_port)
    workdir = tempfile.mkdtemp(prefix="tokenginx-chat-")
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "chat.py")], cwd=workdir, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_for_ping(port, proc)
        yield port, http_port
    finally:
        stop_process(proc)


def test_chat_example_tcp_subscriber_gets_the_push_scheduled_over_http(chat: tuple[int, int]) -> None:
    port, http_port = chat
    # The example's own client script subscribes too (examples/pyliteflux/tcp_client.py).
    script = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "tcp_client.py"), "--port", str(port), "--once", "subscribe"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = script.stdout.readline()
        assert first.startswith("subscribe: "), first + script.stderr.read()
        script_id = orjson.loads(first[len("subscribe: ") :])["client_id"]
        with RawClient(port, timeout=20) as sub, RawClient(port) as other:
            sub.send(jline("subscribe"))
            reply = sub.json()
            assert reply == {"message": "subscribed", "client_id": sub.client_id}
            other.send(b'<request command="clients"/>\n')
            listed = other.line().decode()
            assert sub.client_id in listed and other.client_id in listed and script_id in listed
            for target in (sub.client_id, script_id):
                r = httpx.get(f"http://127.0.0.1:{http_port}/hello", params={"client_id": target}, timeout=10)
                assert r.status_code == 200
                assert r.json()["target_client"] == target
            t0 = time.monotonic()
            assert sub.json() == {"push": "Hello via HTTP GET!"}  # after the task's 5 s sleep
            assert time.monotonic() - t0 > 3
            out, _ = script.communicate(timeout=20)
            assert out.strip() == "push: Hello via HTTP GET!"
            assert script.returncode == 0
            assert other.nothing_pending()
    finally:
        if script.poll() is None:
            script.kill()
        script.communicate()


def test_idle_timeout_spares_line_mode_clients_waiting_for_pushes() -> None:
    """Like subscribers in Redis, a line-mode client that only waits for pushes is not
    an idle connection; a plain RESP client is closed after ``server.idle_timeout``."""
    with (
        serving(build_registry(), **{"server.idle_timeout": 1}) as s,
        line_client(s) as waiting,
        RawClient(s.port) as plain,
    ):
        plain.send(b"*1\r\n$4\r\nPING\r\n")
        assert plain.resp() == "PONG"
        assert plain.closed(timeout=5.0)  # the cron checks once a second
        time.sleep(1.5)
        assert s.push_message("still here", waiting.client_id) == 1
        assert waiting.json() == {"push": "still here"}
