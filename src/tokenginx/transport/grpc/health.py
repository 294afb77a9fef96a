"""The standard ``grpc.health.v1.Health`` service, tied to the server's state.

SERVING while the server answers commands; NOT_SERVING while it loads its data
directory (commands answer ``LOADING``) and from the moment it starts stopping. The
status is read live on every ``Check``; ``Watch`` streams are refreshed by
:meth:`LiveHealth.track` and end once the server stops, so they do not hold up a
graceful shutdown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
UNKNOWN_SERVICE = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class LiveHealth(health_aio.HealthServicer):
    def __init__(self, serving: Callable[[], bool], services: Iterable[str]) -> None:
        super().__init__()
        self._serving = serving
        self._services = ("", *services)  # "" = the server as a whole
        self._server_status = {s: NOT_SERVING for s in self._services}

    async def refresh(self) -> None:
        status = SERVING if self._serving() else NOT_SERVING
        for service in self._services:
            if self._server_status.get(service) != status:
                await self.set(service, status)

    async def track(self, interval: float = 0.25) -> None:
        """Keep ``Watch`` streams current (a background task of the door)."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval)

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        await self.refresh()
        return await super().Check(request, context)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        await self.refresh()
        condition = self._server_watchers[request.service]
        self._watcher_count_by_service[request.service] += 1
        last = None
        try:
            async with condition:
                while True:
                    status = self._server_status.get(request.service, UNKNOWN_SERVICE)
                    if status != last:
                        await context.write(health_pb2.HealthCheckResponse(status=status))
                        last = status
                    if self._gracefully_shutting_down:
                        return
                    await condition.wait()
        finally:
            self._watcher_count_by_service[request.service] -= 1
            if self._watcher_count_by_service[request.service] == 0:
                del self._server_watchers[request.service]
                del self._watcher_count_by_service[request.service]
