"""cmsgpack for scripts: the Python encoder/decoder (luamsgpack) on a bare Lua runtime,
and the prelude's wrappers through the engine.

Expected bytes are written by hand from the MessagePack format and from what Redis 7's
lua_cmsgpack.c does (tests/integration/test_lua_cmsgpack.py checks the same against a
real redis-server)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from lupa.lua51 import LuaRuntime, lua_type

from tests.conftest import GateHarness
from tokenginx.commands import ALL_GROUPS, scripting
from tokenginx.errors import CommandError
from tokenginx.scripting import engine as engine_module
from tokenginx.scripting import luamsgpack
from tokenginx.scripting.engine import engine_for

INT64_MIN = -(2**63)


@pytest.fixture(scope="module")
def lua() -> LuaRuntime:
    return LuaRuntime(encoding=None, unpack_returned_tuples=True)


def pack(*values: Any) -> bytes:
    ok, out = luamsgpack.pack(values)
    assert ok, out
    return out


def pack_error(*values: Any) -> tuple[bytes | None, int]:
    ok, message, level = luamsgpack.pack(values)
    assert not ok
    return message, level


def to_py(v: Any) -> Any:
    """A decoded Lua value as plain Python (tables as dicts, in next() order)."""
    if lua_type(v) == "table":
        return {to_py(k) if lua_type(k) != "table" else ("table", id(k)): to_py(x) for k, x in v.items()}
    return v


def unpack(lua: LuaRuntime, data: bytes, limit: float = 0, offset: float = 0, base: int = 1):
    result = luamsgpack.unpack(data, limit, offset, base, lua.table_from)
    assert result[0] is True, result
    _, n, table = result
    return [to_py(table[i]) for i in range(1, n + 1)]


def unpack_error(lua: LuaRuntime, data: bytes, limit: float = 0, offset: float = 0, base: int = 1):
    result = luamsgpack.unpack(data, limit, offset, base, lua.table_from)
    assert result[0] is False, result
    return result[1].decode(), result[2]


# -- encoding: scalars ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "n, expected",
    [
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (2**63 - 1, "cf7fffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (INT64_MIN, "d38000000000000000"),
    ],
)
def test_integers_take_the_smallest_type(n, expected):
    assert pack(n).hex() == expected
    assert pack(float(n)).hex() == expected or abs(n) >= 2**53  # integral floats too


@pytest.mark.parametrize(
    "d, expected",
    [
        (0.5, "ca3f000000"),
        (-1.5, "cabfc00000"),
        (0.1, "cb3fb999999999999a"),  # not exact as a float 32
        (-0.0, "00"),  # an integral value: the integer 0
        (2.0**53, "cf0020000000000000"),
        (2.0**63, "ca5f000000"),  # out of int64 range, exact as a float 32
        (2.0**63 + 2048, "cb43e0000000000001"),
        (-(2.0**63), "d38000000000000000"),
        (math.inf, "ca7f800000"),
        (-math.inf, "caff800000"),
        (3.4028234663852886e38, "ca7f7fffff"),  # FLT_MAX
        (1e39, "cb48078287f49c4a1d"),  # beyond float 32
        (2.0**-149, "ca00000001"),  # the smallest float 32 denormal
        (2.0**-150, "cb3690000000000000"),
    ],
)
def test_floats_are_float32_when_lossless(d, expected):
    assert pack(d).hex() == expected


def test_nan_keeps_its_bits_as_a_double():
    nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    assert pack(nan).hex() == "cbfff8000000000000"


@pytest.mark.parametrize(
    "size, header",
    [
        (0, "a0"),
        (31, "bf"),
        (32, "d920"),
        (255, "d9ff"),
        (256, "da0100"),
        (65535, "daffff"),
        (65536, "db00010000"),
    ],
)
def test_strings_are_str_types(size, header):
    s = b"x" * size
    assert pack(s) == bytes.fromhex(header) + s


def test_booleans_nil_and_other_types(lua):
    assert pack(True, False, None) == b"\xc3\xc2\xc0"
    f = lua.eval("function() end")
    co = lua.eval("coroutine.create(function() end)")
    assert pack(f, co, object(), len) == b"\xc0" * 4
    assert pack(b"a", 1) == b"\xa1a\x01"  # all the values, concatenated


# -- encoding: tables -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "src, expected",
    [
        ("{}", "90"),
        ("{1, 2, 3}", "93010203"),
        ("{'a', {true}}", "92a16191c3"),
        ("{1, nil, 3}", "8201010303"),  # a hole: a map
        ("{[2] = 'b'}", "8102a162"),
        ("{[0] = 1}", "810001"),
        ("{[-1] = 1}", "81ff01"),
        ("{[1.5] = 1}", "81ca3fc0000001"),
        ("{[2^31 - 1] = 1}", "81ce7fffffff01"),
        ("{[2^31] = 1}", "81ce8000000001"),
        ("{a = 1}", "81a16101"),
        ("{[true] = false}", "81c3c2"),
    ],
)
def test_tables(lua, src, expected):
    assert pack(lua.eval(src)).hex() == expected


@pytest.mark.parametrize(
    "n, header",
    [(15, "9f"), (16, "dc0010"), (65535, "dcffff"), (65536, "dd00010000")],
)
def test_array_sizes(lua, n, header):
    t = lua.eval(f"(function() local t = {{}} for i = 1, {n} do t[i] = 0 end return t end)()")
    assert pack(t) == bytes.fromhex(header) + b"\x00" * n


@pytest.mark.parametrize("n, header", [(15, "8f"), (16, "de0010"), (65536, "df00010000")])
def test_map_sizes(lua, n, header):
    t = lua.eval(f"(function() local t = {{}} for i = 1, {n} do t[-i] = 0 end return t end)()")
    out = pack(t)
    assert out.startswith(bytes.fromhex(header))
    assert len(out) == len(header) // 2 + sum(len(pack(-i)) + 1 for i in range(1, n + 1))


def test_map_order_is_next_order(lua):
    t = lua.eval("{x = 1, y = 2, z = 3, [10] = 4}")
    expected = b"\x84" + b"".join(pack(k) + pack(v) for k, v in t.items())
    assert pack(t) == expected


def test_nesting_beyond_16_is_nil(lua):
    nested = lua.eval("function(n) local t = {} for i = 1, n do t = {t} end return t end")
    assert pack(nested(15)) == b"\x91" * 15 + b"\x90"  # 16 tables
    assert pack(nested(16)) == b"\x91" * 16 + b"\xc0"  # the 17th is nil
    assert pack(lua.eval("(function() local t = {} t[1] = t return t end)()")) == (
        b"\x91" * 16 + b"\xc0"
    )
    # a key is one level down too
    key_at_16 = lua.eval(
        "(function() local t, k = {}, {} t[k] = 1 local c = k "
        "for i = 1, 15 do c[1] = {} c = c[1] end return t end)()"
    )
    assert pack(key_at_16) == b"\x81" + b"\x91" * 15 + b"\xc0" + b"\x01"


def test_pack_stack_model_matches_the_c_stack(lua):
    # 4000 arguments (the most mp_pack takes): argument i is encoded with 4000 + i slots
    # used; a table needs 2 more (table_is_an_array), a map 3 (as_map).
    array, table_map = lua.eval("{}"), lua.eval("{a = 1}")
    args = [0] * 4000
    args[3997] = array  # argument 3998
    assert luamsgpack.pack(tuple(args))[0] is True
    args[3998] = array  # argument 3999
    assert pack_error(*args) == (b"stack overflow (in function table_is_an_array)", 2)
    args = [0] * 4000
    args[3996] = table_map
    assert luamsgpack.pack(tuple(args))[0] is True
    args[3997] = table_map
    assert pack_error(*args) == (b"stack overflow (in function mp_encode_lua_table_as_map)", 2)
    args = [0] * 4000
    args[3996] = lua.eval("{{{}}}")  # nested: each level one slot further
    assert pack_error(*args) == (b"stack overflow (in function table_is_an_array)", 2)


def test_pack_stops_when_the_time_limit_passed(lua):
    bomb = lua.eval("(function() local t = {} for i = 1, 8 do t[i] = t end return t end)()")
    calls = []

    def check_time() -> bool:
        calls.append(1)
        return len(calls) >= 3

    assert luamsgpack.pack((bomb,), check_time) == (False, None, 2)
    assert len(calls) == 3


# -- decoding ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data, expected",
    [
        ("00", 0),
        ("7f", 127),
        ("ff", -1),
        ("e0", -32),
        ("ccff", 255),
        ("d080", -128),
        ("cdffff", 65535),
        ("d1ff7f", -129),
        ("d18000", -32768),
        ("ceffffffff", 2**32 - 1),
        ("d280000000", -(2**31)),
        # as Lua numbers: doubles, read back as int when int64 can hold them
        ("cf7fffffffffffffff", 2.0**63),
        ("cfffffffffffffffff", -1),  # lua_pushunsigned wraps above 2^63 - 1
        ("cf8000000000000000", INT64_MIN),
        ("d38000000000000001", INT64_MIN),
        ("ca3f000000", 0.5),
        ("ca3dcccccd", struct.unpack(">f", bytes.fromhex("3dcccccd"))[0]),
        ("cb3fb999999999999a", 0.1),
        ("c0", None),
        ("c3", True),
        ("c2", False),
        ("a0", b""),
        ("a3616263", b"abc"),
        ("d903616263", b"abc"),
        ("da0003616263", b"abc"),
        ("db00000003616263", b"abc"),
        ("90", {}),
        ("80", {}),
        ("920102", {1: 1, 2: 2}),
        ("dc00020102", {1: 1, 2: 2}),
        ("dd000000020102", {1: 1, 2: 2}),
        ("81a16101", {b"a": 1}),
        ("de0001a16101", {b"a": 1}),
        ("df00000001a16101", {b"a": 1}),
        ("93c001c0", {1: None, 2: 1, 3: None}),  # nil values are set (and vanish)
    ],
)
def test_decode_types(lua, data, expected):
    (value,) = unpack(lua, bytes.fromhex(data))
    if isinstance(expected, dict):
        assert value == {k: v for k, v in expected.items() if v is not None}
    else:
        assert value == expected and type(value) is type(expected)


def test_decode_nested_and_several_values(lua):
    data = pack(1, b"two", lua.eval("{3, {x = {4}}}"), True)
    assert unpack(lua, data) == [1, b"two", {1: 3, 2: {b"x": {1: 4}}}, True]
    assert unpack(lua, b"") == []


def test_decode_keys_bool_and_number_are_distinct(lua):
    ok, n, results = luamsgpack.unpack(bytes.fromhex("82c3a1740101"), 0, 0, 1, lua.table_from)
    pairs = list(results[1].items())  # {true: "t", 1: 1}
    assert sorted(pairs, key=repr) == [(1, 1), (True, b"t")]
    assert [type(k) for k, _ in sorted(pairs, key=repr)] == [int, bool]
    (value,) = unpack(lua, bytes.fromhex("82a16101a16102"))  # a repeated key: the last wins
    assert value == {b"a": 2}


def test_decode_table_key(lua):
    (value,) = unpack(lua, bytes.fromhex("8191010a"))  # {{1}: 10}
    (k, v), = value.items()
    assert k[0] == "table" and v == 10


def test_round_trip(lua):
    values = (
        0, -1, 2**40, -(2**40), 0.25, 1e300, -math.inf, b"", b"x" * 300, True, False,
        lua.eval("{1, 2, {a = 'b', [5] = {}}, 'z'}"),
    )
    data = pack(*values)
    back = luamsgpack.unpack(data, 0, 0, 1, lua.table_from)
    assert back[0] and back[1] == len(values)
    assert pack(*(back[2][i] for i in range(1, back[1] + 1))) == data


@pytest.mark.parametrize(
    "data",
    ["cc", "cd00", "ce000000", "cf00000000000000", "d0", "d100", "d2000000",
     "d300000000000000", "ca000000", "cb00000000000000", "a1", "a261", "d9", "d90361",
     "da00", "da0001", "db000000", "db0000000261", "dc00", "dc0001", "dd000000",
     "dd00000001", "de00", "de0001", "de0001a161", "df000000", "92", "9201", "81", "8101",
     "81a161"],
)
def test_truncated_input(lua, data):
    assert unpack_error(lua, bytes.fromhex(data)) == ("Missing bytes in input.", 2)


def test_every_prefix_of_a_value_is_truncated(lua):
    data = pack(lua.eval("{1, 'abc', {x = 2^40, y = {0.1, true}}, -300}"))
    for cut in range(1, len(data)):
        assert unpack_error(lua, data[:cut]) == ("Missing bytes in input.", 2), cut


@pytest.mark.parametrize("byte", [0xC1, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8])
def test_bad_format(lua, byte):
    # bin and ext types are not decoded: lua-cmsgpack never writes them
    assert unpack_error(lua, bytes((byte, 1, 1, 1))) == ("Bad data format in input.", 2)
    assert unpack_error(lua, bytes((0x92, 1, byte))) == ("Bad data format in input.", 2)


def test_nil_and_nan_keys(lua):
    # Lua's own errors inside the C function: no position (level 0)
    assert unpack_error(lua, bytes.fromhex("81c001")) == ("table index is nil", 0)
    assert unpack_error(lua, bytes.fromhex("81ca7fc0000001")) == ("table index is NaN", 0)
    # the value is decoded first: its error wins
    assert unpack_error(lua, bytes.fromhex("81c0c1")) == ("Bad data format in input.", 2)


def test_decode_stack_limits(lua):
    nils = b"\xc0" * 7999
    assert len(unpack(lua, nils)) == 7999
    too_many = "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
    assert unpack_error(lua, nils + b"\xc0") == (too_many, 2)
    assert unpack_error(lua, b"\xc0" * 7000, base=1001) == (too_many, 2)  # arguments count
    assert len(unpack(lua, b"\xc0" * 7000, base=1000)) == 7000
    # unpack_one / unpack_limit push the offset too
    assert len(unpack(lua, nils[:-1], 8000, 0)) == 7999
    assert unpack_error(lua, nils, 8000, 0) == ("stack overflow (in function mp_unpack_full)", 2)


def test_deep_nesting_is_bounded_by_the_stack_not_recursion(lua):
    ok, n, results = luamsgpack.unpack(b"\x91" * 3990 + b"\x01", 0, 0, 1, lua.table_from)
    value, depth = results[1], 0  # two slots per array level
    while lua_type(value) == "table":
        value, depth = value[1], depth + 1
    assert depth == 3990 and value == 1
    assert unpack_error(lua, b"\x91" * 4000 + b"\x01") == (
        "stack overflow (in function mp_decode_to_lua_array)",
        2,
    )
    # a map as the key of a map: one slot per level
    assert unpack_error(lua, b"\x81" * 7990 + b"\x01") == ("Missing bytes in input.", 2)
    assert unpack_error(lua, b"\x81" * 8000)[0].startswith("stack overflow (too many return")


def test_unpack_one_and_limit_offsets(lua):
    data = pack(1, b"two", 3)  # 01 a3 74 77 6f 03
    assert unpack(lua, data, 1, 0) == [1, 1]
    assert unpack(lua, data, 1, 1) == [5, b"two"]
    assert unpack(lua, data, 1, 5) == [-1, 3]
    assert unpack(lua, data, 1, 6) == [-1]  # at the end: no value
    assert unpack(lua, data, 2, 0) == [5, 1, b"two"]
    assert unpack(lua, data, 10, 1) == [-1, b"two", 3]
    assert unpack(lua, data, 0, 0) == [1, b"two", 3]  # limit and offset 0: everything
    assert unpack(lua, data, 0, 1) == [1]  # limit 0 only: just the offset
    assert unpack(lua, data, 2.9, 0.5) == [5, 1, b"two"]  # lua_tointeger truncates
    assert unpack(lua, b"", 1, 0) == [-1]


def test_unpack_argument_errors(lua):
    data = b"\x01\x02\x03"
    invalid = "Invalid request to unpack with offset of {} and limit of 3."  # sic: the length
    assert unpack_error(lua, data, 1, -1) == (invalid.format(-1), 2)
    assert unpack_error(lua, data, -1, 0) == (invalid.format(0), 2)
    assert unpack_error(lua, data, 0, -(2**32) - 5) == (invalid.format(-5), 2)  # (int) offset
    assert unpack_error(lua, data, 1, math.inf) == (invalid.format(0), 2)  # INT64_MIN
    assert unpack_error(lua, data, 1, 4) == ("Start offset 4 greater than input length 3.", 2)
    assert unpack_error(lua, data, 1, 2**40) == ("Start offset 0 greater than input length 3.", 2)


@pytest.mark.parametrize(
    "n, expected",
    [(0, 0), (1.9, 1), (-1.9, -1), (2.0**62, 2**62), (-(2.0**63), INT64_MIN),
     (2.0**63, INT64_MIN), (1e300, INT64_MIN), (math.nan, INT64_MIN), (-math.inf, INT64_MIN)],
)
def test_lua_tointeger(n, expected):
    assert luamsgpack.lua_tointeger(n) == expected


def test_unpack_stops_when_the_time_limit_passed(lua):
    calls = []

    def check_time() -> bool:
        calls.append(1)
        return True

    result = luamsgpack.unpack(b"\x01" * 10_000, 0, 0, 1, lua.table_from, check_time)
    assert result == (False, None, 2) and len(calls) == 1
    small = luamsgpack.unpack(b"\x01" * 10, 0, 0, 1, lua.table_from, check_time)
    assert small[0] is True  # checked every few thousand values only


# -- through the engine -----------------------------------------------------------------------
GROUPS = [*ALL_GROUPS, *(g for g in (scripting.group,) if g not in ALL_GROUPS)]


@pytest.fixture
def gate() -> GateHarness:
    return GateHarness(groups=GROUPS)


def run(gate: GateHarness, body: str) -> Any:
    engine = engine_for(gate.state)
    return engine.run(gate.client, engine.load(body.encode()), [], [], False)


def error(reply: Any) -> str:
    assert isinstance(reply, CommandError), f"expected an error, got {reply!r}"
    return reply.message


def test_cmsgpack_is_a_readonly_global(gate):
    assert run(gate, "return cmsgpack.pack({1, 'a'}, 2.5)") == b"\x92\x01\xa1a\xca\x40\x20\x00\x00"
    assert run(gate, "return {cmsgpack._NAME, cmsgpack._VERSION}") == [
        b"cmsgpack",
        b"lua-cmsgpack 0.4.0",
    ]
    assert "Attempt to modify a readonly table" in error(run(gate, "cmsgpack.pack = nil"))
    assert run(gate, "local n = 0 for k in pairs(cmsgpack) do n = n + 1 end return n") == 8


def test_wrapper_argument_errors(gate):
    body = "local x = cmsgpack.pack() return x"
    assert error(run(gate, body)).startswith(
        "ERR user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.) script:"
    )
    assert run(gate, "local ok, e = pcall(cmsgpack.unpack) return e") == (
        b"bad argument #1 to '?' (string expected, got no value)"
    )
    assert "bad argument #2 to 'unpack_limit' (number expected, got nil)" in error(
        run(gate, "local x = cmsgpack.unpack_limit('', nil) return x")
    )
    assert "calling 'unpack' on bad self (string expected, got table)" in error(
        run(gate, "local x = cmsgpack:unpack() return x")
    )
    assert "bad argument #0 to 'pack' (Too many arguments for MessagePack pack.)" in error(
        run(gate, "local t = {} for i = 1, 4001 do t[i] = i end local x = cmsgpack.pack(unpack(t)) return x")
    )
    assert error(run(gate, "local x = cmsgpack.unpack('\\129\\192\\1') return x")).startswith(
        "ERR table index is nil script:"  # no position, as in Redis
    )
    assert error(run(gate, "local x = cmsgpack.unpack('\\146') return x")).startswith(
        "ERR user_script:1: Missing bytes in input. script:"
    )
    assert run(gate, "return {cmsgpack.unpack(12)}") == [49, 50]  # a number is its string


def test_all_7999_values_are_returned(gate):
    body = "local t = {cmsgpack.unpack(string.rep('\\1', 7999))} return {#t, t[1], t[7999]}"
    assert run(gate, body) == [7999, 1, 1]
    body = "return select('#', cmsgpack.unpack_limit(string.rep('\\192', 7998), 9000))"
    assert run(gate, body) == 7999


class KillingPoller:
    """Stands for the server's busy poller: a SCRIPT KILL arrives at the first poll."""

    def __init__(self, gate: GateHarness) -> None:
        self.gate = gate
        self.polls = 0

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def poll(self, caller: Any) -> None:
        self.polls += 1
        engine_for(self.gate.state).kill()


@pytest.mark.parametrize(
    "body",
    [
        # 8^16 values to write: Python works without the Lua hook, so it looks itself
        "local t = {} for i = 1, 8 do t[i] = t end return #cmsgpack.pack(t)",
        # an array of 3,000,000 nils
        "local t = cmsgpack.unpack(string.char(0xdd, 0, 0x2d, 0xc6, 0xc0) .. "
        "string.rep('\\192', 3000000)) return #t",
    ],
)
def test_a_long_cmsgpack_call_turns_busy_and_can_be_killed(gate, monkeypatch, body):
    monkeypatch.setattr(gate.state.config.scripting, "busy_reply_threshold_ms", 0)
    poller = KillingPoller(gate)
    monkeypatch.setattr(gate.state, "busy_poller", poller)
    assert error(run(gate, body)) == engine_module.KILLED_MESSAGE
    assert poller.polls >= 1
    monkeypatch.setattr(gate.state, "busy_poller", None)
    assert run(gate, "return cmsgpack.unpack(cmsgpack.pack(7))") == 7


MEMORY_CHILD = """
from tests.conftest import GateHarness
from tests.unit.scripting.test_luamsgpack import GROUPS, run
from tokenginx.config import Config

config = Config()
config.scripting.max_memory_mb = 8
gate = GateHarness(config, groups=GROUPS)
# small inputs, big results: the memory goes to what Python builds
tables = "string.char(0xdd, 0, 0x07, 0xa1, 0x20) .. string.rep('\\144', 500000)"
for body in [
    f"local t = cmsgpack.unpack({tables}) return #t",
    f"local ok, e = pcall(cmsgpack.unpack, {tables}) return e",
    "local t = {} for i = 1, 30 do t[i] = string.rep(string.char(64 + i), 200000) end "
    "local ok, e = pcall(cmsgpack.pack, t) return e",
]:
    print(repr(run(gate, body)), flush=True)
print(repr(run(gate, "return cmsgpack.unpack(cmsgpack.pack('alive'))")))
"""


def test_memory_cap_gives_an_error_not_an_abort():
    # Lua raising "not enough memory" while Python builds values would abort the
    # process (lupa allocates outside Lua's protection): run it in a child.
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 4, done.stdout + done.stderr[-2000:]
    assert all("not enough memory" in line for line in lines[:3]), lines
    assert lines[3] == "b'alive'"
