"""Run a TokenginX Server with an application registry in a thread, on free ports."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from tokenginx.app import RouteRegistry
from tokenginx.config import Config
from tokenginx.server import Server, free_port


def app_config(**overrides: Any) -> Config:
    base = {
        "server.tcp_addr": f"127.0.0.1:{free_port()}",
        "server.http_addr": f"127.0.0.1:{free_port()}",
        "server.grpc_addr": f"127.0.0.1:{free_port()}",
        "server.extra_tcp_binds": [],
        "persistence.enabled": False,
        "grpc.enabled": False,
    }
    base.update(overrides)
    return Config.load(env={}, overrides=base)


@contextlib.contextmanager
def serving(
    registry: RouteRegistry, setup: Callable[[Server], None] | None = None, **overrides: Any
) -> Iterator[Server]:
    """A started server for ``registry``; ``setup(server)`` runs before it starts."""
    server = Server(app_config(**overrides), routes=registry)
    if setup is not None:
        setup(server)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            server.run()
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            errors.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    while not server.ready.wait(0.05):
        if not thread.is_alive():
            raise RuntimeError(f"server did not start: {errors[0]!r}" if errors else "server died")
    try:
        yield server
    finally:
        server.stop()
        thread.join(15)
        assert not thread.is_alive(), "server thread did not stop"


def url(server: Server, path: str = "") -> str:
    return f"http://127.0.0.1:{server.http_port}{path}"


def example_env(port: int, http_port: int, **extra: str) -> dict[str, str]:
    """The environment an example script runs in: its ports through TOKENGINX_* (which
    ``Server()`` reads), no gRPC, no persistence, nothing inherited from the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENGINX_")}
    env.update(
        TOKENGINX_TCP_ADDR=f"127.0.0.1:{port}",
        TOKENGINX_HTTP_ADDR=f"127.0.0.1:{http_port}",
        TOKENGINX_GRPC_ENABLED="false",
        TOKENGINX_PERSISTENCE_ENABLED="false",
        TOKENGINX_SERVER_EXTRA_TCP_BINDS="",
        TOKENGINX_LOG_LEVEL="warn",
    )
    env.update(extra)
    return env
