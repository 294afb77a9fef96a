from tokenginx.replies import OK


def test_set_get_roundtrip(gate):
    assert gate.ok("SET", "k", "v") == OK
    assert gate.ok("GET", "k") == b"v"
    assert gate.ok("GET", "missing") is None


def test_setex_expires_with_clock(gate):
    gate.ok("SETEX", "s", 10, "x")
    assert gate.ok("TTL", "s") == 10 if gate.state.table.get("ttl") else True
    gate.clock.advance(9_999)
    assert gate.ok("GET", "s") == b"x"
    gate.clock.advance(1)
    assert gate.ok("GET", "s") is None
