"""Fuzzing EVAL: random Lua built from the standard library's calls, over a real socket.

Scripts are drawn from a small grammar: calls of the functions a Redis script can
reach (base library, ``string``, ``table``, ``math``, ``coroutine``, ``cjson``,
``cmsgpack``, ``bit``, ``redis``) with arguments that are numbers at the edges
(huge, negative, NaN, ±inf), strings, tables, nested calls and KEYS/ARGV. Whatever
a script does, the server must answer it (a value or an error reply, never a
dropped connection), stay alive, and keep answering another client.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import RunningServer, start_tokenginx, stop_process

FUNCTIONS = [
    "unpack", "select", "tostring", "tonumber", "type", "next", "pairs", "ipairs",
    "rawget", "rawset", "rawequal", "setmetatable", "getmetatable", "assert", "error",
    "pcall", "xpcall", "loadstring", "collectgarbage", "gcinfo",
    "string.byte", "string.char", "string.find", "string.format", "string.gsub",
    "string.len", "string.lower", "string.match", "string.rep", "string.reverse",
    "string.sub", "string.upper", "string.gmatch",
    "table.concat", "table.insert", "table.remove", "table.sort", "table.getn",
    "table.maxn",
    "math.abs", "math.ceil", "math.floor", "math.fmod", "math.frexp", "math.ldexp",
    "math.log", "math.max", "math.min", "math.modf", "math.pow", "math.random",
    "math.sqrt", "math.huge",
    "coroutine.create", "coroutine.resume", "coroutine.wrap", "coroutine.status",
    "cjson.encode", "cjson.decode", "cmsgpack.pack", "cmsgpack.unpack",
    "cmsgpack.unpack_one", "cmsgpack.unpack_limit",
    "bit.band", "bit.bor", "bit.lshift", "bit.rshift", "bit.tohex", "bit.tobit",
    "redis.sha1hex", "redis.status_reply", "redis.error_reply", "redis.log",
    "redis.setresp", "redis.call", "redis.pcall",
]
NUMBERS = [
    "0", "1", "-1", "2", "7999", "8000", "2147483647", "-2147483648", "2^31", "2^53",
    "2^63", "-2^63", "1e308", "-1e308", "1/0", "-1/0", "0/0", "0.5", "-0.0", "1e10",
]
STRINGS = [
    "''", "'a'", "'%d'", "'%s%s%s'", "'%99d'", "'(.-)%1'", "'[%a'", "'get'", "'set'",
    "'ping'", "'del'", "'incr'", "'x'", "'{\"a\":[1,2,{}]}'", "'\\0\\255'",
    "'return 1'", "'\\27Lua'", "string.rep('x', 1000)", "'%'",
]
ATOMS = NUMBERS + STRINGS + ["nil", "true", "false", "{}", "{1, 2, 3}", "{a = 1}",
                             "KEYS", "ARGV", "KEYS[1]", "ARGV[1]", "cjson.null",
                             "function() end", "_G"]


def expressions(depth: int = 2) -> st.SearchStrategy[str]:
    atom = st.sampled_from(ATOMS)
    if depth == 0:
        return atom
    inner = expressions(depth - 1)
    call = st.builds(
        lambda f, args: f"{f}({', '.join(args)})",
        st.sampled_from(FUNCTIONS),
        st.lists(inner, max_size=4),
    )
    table = st.builds(lambda items: "{" + ", ".join(items) + "}", st.lists(inner, max_size=3))
    return st.one_of(atom, call, call, table)


# Calls shaped as the functions expect (a table or string first, then numbers at the
# edges): where range and size bugs live (unpack's crash was one).
SIZED = ["unpack", "table.concat", "string.rep", "string.sub", "string.byte", "select",
         "cmsgpack.unpack_limit", "string.format"]
sized_calls = st.builds(
    lambda f, first, nums: f"{f}({', '.join([first, *nums])})",
    st.sampled_from(SIZED),
    st.sampled_from(["{1, 2, 3}", "{}", "ARGV", "'abc'", "'%d %s'", "cmsgpack.pack(1, 2)"]),
    st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=3),
)

sized_script = st.builds(lambda e: f"return {{{e}}}", sized_calls)
scripts = st.one_of(
    sized_script,
    sized_script,
    sized_script,
    st.builds(lambda e: f"return {e}", expressions()),
    st.builds(lambda e: f"return {{pcall(function() return {e} end)}}", expressions()),
    st.builds(lambda a, b: f"local v = {a} return {b}", expressions(), expressions(1)),
)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    srv = start_tokenginx("--no-persistence", "--set", "scripting.max_memory_mb=64")
    yield srv
    stop_process(srv.proc)


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=scripts)
def test_no_script_crashes_or_stalls_the_server(server: RunningServer, script: str) -> None:
    c = redis.Redis(port=server.port, socket_timeout=10, protocol=2)
    other = redis.Redis(port=server.port, socket_timeout=10, protocol=2)
    try:
        try:
            c.eval(script, 1, "k", "argv1")
        except redis.ResponseError:
            pass  # an error reply is a fine answer; a dropped connection is not
        assert server.proc.poll() is None, f"the server died on: {script}"
        assert other.ping() is True
        assert c.ping() is True  # the script's own connection is still usable
    finally:
        c.close()
        other.close()
