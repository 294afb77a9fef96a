"""cmsgpack in scripts, differentially: every script runs on tokenginx-server and on a
real redis-server (``reference_redis``), and the replies (or error texts) must be the
same. Each case also says whether it must succeed or fail, so a script that fails on
both servers for an unintended reason does not pass.

Errors are provoked with ``local x = f() return x`` rather than ``return f()``: in a
tail call tokenginx's Lua wrappers lose the caller's line (see the engine's docstring).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import RunningServer
from tests.integration.differential import client_pair, same


@pytest.fixture(scope="module")
def servers(
    tokenginx: RunningServer, reference_redis: RunningServer
) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    yield from client_pair(tokenginx, reference_redis)


def alive(servers, tokenginx: RunningServer) -> None:
    ours, ref = servers
    assert tokenginx.proc.poll() is None
    assert ours.ping() and ref.ping()


# -- pack ---------------------------------------------------------------------------------------
INTEGERS = [
    "0", "1", "127", "128", "255", "256", "65535", "65536", "4294967295", "4294967296",
    "2^53", "2^53 + 2", "2^63 - 1024", "2^63", "2^64",
    "-1", "-32", "-33", "-128", "-129", "-32768", "-32769", "-2147483648", "-2147483649",
    "-2^53", "-2^63", "-2^63 - 4096",
]
FLOATS = [
    "0.5", "0.1", "-1.5", "1/3", "3.14", "1e38", "1e39", "1e300", "1e-300", "-0.0", "0/0",
    "1/0", "-1/0", "3.4028234663852886e38", "3.4028235677973366e38", "2^-149", "2^-150",
    "2^-1074", "1.5 * 2^-149",
]
STRINGS = ["''", "'a'", *(f"string.rep('x', {n})" for n in (31, 32, 255, 256, 65535, 65536))]
OTHERS = ["true", "false", "nil", "function() end", "coroutine.create(function() end)",
          "cjson.null"]


@pytest.mark.parametrize("expr", INTEGERS + FLOATS + STRINGS + OTHERS)
def test_pack_scalar(servers, expr):
    out = same(servers, f"return cmsgpack.pack({expr})")
    assert isinstance(out, bytes) and out


def test_pack_expected_bytes(servers):
    out = same(servers, "return cmsgpack.pack(1, -1, -33, 300, 0.5, 0.1, 'ab', true, nil, {})")
    assert out == bytes.fromhex("01ffd0dfcd012cca3f000000cb3fb999999999999aa26162c3c090")


def test_pack_every_integer_width_in_one_string(servers):
    out = same(servers, f"return cmsgpack.pack({', '.join(INTEGERS)})")
    assert out.startswith(b"\x00\x01\x7f\xcc\x80")


TABLES = [
    "{}",
    "{1, 2, 3}",
    "{1, nil, 3}",
    "{nil, 2}",
    "{[1] = 1, [2] = 2, [4] = 4}",
    "{[0] = 'zero', 'one'}",
    "{[-1] = 1}",
    "{[1.5] = 1}",
    "{[2^31 - 1] = 1}",
    "{[2^31] = 1}",
    "{[true] = false, [false] = true}",
    "{a = 1, b = {c = {d = 'e'}}, [10] = 'ten', 'one'}",
    "{{}, {{}}, {[{}] = {}}}",
    "{print = 1, x = function() end}",
    "setmetatable({'a', 'b'}, {__index = function() return 1 end})",
]


@pytest.mark.parametrize("table", TABLES)
def test_pack_table(servers, table):
    assert same(servers, f"local t = {table} return cmsgpack.pack(t)")


@pytest.mark.parametrize(
    "n, kind, header",
    [
        (15, "array", "9f"),
        (16, "array", "dc0010"),
        (65535, "array", "dcffff"),
        (65536, "array", "dd00010000"),
        (15, "map", "8f"),
        (16, "map", "de0010"),
        (65535, "map", "deffff"),
        (65536, "map", "df00010000"),
    ],
)
def test_pack_sizes(servers, n, kind, header):
    key = "i" if kind == "array" else "'k' .. i"
    script = (
        f"local t = {{}} for i = 1, {n} do t[{key}] = i end "
        "local s = cmsgpack.pack(t) return {redis.sha1hex(s), #s, string.byte(s, 1, 5)}"
    )
    out = same(servers, script)
    assert bytes(out[2 : 2 + len(header) // 2]).hex() == header  # map key order too, by sha


@pytest.mark.parametrize("depth", [15, 16, 17, 30])
def test_pack_nesting_limit(servers, depth):
    arrays = f"local t = 1 for i = 1, {depth} do t = {{t}} end return cmsgpack.pack(t)"
    out = same(servers, arrays)
    if depth <= 16:
        assert out == b"\x91" * depth + b"\x01"
    else:  # the 17th table is written as nil
        assert out == b"\x91" * 16 + b"\xc0"
    maps = f"local t = 1 for i = 1, {depth} do t = {{k = t}} end return cmsgpack.pack(t)"
    assert same(servers, maps)
    keys = f"local t = 1 for i = 1, {depth} do t = {{[t] = i}} end return cmsgpack.pack(t)"
    assert same(servers, keys)


def test_pack_cycles(servers):
    assert same(servers, "local t = {} t[1] = t return cmsgpack.pack(t)") == b"\x91" * 16 + b"\xc0"
    assert same(servers, "local t = {} t.me = t t[t] = 1 return cmsgpack.pack(t)")


def test_pack_metadata(servers):
    out = same(servers, "return {cmsgpack._NAME, cmsgpack._VERSION, cmsgpack._COPYRIGHT, "
               "cmsgpack._DESCRIPTION}")
    assert out[1] == b"lua-cmsgpack 0.4.0"


# -- unpack ------------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", INTEGERS + FLOATS + STRINGS[:4] + ["true", "false"])
def test_round_trip_scalar(servers, expr):
    script = (
        f"local v = {expr} local s = cmsgpack.pack(v) local back = cmsgpack.unpack(s) "
        "local shown = type(back) == 'number' and string.format('%.17g', back) or tostring(back) "
        "return {type(back), shown, cmsgpack.pack(back) == s and 1 or 0}"
    )
    out = same(servers, script)
    assert out[2] == 1  # the same bytes again (NaN included: strings are compared)


@pytest.mark.parametrize("table", TABLES)
def test_round_trip_table(servers, table):
    script = (
        f"local t = {table} local s = cmsgpack.pack(t) local back = cmsgpack.unpack(s) "
        "return {s, cmsgpack.pack(back)}"
    )
    first, again = same(servers, script)
    assert first


def test_round_trip_map_order(servers):
    # The decoded table is built by other insertions than the original, so its next()
    # order (and the bytes packed again) differ: the same way on both servers.
    script = (
        "local t = {} for i = 1, 3000 do t['key' .. i] = i * 1.5 end t.key5 = nil t[7] = 1 "
        "local s = cmsgpack.pack(t) return {redis.sha1hex(s), "
        "redis.sha1hex(cmsgpack.pack(cmsgpack.unpack(s)))}"
    )
    first, again = same(servers, script)
    assert len(first) == len(again) == 40


def test_unpack_several_values(servers):
    script = (
        "local a, b, c, d = cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, {x = 4}}, true)) "
        "return {a, b, c[1], c[2].x, tostring(d), select('#', cmsgpack.unpack(''))}"
    )
    assert same(servers, script) == [1, b"two", 3, 4, b"true", 0]


@pytest.mark.parametrize(
    "data",
    [
        "cfffffffffffffffff", "cf8000000000000000", "cf7fffffffffffffff", "d38000000000000001",
        "d3ffffffffffffffff", "ca7fc00000", "ca3dcccccd", "cbfff8000000000000", "d903616263",
        "da0003616263", "db00000003616263", "dc00020102", "dd000000020102", "de0001a16101",
        "df00000001a16101", "93c001c0", "8191c001", "8201c00201", "82a16101a16102",
        "82c3a1740101",
    ],
)
def test_unpack_encodings(servers, data):
    script = (
        "local v = cmsgpack.unpack(ARGV[1]) "
        "if type(v) == 'number' then return string.format('%.17g', v) end "
        "if type(v) ~= 'table' then return tostring(v) end "
        "local function show(x) return type(x) == 'table' and 'table' or tostring(x) end "
        "local keys = {} for k, x in pairs(v) do keys[#keys + 1] = show(k) .. '=' .. show(x) end "
        "return keys"
    )
    assert same(servers, script, bytes.fromhex(data)) is not None


def test_uint64_wraps_like_c(servers):
    script = "local v = cmsgpack.unpack(ARGV[1]) return tostring(v)"
    assert same(servers, script, bytes.fromhex("cfffffffffffffffff")) == b"-1"


def test_unpack_one_walks_the_stream(servers):
    script = (
        "local s = cmsgpack.pack(1, 'two', {3}, 4) local out = {} local off = 0 "
        "while off ~= -1 do local v off, v = cmsgpack.unpack_one(s, off) "
        "out[#out + 1] = off out[#out + 1] = type(v) end return out"
    )
    assert same(servers, script) == [1, b"number", 5, b"string", 7, b"table", -1, b"number"]


def test_unpack_limit_walks_the_stream(servers):
    script = (
        "local s = cmsgpack.pack(1, 'two', {3}, 4, 5) local out = {} local off = 0 "
        "while off ~= -1 do local a, b off, a, b = cmsgpack.unpack_limit(s, 2, off) "
        "out[#out + 1] = off out[#out + 1] = type(a) out[#out + 1] = type(b) end "
        "return out"
    )
    assert same(servers, script)[0] == 5


@pytest.mark.parametrize(
    "call",
    [
        "cmsgpack.unpack_one('\\1\\2\\3')",
        "cmsgpack.unpack_one('\\1\\2\\3', 3)",
        "cmsgpack.unpack_one('')",
        "cmsgpack.unpack_one('\\1\\2\\3', nil)",
        "cmsgpack.unpack_one('\\1\\2\\3', '1')",
        "cmsgpack.unpack_one('\\1\\2\\3', 1.9)",
        "cmsgpack.unpack_one(123)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 0)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 0, 2)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 0, 3)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 2, '1')",
        "cmsgpack.unpack_limit('\\1\\2\\3', 2.9, 0.5)",
        "cmsgpack.unpack_limit('\\1\\2\\3', -0.5)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 100)",
        "cmsgpack.unpack('\\1\\2\\3', 5, 5)",
    ],
)
def test_offsets_and_limits(servers, call):
    assert same(servers, f"local t = {{{call}}} return t") is not None


# -- errors ------------------------------------------------------------------------------------
TRUNCATED = [
    "cc", "cd00", "ce000000", "cf00000000000000", "d0", "d100", "d2000000", "d300000000000000",
    "ca000000", "cb00000000000000", "a1", "a261", "d9", "d90361", "da00", "da0001",
    "db000000", "db0000000261", "dc00", "dc0001", "dd000000", "dd00000001", "ddffffffff",
    "de00", "de0001", "de0001a161", "df000000", "92", "9201", "81", "8101", "81a161",
    "0192",
]


@pytest.mark.parametrize("data", TRUNCATED)
def test_truncated_input(servers, data):
    message = same(servers, "local x = cmsgpack.unpack(ARGV[1]) return x",
                   bytes.fromhex(data), error=True)
    assert "user_script:1: Missing bytes in input." in message


def test_truncated_unpack_one_and_limit(servers):
    s = bytes.fromhex("01d9")
    assert same(servers, "local t = {cmsgpack.unpack_one(ARGV[1])} return t", s) == [1, 1]
    assert "Missing bytes" in same(
        servers, "local t = {cmsgpack.unpack_one(ARGV[1], 1)} return t", s, error=True
    )
    assert "Missing bytes" in same(
        servers, "local t = {cmsgpack.unpack_limit(ARGV[1], 2)} return t", s, error=True
    )


@pytest.mark.parametrize("byte", ["c1", "c4", "c5", "c6", "c7", "c8", "c9", "d4", "d5", "d6",
                                  "d7", "d8"])
def test_bad_format(servers, byte):
    message = same(servers, "local x = cmsgpack.unpack(ARGV[1]) return x",
                   bytes.fromhex(f"92{byte}010101"), error=True)
    assert "Bad data format in input." in message


@pytest.mark.parametrize("data, text", [("81c001", "table index is nil"),
                                        ("81ca7fc0000001", "table index is NaN"),
                                        ("82c0c0", "table index is nil"),
                                        ("81c0c1", "Bad data format")])
def test_bad_keys(servers, data, text):
    message = same(servers, "local x = cmsgpack.unpack(ARGV[1]) return x",
                   bytes.fromhex(data), error=True)
    assert text in message


@pytest.mark.parametrize(
    "call",
    [
        "cmsgpack.pack()",
        "cmsgpack.unpack()",
        "cmsgpack.unpack(nil)",
        "cmsgpack.unpack({})",
        "cmsgpack.unpack_one(true)",
        "cmsgpack.unpack_one(nil, 'x')",
        "cmsgpack.unpack_one('\\1', -1)",
        "cmsgpack.unpack_one('\\1', 2)",
        "cmsgpack.unpack_one('\\1\\2\\3', 1/0)",
        "cmsgpack.unpack_one('\\1\\2\\3', 2^40)",
        "cmsgpack.unpack_limit()",
        "cmsgpack.unpack_limit('')",
        "cmsgpack.unpack_limit('', nil)",
        "cmsgpack.unpack_limit('', 1, {})",
        "cmsgpack.unpack_limit('\\1\\2\\3', -1)",
        "cmsgpack.unpack_limit('\\1\\2\\3', 0, -2^32 - 5)",
        "cmsgpack:unpack()",
        "cmsgpack:unpack_limit('a', 'b')",
        "(function() local p = cmsgpack.pack local r = p() return r end)()",
    ],
)
def test_argument_errors(servers, call):
    assert same(servers, f"local x = {call} return x", error=True)


def test_errors_caught_by_pcall(servers):
    script = (
        "local a = {pcall(cmsgpack.pack)} local b = {pcall(cmsgpack.unpack, '\\146')} "
        "local c = {pcall(cmsgpack.unpack_limit, 'x')} "
        "return {tostring(a[1]), a[2], tostring(b[1]), b[2], c[2]}"
    )
    out = same(servers, script)
    assert out[1] == b"bad argument #0 to '?' (MessagePack pack needs input.)"


def test_readonly(servers):
    assert "readonly table" in same(servers, "cmsgpack.pack = nil return 1", error=True)


# -- huge counts: errors, never a crash --------------------------------------------------------
@pytest.mark.parametrize(
    "script, error",
    [
        ("local t = {} for i = 1, 4000 do t[i] = i end return #cmsgpack.pack(unpack(t))", False),
        ("local t = {} for i = 1, 4001 do t[i] = i end local x = cmsgpack.pack(unpack(t)) return x",
         True),
        ("local t = {} for i = 1, 7000 do t[i] = i end local x = cmsgpack.pack(unpack(t)) return x",
         True),
        ("local t = {} for i = 1, 4000 do t[i] = {} end local x = cmsgpack.pack(unpack(t)) return x",
         True),
        ("local t = {} for i = 1, 4000 do t[i] = i end t[3998] = {} return #cmsgpack.pack(unpack(t))",
         False),
        ("local t = {} for i = 1, 4000 do t[i] = i end t[3998] = {a = 1} "
         "local x = cmsgpack.pack(unpack(t)) return x", True),
        ("local t = {} for i = 1, 4000 do t[i] = i end t[3997] = {{{}}} "
         "local x = cmsgpack.pack(unpack(t)) return x", True),
        ("local t = {} for i = 1, 4000 do t[i] = i end t[3994] = {[{}] = 1} "
         "return #cmsgpack.pack(unpack(t))", False),
        ("return select('#', cmsgpack.unpack(string.rep('\\192', 7999)))", False),
        ("local x = select('#', cmsgpack.unpack(string.rep('\\192', 8000))) return x", True),
        ("local x = select('#', cmsgpack.unpack(string.rep('\\1', 100000))) return x", True),
        ("local s = string.rep('\\192', 7000) "
         "return select('#', cmsgpack.unpack(s, unpack({}, 1, 999)))", False),
        ("local s = string.rep('\\192', 7000) "
         "local x = select('#', cmsgpack.unpack(s, unpack({}, 1, 1000))) return x", True),
        ("return select('#', cmsgpack.unpack_limit(string.rep('\\192', 7998), 8000))", False),
        ("local x = select('#', cmsgpack.unpack_limit(string.rep('\\192', 7999), 8000)) return x",
         True),
        ("local x = select('#', cmsgpack.unpack_limit(string.rep('\\192', 9000), 0)) return x",
         True),
        ("return select('#', cmsgpack.unpack_limit(string.rep('\\192', 90000), 7000, 10))", False),
        ("local x = cmsgpack.unpack(string.rep('\\145', 3990) .. '\\1') return type(x)", False),
        ("local x = cmsgpack.unpack(string.rep('\\145', 4000) .. '\\1') return type(x)", True),
        ("local x = cmsgpack.unpack(string.rep('\\129\\1', 3990) .. '\\1') return type(x)", False),
        ("local x = cmsgpack.unpack(string.rep('\\129\\1', 4000) .. '\\1') return type(x)", True),
        ("local x = cmsgpack.unpack(string.rep('\\129', 7990) .. '\\1') return type(x)", True),
        ("local x = cmsgpack.unpack(string.rep('\\129', 8000) .. '\\1') return type(x)", True),
        ("local x = cmsgpack.unpack(string.rep('\\129', 100000)) return type(x)", True),
    ],
)
def test_huge_counts(servers, tokenginx, script, error):
    same(servers, script, error=error)
    alive(servers, tokenginx)
