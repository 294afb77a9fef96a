"""Differential test: the same hash and set command sequence against a real
redis-server and a tokenginx-server process, reply by reply.

The sequence runs three times, each time under a fresh key prefix on both servers:
with redis-py on RESP2, with redis-py on RESP3 (response callbacks removed, so the
replies are what the parser produced), and over a raw RESP3 socket, which keeps the
reply types redis-py folds together (a RESP3 set ``~`` and an array ``*`` both become
lists there). Error replies are compared by their exact text.

Replies whose order Redis does not define (HKEYS, SMEMBERS, HGETALL, …) are compared
sorted; random commands are only used where the answer is determined (a one-member
set, or a count covering the whole collection). Large collections are iterated to the
end with HSCAN/SSCAN and the union is compared, since cursors differ by design.

The reference is redis-server 7.0, so HSCAN NOVALUES (7.4) is covered by the unit
tests only.
"""

from __future__ import annotations

import shlex
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process

# -- the sequence: "{k}" is replaced by the run's key prefix ------------------------------
BIG_HASH = "HSET {k}big " + " ".join(f"f{i} v{i}" for i in range(300))
BIG_SET = "SADD {k}bigset " + " ".join(f"m{i}" for i in range(600))
INT_SET = "SADD {k}ints " + " ".join(str(i) for i in range(200))

SEQUENCE: list[str | tuple[str, str]] = [
    # HSET / HMSET / HSETNX
    "HSET {k}h f1 v1 f2 v2 f3 v3",
    "HSET {k}h f1 new f4 v4",
    "HSET {k}h f1",
    "HSET {k}h f1 v1 f2",
    "HMSET {k}h f5 v5 f6 v6",
    "HMSET {k}h f5",
    "HSETNX {k}h f1 x",
    "HSETNX {k}h f9 x",
    # reads
    "HGET {k}h f1",
    "HGET {k}h nope",
    "HGET {k}nokey f1",
    "HMGET {k}h f1 nope f2",
    "HMGET {k}nokey a b",
    "HGETALL {k}h",
    "HGETALL {k}nokey",
    "HLEN {k}h",
    "HLEN {k}nokey",
    "HKEYS {k}h",
    "HVALS {k}h",
    "HKEYS {k}nokey",
    "HSTRLEN {k}h f1",
    "HSTRLEN {k}h nope",
    "HEXISTS {k}h f1",
    "HEXISTS {k}h nope",
    "HGET {k}h",
    # HDEL
    "HDEL {k}h f1 f1 nope",
    "HDEL {k}nokey a",
    # HINCRBY
    "HINCRBY {k}h n 5",
    "HINCRBY {k}h n -12",
    "HINCRBY {k}h n x",
    "HINCRBY {k}h n 1.5",
    "HINCRBY {k}h f2 1",
    "HSET {k}h big 9223372036854775806",
    "HINCRBY {k}h big 1",
    "HINCRBY {k}h big 1",
    "HINCRBY {k}h neg -9223372036854775808",
    "HINCRBY {k}h neg -1",
    "HINCRBY {k}h n 9223372036854775808",
    # HINCRBYFLOAT (Redis computes in long double)
    "HINCRBYFLOAT {k}h fl 0.1",
    "HINCRBYFLOAT {k}h fl 0.2",
    "HINCRBYFLOAT {k}h fl 1e3",
    "HINCRBYFLOAT {k}h fl -1000.3",
    "HINCRBYFLOAT {k}h fl2 10.5",
    "HINCRBYFLOAT {k}h fl2 0.1",
    "HINCRBYFLOAT {k}h fl2 -5.0e-1",
    "HINCRBYFLOAT {k}h fl abc",
    "HINCRBYFLOAT {k}h fl inf",
    "HINCRBYFLOAT {k}h fl ' 1'",
    "HINCRBYFLOAT {k}h f2 1",
    "HINCRBYFLOAT {k}h huge 1.1e4932",
    "HINCRBYFLOAT {k}h huge 1.1e4932",
    "HINCRBYFLOAT {k}h tiny 1e-17",
    "HINCRBYFLOAT {k}h hex 0x1p-3",
    "HINCRBYFLOAT {k}h n 2.5",
    "HINCRBY {k}h fl 1",
    "HGET {k}h fl",
    # HSCAN on a small hash (listpack in Redis: one reply, cursor 0, COUNT ignored)
    "HSET {k}sh f1 v1 f2 v2 g1 w1 fl x",
    "HSCAN {k}sh 0",
    "HSCAN {k}sh 0 MATCH f*",
    "HSCAN {k}sh 0 match f? COUNT 1",
    "HSCAN {k}sh 0 COUNT 0",
    "HSCAN {k}sh 0 COUNT x",
    "HSCAN {k}sh 0 TYPE string",
    "HSCAN {k}sh 0 MATCH",
    "HSCAN {k}sh abc",
    "HSCAN {k}sh -1",
    "HSCAN {k}sh ''",
    "HSCAN {k}sh 18446744073709551616",
    "HSCAN {k}nokey 0 BAD",
    # {k}h holds a value over 64 bytes (a hashtable in Redis): compare whole iterations
    ("SCANALL", "HSCAN {k}h 0"),
    ("SCANALL", "HSCAN {k}h 0 MATCH f* COUNT 3"),
    # HRANDFIELD
    "HSET {k}one only 1",
    "HRANDFIELD {k}one",
    "HRANDFIELD {k}one -3",
    "HRANDFIELD {k}one -2 WITHVALUES",
    "HRANDFIELD {k}one 5 withvalues",
    "HRANDFIELD {k}h 100",
    "HRANDFIELD {k}h 100 WITHVALUES",
    "HRANDFIELD {k}h 0",
    "HRANDFIELD {k}h 0 WITHVALUES",
    "HRANDFIELD {k}nokey",
    "HRANDFIELD {k}nokey 3",
    "HRANDFIELD {k}nokey 3 bad",
    "HRANDFIELD {k}h 1 bad",
    "HRANDFIELD {k}h x",
    "HRANDFIELD {k}h -9223372036854775808",
    "HRANDFIELD {k}h -4611686018427387904 WITHVALUES",
    # the last field takes the key with it
    "HDEL {k}one only",
    "HLEN {k}one",
    "GET {k}one",
    # WRONGTYPE
    "SET {k}str v",
    "HGET {k}str f",
    "HSET {k}str f v",
    "HSCAN {k}str 0 BAD",
    "HRANDFIELD {k}str 1",
    "HINCRBYFLOAT {k}str f 1",
    # a hash past the listpack size: full iterations compared as unions
    BIG_HASH,
    ("SCANALL", "HSCAN {k}big 0 COUNT 10"),
    ("SCANALL", "HSCAN {k}big 0 MATCH f1* COUNT 20"),
    "HLEN {k}big",
    "HRANDFIELD {k}big 1000",
    # SADD / SREM
    "SADD {k}s a b c d",
    "SADD {k}s a e",
    "SADD {k}s",
    "SREM {k}s a x",
    "SREM {k}nokey a",
    "SMEMBERS {k}s",
    "SMEMBERS {k}nokey",
    "SISMEMBER {k}s b",
    "SISMEMBER {k}s z",
    "SMISMEMBER {k}s b z c",
    "SMISMEMBER {k}nokey a",
    "SCARD {k}s",
    "SCARD {k}nokey",
    # algebra
    "SADD {k}t c d e f",
    "SADD {k}u x",
    "SINTER {k}s {k}t",
    "SINTER {k}s {k}nokey",
    "SINTER {k}nokey {k}str",
    "SINTER {k}s {k}h",
    "SUNION {k}s {k}t {k}nokey",
    "SUNION {k}nokey",
    "SDIFF {k}s {k}t",
    "SDIFF {k}nokey {k}s",
    "SDIFF {k}s {k}str",
    "SINTERCARD 2 {k}s {k}t",
    "SINTERCARD 2 {k}s {k}t LIMIT 1",
    "SINTERCARD 2 {k}s {k}t LIMIT 0",
    "SINTERCARD 0 {k}s",
    "SINTERCARD x {k}s",
    "SINTERCARD 3 {k}s",
    "SINTERCARD 1 {k}s LIMIT -1",
    "SINTERCARD 1 {k}s LIMIT",
    "SINTERCARD 1 {k}s {k}t",
    "SINTERCARD 2 {k}nokey {k}str",
    "SINTERSTORE {k}dst {k}s {k}t",
    "SMEMBERS {k}dst",
    "SUNIONSTORE {k}dst {k}s {k}u",
    "SMEMBERS {k}dst",
    "SDIFFSTORE {k}dst {k}s {k}t",
    "SMEMBERS {k}dst",
    "SINTERSTORE {k}dst {k}s {k}nokey",
    "SCARD {k}dst",
    "SINTERSTORE {k}dst {k}s {k}str",
    "SUNIONSTORE {k}str2 {k}s",
    "SET {k}str2 v",
    "SUNIONSTORE {k}str2 {k}s",
    "GET {k}str2",
    "SMEMBERS {k}str2",
    "SDIFFSTORE {k}s {k}s {k}u",
    # SMOVE
    "SMOVE {k}s {k}u b",
    "SMOVE {k}s {k}u nope",
    "SMOVE {k}nokey {k}h a",
    "SMOVE {k}s {k}h c",
    "SMOVE {k}h {k}s c",
    "SMOVE {k}s {k}s c",
    "SMOVE {k}s {k}s nope",
    "SMOVE {k}u {k}new x",
    "SMEMBERS {k}u",
    "SMEMBERS {k}new",
    # SPOP
    "SADD {k}single m",
    "SPOP {k}single",
    "SPOP {k}single",
    "SCARD {k}single",
    "SPOP {k}s 0",
    "SPOP {k}s -1",
    "SPOP {k}s x",
    "SPOP {k}s 1 2",
    "SPOP {k}nokey 2",
    "SPOP {k}str 1",
    "SPOP {k}s 100",
    "SCARD {k}s",
    # SRANDMEMBER
    "SADD {k}one1 m",
    "SRANDMEMBER {k}one1",
    "SRANDMEMBER {k}one1 -3",
    "SRANDMEMBER {k}one1 5",
    "SRANDMEMBER {k}t 10",
    "SRANDMEMBER {k}t 0",
    "SRANDMEMBER {k}nokey 5",
    "SRANDMEMBER {k}nokey",
    "SRANDMEMBER {k}t x",
    "SRANDMEMBER {k}t 1 2",
    "SRANDMEMBER {k}t -9223372036854775808",
    "SRANDMEMBER {k}str",
    # SSCAN
    "SSCAN {k}t 0",
    "SSCAN {k}t 0 MATCH [cd]",
    "SSCAN {k}t 0 NOVALUES",
    "SSCAN {k}t 0 COUNT 0",
    "SSCAN {k}t x",
    "SSCAN {k}nokey 0 BAD",
    "SSCAN {k}str 0",
    BIG_SET,
    ("SCANALL", "SSCAN {k}bigset 0 COUNT 25"),
    ("SCANALL", "SSCAN {k}bigset 0 MATCH m1?? COUNT 30"),
    INT_SET,
    ("SCANALL", "SSCAN {k}ints 0"),
    "SINTERCARD 2 {k}bigset {k}bigset LIMIT 7",
    "SCARD {k}bigset",
    "SRANDMEMBER {k}bigset 600",
    "SPOP {k}bigset 1000",
    "SCARD {k}bigset",
]

UNORDERED = {
    "HKEYS",
    "HVALS",
    "HGETALL",
    "HRANDFIELD",
    "HSCAN",
    "SMEMBERS",
    "SINTER",
    "SUNION",
    "SDIFF",
    "SPOP",
    "SRANDMEMBER",
    "SSCAN",
}


# -- servers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ours() -> Iterator[RunningServer]:
    srv = start_tokenginx()
    try:
        probe = redis.Redis(port=srv.port, protocol=2, socket_timeout=10)
        unknown = ""
        try:
            for name in ("HLEN", "SCARD"):
                try:
                    probe.execute_command(name, "probe")
                except redis.ResponseError as e:
                    if "unknown command" not in str(e):
                        raise
                    unknown = str(e)
        finally:
            probe.close()
        if unknown:
            pytest.fail(f"hashes/sets not registered in ALL_GROUPS ({unknown})", pytrace=False)
        yield srv
    finally:
        stop_process(srv.proc)
        shutil.rmtree(srv.data_dir, ignore_errors=True)


# -- callers: argv -> reply, errors as ("error", text) ------------------------------------
Caller = Callable[[list[str]], Any]


def redis_py_caller(port: int, protocol: int) -> tuple[Caller, Callable[[], None]]:
    client = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
    client.response_callbacks.clear()  # compare what the server sent, not redis-py's views

    def call(argv: list[str]) -> Any:
        try:
            return client.execute_command(*argv)
        except redis.ResponseError as e:
            return ("error", type(e).__name__, str(e))

    return call, client.close


class RawResp3:
    """A bare RESP3 socket: replies keep their type (set, map, array, double…)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.f = self.sock.makefile("rb")
        hello = self.call(["HELLO", "3"])
        assert isinstance(hello, tuple) and hello[0] == "map", hello

    def close(self) -> None:
        self.f.close()
        self.sock.close()

    def call(self, argv: list[str]) -> Any:
        out = [b"*%d\r\n" % len(argv)]
        for a in argv:
            b = a.encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self.read()

    def read(self) -> Any:
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"connection closed mid-reply: {line!r}")
        kind, body = line[:1], line[1:-2]
        if kind == b"+":
            return ("status", body)
        if kind == b"-":
            return ("error", body.decode())
        if kind == b":":
            return int(body)
        if kind == b"_":
            return None
        if kind == b",":
            return ("double", body)
        if kind == b"#":
            return body == b"t"
        if kind in (b"$", b"="):
            n = int(body)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data if kind == b"$" else ("verbatim", data)
        if kind in (b"*", b"~", b">"):
            n = int(body)
            if n < 0:
                return None
            items = [self.read() for _ in range(n)]
            if kind == b"~":
                return ("set", sorted(items, key=repr))
            return items if kind == b"*" else ("push", items)
        if kind == b"%":
            pairs = [(self.read(), self.read()) for _ in range(int(body))]
            return ("map", sorted(pairs, key=repr))
        raise AssertionError(f"unknown RESP3 type {line!r}")


def raw_caller(port: int) -> tuple[Caller, Callable[[], None]]:
    conn = RawResp3(port)
    return conn.call, conn.close


# -- normalisation of unordered replies ------------------------------------------------------
def _items(items: Any, paired: bool) -> Any:
    if isinstance(items, tuple):  # a RESP3 set or map from the raw reader: already sorted
        return items
    if isinstance(items, dict):
        return ("dict", sorted(items.items()))
    items = list(items)
    if paired:
        if items and isinstance(items[0], list):  # RESP3 HRANDFIELD WITHVALUES: pairs
            return ("pairs", sorted(tuple(p) for p in items))
        return ("flat", sorted(zip(items[::2], items[1::2])))
    return ("sorted", sorted(items, key=repr))


def canonical(argv: list[str], reply: Any) -> Any:
    name = argv[0].upper()
    upper = [a.upper() for a in argv]
    if name not in UNORDERED or not isinstance(reply, (list, dict, set)):
        return reply
    if name in ("HSCAN", "SSCAN"):
        cursor, items = reply
        paired = name == "HSCAN" and "NOVALUES" not in upper
        return [cursor, _items(items, paired)]
    paired = name == "HGETALL" or (name == "HRANDFIELD" and "WITHVALUES" in upper)
    return _items(reply, paired)


def scan_all(call: Caller, argv: list[str]) -> Any:
    """Iterate HSCAN/SSCAN ``argv`` (its cursor is ignored) to the end: ["0", all items]."""
    cursor: Any = b"0"
    items: list[Any] = []
    for _ in range(10_000):
        reply = call([argv[0], argv[1], cursor.decode(), *argv[3:]])
        if not isinstance(reply, list):
            return reply
        cursor, batch = reply
        items.extend(batch)
        if cursor == b"0":
            return [cursor, items]
    raise AssertionError(f"{argv} did not finish")


def run(call: Caller, step: str | tuple[str, str], prefix: str) -> tuple[list[str], Any]:
    scan = isinstance(step, tuple)
    text = step[1] if scan else step
    argv = [a.replace("{k}", prefix) for a in shlex.split(text)]
    reply = scan_all(call, argv) if scan else call(argv)
    return argv, canonical(argv, reply)


# -- the test ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["resp2", "resp3", "raw-resp3"])
def test_same_replies_as_redis(ours: RunningServer, reference_redis: RunningServer, mode: str):
    def caller(port: int) -> tuple[Caller, Callable[[], None]]:
        if mode == "raw-resp3":
            return raw_caller(port)
        return redis_py_caller(port, 2 if mode == "resp2" else 3)

    ref_call, ref_close = caller(reference_redis.port)
    our_call, our_close = caller(ours.port)
    prefix = f"diff:{uuid.uuid4().hex[:8]}:{mode}:"
    mismatches: list[str] = []
    try:
        for step in SEQUENCE:
            argv, expected = run(ref_call, step, prefix)
            _, got = run(our_call, step, prefix)
            if got != expected:
                shown = " ".join(argv)[:120]
                mismatches.append(
                    f"{shown}\n    redis:     {expected!r:.300}\n    tokenginx: {got!r:.300}"
                )
    finally:
        ref_close()
        our_close()
    assert not mismatches, f"{len(mismatches)} replies differ:\n" + "\n".join(mismatches)


def test_sequence_is_large_and_has_errors():
    """Keep the sequence meaningful: ~80+ steps, with error cases for most commands."""
    assert len(SEQUENCE) >= 80
    names = {(s[1] if isinstance(s, tuple) else s).split()[0].upper() for s in SEQUENCE}
    for family in ("HSET", "HINCRBYFLOAT", "HSCAN", "HRANDFIELD", "SINTERCARD", "SMOVE", "SPOP"):
        assert family in names
