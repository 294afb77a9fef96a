"""Real tokenginx-server processes and a client generated from the shipped proto.

* ``tokenginx`` (tests/conftest.py): the shared server, no auth — ``stub`` talks to it
  and ``r`` (redis-py on the same server) flushes it before each test;
* ``auth_server``: ``security.api_keys=k1``;
* ``limits_server``: small message limit, 1 MB maxmemory, short keys, OAuth disabled,
  reflection off — for the error paths.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process
from tests.integration.grpc.stubs import client_stubs, connect

API_KEY = "k1"
LIMIT_MESSAGE_BYTES = 256 * 1024
LIMIT_KEY_BYTES = 100


def _server(*extra: str) -> Iterator[RunningServer]:
    srv = start_tokenginx("--no-persistence", *extra)
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stubs() -> SimpleNamespace:
    return client_stubs()


@pytest.fixture(scope="session")
def pb(stubs: SimpleNamespace) -> Any:
    return stubs.pb


@pytest.fixture(scope="session")
def channel(tokenginx: RunningServer) -> Iterator[grpc.Channel]:
    ch = connect(tokenginx.grpc_port)
    yield ch
    ch.close()


@pytest.fixture
def stub(stubs: SimpleNamespace, channel: grpc.Channel, r: redis.Redis) -> Any:
    """The service stub on the shared server, whose keyspace ``r`` has just flushed."""
    return stubs.pb_grpc.TokenginXServiceStub(channel)


@pytest.fixture(scope="session")
def auth_server() -> Iterator[RunningServer]:
    yield from _server("--set", f"security.api_keys={API_KEY}")


@pytest.fixture(scope="session")
def limits_server() -> Iterator[RunningServer]:
    yield from _server(
        "--set",
        f"grpc.max_message_bytes={LIMIT_MESSAGE_BYTES}",
        "--set",
        "cache.max_memory_mb=1",
        "--set",
        f"limits.key_bytes={LIMIT_KEY_BYTES}",
        "--set",
        "protocols.oauth.enabled=false",
        "--set",
        "grpc.reflection=false",
    )


@pytest.fixture
def limits_stub(stubs: SimpleNamespace, limits_server: RunningServer) -> Iterator[Any]:
    with connect(limits_server.grpc_port) as ch:
        yield stubs.pb_grpc.TokenginXServiceStub(ch)
    with redis.Redis(port=limits_server.port, socket_timeout=10) as r:
        r.flushall()
