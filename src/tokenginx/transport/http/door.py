"""Runs the HTTP app on uvicorn inside the server's own event loop.

We bind the socket ourselves (so port 0 works and the bound port is known) and drive
uvicorn's ``startup``/``shutdown`` directly instead of ``uvicorn.run``, which would
want to own the loop and the signal handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import TYPE_CHECKING

import uvicorn

from tokenginx.config import parse_addr
from tokenginx.transport.http.app import build_app
from tokenginx.transport.http.guarded import HeadLimits, guarded_protocol

if TYPE_CHECKING:
    from tokenginx.server import Server

log = logging.getLogger("tokenginx.http")


class HTTPDoor:
    name = "http"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.app = build_app(server)
        self._uvicorn: uvicorn.Server | None = None
        self._sockets: list[socket.socket] = []
        self._ticker: asyncio.Task | None = None

    async def start(self) -> int:
        cfg = self.server.config
        host, port = parse_addr(cfg.server.http_addr, "server.http_addr")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
        self._sockets = [sock]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            # httptools plus header limits and head/body timeouts (guarded.py)
            http=guarded_protocol(
                HeadLimits(
                    max_headers=cfg.http.max_headers,
                    max_header_bytes=cfg.http.max_header_bytes,
                    header_timeout_s=cfg.http.header_timeout_s,
                    body_timeout_s=cfg.http.body_timeout_s,
                )
            ),
            ws="none",
            loop="none",
            log_config=None,
            access_log=False,
            server_header=False,
            proxy_headers=False,
            limit_concurrency=cfg.server.max_connections,
            timeout_keep_alive=max(cfg.server.idle_timeout, 5),
            timeout_graceful_shutdown=int(cfg.server.shutdown_timeout) or 1,
        )
        config.load()
        uv = uvicorn.Server(config)
        uv.lifespan = config.lifespan_class(config)
        await uv.startup(sockets=self._sockets)
        self._uvicorn = uv
        self._ticker = asyncio.create_task(self._tick(), name="tokenginx-http-tick")
        bound = sock.getsockname()[1]
        log.info("http listening", extra={"event": "http_started", "port": bound})
        return bound

    async def _tick(self) -> None:
        """uvicorn's main loop refreshes the Date header once a second; we do it here."""
        assert self._uvicorn is not None
        counter = 0
        while True:
            await asyncio.sleep(0.1)
            counter += 1
            await self._uvicorn.on_tick(counter)

    async def stop(self) -> None:
        self.app.state.stopping.set()  # ends event streams so connections can close
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._uvicorn is not None:
            await self._uvicorn.shutdown(sockets=self._sockets)
            self._uvicorn = None
