"""Fixtures for the command-family tests (``gate`` comes from tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def events(gate) -> Iterator[list[tuple[str, str, bytes]]]:
    """Every keyspace event the commands of a test emit: (event, kind, key)."""
    seen: list[tuple[str, str, bytes]] = []
    unsubscribe = gate.state.keyspace.on_change(lambda e: seen.append((e.event, e.kind, e.key)))
    yield seen
    unsubscribe()
