"""Placeholder app while the REST API is being written."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

if TYPE_CHECKING:
    from tokenginx.server import Server


def build_app(server: Server) -> Starlette:
    async def health(request):  # type: ignore[no-untyped-def]
        return JSONResponse({"status": "healthy"})

    app = Starlette(routes=[Route("/health", health)])
    app.state.stopping = asyncio.Event()
    return app
