"""Runs the gRPC services on ``grpc.aio`` inside the server's own event loop.

Served: ``tokenginx.v1.TokenginXService``, the standard ``grpc.health.v1.Health``
service and (``grpc.reflection``, on by default) server reflection, so generic tools
can list and describe the services. Message size limits in both directions come from
``grpc.max_message_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from tokenginx.config import parse_addr
from tokenginx.transport.grpc import SERVICE_NAME
from tokenginx.transport.grpc.health import LiveHealth
from tokenginx.transport.grpc.registration import add_servicer
from tokenginx.transport.grpc.servicer import TokenginXServicer

if TYPE_CHECKING:
    from tokenginx.server import Server

log = logging.getLogger("tokenginx.grpc")


def listen_address(addr: str) -> str:
    """``host:port`` from config as grpc wants it (IPv6 hosts in brackets)."""
    host, port = parse_addr(addr, "server.grpc_addr")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


class GrpcDoor:
    name = "grpc"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.servicer = TokenginXServicer(server)
        self.health = LiveHealth(self._serving, [SERVICE_NAME])
        self._grpc: grpc.aio.Server | None = None
        self._tracker: asyncio.Task | None = None

    def _serving(self) -> bool:
        return not (self.server.state.loading or self.server.stopping or self.servicer.stopping)

    async def start(self) -> int:
        cfg = self.server.config
        limit = cfg.grpc.max_message_bytes
        srv = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                # Fail loudly if the port is taken instead of sharing it with another process.
                ("grpc.so_reuseport", 0),
            ]
        )
        add_servicer(self.servicer, srv)  # malformed requests: INVALID_ARGUMENT
        health_pb2_grpc.add_HealthServicer_to_server(self.health, srv)
        if cfg.grpc.reflection:
            reflection.enable_server_reflection(
                [SERVICE_NAME, grpc_health.SERVICE_NAME, reflection.SERVICE_NAME], srv
            )
        address = listen_address(cfg.server.grpc_addr)
        try:
            port = srv.add_insecure_port(address)
        except RuntimeError as e:
            raise OSError(f"gRPC cannot listen on {address}: {e}") from e
        if port == 0:  # older grpcio reports a failed bind this way
            raise OSError(f"gRPC cannot listen on {address}")
        await srv.start()
        self._grpc = srv
        await self.health.refresh()
        self._tracker = asyncio.create_task(self.health.track(), name="tokenginx-grpc-health")
        log.info("grpc listening", extra={"event": "grpc_started", "port": port})
        return port

    async def stop(self) -> None:
        """Report NOT_SERVING, end Scan streams and health watches, then let the calls
        in flight finish (up to ``server.shutdown_timeout``)."""
        self.servicer.stopping = True
        await self.health.enter_graceful_shutdown()
        if self._tracker is not None:
            self._tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tracker
            self._tracker = None
        if self._grpc is not None:
            await self._grpc.stop(self.server.config.server.shutdown_timeout)
            self._grpc = None
