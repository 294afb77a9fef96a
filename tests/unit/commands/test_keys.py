from tokenginx.replies import OK, Status


def test_del_exists_type(gate):
    gate.ok("MSET", "a", 1, "b", 2)
    assert gate.ok("EXISTS", "a", "b", "a", "zz") == 3
    assert gate.ok("TYPE", "a") == Status(b"string")
    assert gate.ok("TYPE", "zz") == Status(b"none")
    assert gate.ok("DEL", "a", "b", "zz") == 2
    assert gate.ok("UNLINK", "a") == 0


def test_expire_family(gate):
    gate.ok("SET", "k", "v")
    assert gate.ok("EXPIRE", "missing", 10) == 0
    assert gate.ok("EXPIRE", "k", 100, "XX") == 0
    assert gate.ok("EXPIRE", "k", 100, "NX") == 1
    assert gate.ok("EXPIRE", "k", 200, "NX") == 0
    assert gate.ok("EXPIRE", "k", 50, "GT") == 0
    assert gate.ok("EXPIRE", "k", 200, "GT") == 1
    assert gate.ok("EXPIRE", "k", 300, "LT") == 0
    assert gate.ok("PEXPIRE", "k", 5000, "LT") == 1
    assert gate.ok("PTTL", "k") == 5000
    assert gate.ok("PERSIST", "k") == 1
    assert gate.ok("PERSIST", "k") == 0
    assert gate.ok("EXPIRE", "k", 10, "GT") == 0  # no TTL counts as infinite for GT
    assert gate.ok("EXPIRE", "k", 10, "LT") == 1
    assert gate.err("EXPIRE", "k", 10, "NX", "XX") == (
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    )
    assert gate.err("EXPIRE", "k", 10, "GT", "LT") == (
        "ERR GT and LT options at the same time are not compatible"
    )
    assert gate.err("EXPIRE", "k", 10, "FOO") == "ERR Unsupported option FOO"
    assert gate.err("EXPIRE", "k", 2**62) == "ERR invalid expire time in 'expire' command"


def test_expire_zero_or_negative_deletes(gate):
    gate.ok("SET", "k", "v")
    assert gate.ok("EXPIRE", "k", 0) == 1
    assert gate.ok("EXISTS", "k") == 0
    gate.ok("SET", "k", "v")
    assert gate.ok("PEXPIREAT", "k", 1) == 1
    assert gate.ok("GET", "k") is None


def test_expiretime(gate):
    gate.ok("SET", "k", "v")
    assert gate.ok("EXPIRETIME", "k") == -1
    assert gate.ok("EXPIRETIME", "nope") == -2
    at = gate.clock() // 1000 + 1000
    gate.ok("EXPIREAT", "k", at)
    assert gate.ok("EXPIRETIME", "k") == at
    assert gate.ok("PEXPIRETIME", "k") == at * 1000


def test_rename_copy(gate):
    gate.ok("SET", "a", "1", "EX", 100)
    assert gate.err("RENAME", "nope", "b") == "ERR no such key"
    assert gate.ok("RENAME", "a", "b") == OK
    assert gate.ok("TTL", "b") == 100
    assert gate.ok("EXISTS", "a") == 0
    gate.ok("SET", "c", "3")
    assert gate.ok("RENAMENX", "b", "c") == 0
    assert gate.ok("COPY", "b", "c") == 0
    assert gate.ok("COPY", "b", "c", "REPLACE") == 1
    assert gate.ok("GET", "c") == b"1"
    assert gate.ok("COPY", "b", "b2", "DB", 3) == 1
    gate.ok("SELECT", 3)
    assert gate.ok("GET", "b2") == b"1"
    assert gate.ok("TTL", "b2") == 100
    assert gate.err("COPY", "b2", "b2") == "ERR source and destination objects are the same"


def test_keys_scan_patterns(gate):
    for k in ["user:1", "user:2", "user:10", "session:a", "x[1]"]:
        gate.ok("SET", k, "v")
    assert sorted(gate.ok("KEYS", "user:?")) == [b"user:1", b"user:2"]
    assert sorted(gate.ok("KEYS", "user:*")) == [b"user:1", b"user:10", b"user:2"]
    assert gate.ok("KEYS", "x\\[1\\]") == [b"x[1]"]
    assert sorted(gate.ok("KEYS", "user:[^1]")) == [b"user:2"]
    cursor, found = b"0", []
    while True:
        cursor, page = gate.ok("SCAN", cursor, "MATCH", "user:*", "COUNT", 2)
        found += page
        if cursor == b"0":
            break
    assert sorted(found) == [b"user:1", b"user:10", b"user:2"]
    assert gate.err("SCAN", "abc") == "ERR invalid cursor"
    assert gate.err("SCAN", 0, "COUNT", 0) == "ERR syntax error"


def test_dbsize_flush_swap(gate):
    gate.ok("SET", "a", 1)
    assert gate.ok("DBSIZE") == 1
    assert gate.ok("SWAPDB", 0, 1) == OK
    assert gate.ok("DBSIZE") == 0
    gate.ok("SELECT", 1)
    assert gate.ok("DBSIZE") == 1
    assert gate.ok("FLUSHDB") == OK
    assert gate.ok("DBSIZE") == 0
    assert gate.err("SWAPDB", 0, 99) == "ERR DB index is out of range"
    assert gate.err("SELECT", 16) == "ERR DB index is out of range"
    assert gate.err("FLUSHALL", "LATER") == "ERR syntax error"


def test_object_encoding(gate):
    gate.ok("SET", "i", "123")
    gate.ok("SET", "e", "hello")
    gate.ok("SET", "r", "x" * 45)
    assert gate.ok("OBJECT", "ENCODING", "i") == b"int"
    assert gate.ok("OBJECT", "ENCODING", "e") == b"embstr"
    assert gate.ok("OBJECT", "ENCODING", "r") == b"raw"
    assert gate.ok("OBJECT", "ENCODING", "nope") is None
    assert gate.err("OBJECT", "FOO", "i") == "ERR unknown subcommand 'FOO'. Try OBJECT HELP."
