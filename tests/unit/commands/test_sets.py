"""Set commands through the real gate (sets.group is added to the table here until it
is registered in ALL_GROUPS)."""

from __future__ import annotations

import pytest

from tests.unit.commands.helpers import WRONGTYPE, assert_memory_consistent, make_gate, scan_all
from tokenginx.commands import sets
from tokenginx.commands.scan import SMALL
from tokenginx.config import Config
from tokenginx.transport.resp.encoder import encode_resp2, encode_resp3

ABC = {b"a", b"b", b"c"}


# -- SADD / SREM -------------------------------------------------------------------------
def test_sadd_srem(gate, events):
    assert gate.ok("SADD", "s", "a", "b", "a") == 2
    assert gate.ok("SADD", "s", "b") == 0
    assert gate.ok("SADD", "s", "c") == 1
    assert events == [("sadd", "s", b"s")] * 2  # nothing added: no event
    assert gate.ok("SREM", "s", "a", "zz", "a") == 1
    assert gate.ok("SREM", "s", "zz") == 0
    assert gate.ok("SREM", "missing", "a") == 0
    assert events[2:] == [("srem", "s", b"s")]
    assert gate.ok("SREM", "s", "b", "c") == 2
    assert events[3:] == [("srem", "s", b"s"), ("del", "g", b"s")]
    assert gate.state.keyspace.db(0).data == {}
    assert gate.state.keyspace.used == 0


def test_sadd_value_limit():
    cfg = Config()
    cfg.limits.value_bytes = 4
    g = make_gate(cfg)
    assert (
        g.err("SADD", "s", "ok", "toolong") == "ERR string exceeds maximum allowed size (4 bytes)"
    )
    assert g.ok("SCARD", "s") == 0


def test_reads(gate):
    gate.ok("SADD", "s", "a", "b", "c")
    assert gate.ok("SMEMBERS", "s") == ABC
    assert gate.ok("SISMEMBER", "s", "a") == 1
    assert gate.ok("SISMEMBER", "s", "z") == 0
    assert gate.ok("SMISMEMBER", "s", "a", "z", "c") == [1, 0, 1]
    assert gate.ok("SCARD", "s") == 3


def test_reads_on_missing_key(gate):
    assert gate.ok("SMEMBERS", "no") == set()
    assert gate.ok("SISMEMBER", "no", "a") == 0
    assert gate.ok("SMISMEMBER", "no", "a", "b") == [0, 0]
    assert gate.ok("SCARD", "no") == 0
    assert gate.ok("SPOP", "no") is None
    assert gate.ok("SPOP", "no", "2") == set()
    assert gate.ok("SRANDMEMBER", "no") is None
    assert gate.ok("SRANDMEMBER", "no", "2") == []
    assert gate.ok("SRANDMEMBER", "no", "-2") == []
    assert gate.ok("SSCAN", "no", "0") == [b"0", []]
    assert gate.ok("SINTER", "no") == set()
    assert gate.ok("SUNION", "no") == set()
    assert gate.ok("SDIFF", "no") == set()
    assert gate.ok("SINTERCARD", "1", "no") == 0


def test_reply_types(gate):
    gate.ok("SADD", "s", "a")
    # SMEMBERS and friends are RESP3 sets; SRANDMEMBER with a count is an array.
    for args in (("SMEMBERS", "s"), ("SINTER", "s"), ("SUNION", "s"), ("SDIFF", "s")):
        reply = gate.ok(*args)
        assert encode_resp3(reply) == b"~1\r\n$1\r\na\r\n"
        assert encode_resp2(reply) == b"*1\r\n$1\r\na\r\n"
    assert encode_resp3(gate.ok("SRANDMEMBER", "s", "1")) == b"*1\r\n$1\r\na\r\n"
    assert encode_resp3(gate.ok("SPOP", "s", "1")) == b"~1\r\n$1\r\na\r\n"
    assert encode_resp3(gate.ok("SPOP", "s", "1")) == b"~0\r\n"


def test_smembers_returns_a_copy(gate):
    gate.ok("SADD", "s", "a")
    gate.ok("SMEMBERS", "s").add(b"z")
    assert gate.ok("SMEMBERS", "s") == {b"a"}


@pytest.mark.parametrize(
    "args",
    [
        ("SADD", "k", "m"),
        ("SREM", "k", "m"),
        ("SMEMBERS", "k"),
        ("SISMEMBER", "k", "m"),
        ("SMISMEMBER", "k", "m"),
        ("SCARD", "k"),
        ("SPOP", "k"),
        ("SPOP", "k", "0"),
        ("SRANDMEMBER", "k"),
        ("SRANDMEMBER", "k", "0"),
        ("SSCAN", "k", "0"),
        ("SSCAN", "k", "0", "BADOPTION"),
        ("SINTER", "k"),
        ("SUNION", "k"),
        ("SDIFF", "k"),
        ("SINTERCARD", "1", "k"),
        ("SINTERSTORE", "dst", "k"),
        ("SUNIONSTORE", "dst", "k"),
        ("SDIFFSTORE", "dst", "k"),
        ("SMOVE", "k", "other", "m"),
    ],
)
@pytest.mark.parametrize("holder", [("SET", "k", "v"), ("HSET", "k", "f", "v")])
def test_wrongtype(gate, args, holder):
    gate.ok(*holder)
    assert gate.err(*args) == WRONGTYPE
    assert gate.ok("SCARD", "dst") == 0


@pytest.mark.parametrize("name", ["SINTER", "SUNION", "SDIFF"])
def test_wrongtype_even_after_a_missing_key(gate, name):
    gate.ok("SET", "str", "v")
    gate.ok("SADD", "s", "a")
    assert gate.err(name, "missing", "str") == WRONGTYPE
    assert gate.err(name, "s", "missing", "str") == WRONGTYPE
    assert gate.err(name + "STORE", "d", "missing", "str") == WRONGTYPE
    assert gate.err("SINTERCARD", "2", "missing", "str") == WRONGTYPE


def test_arity_errors_come_from_the_gate(gate):
    for args in (
        ("SADD", "s"),
        ("SREM", "s"),
        ("SCARD",),
        ("SMOVE", "a", "b"),
        ("SINTERSTORE", "d"),
    ):
        assert gate.err(*args) == f"ERR wrong number of arguments for '{args[0].lower()}' command"


# -- SPOP ---------------------------------------------------------------------------------
def test_spop_single(gate, events):
    gate.ok("SADD", "s", "a", "b")
    events.clear()
    first = gate.ok("SPOP", "s")
    assert first in (b"a", b"b")
    assert events == [("spop", "s", b"s")]
    second = gate.ok("SPOP", "s")
    assert {first, second} == {b"a", b"b"}
    assert events[1:] == [("spop", "s", b"s"), ("del", "g", b"s")]
    assert gate.state.keyspace.db(0).data == {}
    assert gate.state.keyspace.used == 0


def test_spop_count(gate, events):
    gate.ok("SADD", "s", *[f"m{i}" for i in range(10)])
    events.clear()
    assert gate.ok("SPOP", "s", "0") == set()
    assert events == []
    popped = gate.ok("SPOP", "s", "4")
    assert len(popped) == 4
    assert events == [("spop", "s", b"s")]
    rest = gate.ok("SMEMBERS", "s")
    assert len(rest) == 6 and not rest & popped
    assert_memory_consistent(gate)
    assert gate.ok("SPOP", "s", "100") == rest
    assert events[1:] == [("spop", "s", b"s"), ("del", "g", b"s")]
    assert gate.state.keyspace.used == 0


def test_spop_errors(gate):
    gate.ok("SADD", "s", "a")
    positive = "ERR value is out of range, must be positive"
    assert gate.err("SPOP", "s", "-1") == positive
    assert gate.err("SPOP", "s", "x") == positive
    assert gate.err("SPOP", "missing", "x") == positive
    assert gate.err("SPOP", "s", "1", "2") == "ERR syntax error"
    assert gate.ok("SMEMBERS", "s") == {b"a"}


# -- SRANDMEMBER ----------------------------------------------------------------------------
def test_srandmember(gate):
    gate.ok("SADD", "s", "a", "b", "c")
    assert gate.ok("SRANDMEMBER", "s") in ABC
    assert gate.ok("SRANDMEMBER", "s", "0") == []
    two = gate.ok("SRANDMEMBER", "s", "2")
    assert isinstance(two, list) and len(set(two)) == 2 and set(two) <= ABC
    assert sorted(gate.ok("SRANDMEMBER", "s", "3")) == sorted(ABC)
    assert sorted(gate.ok("SRANDMEMBER", "s", "50")) == sorted(ABC)
    many = gate.ok("SRANDMEMBER", "s", "-40")
    assert len(many) == 40 and set(many) <= ABC
    assert gate.ok("SCARD", "s") == 3  # nothing removed


def test_srandmember_negative_count_repeats(gate):
    gate.ok("SADD", "one", "x")
    assert gate.ok("SRANDMEMBER", "one", "-3") == [b"x", b"x", b"x"]


def test_srandmember_errors(gate):
    gate.ok("SADD", "s", "a")
    assert gate.err("SRANDMEMBER", "s", "x") == "ERR value is not an integer or out of range"
    assert gate.err("SRANDMEMBER", "s", "1", "2") == "ERR syntax error"
    assert gate.err("SRANDMEMBER", "s", "-9223372036854775808") == (
        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
    )


# -- SSCAN -----------------------------------------------------------------------------------
def test_sscan_small(gate):
    gate.ok("SADD", "s", "a", "b", "c")
    cursor, items = gate.ok("SSCAN", "s", "0", "COUNT", "1")
    assert cursor == b"0" and sorted(items) == sorted(ABC)
    assert gate.ok("SSCAN", "s", "0", "MATCH", "b") == [b"0", [b"b"]]
    assert gate.err("SSCAN", "s", "0", "NOVALUES") == "ERR syntax error"  # HSCAN only
    assert gate.err("SSCAN", "s", "0", "COUNT", "0") == "ERR syntax error"
    assert gate.err("SSCAN", "s", "x") == "ERR invalid cursor"
    assert gate.ok("SSCAN", "missing", "0", "NOVALUES") == [b"0", []]


def test_sscan_large_with_changes(gate):
    n = 3 * SMALL
    gate.ok("SADD", "s", *[f"keep{i}" for i in range(n)])
    gate.ok("SADD", "s", *[f"drop{i}" for i in range(n)])

    def mutate(step):
        gate.ok("SREM", "s", *[f"drop{j}" for j in range(step * 9, step * 9 + 9)])
        gate.ok("SADD", "s", f"new{step}")

    members = scan_all(gate, "SSCAN", "s", "COUNT", "11", between=mutate)
    assert len(members) == len(set(members))
    assert {f"keep{i}".encode() for i in range(n)} <= set(members)
    matched = scan_all(gate, "SSCAN", "s", "MATCH", "keep1?", "COUNT", "50")
    assert sorted(matched) == sorted(f"keep{i}".encode() for i in range(10, 20))


# -- algebra ---------------------------------------------------------------------------------
@pytest.fixture
def abc(gate):
    gate.ok("SADD", "s1", "a", "b", "c", "d")
    gate.ok("SADD", "s2", "c", "d", "e")
    gate.ok("SADD", "s3", "d", "e", "f")
    return gate


def test_sinter_sunion_sdiff(abc):
    g = abc
    assert g.ok("SINTER", "s1", "s2") == {b"c", b"d"}
    assert g.ok("SINTER", "s1", "s2", "s3") == {b"d"}
    assert g.ok("SINTER", "s1", "missing") == set()
    assert g.ok("SINTER", "s1") == {b"a", b"b", b"c", b"d"}
    assert g.ok("SUNION", "s1", "s3", "missing") == {b"a", b"b", b"c", b"d", b"e", b"f"}
    assert g.ok("SDIFF", "s1", "s2") == {b"a", b"b"}
    assert g.ok("SDIFF", "s1", "s2", "s3") == {b"a", b"b"}
    assert g.ok("SDIFF", "s1", "missing") == {b"a", b"b", b"c", b"d"}
    assert g.ok("SDIFF", "missing", "s1") == set()
    assert g.ok("SDIFF", "s1", "s1") == set()
    assert g.ok("SMEMBERS", "s1") == {b"a", b"b", b"c", b"d"}  # sources untouched


def test_sintercard(abc):
    g = abc
    assert g.ok("SINTERCARD", "2", "s1", "s2") == 2
    assert g.ok("SINTERCARD", "2", "s1", "s2", "LIMIT", "1") == 1
    assert g.ok("SINTERCARD", "2", "s1", "s2", "limit", "0") == 2
    assert g.ok("SINTERCARD", "1", "s1", "LIMIT", "9", "LIMIT", "3") == 3  # the last wins
    assert g.ok("SINTERCARD", "2", "s1", "missing") == 0
    assert g.err("SINTERCARD", "0", "s1") == "ERR numkeys should be greater than 0"
    assert g.err("SINTERCARD", "x", "s1") == "ERR numkeys should be greater than 0"
    assert g.err("SINTERCARD", "3", "s1", "s2") == (
        "ERR Number of keys can't be greater than number of args"
    )
    assert g.err("SINTERCARD", "1", "s1", "LIMIT", "-1") == "ERR LIMIT can't be negative"
    assert g.err("SINTERCARD", "1", "s1", "LIMIT", "x") == "ERR LIMIT can't be negative"
    assert g.err("SINTERCARD", "1", "s1", "LIMIT") == "ERR syntax error"
    assert g.err("SINTERCARD", "1", "s1", "s2") == "ERR syntax error"


@pytest.mark.parametrize(
    ("name", "sources", "expected"),
    [
        ("SINTERSTORE", ("s1", "s2"), {b"c", b"d"}),
        ("SUNIONSTORE", ("s1", "s3"), {b"a", b"b", b"c", b"d", b"e", b"f"}),
        ("SDIFFSTORE", ("s1", "s2"), {b"a", b"b"}),
    ],
)
def test_store(abc, events, name, sources, expected):
    g = abc
    db = g.state.keyspace.db(0)
    g.ok("SET", "dst", "a string")  # any type is replaced, and its TTL dropped
    db.set_expire(b"dst", g.clock() + 10_000)
    events.clear()
    assert g.ok(name, "dst", *sources) == len(expected)
    assert events == [(name.lower(), "s", b"dst")]
    assert g.ok("SMEMBERS", "dst") == expected
    assert db.pttl(b"dst") == -1
    assert_memory_consistent(g)
    # The stored set is a new object: changing a source does not change it.
    g.ok("SADD", sources[0], "zzz")
    assert g.ok("SMEMBERS", "dst") == expected


@pytest.mark.parametrize("name", ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
def test_store_empty_result_deletes_destination(abc, events, name):
    g = abc
    g.ok("SADD", "dst", "old")
    events.clear()
    assert g.ok(name, "dst", "missing") == 0
    assert events == [("del", "g", b"dst")]
    assert g.state.keyspace.db(0).lookup(b"dst") is None
    events.clear()
    assert g.ok(name, "dst", "missing") == 0
    assert events == []  # nothing to delete, nothing emitted
    assert_memory_consistent(g)


def test_store_destination_among_sources(abc):
    g = abc
    assert g.ok("SUNIONSTORE", "s1", "s1", "s3") == 6
    assert g.ok("SDIFFSTORE", "s1", "s1", "s2") == 3
    assert g.ok("SMEMBERS", "s1") == {b"a", b"b", b"f"}
    assert g.ok("SINTERSTORE", "s1", "s1") == 3
    assert_memory_consistent(g)


# -- SMOVE ----------------------------------------------------------------------------------
def test_smove(gate, events):
    gate.ok("SADD", "src", "a", "b")
    gate.ok("SADD", "dst", "b")
    events.clear()
    assert gate.ok("SMOVE", "src", "dst", "a") == 1
    assert events == [("srem", "s", b"src"), ("sadd", "s", b"dst")]
    assert gate.ok("SMOVE", "src", "dst", "zz") == 0
    events.clear()
    # Already in dst: removed from src (which empties and goes), no sadd.
    assert gate.ok("SMOVE", "src", "dst", "b") == 1
    assert events == [("srem", "s", b"src"), ("del", "g", b"src")]
    assert gate.ok("SMEMBERS", "dst") == {b"a", b"b"}
    assert gate.state.keyspace.db(0).lookup(b"src") is None
    assert gate.ok("SMOVE", "dst", "new", "a") == 1
    assert gate.ok("SMEMBERS", "new") == {b"a"}
    assert_memory_consistent(gate)


def test_smove_same_key_and_types(gate, events):
    gate.ok("SADD", "s", "a")
    gate.ok("SET", "str", "v")
    events.clear()
    assert gate.ok("SMOVE", "s", "s", "a") == 1
    assert gate.ok("SMOVE", "s", "s", "z") == 0
    assert events == []
    assert gate.ok("SMOVE", "missing", "str", "a") == 0  # missing source wins over WRONGTYPE
    assert gate.err("SMOVE", "s", "str", "a") == WRONGTYPE
    assert gate.err("SMOVE", "str", "s", "a") == WRONGTYPE
    assert gate.err("SMOVE", "s", "str", "not-a-member") == WRONGTYPE
    assert gate.ok("SMEMBERS", "s") == {b"a"}


# -- expiry, memory, metadata ----------------------------------------------------------------
def test_expired_set(gate):
    db = gate.state.keyspace.db(0)
    gate.ok("SADD", "s", "a", "b")
    db.set_expire(b"s", gate.clock() + 500)
    gate.ok("SADD", "s", "c")  # keeps the TTL
    assert db.pttl(b"s") == 500
    gate.clock.advance(500)
    assert gate.ok("SMEMBERS", "s") == set()
    assert gate.ok("SINTERCARD", "1", "s") == 0
    assert gate.ok("SMOVE", "s", "d", "a") == 0
    assert gate.ok("SADD", "s", "x") == 1
    assert gate.ok("SMEMBERS", "s") == {b"x"}
    assert db.pttl(b"s") == -1
    assert_memory_consistent(gate)


def test_expired_source_of_store(gate):
    db = gate.state.keyspace.db(0)
    gate.ok("SADD", "a", "1")
    gate.ok("SADD", "b", "1", "2")
    db.set_expire(b"a", gate.clock() + 1)
    gate.clock.advance(1)
    assert gate.ok("SUNIONSTORE", "d", "a", "b") == 2
    assert gate.ok("SINTERSTORE", "d", "a", "b") == 0
    assert db.lookup(b"d") is None
    assert_memory_consistent(gate)


def test_command_metadata(gate):
    table = gate.state.table
    smove = table.get("smove")
    assert (smove.first_key, smove.last_key, smove.step) == (1, 2, 1)
    sinterstore = table.get("sinterstore")
    assert (sinterstore.arity, sinterstore.flags) == (-3, ("write", "denyoom"))
    assert (sinterstore.first_key, sinterstore.last_key, sinterstore.step) == (1, -1, 1)
    card = table.get("sintercard")
    assert (card.arity, card.flags, card.first_key) == (-3, ("readonly", "movablekeys"), 0)
    assert table.get("srandmember").acl_categories == ("read", "set", "slow")
    names = {c.name for c in sets.group.commands}
    assert names == {
        "sadd",
        "srem",
        "smembers",
        "sismember",
        "smismember",
        "scard",
        "spop",
        "srandmember",
        "sscan",
        "sinter",
        "sunion",
        "sdiff",
        "sinterstore",
        "sunionstore",
        "sdiffstore",
        "smove",
        "sintercard",
    }
