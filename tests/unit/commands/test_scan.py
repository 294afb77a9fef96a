"""The HSCAN/SSCAN cursor helpers (tokenginx.commands.scan)."""

from __future__ import annotations

import pytest

from tests.unit.commands.helpers import make_gate
from tokenginx.commands.scan import MAX_CALLS, SMALL, parse_cursor, scan_batch
from tokenginx.errors import CommandError


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b"0", 0),
        (b"", 0),
        (b"42", 42),
        (b"+7", 7),
        (b"-1", 2**64 - 1),
        (b"-0", 0),
        (b"00012", 12),
        (b"18446744073709551615", 2**64 - 1),
        (b"5\x00rest", 5),  # strtoul stops at the NUL, as in Redis
    ],
)
def test_parse_cursor(raw, value):
    assert parse_cursor(raw) == value


@pytest.mark.parametrize(
    "raw", [b" 1", b"\t1", b"1 ", b"x", b"-", b"+", b"1.5", b"18446744073709551616", b"9" * 40]
)
def test_parse_cursor_invalid(raw):
    with pytest.raises(CommandError, match="^ERR invalid cursor$"):
        parse_cursor(raw)


class Colliding(bytes):
    """A bytes value whose hash collides with every other Colliding value."""

    def __hash__(self) -> int:
        return 12345


def iterate(elements, count):
    seen, cursor, steps = [], 0, 0
    while True:
        cursor, batch = scan_batch(elements, len(elements), cursor, count)
        seen.extend(batch)
        steps += 1
        if cursor == 0:
            return seen, steps


def test_equal_orders_go_out_together():
    elements = {Colliding(b"c%d" % i) for i in range(50)} | {b"e%d" % i for i in range(200)}
    seen, steps = iterate(elements, 10)
    assert len(seen) == len(elements) == len(set(seen))
    assert steps > 1


def test_small_collections_come_whole():
    elements = {b"%d" % i for i in range(SMALL)}
    assert scan_batch(elements, len(elements), 0, 1) == (0, list(elements))
    assert scan_batch(elements, len(elements), 999, 1) == (0, list(elements))  # cursor ignored


def test_big_collections_take_at_most_max_calls_steps():
    elements = {b"m%d" % i for i in range(20_000)}
    seen, steps = iterate(elements, 1)
    assert len(seen) == len(set(seen)) == 20_000
    assert steps <= MAX_CALLS + 1


def test_cursor_reply_is_bytes_through_the_gate():
    gate = make_gate()
    gate.ok("SADD", "s", *[f"m{i}" for i in range(2 * SMALL)])
    cursor, members = gate.ok("SSCAN", "s", "0", "COUNT", "5")
    assert isinstance(cursor, bytes) and cursor != b"0" and int(cursor) > 0
    assert len(members) == 5
