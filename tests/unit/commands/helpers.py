"""Shared by the hash and set command tests."""

from __future__ import annotations

from tests.conftest import GateHarness
from tokenginx.commands import ALL_GROUPS, hashes, sets
from tokenginx.config import Config
from tokenginx.storage.memory import value_size

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
GROUPS = [*ALL_GROUPS, *(g for g in (hashes.group, sets.group) if g not in ALL_GROUPS)]


def make_gate(config: Config | None = None) -> GateHarness:
    return GateHarness(config, groups=GROUPS)


def assert_memory_consistent(gate: GateHarness) -> None:
    for db in gate.state.keyspace.databases:
        assert db.used == sum(value_size(k, v) for k, v in db.data.items())
    assert gate.state.keyspace.used == sum(d.used for d in gate.state.keyspace.databases)


def scan_all(gate: GateHarness, *args, between=None) -> list[bytes]:
    """Run HSCAN/SSCAN to completion; returns the concatenated items."""
    cursor = b"0"
    out: list[bytes] = []
    steps = 0
    while True:
        cursor, items = gate.ok(args[0], args[1], cursor, *args[2:])
        out.extend(items)
        steps += 1
        assert steps < 10_000
        if cursor == b"0":
            return out
        if between is not None:
            between(steps)
