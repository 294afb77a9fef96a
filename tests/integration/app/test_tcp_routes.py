"""Application TCP commands on a real server's RESP port: JSON lines, XML lines, RESP
and inline commands, framing (pipelined, split, large, malformed), the built-in name
rule, auth, middleware, g, errors, redis-cli and redis-py."""

from __future__ import annotations

import asyncio
import random
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import orjson
import pytest
import redis

from tests.integration.app._server import serving
from tests.integration.app._tcp import RawClient
from tokenginx.app import Middleware, RouteRegistry, g
from tokenginx.errors import CommandError
from tokenginx.server import Server


def build_registry() -> RouteRegistry:
    reg = RouteRegistry()

    @reg.register("clients", protocol="tcp")
    def clients(request):
        """List the active TCP clients."""
        ids = list(request.server.connections)
        return {"message": "Active TCP clients", "clients": ids, "count": len(ids)}

    @reg.register("show", protocol="tcp")
    def show(request):
        return {
            "command": request.command,
            "data": request.data,
            "data_type": request.data_type,
            "client_id": request.client_id,
            "address": list(request.client_address),
            "request_id": g.request_id,
            "thread": threading.current_thread().name,
        }

    @reg.register("aecho", protocol="tcp")
    async def aecho(request):
        await asyncio.sleep(0.01)
        return {"data": request.data, "data_type": request.data_type, "request_id": g.request_id}

    @reg.register("slow", protocol="tcp")
    def slow(request):
        time.sleep(0.4)
        return "slow done"

    @reg.register("types", protocol="tcp")
    def types(request):
        kind = request.data[0] if isinstance(request.data, list) else request.data
        return {
            "dict": {"a": 1, "b": [1, "x"]},
            "list": [1, "two", None],
            "str": "text",
            "int": 42,
            "none": None,
            "float": 1.5,
        }[kind]

    @reg.register("boom", protocol="tcp")
    def boom(request):
        raise ValueError("secret internal detail")

    @reg.register("refuse", protocol="tcp")
    async def refuse(request):
        raise CommandError("ERR refused by the application")

    @reg.register("subscribe", protocol="tcp")
    def subscribe(request):
        return {"message": "subscribed", "client_id": request.client_id}

    @reg.register("gval", protocol="tcp")
    def gval(request):
        g.value = request.data
        time.sleep(random.uniform(0, 0.02))
        return {"value": g.value, "request_id": g.request_id}

    @reg.register("mwecho", protocol="tcp")
    def mwecho(request):
        return {"seen_by_middleware": g.get("mw_seen", False)}

    @reg.register("blocked", protocol="tcp")
    def blocked(request):
        raise AssertionError("middleware should have answered")

    @reg.register("later", protocol="tcp")
    def later(request):
        request.bg.add(request.server.push_message, "background done", request.client_id)
        return "reply first"

    @reg.register("secret", protocol="tcp", auth=True)
    def secret(request):
        return {"secret": 42, "user": request.user}

    return reg


class TagMiddleware(Middleware):
    def process_request(self, request):
        g.mw_seen = True
        if request.command == "blocked":
            return {"error": "blocked by middleware"}
        return None

    def process_response(self, request, response):
        if isinstance(response, dict) and request.command == "mwecho":
            response["tagged"] = True
        return response


class HttpOnlyMiddleware(Middleware):
    def process_request(self, request):
        return {"error": "the HTTP middleware must not see TCP requests"}


def setup(server: Server) -> None:
    server.middleware_manager.add_middleware(TagMiddleware(), protocol="tcp")
    server.middleware_manager.add_middleware(HttpOnlyMiddleware(), protocol="http")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with serving(build_registry(), setup) as s:
        yield s


@pytest.fixture
def conn(server: Server) -> Iterator[RawClient]:
    with RawClient(server.port) as c:
        yield c


def resp_cmd(*args: str | bytes) -> bytes:
    parts = [a.encode() if isinstance(a, str) else a for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%b\r\n" % (len(p), p) for p in parts)


def jline(command: str, data: object = None) -> bytes:
    return orjson.dumps({"command": command, "data": data}) + b"\n"


# -- the three formats ----------------------------------------------------------------------
def test_json_line_dispatch(conn: RawClient) -> None:
    conn.send(jline("show", {"a": [1, 2], "b": "ü"}))
    reply = conn.json()
    assert reply["command"] == "show"
    assert reply["data"] == {"a": [1, 2], "b": "ü"}
    assert reply["data_type"] == "json"
    assert reply["client_id"] == conn.client_id
    assert reply["address"] == [conn.client_id.rsplit(":", 1)[0], int(conn.client_id.rsplit(":", 1)[1])]
    assert len(reply["request_id"]) == 32
    assert reply["thread"].startswith("tokenginx-app")  # sync handlers run off the loop


def test_xml_line_dispatch(conn: RawClient) -> None:
    conn.send(b'<request command="show"><data><user>bob &amp; co</user><tag>a</tag><tag>b</tag></data></request>\n')
    line = conn.line()
    assert line.count(b"\n") == 1
    root = ET.fromstring(line)
    assert root.tag == "response"
    assert root.findtext("command") == "show"
    assert root.findtext("data_type") == "xml"
    assert root.findtext("data/user") == "bob & co"
    assert [t.text for t in root.find("data/tag")] == ["a", "b"]


def test_async_handler_in_every_format(conn: RawClient) -> None:
    conn.send(jline("aecho", 1) + b'<request command="aecho"><data>x</data></request>\n')
    conn.send(resp_cmd("aecho", "p", "q") + b"aecho i j\r\n")
    first = conn.json()
    assert first["data"] == 1 and first["data_type"] == "json"
    root = ET.fromstring(conn.line())
    assert root.findtext("data") == "x" and root.findtext("data_type") == "xml"
    resp = conn.resp()
    assert resp[:4] == [b"data", [b"p", b"q"], b"data_type", b"resp"]
    inline = conn.resp()
    assert inline[:4] == [b"data", [b"i", b"j"], b"data_type", b"inline"]


def test_resp_and_inline_dispatch_and_resp3_map(conn: RawClient) -> None:
    conn.send(resp_cmd("ECHO", "builtin") + resp_cmd("show", "a", "b"))
    assert conn.resp() == b"builtin"
    reply = conn.resp()
    as_dict = dict(zip(reply[::2], reply[1::2], strict=True))
    assert as_dict[b"data"] == [b"a", b"b"]
    assert as_dict[b"data_type"] == b"resp"
    conn.send(b"HELLO 3\r\n")
    assert isinstance(conn.resp(), dict)
    conn.send(b"SHOW x\r\n")
    reply = conn.resp()
    assert isinstance(reply, dict)
    assert reply[b"data"] == [b"x"] and reply[b"data_type"] == b"inline"
    assert reply[b"command"] == b"SHOW"  # as the client spelled it


@pytest.mark.parametrize(
    ("kind", "resp2", "resp3"),
    [
        ("dict", [b"a", 1, b"b", [1, b"x"]], {b"a": 1, b"b": [1, b"x"]}),
        ("list", [1, b"two", None], [1, b"two", None]),
        ("str", b"text", b"text"),
        ("int", 42, 42),
        ("none", None, None),
        ("float", b"1.5", 1.5),
    ],
)
def test_reply_types_as_resp(server: Server, kind: str, resp2: object, resp3: object) -> None:
    with RawClient(server.port) as c:
        c.send(resp_cmd("types", kind))
        assert c.resp() == resp2
        c.send(b"HELLO 3\r\n")
        c.resp()
        c.send(resp_cmd("types", kind))
        assert c.resp() == resp3


def test_reply_types_as_json_and_xml(conn: RawClient) -> None:
    conn.send(jline("types", "list") + jline("types", "none") + jline("types", "int"))
    assert conn.json() == [1, "two", None]
    assert conn.json() is None
    assert conn.json() == 42
    conn.send(b'<request command="types"><data>list</data></request>\n')
    assert conn.line() == b"<response><item>1</item><item>two</item><item></item></response>\n"


# -- framing --------------------------------------------------------------------------------
def test_pipelined_mixed_formats_keep_request_order(conn: RawClient) -> None:
    conn.send(
        jline("slow")
        + resp_cmd("PING")
        + b'<request command="show"><data>1</data></request>\n'
        + b"PING\r\n"
        + jline("aecho", 2)
        + resp_cmd("SET", "tcp-app-k", "v")
        + resp_cmd("GET", "tcp-app-k")
    )
    assert conn.json() == "slow done"
    assert conn.resp() == "PONG"
    assert ET.fromstring(conn.line()).findtext("data") == "1"
    assert conn.resp() == "PONG"
    assert conn.json()["data"] == 2
    assert conn.resp() == "OK"
    assert conn.resp() == b"v"


def test_frames_split_byte_by_byte(conn: RawClient) -> None:
    data = (
        jline("show", "split")
        + b'<request command="show"><data>y</data></request>\r\n'
        + resp_cmd("show", "z")
        + b"PING\r\n"
    )
    for i in range(len(data)):
        conn.send(data[i : i + 1])
    assert conn.json()["data"] == "split"
    assert ET.fromstring(conn.line()).findtext("data") == "y"
    reply = conn.resp()
    assert reply[reply.index(b"data") + 1] == [b"z"]
    assert conn.resp() == "PONG"


def test_one_megabyte_json_line(conn: RawClient) -> None:
    payload = "x" * (1024 * 1024)
    conn.send(jline("aecho", payload) + resp_cmd("PING"))
    reply = conn.json()
    assert reply["data"] == payload
    assert conn.resp() == "PONG"


def test_malformed_lines_get_an_error_in_their_format(conn: RawClient) -> None:
    conn.send(b'{"command": \n')
    err = conn.json()
    assert err["error"].startswith("ERR invalid JSON")
    conn.send(b'{"data": 1}\n')
    assert "command" in conn.json()["error"]
    conn.send(b"<request command='x'>\n")
    root = ET.fromstring(conn.line())
    assert root.findtext("error").startswith("ERR invalid XML")
    conn.send(b'<!DOCTYPE r [<!ENTITY a "aaaaaaaa">]><request command="show"><data>&a;</data></request>\n')
    assert "DOCTYPE" in ET.fromstring(conn.line()).findtext("error")
    conn.send(jline("nosuch") + b'<request command="nosuch"/>\n')
    assert conn.json() == {"error": "ERR unknown command 'nosuch'"}
    assert ET.fromstring(conn.line()).findtext("error") == "ERR unknown command 'nosuch'"
    # the connection is still fine
    conn.send(jline("show", "after"))
    assert conn.json()["data"] == "after"


def test_line_over_the_limit_is_answered_then_closed() -> None:
    reg = build_registry()
    with serving(reg, **{"limits.value_bytes": 4096, "limits.key_bytes": 1024}) as s, RawClient(s.port) as c:
        c.send(jline("show", "small"))
        assert c.json()["data"] == "small"
        c.send(jline("show", "x" * 10000))
        err = c.json()
        assert "too long" in err["error"]
        assert c.closed()
        with RawClient(s.port) as c2:
            c2.send(b'<request command="show"><data>' + b"y" * 10000 + b"</data></request>\n")
            assert "too long" in ET.fromstring(c2.line()).findtext("error")
            assert c2.closed()


# -- names, errors, middleware, g ---------------------------------------------------------------
def test_builtin_name_collision(conn: RawClient) -> None:
    conn.send(jline("subscribe"))
    assert conn.json() == {"message": "subscribed", "client_id": conn.client_id}
    conn.send(b'<request command="subscribe"/>\n')
    assert ET.fromstring(conn.line()).findtext("message") == "subscribed"
    conn.send(resp_cmd("SUBSCRIBE", "news"))
    assert conn.resp() == [b"subscribe", b"news", 1]  # the built-in answered


def test_handler_errors(conn: RawClient) -> None:
    conn.send(jline("boom") + resp_cmd("boom") + jline("refuse") + resp_cmd("refuse"))
    assert conn.json() == {"error": "ERR internal error while running 'boom'"}
    err = conn.resp()
    assert isinstance(err, RuntimeError) and str(err) == "ERR internal error while running 'boom'"
    assert conn.json() == {"error": "ERR refused by the application"}
    assert str(conn.resp()) == "ERR refused by the application"


def test_tcp_middleware_runs_around_the_handler(conn: RawClient) -> None:
    conn.send(jline("mwecho") + jline("blocked") + resp_cmd("blocked"))
    assert conn.json() == {"seen_by_middleware": True, "tagged": True}
    assert conn.json() == {"error": "blocked by middleware"}
    assert conn.resp() == [b"error", b"blocked by middleware"]


def test_g_is_fresh_for_every_request(server: Server) -> None:
    results: dict[int, list] = {}

    def worker(n: int) -> None:
        with RawClient(server.port) as c:
            c.send(b"".join(jline("gval", f"{n}-{i}") for i in range(5)))
            results[n] = [c.json() for _ in range(5)]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    ids = set()
    for n, replies in results.items():
        assert [r["value"] for r in replies] == [f"{n}-{i}" for i in range(5)]
        ids.update(r["request_id"] for r in replies)
    assert len(results) == 12 and len(ids) == 60


def test_sync_handler_does_not_block_other_clients(server: Server) -> None:
    with RawClient(server.port) as a, RawClient(server.port) as b:
        a.send(jline("slow"))
        time.sleep(0.05)
        t0 = time.monotonic()
        b.send(resp_cmd("PING"))
        assert b.resp() == "PONG"
        assert time.monotonic() - t0 < 0.3
        assert a.json() == "slow done"


def test_app_commands_are_refused_inside_multi(conn: RawClient) -> None:
    conn.send(resp_cmd("MULTI") + resp_cmd("show") + resp_cmd("EXEC"))
    assert conn.resp() == "OK"
    assert "not allowed inside a transaction" in str(conn.resp())
    assert "EXECABORT" in str(conn.resp())


def test_background_task_runs_after_the_reply(conn: RawClient) -> None:
    conn.send(jline("later"))
    assert conn.json() == "reply first"
    assert conn.json() == {"push": "background done"}


def test_app_commands_are_listed_by_command_info(conn: RawClient) -> None:
    conn.send(resp_cmd("COMMAND", "INFO", "clients", "subscribe"))
    info = conn.resp()
    assert info[0][0] == b"clients" and info[0][1] == -1
    assert info[1][0] == b"subscribe" and "pubsub" in info[1][2]  # still the built-in


# -- real clients -------------------------------------------------------------------------------
def test_redis_cli_calls_an_app_command(server: Server) -> None:
    out = subprocess.run(
        ["redis-cli", "-p", str(server.port), "clients"], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "message" and lines[1] == "Active TCP clients"
    assert "clients" in lines and "count" in lines
    assert any(":" in line for line in lines)  # its own "ip:port" is in the list


def test_redis_py_execute_command(server: Server) -> None:
    r2 = redis.Redis(port=server.port, protocol=2)
    reply = r2.execute_command("clients")
    as_dict = dict(zip(reply[::2], reply[1::2], strict=True))
    assert as_dict[b"count"] >= 1
    r3 = redis.Redis(port=server.port, protocol=3, decode_responses=True)
    reply3 = r3.execute_command("show", "a", "b")
    assert reply3["data"] == ["a", "b"] and reply3["data_type"] == "resp"
    with pytest.raises(redis.ResponseError, match="refused by the application"):
        r3.execute_command("refuse")
    r2.close()
    r3.close()


# -- authentication ---------------------------------------------------------------------------
def test_auth_routes_need_auth_in_every_format() -> None:
    with serving(build_registry(), **{"server.requirepass": "pw"}) as s, RawClient(s.port) as c:
        c.send(jline("show", "open"))  # auth=False: reachable without AUTH
        assert c.json()["data"] == "open"
        c.send(jline("secret") + b'<request command="secret"/>\n' + resp_cmd("secret"))
        assert c.json() == {"error": "NOAUTH Authentication required."}
        assert ET.fromstring(c.line()).findtext("error") == "NOAUTH Authentication required."
        assert str(c.resp()).startswith("NOAUTH")
        c.send(jline("auth", "wrong"))
        assert c.json()["error"].startswith("WRONGPASS")
        c.send(jline("auth", "pw") + jline("secret"))
        assert c.json() == {"status": "OK"}
        assert c.json() == {"secret": 42, "user": "default"}
        with RawClient(s.port) as c2:
            c2.send(resp_cmd("AUTH", "pw") + resp_cmd("secret"))
            assert c2.resp() == "OK"
            assert c2.resp() == [b"secret", 42, b"user", b"default"]
