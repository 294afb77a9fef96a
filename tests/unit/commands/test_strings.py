from tokenginx.replies import OK


def test_set_get_roundtrip(gate):
    assert gate.ok("SET", "k", "v") == OK
    assert gate.ok("GET", "k") == b"v"
    assert gate.ok("GET", "missing") is None


def test_setex_expires_with_clock(gate):
    gate.ok("SETEX", "s", 10, "x")
    assert gate.ok("TTL", "s") == 10
    gate.clock.advance(9_999)
    assert gate.ok("GET", "s") == b"x"
    gate.clock.advance(1)
    assert gate.ok("GET", "s") is None
    assert gate.ok("TTL", "s") == -2


def test_set_options(gate):
    assert gate.ok("SET", "k", "1", "NX") == OK
    assert gate.ok("SET", "k", "2", "NX") is None
    assert gate.ok("SET", "k", "3", "XX", "GET") == b"1"
    assert gate.ok("SET", "nope", "3", "XX") is None
    assert gate.ok("SET", "k", "4", "PX", 1500, "GET") == b"3"
    assert gate.ok("PTTL", "k") == 1500
    assert gate.ok("SET", "k", "5", "KEEPTTL") == OK
    assert gate.ok("PTTL", "k") == 1500
    at = gate.clock() // 1000 + 100
    gate.ok("SET", "k", "6", "EXAT", at)
    assert gate.ok("TTL", "k") == 100
    assert gate.err("SET", "k", "v", "NX", "XX") == "ERR syntax error"
    assert gate.err("SET", "k", "v", "EX", 0) == "ERR invalid expire time in 'set' command"
    assert gate.err("SET", "k", "v", "EX", "abc") == "ERR value is not an integer or out of range"
    assert gate.err("SET", "k", "v", "EX", 10, "KEEPTTL") == "ERR syntax error"
    gate.ok("HSET", "h", "f", "v") if gate.state.table.get("hset") else gate.state.keyspace.db(0).hash_for_write(b"h").update({b"f": b"v"})
    assert gate.err("SET", "h", "v", "GET").startswith("WRONGTYPE")
    assert gate.ok("SET", "h", "v") == OK  # plain SET replaces any type


def test_counters(gate):
    assert gate.ok("INCR", "n") == 1
    assert gate.ok("INCRBY", "n", 10) == 11
    assert gate.ok("DECRBY", "n", 20) == -9
    assert gate.ok("DECR", "n") == -10
    gate.ok("SET", "n", str(2**63 - 1))
    assert gate.err("INCR", "n") == "ERR increment or decrement would overflow"
    gate.ok("SET", "s", "abc")
    assert gate.err("INCR", "s") == "ERR value is not an integer or out of range"
    gate.ok("SET", "s", " 1")
    assert gate.err("INCR", "s") == "ERR value is not an integer or out of range"
    assert gate.ok("INCRBYFLOAT", "f", "10.5") == b"10.5"
    assert gate.ok("INCRBYFLOAT", "f", "0.1") == b"10.6"
    assert gate.ok("INCRBYFLOAT", "f", "-5.6") == b"5"
    assert gate.err("INCRBYFLOAT", "f", "nan") == "ERR value is not a valid float"


def test_counter_keeps_ttl(gate):
    gate.ok("SET", "n", "1", "EX", 100)
    gate.ok("INCR", "n")
    assert gate.ok("TTL", "n") == 100


def test_string_ranges(gate):
    assert gate.ok("APPEND", "s", "Hello") == 5
    assert gate.ok("APPEND", "s", " World") == 11
    assert gate.ok("STRLEN", "s") == 11
    assert gate.ok("GETRANGE", "s", 0, 4) == b"Hello"
    assert gate.ok("GETRANGE", "s", -5, -1) == b"World"
    assert gate.ok("GETRANGE", "s", 5, 1) == b""
    assert gate.ok("SETRANGE", "s", 6, "Redis") == 11
    assert gate.ok("GET", "s") == b"Hello Redis"
    assert gate.ok("SETRANGE", "z", 3, "x") == 4
    assert gate.ok("GET", "z") == b"\x00\x00\x00x"
    assert gate.err("SETRANGE", "z", -1, "x") == "ERR offset is out of range"


def test_multi_key_strings(gate):
    assert gate.ok("MSET", "a", 1, "b", 2) == OK
    assert gate.ok("MGET", "a", "b", "c") == [b"1", b"2", None]
    assert gate.ok("MSETNX", "c", 3, "a", 9) == 0
    assert gate.ok("MSETNX", "c", 3, "d", 4) == 1
    assert gate.err("MSET", "a", 1, "b") == "ERR wrong number of arguments for 'mset' command"


def test_getdel_getex_getset(gate):
    gate.ok("SET", "k", "v")
    assert gate.ok("GETEX", "k", "EX", 50) == b"v"
    assert gate.ok("TTL", "k") == 50
    assert gate.ok("GETEX", "k", "PERSIST") == b"v"
    assert gate.ok("TTL", "k") == -1
    assert gate.ok("GETSET", "k", "w") == b"v"
    assert gate.ok("GETDEL", "k") == b"w"
    assert gate.ok("EXISTS", "k") == 0
    assert gate.ok("SETNX", "k", "1") == 1
    assert gate.ok("SETNX", "k", "2") == 0
    assert gate.err("PSETEX", "k", -5, "v") == "ERR invalid expire time in 'psetex' command"


def test_value_size_limit(gate):
    gate.state.config.limits.value_bytes = 10
    assert gate.err("SET", "k", "x" * 11, "NX").startswith("ERR string exceeds maximum allowed size")
    assert gate.err("APPEND", "k2", "x" * 11).startswith("ERR string exceeds maximum allowed size")


def test_key_size_limit(gate):
    gate.state.keyspace.max_key_bytes = 8
    assert gate.err("SET", "k" * 9, "v") == "ERR key is too large (max 8 bytes)"
