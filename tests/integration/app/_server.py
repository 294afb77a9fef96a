"""Run a TokenginX Server with an application registry in a thread, on free ports."""

from __future__ import annotations

import contextlib
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
