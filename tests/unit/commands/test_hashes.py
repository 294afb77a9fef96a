"""Hash commands through the real gate (hashes.group is added to the table here until
it is registered in ALL_GROUPS)."""

from __future__ import annotations

import pytest

from tests.unit.commands.helpers import WRONGTYPE, assert_memory_consistent, make_gate, scan_all
from tokenginx.commands import hashes, longdouble
from tokenginx.commands.scan import SMALL
from tokenginx.config import Config
from tokenginx.errors import CommandError
from tokenginx.replies import OK
from tokenginx.transport.resp.encoder import encode_resp2, encode_resp3


# -- HSET / HMSET / HSETNX ---------------------------------------------------------------
def test_hset_counts_new_fields_only(gate):
    assert gate.ok("HSET", "h", "a", "1", "b", "2") == 2
    assert gate.ok("HSET", "h", "a", "10", "c", "3") == 1
    assert gate.ok("HGETALL", "h") == {b"a": b"10", b"b": b"2", b"c": b"3"}


def test_hset_same_field_twice_in_one_command(gate):
    assert gate.ok("HSET", "h", "f", "1", "f", "2") == 1
    assert gate.ok("HGET", "h", "f") == b"2"
    assert_memory_consistent(gate)


@pytest.mark.parametrize("name", ["HSET", "HMSET"])
def test_hset_arity(gate, name):
    msg = f"ERR wrong number of arguments for '{name.lower()}' command"
    assert gate.err(name, "h", "f") == msg  # from the gate (arity -4)
    assert gate.err(name, "h", "f", "v", "g") == msg  # odd pairs, from the handler
    assert gate.ok("HLEN", "h") == 0


def test_hmset_returns_ok(gate):
    assert gate.ok("HMSET", "h", "a", "1", "b", "2") == OK
    assert gate.ok("HMGET", "h", "a", "b", "c") == [b"1", b"2", None]


def test_hsetnx(gate, events):
    assert gate.ok("HSETNX", "h", "f", "1") == 1
    assert gate.ok("HSETNX", "h", "f", "2") == 0
    assert gate.ok("HGET", "h", "f") == b"1"
    assert events == [("hset", "h", b"h")]


def test_hset_event_once_per_command(gate, events):
    dirty = gate.state.keyspace.dirty
    gate.ok("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert events == [("hset", "h", b"h")]
    assert gate.state.keyspace.dirty == dirty + 1


def test_value_limit():
    cfg = Config()
    cfg.limits.value_bytes = 8
    g = make_gate(cfg)
    msg = "ERR string exceeds maximum allowed size (8 bytes)"
    assert g.err("HSET", "h", "a", "1", "b", "x" * 9) == msg
    assert g.ok("HLEN", "h") == 0  # nothing stored, not even the first pair
    assert g.err("HSET", "h", "f" * 9, "1") == msg
    assert g.err("HMSET", "h", "a", "x" * 9) == msg
    assert g.err("HSETNX", "h", "a", "x" * 9) == msg
    assert g.ok("HSET", "h", "a", "x" * 8) == 1
    assert g.state.keyspace.db(0).data == {b"h": {b"a": b"x" * 8}}


# -- reads ----------------------------------------------------------------------------------
def test_reads_on_missing_key(gate):
    assert gate.ok("HGET", "no", "f") is None
    assert gate.ok("HMGET", "no", "a", "b") == [None, None]
    assert gate.ok("HGETALL", "no") == {}
    assert gate.ok("HLEN", "no") == 0
    assert gate.ok("HKEYS", "no") == []
    assert gate.ok("HVALS", "no") == []
    assert gate.ok("HSTRLEN", "no", "f") == 0
    assert gate.ok("HEXISTS", "no", "f") == 0
    assert gate.ok("HDEL", "no", "f") == 0
    assert gate.ok("HRANDFIELD", "no") is None
    assert gate.ok("HRANDFIELD", "no", "3") == []
    assert gate.ok("HSCAN", "no", "0") == [b"0", []]


def test_reads(gate):
    gate.ok("HSET", "h", "a", "1", "bb", "hello", "c", "")
    assert gate.ok("HGET", "h", "bb") == b"hello"
    assert gate.ok("HGET", "h", "zz") is None
    assert gate.ok("HEXISTS", "h", "a") == 1
    assert gate.ok("HEXISTS", "h", "zz") == 0
    assert gate.ok("HLEN", "h") == 3
    assert gate.ok("HKEYS", "h") == [b"a", b"bb", b"c"]
    assert gate.ok("HVALS", "h") == [b"1", b"hello", b""]
    assert gate.ok("HSTRLEN", "h", "bb") == 5
    assert gate.ok("HSTRLEN", "h", "c") == 0
    assert gate.ok("HSTRLEN", "h", "zz") == 0


def test_hgetall_is_a_map_on_resp3_and_flat_on_resp2(gate):
    gate.ok("HSET", "h", "a", "1")
    reply = gate.ok("HGETALL", "h")
    assert encode_resp3(reply) == b"%1\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert encode_resp2(reply) == b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    reply[b"a"] = b"changed"  # a copy: the stored hash is not affected
    assert gate.ok("HGET", "h", "a") == b"1"


def test_arity_errors_come_from_the_gate(gate):
    for args in (("HGET", "h"), ("HGETALL",), ("HDEL", "h"), ("HINCRBY", "h", "f"), ("HSCAN", "h")):
        assert gate.err(*args) == f"ERR wrong number of arguments for '{args[0].lower()}' command"


@pytest.mark.parametrize(
    "args",
    [
        ("HSET", "s", "f", "v"),
        ("HMSET", "s", "f", "v"),
        ("HSETNX", "s", "f", "v"),
        ("HGET", "s", "f"),
        ("HMGET", "s", "f"),
        ("HGETALL", "s"),
        ("HDEL", "s", "f"),
        ("HEXISTS", "s", "f"),
        ("HINCRBY", "s", "f", "1"),
        ("HINCRBYFLOAT", "s", "f", "1"),
        ("HLEN", "s"),
        ("HKEYS", "s"),
        ("HVALS", "s"),
        ("HSTRLEN", "s", "f"),
        ("HSCAN", "s", "0"),
        ("HSCAN", "s", "0", "BADOPTION"),
        ("HRANDFIELD", "s"),
        ("HRANDFIELD", "s", "2"),
        ("HRANDFIELD", "s", "-2", "WITHVALUES"),
    ],
)
def test_wrongtype(gate, args):
    gate.ok("SET", "s", "string")
    assert gate.err(*args) == WRONGTYPE
    gate.ok("SADD", "set", "m")
    assert gate.err(args[0], "set", *args[2:]) == WRONGTYPE
    assert gate.ok("GET", "s") == b"string"


# -- HDEL ---------------------------------------------------------------------------------
def test_hdel_deletes_the_key_with_the_last_field(gate, events):
    gate.ok("HSET", "h", "a", "1", "b", "2")
    events.clear()
    assert gate.ok("HDEL", "h", "a", "zz", "a") == 1
    assert events == [("hdel", "h", b"h")]
    assert gate.ok("HDEL", "h", "zz") == 0
    assert events == [("hdel", "h", b"h")]  # nothing removed: no event
    assert gate.ok("HDEL", "h", "b") == 1
    assert events[1:] == [("hdel", "h", b"h"), ("del", "g", b"h")]
    assert b"h" not in gate.state.keyspace.db(0).data
    assert gate.ok("GET", "h") is None  # no WRONGTYPE: the key is gone
    assert_memory_consistent(gate)
    assert gate.state.keyspace.used == 0


# -- HINCRBY ------------------------------------------------------------------------------
def test_hincrby(gate, events):
    assert gate.ok("HINCRBY", "h", "n", "5") == 5
    assert gate.ok("HINCRBY", "h", "n", "-7") == -2
    assert gate.ok("HGET", "h", "n") == b"-2"
    assert gate.ok("HINCRBY", "h", "n", "0") == -2
    assert events == [("hincrby", "h", b"h")] * 3
    assert_memory_consistent(gate)


def test_hincrby_overflow(gate):
    gate.ok("HSET", "h", "max", "9223372036854775807", "min", "-9223372036854775808")
    msg = "ERR increment or decrement would overflow"
    assert gate.err("HINCRBY", "h", "max", "1") == msg
    assert gate.err("HINCRBY", "h", "min", "-1") == msg
    assert gate.ok("HINCRBY", "h", "max", "-9223372036854775808") == -1
    assert gate.ok("HINCRBY", "h", "new", "-9223372036854775808") == -9223372036854775808
    assert gate.ok("HGET", "h", "min") == b"-9223372036854775808"


@pytest.mark.parametrize(
    "stored", ["x", "1.5", " 1", "1 ", "+1", "-0", "01", "", "9223372036854775808"]
)
def test_hincrby_on_non_integer_field(gate, stored):
    gate.ok("HSET", "h", "f", stored)
    assert gate.err("HINCRBY", "h", "f", "1") == "ERR hash value is not an integer"
    assert gate.ok("HGET", "h", "f") == stored.encode()


@pytest.mark.parametrize("incr", ["x", "1.0", "", "9223372036854775808", "-0", " 1"])
def test_hincrby_bad_increment_creates_nothing(gate, incr):
    assert gate.err("HINCRBY", "h", "f", incr) == "ERR value is not an integer or out of range"
    assert gate.state.keyspace.db(0).data == {}


# -- HINCRBYFLOAT -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "incr", "result"),
    [
        (None, "0.1", b"0.1"),
        ("0.1", "0.2", b"0.3"),  # long double, as Redis: a double would give 0.30000000000000004
        ("10.5", "0.1", b"10.6"),
        ("1.5", "1.5", b"3"),
        ("5", "-5", b"0"),
        (None, "-0", b"0"),
        (None, "1e3", b"1000"),
        (None, "1.0e-5", b"0.00001"),
        (None, "5e-18", b"0"),  # "%.17Lf" rounds it away
        (None, "1e-17", b"0.00000000000000001"),
        (None, "0x1p-3", b"0.125"),  # strtold reads hex floats
        (None, "+.5", b"0.5"),
        (None, "3.", b"3"),
        ("1e20", "1", b"100000000000000000000"),  # below the 64-bit significand
        ("1e19", "1", b"10000000000000000001"),
        (None, "123456789012345678", b"123456789012345678"),
        (None, "3.0000000000000000001", b"3"),
    ],
)
def test_hincrbyfloat(gate, events, start, incr, result):
    if start is not None:
        gate.ok("HSET", "h", "f", start)
        events.clear()
    assert gate.ok("HINCRBYFLOAT", "h", "f", incr) == result
    assert gate.ok("HGET", "h", "f") == result
    assert events == [("hincrbyfloat", "h", b"h")]
    assert_memory_consistent(gate)


def test_hincrbyfloat_beyond_double_range(gate):
    # 1e400 is finite in an 80-bit long double; Redis prints every digit.
    reply = gate.ok("HINCRBYFLOAT", "h", "f", "1e400")
    assert reply.startswith(b"10000000000000000000281880683947586514586453433629")
    assert len(reply) == 401


@pytest.mark.parametrize(
    ("stored", "incr", "error"),
    [
        (None, "x", "ERR value is not a valid float"),
        (None, "nan", "ERR value is not a valid float"),
        (None, " 1", "ERR value is not a valid float"),
        (None, "1 ", "ERR value is not a valid float"),
        (None, "1_0", "ERR value is not a valid float"),
        (None, "1e5000", "ERR value is not a valid float"),  # overflows long double
        (None, "1e-5000", "ERR value is not a valid float"),  # underflows to zero
        (None, "", "ERR value is not a valid float"),
        (None, "inf", "ERR value is NaN or Infinity"),
        (None, "-Infinity", "ERR value is NaN or Infinity"),
        ("abc", "1", "ERR hash value is not a float"),
        ("", "1", "ERR hash value is not a float"),
        ("inf", "1", "ERR increment would produce NaN or Infinity"),
        ("1.1e4932", "1.1e4932", "ERR increment would produce NaN or Infinity"),
    ],
)
def test_hincrbyfloat_errors(gate, stored, incr, error):
    if stored is not None:
        gate.ok("HSET", "h", "f", stored)
    assert gate.err("HINCRBYFLOAT", "h", "f", incr) == error
    if stored is None:
        assert gate.state.keyspace.db(0).data == {}
    else:
        assert gate.ok("HGET", "h", "f") == stored.encode()


def test_longdouble_round_trip_matches_redis_text():
    # Values and texts recorded from redis-server 7.0 on x86-64.
    v = longdouble.parse(b"1.1e4932")
    text = longdouble.format_human(v)
    assert text.startswith(b"10999999999999999999743731075282418176590308692790434077349880018")
    assert longdouble.parse(b"1.2e4932") is None
    assert longdouble.parse(b"1" + b"0" * 5119) is None  # too long for Redis's buffer
    assert longdouble.format_human(longdouble.parse(b"-1e-20")) == b"0"  # no "-0"


# -- HSCAN -----------------------------------------------------------------------------------
def test_hscan_small_hash_in_one_reply(gate):
    gate.ok("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert gate.ok("HSCAN", "h", "0") == [b"0", [b"a", b"1", b"b", b"2", b"c", b"3"]]
    assert gate.ok("HSCAN", "h", "0", "COUNT", "1") == [b"0", [b"a", b"1", b"b", b"2", b"c", b"3"]]
    assert gate.ok("HSCAN", "h", "0", "MATCH", "[ab]") == [b"0", [b"a", b"1", b"b", b"2"]]
    assert gate.ok("HSCAN", "h", "0", "NOVALUES") == [b"0", [b"a", b"b", b"c"]]
    assert gate.ok("HSCAN", "h", "0", "novalues", "match", "c") == [b"0", [b"c"]]


@pytest.mark.parametrize("cursor", ["", "-1", "+1", "18446744073709551615", "1\x00junk"])
def test_hscan_cursor_forms_redis_accepts(gate, cursor):
    gate.ok("HSET", "h", "a", "1")
    assert gate.ok("HSCAN", "h", cursor) == [b"0", [b"a", b"1"]]


@pytest.mark.parametrize("cursor", ["abc", " 1", "1 ", "18446744073709551616", "-", "0x10", "1.0"])
def test_hscan_invalid_cursor(gate, cursor):
    gate.ok("HSET", "h", "a", "1")
    assert gate.err("HSCAN", "h", cursor) == "ERR invalid cursor"
    assert gate.err("HSCAN", "missing", cursor) == "ERR invalid cursor"  # checked first


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["COUNT", "0"], "ERR syntax error"),
        (["COUNT", "-1"], "ERR syntax error"),
        (["COUNT", "x"], "ERR value is not an integer or out of range"),
        (["COUNT"], "ERR syntax error"),
        (["MATCH"], "ERR syntax error"),
        (["TYPE", "hash"], "ERR syntax error"),
        (["NOVALUES", "x"], "ERR syntax error"),
        (["BAD"], "ERR syntax error"),
    ],
)
def test_hscan_option_errors(gate, options, error):
    gate.ok("HSET", "h", "a", "1")
    assert gate.err("HSCAN", "h", "0", *options) == error
    # Redis replies with an empty scan for a missing key before parsing the options.
    assert gate.ok("HSCAN", "missing", "0", *options) == [b"0", []]


def test_hscan_large_hash_cursor(gate):
    n = 3 * SMALL
    for i in range(n):
        gate.ok("HSET", "h", f"f{i}", f"v{i}")
    items = scan_all(gate, "HSCAN", "h", "COUNT", "10")
    pairs = dict(zip(items[::2], items[1::2]))
    assert len(items) == 2 * n  # no duplicates
    assert pairs == {f"f{i}".encode(): f"v{i}".encode() for i in range(n)}
    first = gate.ok("HSCAN", "h", "0", "COUNT", "10")
    assert first[0] != b"0"
    assert len(first[1]) == 20
    fields = scan_all(gate, "HSCAN", "h", "COUNT", "7", "MATCH", "f1*", "NOVALUES")
    assert sorted(fields) == sorted(f"f{i}".encode() for i in range(n) if str(i).startswith("1"))


def test_hscan_guarantee_under_concurrent_changes(gate):
    n = 4 * SMALL
    for i in range(n):
        gate.ok("HSET", "h", f"keep{i}", "v")
    for i in range(n):
        gate.ok("HSET", "h", f"drop{i}", "v")

    def mutate(step):
        # Each step deletes some fields and adds new ones.
        for j in range(step * 5, step * 5 + 5):
            gate.ok("HDEL", "h", f"drop{j}")
            gate.ok("HSET", "h", f"new{step}-{j}", "v")

    fields = scan_all(gate, "HSCAN", "h", "COUNT", "13", "NOVALUES", between=mutate)
    assert len(fields) == len(set(fields))  # never twice
    assert {f"keep{i}".encode() for i in range(n)} <= set(fields)  # present throughout


# -- HRANDFIELD ------------------------------------------------------------------------------
def test_hrandfield(gate):
    gate.ok("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert gate.ok("HRANDFIELD", "h") in (b"a", b"b", b"c")
    assert gate.ok("HRANDFIELD", "h", "0") == []
    two = gate.ok("HRANDFIELD", "h", "2")
    assert len(two) == 2 and len(set(two)) == 2 and set(two) <= {b"a", b"b", b"c"}
    assert sorted(gate.ok("HRANDFIELD", "h", "3")) == [b"a", b"b", b"c"]
    assert sorted(gate.ok("HRANDFIELD", "h", "100")) == [b"a", b"b", b"c"]
    many = gate.ok("HRANDFIELD", "h", "-50")
    assert len(many) == 50 and set(many) <= {b"a", b"b", b"c"}
    assert len(gate.ok("HRANDFIELD", "h", "1")) == 1


def test_hrandfield_withvalues_resp2_flat_resp3_pairs(gate):
    gate.ok("HSET", "h", "a", "1")
    assert gate.ok("HRANDFIELD", "h", "-3", "WITHVALUES") == [b"a", b"1"] * 3
    assert gate.ok("HRANDFIELD", "h", "5", "withvalues") == [b"a", b"1"]
    gate.client.set_protocol(3)
    assert gate.ok("HRANDFIELD", "h", "-2", "WITHVALUES") == [[b"a", b"1"], [b"a", b"1"]]
    assert gate.ok("HRANDFIELD", "h", "1", "WITHVALUES") == [[b"a", b"1"]]
    assert gate.ok("HRANDFIELD", "h", "1") == [b"a"]
    assert gate.ok("HRANDFIELD", "h", "0", "WITHVALUES") == []


def test_hrandfield_errors(gate):
    gate.ok("HSET", "h", "a", "1")
    assert gate.err("HRANDFIELD", "h", "x") == "ERR value is not an integer or out of range"
    assert gate.err("HRANDFIELD", "h", "1", "bad") == "ERR syntax error"
    assert gate.err("HRANDFIELD", "missing", "1", "bad") == "ERR syntax error"
    assert gate.err("HRANDFIELD", "h", "1", "WITHVALUES", "x") == "ERR syntax error"
    assert gate.err("HRANDFIELD", "h", "-9223372036854775808") == (
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    )
    assert gate.err("HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES") == (
        "ERR value is out of range"
    )
    assert gate.err("HRANDFIELD", "h", "4611686018427387904", "WITHVALUES") == (
        "ERR value is out of range"
    )
    assert gate.ok("HRANDFIELD", "h", "4611686018427387903", "WITHVALUES") == [b"a", b"1"]


# -- expiry, memory ---------------------------------------------------------------------------
def test_expired_hash_is_gone_and_recreated_without_ttl(gate):
    db = gate.state.keyspace.db(0)
    gate.ok("HSET", "h", "a", "1")
    db.set_expire(b"h", gate.clock() + 1000)
    gate.ok("HSET", "h", "b", "2")  # writing a field keeps the key's TTL
    assert db.pttl(b"h") == 1000
    gate.clock.advance(999)
    assert gate.ok("HLEN", "h") == 2
    gate.clock.advance(1)
    assert gate.ok("HGET", "h", "a") is None
    assert gate.ok("HGETALL", "h") == {}
    assert gate.ok("HINCRBY", "h", "n", "1") == 1
    assert gate.ok("HGETALL", "h") == {b"n": b"1"}
    assert db.pttl(b"h") == -1
    assert_memory_consistent(gate)


def test_expired_hash_with_write_commands(gate):
    db = gate.state.keyspace.db(0)
    gate.ok("HSET", "h", "a", "1")
    db.set_expire(b"h", gate.clock() + 10)
    gate.clock.advance(10)
    assert gate.ok("HSETNX", "h", "a", "2") == 1
    assert gate.ok("HGET", "h", "a") == b"2"
    db.set_expire(b"h", gate.clock() + 10)
    gate.clock.advance(10)
    assert gate.ok("HDEL", "h", "a") == 0
    assert_memory_consistent(gate)


def test_memory_estimate_follows_every_mutation(gate):
    ks = gate.state.keyspace
    gate.ok("HSET", "h", "a", "1", "b", "22")
    assert_memory_consistent(gate)
    gate.ok("HSET", "h", "a", "a much longer value")
    assert_memory_consistent(gate)
    gate.ok("HSETNX", "h", "c", "3")
    gate.ok("HINCRBY", "h", "n", "100")
    gate.ok("HINCRBY", "h", "n", "-99")
    gate.ok("HINCRBYFLOAT", "h", "x", "1.25")
    gate.ok("HINCRBYFLOAT", "h", "x", "10")
    assert_memory_consistent(gate)
    gate.ok("HDEL", "h", "a", "b", "c", "n")
    assert_memory_consistent(gate)
    gate.ok("HDEL", "h", "x")
    assert ks.used == 0
    assert ks.db(0).data == {}


def test_command_metadata(gate):
    table = gate.state.table
    hset = table.get("hset")
    assert (hset.arity, hset.flags, hset.first_key, hset.last_key, hset.step) == (
        -4,
        ("write", "denyoom", "fast"),
        1,
        1,
        1,
    )
    assert hset.acl_categories == ("write", "hash", "fast")
    assert table.get("hgetall").flags == ("readonly",)
    assert table.get("hdel").flags == ("write", "fast")
    assert table.get("hrandfield").since == "6.2.0"
    names = {c.name for c in hashes.group.commands}
    assert names == {
        "hset",
        "hsetnx",
        "hget",
        "hmget",
        "hmset",
        "hgetall",
        "hdel",
        "hexists",
        "hincrby",
        "hincrbyfloat",
        "hlen",
        "hkeys",
        "hvals",
        "hstrlen",
        "hscan",
        "hrandfield",
    }


def test_errors_are_command_errors_not_internal(gate):
    # A handler bug would surface as "ERR internal error"; make sure odd input does not.
    gate.ok("HSET", "h", "a", "1")
    for args in (
        ("HINCRBYFLOAT", "h", "a", "1" * 6000),
        ("HINCRBYFLOAT", "h", "a", "1e" + "9" * 5000),
        ("HINCRBYFLOAT", "h", "a", "0x" + "f" * 5000),
        ("HSCAN", "h", "9" * 30),
        ("HRANDFIELD", "h", "9" * 30),
    ):
        reply = gate.call(*args)
        if isinstance(reply, CommandError):
            assert "internal" not in reply.message
