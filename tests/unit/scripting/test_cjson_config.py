"""cjson's configuration functions (lua-cjson 2.1 as Redis 7 ships it): their return
values and argument checks, and that each setting changes what encode/decode do. The
expected texts were taken from redis-server 7.0.15 (tests/integration/test_lua_cjson.py
compares with a live one)."""

from __future__ import annotations

import math

import pytest

from tests.conftest import GateHarness
from tests.unit.scripting.test_engine import GROUPS, error, run
from tokenginx.scripting import luajson
from tokenginx.scripting.engine import engine_for


@pytest.fixture
def gate() -> GateHarness:
    return GateHarness(groups=GROUPS)


def lua_error(reply) -> str:
    """A script error's text without the "ERR " prefix and the " script: ..." suffix."""
    text = error(reply)
    assert text.startswith("ERR ") and " script: " in text, text
    return text[4 : text.rindex(" script: ")]


def show(gate: GateHarness, call: str) -> str:
    script = (
        "local function show(...) local out = {} for i = 1, select('#', ...) do "
        "local v = select(i, ...) out[i] = type(v) .. ':' .. tostring(v) end "
        f"return table.concat(out, ' ') end return show({call})"
    )
    reply = run(gate, script)
    assert isinstance(reply, bytes), reply
    return reply.decode()


# -- the Lua functions ------------------------------------------------------------------------
def test_defaults(gate):
    assert show(gate, "cjson.encode_max_depth()") == "number:1000"
    assert show(gate, "cjson.decode_max_depth()") == "number:1000"
    assert show(gate, "cjson.encode_number_precision()") == "number:14"
    assert show(gate, "cjson.encode_sparse_array()") == "boolean:false number:2 number:10"
    assert show(gate, "cjson.encode_invalid_numbers()") == "boolean:false"
    assert show(gate, "cjson.decode_invalid_numbers()") == "boolean:true"
    assert show(gate, "cjson.encode_keep_buffer()") == "boolean:true"


@pytest.mark.parametrize(
    "call, shown",
    [
        ("cjson.encode_max_depth(5)", "number:5"),
        ("cjson.encode_max_depth('7')", "number:7"),
        ("cjson.encode_max_depth(2.9)", "number:2"),
        ("cjson.encode_max_depth(2^32 + 5)", "number:5"),
        ("cjson.encode_max_depth(nil)", "number:1000"),
        ("cjson.decode_max_depth(3)", "number:3"),
        ("cjson.encode_number_precision(1)", "number:1"),
        ("cjson.encode_sparse_array(true)", "boolean:true number:2 number:10"),
        ("cjson.encode_sparse_array('on', 0)", "boolean:true number:0 number:10"),
        ("cjson.encode_sparse_array(nil, nil, 0)", "boolean:false number:2 number:0"),
        ("cjson.encode_invalid_numbers(true)", "boolean:true"),
        ("cjson.encode_invalid_numbers('on')", "boolean:true"),
        ("cjson.encode_invalid_numbers('null')", "string:null"),
        ("cjson.decode_invalid_numbers('off')", "boolean:false"),
        ("cjson.encode_keep_buffer('off')", "boolean:false"),
    ],
)
def test_setting_returns_current_value(gate, call, shown):
    assert show(gate, call) == shown


@pytest.mark.parametrize(
    "call, message",
    [
        (
            "cjson.encode_max_depth(1, 2)",
            "bad argument #2 to 'encode_max_depth' (found too many arguments)",
        ),
        (
            "cjson.encode_max_depth(0)",
            "bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)",
        ),
        (
            "cjson.encode_max_depth(2^31)",
            "bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)",
        ),
        (
            "cjson.encode_max_depth('x')",
            "bad argument #1 to 'encode_max_depth' (number expected, got string)",
        ),
        (
            "cjson.encode_max_depth({})",
            "bad argument #1 to 'encode_max_depth' (number expected, got table)",
        ),
        (
            "cjson.encode_number_precision(15)",
            "bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)",
        ),
        (
            "cjson.encode_sparse_array(true, 1, 2, 3)",
            "bad argument #4 to 'encode_sparse_array' (found too many arguments)",
        ),
        (
            "cjson.encode_sparse_array('yes')",
            "bad argument #1 to 'encode_sparse_array' (invalid option 'yes')",
        ),
        (
            "cjson.encode_sparse_array({})",
            "bad argument #1 to 'encode_sparse_array' (string expected, got table)",
        ),
        # the range check always names argument #1, as lua_cjson.c does
        (
            "cjson.encode_sparse_array(nil, -1)",
            "bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)",
        ),
        (
            "cjson.encode_sparse_array(nil, 1, 'x')",
            "bad argument #3 to 'encode_sparse_array' (number expected, got string)",
        ),
        (
            "cjson.encode_invalid_numbers(0)",
            "bad argument #1 to 'encode_invalid_numbers' (invalid option '0')",
        ),
        (
            "cjson.decode_invalid_numbers('null')",
            "bad argument #1 to 'decode_invalid_numbers' (invalid option 'null')",
        ),
        (
            "cjson.encode_keep_buffer({})",
            "bad argument #1 to 'encode_keep_buffer' (string expected, got table)",
        ),
    ],
)
def test_bad_setting(gate, call, message):
    assert lua_error(run(gate, f"local x = {call} return x")) == f"user_script:1: {message}"


def test_settings_last_for_the_runtime(gate):
    run(gate, "cjson.encode_max_depth(5) cjson.encode_invalid_numbers('null')")
    assert (
        show(gate, "cjson.encode_max_depth(), cjson.encode_invalid_numbers()")
        == "number:5 string:null"
    )
    assert run(gate, "return cjson.encode({0/0, 1/0})") == b"[null,null]"
    engine_for(gate.state).flush()  # SCRIPT FLUSH: a new runtime, the defaults again
    assert (
        show(gate, "cjson.encode_max_depth(), cjson.encode_invalid_numbers()")
        == "number:1000 boolean:false"
    )


def test_partial_update_before_an_error(gate):
    assert "expected integer" in error(
        run(gate, "local x = cjson.encode_sparse_array(true, 5, -1) return x")
    )
    assert show(gate, "cjson.encode_sparse_array()") == "boolean:true number:5 number:10"


def test_settings_change_behaviour(gate):
    assert "excessive nesting (2)" in error(
        run(gate, "cjson.encode_max_depth(1) local s = cjson.encode({{}}) return s")
    )
    assert lua_error(
        run(gate, "cjson.decode_max_depth(1) local s = cjson.decode('[[1]]') return s")
    ) == ("user_script:1: Found too many nested data structures (2) at character 2")
    assert run(gate, "cjson.encode_number_precision(3) return cjson.encode(math.pi)") == b"3.14"
    assert (
        run(gate, "cjson.encode_sparse_array(true) return cjson.encode({[20] = 1})") == b'{"20":1}'
    )
    assert (
        run(gate, "cjson.encode_sparse_array(false, 0) return cjson.encode({[3] = 1})")
        == b"[null,null,1]"
    )
    assert run(
        gate, "cjson.encode_invalid_numbers(true) return cjson.encode({0/0, 1/0, -1/0})"
    ) == (b"[nan,inf,-inf]")
    assert run(gate, "return tostring(cjson.decode('0x10'))") == b"16"
    assert lua_error(
        run(gate, "cjson.decode_invalid_numbers(false) local x = cjson.decode('0x10') return x")
    ) == ("user_script:1: Expected value but found invalid number at character 1")


def test_redis_json_smoke_test(gate):
    """redis tests/unit/scripting.tcl (7.2.6), "EVAL - JSON smoke test" (the config part)."""
    script = """
        local some_map = {s1="Some string", n1=100, a1={"Some","String","Array"}, b1=true}
        cjson.encode_max_depth(1)
        local ok = pcall(cjson.encode, some_map)
        assert(ok == false)
        cjson.decode_max_depth(1)
        ok = pcall(cjson.decode, '{"obj": {"array": [1,2,3,4]}}')
        assert(ok == false)
        ok = pcall(cjson.encode, {num1=0/0})
        assert(ok == false)
        cjson.encode_invalid_numbers(true)
        ok = pcall(cjson.encode, {num1=0/0})
        assert(ok == true)
        cjson.decode_max_depth(1000)
        cjson.encode_max_depth(1000)
        cjson.encode_invalid_numbers(false)
        return 'OK'
    """
    assert run(gate, script) == b"OK"
    assert "must not be NaN" in error(run(gate, "local s = cjson.encode(0/0) return s"))


# -- luajson directly -----------------------------------------------------------------------------
def never_null(_v):
    return False


def table(items):
    return items  # decode's tables, as plain Python values


@pytest.mark.parametrize(
    "text, invalid, expected",
    [
        (b"+1", True, 1.0),
        (b"0x10", True, 16.0),
        (b"012", True, 12.0),
        (b"-0x1p3", True, -8.0),
        (b"1.", True, 1.0),
        (b"-Infinity", True, -math.inf),
        (b"1e400", True, math.inf),
        (b"[1]\x00junk", True, [1.0]),
        (b"012", False, "Expected value but found invalid number at character 1"),
        (b"inf", False, "Expected value but found invalid token at character 1"),
        (b"-inf", False, "Expected value but found invalid number at character 1"),
        (b"1e", True, "Expected the end but found invalid token at character 2"),
        (b"-", True, "Expected value but found invalid number at character 1"),
        (b"[1,]", True, "Expected value but found T_ARR_END at character 4"),
        (b'"\\ud83d"', True, "Expected value but found invalid unicode escape code at character 2"),
        (b'"\\ud83d\\ude00"', True, "\U0001f600".encode()),
        (b"\x00[", True, "JSON parser does not support UTF-16 or UTF-32"),
    ],
)
def test_decode_numbers_and_tokens(text, invalid, expected):
    cfg = luajson.Config(decode_invalid_numbers=invalid)
    ok, out = luajson.decode(text, table, None, cfg)
    if isinstance(expected, str):
        assert (ok, out) == (False, expected)
    else:
        assert ok and out == expected


def test_decode_nesting_limited_by_lua_stack():
    cfg = luajson.Config(decode_max_depth=100000)
    assert luajson.decode(b"[" * 7998 + b"]" * 7998, table, None, cfg)[0]
    assert luajson.decode(b"[" * 7999 + b"]" * 7999, table, None, cfg) == (
        False,
        "Found too many nested data structures (7999) at character 7999",
    )


def test_encode_invalid_numbers_and_precision():
    ok, out = luajson.encode(1.5, never_null, luajson.Config(encode_number_precision=1))
    assert (ok, out) == (True, b"2")
    ok, out = luajson.encode(math.nan, never_null, luajson.Config(encode_invalid_numbers=2))
    assert (ok, out) == (True, b"null")
    ok, out = luajson.encode(-math.inf, never_null, luajson.Config(encode_invalid_numbers=1))
    assert (ok, out) == (True, b"-inf")
    assert luajson.encode(math.inf, never_null) == (
        False,
        "Cannot serialise number: must not be NaN or Inf",
    )


@pytest.mark.parametrize(
    "n, obj, ok",
    [(7997, False, True), (7998, False, False), (3999, True, True), (4000, True, False)],
)
def test_encode_nesting_limited_by_lua_stack(gate, n, obj, ok):
    nest = "{a = t}" if obj else "{t}"
    script = (
        f"cjson.encode_max_depth(100000) local t = 1 for i = 1, {n} do t = {nest} end "
        "local s = cjson.encode(t) return #s"
    )
    reply = run(gate, script)
    if ok:
        assert isinstance(reply, int)
    else:
        assert lua_error(reply) == f"user_script:1: Cannot serialise, excessive nesting ({n})"


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": [1, 2.5, -3e2, true, false, null, "x\\/y\\u00e9\\n"], "b": {"c": {}}, "d": []}',
        b'  "plain \xff bytes"  ',
        b"[NaN, Infinity, -Infinity, 12345678901234567890]",
    ],
)
def test_tokenizer_agrees_with_the_json_loads_fast_path(text):
    fast = luajson._fast_decode(text, table, None, luajson.DEFAULT)
    slow = luajson._decode(luajson._Parser(text, luajson.DEFAULT), table, None)
    assert fast is not luajson._FALLBACK
    assert repr(fast) == repr(slow)  # repr: NaN != NaN
