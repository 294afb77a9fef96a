"""Helpers for tests that run the same thing on tokenginx-server and on a real
redis-server and compare, and for probing a server while an attack runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import redis

from tests.conftest import RunningServer


def client_pair(
    tokenginx: RunningServer, reference_redis: RunningServer
) -> Iterator[tuple[redis.Redis, redis.Redis]]:
    """``(ours, redis-server)`` RESP2 clients, closed afterwards (for a fixture)."""
    ours = redis.Redis(port=tokenginx.port, protocol=2, socket_timeout=60)
    ref = redis.Redis(port=reference_redis.port, protocol=2, socket_timeout=60)
    yield ours, ref
    ours.close()
    ref.close()


def eval_reply(client: redis.Redis, script: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", client.eval(script, 0, *args)
    except redis.ResponseError as e:
        return "error", str(e)


def same(servers: tuple[redis.Redis, redis.Redis], script: str, *args: Any,
         error: bool = False) -> Any:
    """The reply (or error text) both servers give; it must be an error iff ``error``."""
    ours, ref = servers
    expected = eval_reply(ref, script, args)
    assert expected[0] == ("error" if error else "ok"), f"redis-server: {expected}"
    assert eval_reply(ours, script, args) == expected
    return expected[1]


class Probe:
    """PINGs the server from its own connection until stopped; ``worst`` is the
    slowest answer, ``errors`` what failed."""

    def __init__(self, srv: RunningServer, password: str | None = None) -> None:
        self.conn = redis.Redis(port=srv.port, password=password, socket_timeout=10, protocol=2)
        self.conn.ping()
        self.worst = 0.0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                self.conn.ping()
            except redis.RedisError as e:
                self.errors.append(str(e))
            self.worst = max(self.worst, time.perf_counter() - t0)
            time.sleep(0.003)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.conn.close()
