"""Fixtures for the SSO domain tests: an in-memory keyspace on a hand-moved clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tokenginx.clock import ManualClock
from tokenginx.config import ProtocolsConfig
from tokenginx.sso.context import SSOContext
from tokenginx.storage.memory import Database, MemoryKeyspace


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def db(clock: ManualClock) -> Database:
    return MemoryKeyspace(clock=clock).db(0)


@pytest.fixture
def protocols() -> ProtocolsConfig:
    return ProtocolsConfig()


@pytest.fixture
def ctx(db: Database, protocols: ProtocolsConfig) -> Callable[[], SSOContext]:
    """A fresh context per operation, as each command gets one (it reads the clock)."""
    return lambda: SSOContext.of(db, protocols)


@pytest.fixture
def events(db: Database) -> Iterator[list[tuple[str, bytes]]]:
    seen: list[tuple[str, bytes]] = []
    unsubscribe = db.ks.on_change(lambda e: seen.append((e.event, e.key)))
    yield seen
    unsubscribe()
