"""cjson's configuration functions in scripts, differentially: every script runs on
tokenginx-server and on a real redis-server (``reference_redis``) and the replies (or
error texts) must be the same; each case also says whether it must fail.

The settings live in the Lua runtime (they outlast the script that sets them, until
SCRIPT FLUSH), so every test ends with SCRIPT FLUSH on both servers.

Errors are provoked with ``local x = f() return x`` rather than ``return f()``: in a
tail call tokenginx's Lua wrappers lose the caller's line (see the engine's docstring).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import RunningServer
from tests.integration.differential import client_pair, eval_reply, same


@pytest.fixture(scope="module")
def clients(
    tokenginx: RunningServer, reference_redis: RunningServer
) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    yield from client_pair(tokenginx, reference_redis)


@pytest.fixture
def servers(clients: tuple[redis.Redis, redis.Redis]) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    yield clients
    for c in clients:
        c.script_flush()


SHOW = """
local function show(...)
  local out = {}
  for i = 1, select('#', ...) do
    local v = select(i, ...)
    out[i] = type(v) .. ':' .. tostring(v)
  end
  return table.concat(out, ' ')
end
"""


def show(servers, call: str) -> str:
    return same(servers, SHOW + f"return show({call})").decode()


# -- the settings themselves ----------------------------------------------------------------
def test_defaults(servers):
    assert show(servers, "cjson.encode_max_depth()") == "number:1000"
    assert show(servers, "cjson.decode_max_depth()") == "number:1000"
    assert show(servers, "cjson.encode_number_precision()") == "number:14"
    assert show(servers, "cjson.encode_sparse_array()") == "boolean:false number:2 number:10"
    assert show(servers, "cjson.encode_invalid_numbers()") == "boolean:false"
    assert show(servers, "cjson.decode_invalid_numbers()") == "boolean:true"
    assert show(servers, "cjson.encode_keep_buffer()") == "boolean:true"


SETTINGS = [
    "cjson.encode_max_depth(5)",
    "cjson.encode_max_depth('7')",
    "cjson.encode_max_depth(' 0x10 ')",
    "cjson.encode_max_depth(2.9)",
    "cjson.encode_max_depth(2^32 + 5)",
    "cjson.encode_max_depth(2147483647)",
    "cjson.encode_max_depth(nil)",
    "cjson.decode_max_depth(3)",
    "cjson.encode_number_precision(1)",
    "cjson.encode_number_precision(14)",
    "cjson.encode_number_precision(3.99)",
    "cjson.encode_sparse_array(true)",
    "cjson.encode_sparse_array('on', 0)",
    "cjson.encode_sparse_array(nil, nil, 0)",
    "cjson.encode_sparse_array(false, 1, 2147483647)",
    "cjson.encode_sparse_array('off', 3, 4)",
    "cjson.encode_invalid_numbers(true)",
    "cjson.encode_invalid_numbers('on')",
    "cjson.encode_invalid_numbers('null')",
    "cjson.encode_invalid_numbers('off')",
    "cjson.decode_invalid_numbers(false)",
    "cjson.decode_invalid_numbers('off')",
    "cjson.decode_invalid_numbers('on')",
    "cjson.encode_keep_buffer('off')",
]


@pytest.mark.parametrize("call", SETTINGS)
def test_setting_returns_current_value(servers, call):
    show(servers, call)


def test_settings_persist_until_script_flush(servers):
    ours, ref = servers
    assert show(servers, "cjson.encode_max_depth(5), cjson.encode_invalid_numbers('null')") == (
        "number:5 string:null"
    )
    assert show(servers, "cjson.encode_max_depth(), cjson.encode_invalid_numbers()") == (
        "number:5 string:null"
    )
    assert same(servers, "return cjson.encode({0/0, 1/0})") == b"[null,null]"
    for c in servers:
        c.script_flush()
    assert show(servers, "cjson.encode_max_depth(), cjson.encode_invalid_numbers()") == (
        "number:1000 boolean:false"
    )


BAD_SETTINGS = [
    "cjson.encode_max_depth(1, 2)",
    "cjson.encode_max_depth(0)",
    "cjson.encode_max_depth(-3)",
    "cjson.encode_max_depth(0.5)",
    "cjson.encode_max_depth(1e20)",
    "cjson.encode_max_depth(0/0)",
    "cjson.encode_max_depth(2^31)",
    "cjson.encode_max_depth('x')",
    "cjson.encode_max_depth(true)",
    "cjson.encode_max_depth({})",
    "cjson.decode_max_depth(0)",
    "cjson.decode_max_depth(1, nil)",
    "cjson.encode_number_precision(0)",
    "cjson.encode_number_precision(15)",
    "cjson.encode_number_precision('abc')",
    "cjson.encode_sparse_array(true, 1, 2, 3)",
    "cjson.encode_sparse_array('yes')",
    "cjson.encode_sparse_array({})",
    "cjson.encode_sparse_array(1)",
    "cjson.encode_sparse_array(nil, -1)",
    "cjson.encode_sparse_array(nil, 'x')",
    "cjson.encode_sparse_array(nil, 1, -1)",
    "cjson.encode_sparse_array(nil, 1, {})",
    "cjson.encode_invalid_numbers('nan')",
    "cjson.encode_invalid_numbers(0)",
    "cjson.encode_invalid_numbers({})",
    "cjson.encode_invalid_numbers(1, 2)",
    "cjson.decode_invalid_numbers('null')",
    "cjson.decode_invalid_numbers(function() end)",
    "cjson.encode_keep_buffer({})",
    "cjson.encode_keep_buffer('null')",
]


@pytest.mark.parametrize("call", BAD_SETTINGS)
def test_bad_setting(servers, call):
    same(servers, f"local x = {call} return x", error=True)


def test_bad_setting_keeps_what_was_set_before_it(servers):
    # encode_sparse_array stores each argument before checking the next.
    same(servers, "local x = cjson.encode_sparse_array(true, 5, -1) return x", error=True)
    assert show(servers, "cjson.encode_sparse_array()") == "boolean:true number:5 number:10"
    same(servers, "local x = cjson.encode_max_depth(0) return x", error=True)
    assert show(servers, "cjson.encode_max_depth()") == "number:1000"


# -- what they change ---------------------------------------------------------------------------
NEST = "local function nest(n, obj) local t = 1 for i = 1, n do if obj then t = {a = t} else t = {t} end end return t end "


@pytest.mark.parametrize(
    "depth, n, obj, error",
    [
        (1, 1, False, False),
        (1, 2, False, True),
        (3, 3, True, False),
        (3, 4, True, True),
        (1000, 1000, False, False),
        (1000, 1001, False, True),
        # beyond the depth setting, the Lua C stack (LUAI_MAXCSTACK) limits nesting
        (100000, 7997, False, False),
        (100000, 7998, False, True),
        (100000, 3999, True, False),
        (100000, 4000, True, True),
    ],
)
def test_encode_max_depth(servers, depth, n, obj, error):
    script = (
        NEST
        + f"cjson.encode_max_depth({depth}) local s = cjson.encode(nest({n}, {str(obj).lower()})) return #s"
    )
    same(servers, script, error=error)


@pytest.mark.parametrize(
    "depth, text, error",
    [
        (1, "[1]", False),
        (1, "[[1]]", True),
        (1, '{"a":{}}', True),
        (2, '{"a":[{"b":1}]}', True),
        (2, ' [ [ "x" ] , [ ] ] ', False),
        (1000, "[" * 1000 + "]" * 1000, False),
        (1000, "[" * 1001 + "]" * 1001, True),
        (100000, "[" * 7998 + "]" * 7998, False),
        (100000, "[" * 7999 + "]" * 7999, True),
        (100000, '{"a":' * 3999 + "1" + "}" * 3999, False),
        (100000, '{"a":' * 4000 + "1" + "}" * 4000, True),
        (100000, '[{"a":' * 2667 + "1" + "}]" * 2667, True),
        (100000, '[{"a":' * 2666 + "1" + "}]" * 2666, False),
    ],
)
def test_decode_max_depth(servers, depth, text, error):
    script = f"cjson.decode_max_depth({depth}) local t = cjson.decode(ARGV[1]) return type(t)"
    same(servers, script, text, error=error)


NUMBERS = "{3.14159265358979, 1/3, -2/3, 1e300, 123456, 0.1, 1e-7, 100, 2^53, -0.5, 12345678901234}"


@pytest.mark.parametrize("precision", [1, 2, 5, 6, 10, 13, 14])
def test_encode_number_precision(servers, precision):
    same(servers, f"cjson.encode_number_precision({precision}) return cjson.encode({NUMBERS})")
    same(servers, f"cjson.encode_number_precision({precision}) return cjson.encode({{[1/3] = 1}})")


@pytest.mark.parametrize("setting", ["false", "true", "'on'", "'null'", "'off'"])
@pytest.mark.parametrize(
    "value", ["0/0", "-(0/0)", "1/0", "-1/0", "{1, 0/0, -1/0}", "{[1/0] = 1}", "{[-1/0] = 'x'}"]
)
def test_encode_invalid_numbers(servers, setting, value):
    refused = setting in ("false", "'off'")
    script = f"cjson.encode_invalid_numbers({setting}) local s = cjson.encode({value}) return s"
    same(servers, script, error=refused)


@pytest.mark.parametrize(
    "value",
    [
        "{[1/0] = 1, [1] = 2}",
        "{[1] = 2, [1/0] = 1}",
        "{[2^31] = 1}",
        "{[2^31 - 1] = 1, [2^40] = 2}",
        "{[1] = 1, [2^32 + 1] = 2}",
    ],
)
def test_encode_keys_beyond_int(servers, value):
    # lua_array_length keeps the largest index in a C int: out of range it is INT_MIN.
    same(servers, f"cjson.encode_invalid_numbers(true) return cjson.encode({value})")


SPARSE = [
    "{[1] = 1, [20] = 2}",
    "{[1] = 1, [2] = 2, [4] = 4}",
    "{[11] = 1}",
    "{[10] = 1}",
    "{[3] = 'x'}",
    "{[1] = 1, [2] = 2, [3] = 3, [100] = 1}",
]


@pytest.mark.parametrize(
    "args",
    ["", "true", "false, 0", "true, 1", "false, 1, 0", "true, 1, 0", "false, 3, 50", "true, 2, 2"],
)
@pytest.mark.parametrize("table", SPARSE)
def test_encode_sparse_array(servers, args, table):
    ours, ref = servers
    script = f"cjson.encode_sparse_array({args}) local s = cjson.encode({table}) return s"
    expected = eval_reply(ref, script, ())
    got = eval_reply(ours, script, ())
    if expected[0] == "ok" and expected[1].startswith(b"{"):
        # An object's key order is the Lua table's: compare as JSON.
        import json

        assert got[0] == "ok" and json.loads(got[1]) == json.loads(expected[1])
    else:
        assert got == expected


INVALID_NUMBERS = [
    "+1",
    "0x10",
    "-0X1F",
    "0x1p3",
    "012",
    "-012",
    "00",
    "0x",
    "inf",
    "-inf",
    "Infinity",
    "-Infinity",
    "INF",
    "infinit",
    "NaN",
    "nan",
    "-nan",
    "nan(123)",
    "[1, +2, 0x3, inf]",
    "1.",
    "-.5",
    "1e5",
    "1e",
    "1.5e+3",
    "-",
    "--1",
    "+",
    "+-1",
    "i",
    "nul",
    "1e400",
    "0x1p99999",
    "[1, -]",
    "1.2.3",
]


@pytest.mark.parametrize("setting", ["true", "false"])
@pytest.mark.parametrize("text", INVALID_NUMBERS)
def test_decode_invalid_numbers(servers, setting, text):
    ours, ref = servers
    script = (
        f"cjson.decode_invalid_numbers({setting}) local v = cjson.decode(ARGV[1]) "
        "if type(v) == 'table' then v = table.concat(v, ' ') end return tostring(v)"
    )
    expected = eval_reply(ref, script, (text,))
    assert eval_reply(ours, script, (text,)) == expected


DECODE_EDGES = [
    "[1]\x00junk",
    '"ab\x00c"',
    "\x00[",
    "[\x00",
    "[1,]",
    '{"a" 1}',
    '{"a":1,}',
    "{1:2}",
    "[1 2]",
    '"\\u0041\\u00e9\\u20ac\\ud83d\\ude00"',
    '"\\ud83d"',
    '"\\ude00"',
    '"\\ud83dx"',
    '"\\u12"',
    '"\\x"',
    '"abc',
    "",
    "  ",
    "tru",
    "[true, false, null]",
    '"a\\/b\\"c\\\\"',
]


@pytest.mark.parametrize("text", DECODE_EDGES)
def test_decode_edges(servers, text):
    ours, ref = servers
    script = "local v = cjson.decode(ARGV[1]) return cjson.encode(v)"
    expected = eval_reply(ref, script, (text.encode("latin-1"),))
    assert eval_reply(ours, script, (text.encode("latin-1"),)) == expected


def test_redis_json_smoke_test(servers):
    """redis tests/unit/scripting.tcl (7.2.6), "EVAL - JSON smoke test"."""
    same(
        servers,
        """
        local some_map = {
            s1="Some string",
            n1=100,
            a1={"Some","String","Array"},
            nil1=nil,
            b1=true,
            b2=false}
        local encoded = cjson.encode(some_map)
        local decoded = cjson.decode(encoded)
        assert(table.concat(some_map) == table.concat(decoded))

        cjson.encode_keep_buffer(false)
        encoded = cjson.encode(some_map)
        decoded = cjson.decode(encoded)
        assert(table.concat(some_map) == table.concat(decoded))

        -- Table with numeric keys
        local table1 = {one="one", [1]="one"}
        encoded = cjson.encode(table1)
        decoded = cjson.decode(encoded)
        assert(decoded["one"] == table1["one"])
        assert(decoded["1"] == table1[1])

        -- Array
        local array1 = {[1]="one", [2]="two", [3]="three"}
        encoded = cjson.encode(array1)
        decoded = cjson.decode(encoded)
        assert(table.concat(array1) == table.concat(decoded))

        -- Invalid keys
        local invalid_map = {}
        invalid_map[false] = "false"
        local ok, encoded = pcall(cjson.encode, invalid_map)
        assert(ok == false)

        -- Max depth
        cjson.encode_max_depth(1)
        ok, encoded = pcall(cjson.encode, some_map)
        assert(ok == false)

        cjson.decode_max_depth(1)
        ok, decoded = pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}')
        assert(ok == false)

        -- Invalid numbers
        ok, encoded = pcall(cjson.encode, {num1=0/0})
        assert(ok == false)
        cjson.encode_invalid_numbers(true)
        ok, encoded = pcall(cjson.encode, {num1=0/0})
        assert(ok == true)

        -- Restore defaults
        cjson.decode_max_depth(1000)
        cjson.encode_max_depth(1000)
        cjson.encode_invalid_numbers(false)
        return 'OK'
        """,
    )
