"""A real tokenginx-server process per module, with an httpx client on its HTTP door."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
import redis

from tests.conftest import RunningServer, start_tokenginx, stop_process

API_KEY = "test-api-key-0123456789"


def _server(*extra: str) -> Iterator[RunningServer]:
    srv = start_tokenginx(*extra)
    yield srv
    stop_process(srv.proc)
    shutil.rmtree(srv.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def http_server() -> Iterator[RunningServer]:
    """No authentication configured: every request is allowed, as Redis without a password."""
    yield from _server()


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RunningServer]:
    yield from _server("--set", f"security.api_keys={API_KEY}", "--requirepass", "s3cret")


@pytest.fixture
def api(http_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_server.http_url, timeout=10) as client:
        yield client


@pytest.fixture
def r(http_server: RunningServer) -> Iterator[redis.Redis]:
    """redis-py on the same server, to check what the HTTP door did (and vice versa)."""
    client = redis.Redis(port=http_server.port, socket_timeout=10)
    client.flushall()
    yield client
    client.close()
