"""The ASGI application of the HTTP door: REST API, events, metrics, OpenAPI and docs.

Routes come from :class:`~tokenginx.transport.http.endpoints.Endpoint` declarations
(one list for routing and for the OpenAPI document). Each endpoint is wrapped once
with what every request needs: error envelope, metrics, and never a bare 500 for bad
input.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from importlib import resources
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenginx.transport.http import (
    api_events,
    api_sessions,
    api_sso,
    api_system,
    app_routes,
    idp_routes,
)
from tokenginx.transport.http.calls import Door
from tokenginx.transport.http.endpoints import Endpoint
from tokenginx.transport.http.envelope import ApiError, error_response, json_response
from tokenginx.transport.http.fastpath import GZip, RequestEndpoint, dispatch_by_method
from tokenginx.transport.http.metrics import CONTENT_TYPE, Metrics
from tokenginx.transport.http.openapi import document

if TYPE_CHECKING:
    from tokenginx.server import Server

log = logging.getLogger("tokenginx.http")

# Echoed only when it is a sane token: visible ASCII, bounded (no header injection).
_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,200}")

# uuid4().hex, in half the time: random bits with the version (4) and variant set.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (4 << 76) | (0x8000 << 48)


def _new_request_id() -> bytes:
    return b"%032x" % (int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET)


class RequestIdMiddleware:
    """Echo ``X-Request-ID`` (or make one) on every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _REQUEST_ID.fullmatch(value):
                    rid = value
                break
        if not rid:
            rid = _new_request_id()
        scope["tokenginx.request_id"] = rid.decode()  # g.request_id of application routes

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid)]
            await send(message)

        await self.app(scope, receive, send_with_id)


def wrap(ep: Endpoint, metrics: Metrics) -> RequestEndpoint:
    """The endpoint's handler with the error envelope and request metrics around it, as
    an ASGI app (it answers every exception itself: see :class:`RequestEndpoint`)."""
    handler, method, route = ep.handler, ep.method, ep.path
    observe = metrics.observe_http
    clock = time.perf_counter

    async def endpoint(request: Request) -> Response:
        t0 = clock()
        try:
            response = await handler(request)
        except ApiError as e:
            response = error_response(e)
        except Exception:
            log.exception("%s %s failed", method, route)
            response = error_response(ApiError(500, "INTERNAL_ERROR", "Internal server error"))
        observe(method, route, response.status_code, clock() - t0)
        return response

    return RequestEndpoint(endpoint)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}
    code = codes.get(exc.status_code, "INVALID_REQUEST" if exc.status_code < 500 else "INTERNAL_ERROR")
    message = {404: "No such endpoint", 405: "Method not allowed"}.get(exc.status_code, str(exc.detail))
    headers = exc.headers
    if exc.status_code == 405:
        headers = {"Allow": ", ".join(_allowed_methods(request))}
    return error_response(ApiError(exc.status_code, code, message, headers=headers))


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the resource this path names, as the OpenAPI document lists them.

    ``/api/v1/sessions/batch/get`` also matches ``/api/v1/sessions/{key:path}`` (a key
    named ``batch/get``); the most literal template is the resource the path names.
    """
    by_path: dict[str, set[str]] = {}
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            by_path.setdefault(route.path, set()).update(route.methods)
    if not by_path:
        return []
    best = max(by_path, key=lambda path: len(_PATH_PARAM.sub("", path)))
    allowed = by_path[best]
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


_PATH_PARAM = re.compile(r"{[^}]*}")


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s: %r", request.method, request.url.path, exc)
    return error_response(ApiError(500, "INTERNAL_ERROR", "Internal server error"))


def build_endpoints(door: Door) -> list[Endpoint]:
    return [
        *api_sessions.build(door),
        *api_sso.build(door),
        *api_system.build(door),
        *api_events.build(door),
    ]


def build_app(server: Server) -> Starlette:
    door = Door(server)
    config = server.config
    metrics = Metrics(server.state)
    endpoints = build_endpoints(door)
    if server.idp is not None:
        endpoints += idp_routes.endpoints(server.idp, door)

    openapi_cache: dict[str, bytes] = {}

    async def openapi(request: Request) -> Response:
        if "doc" not in openapi_cache:
            from tokenginx.transport.http.envelope import dumps

            openapi_cache["doc"] = dumps(document(endpoints, server.state.auth_required()))
        return Response(openapi_cache["doc"], media_type="application/json")

    async def docs(request: Request) -> Response:
        page = resources.files("tokenginx.transport.http").joinpath("docs.html").read_text("utf-8")
        return HTMLResponse(page)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            door.client(request)
        except ApiError as e:
            return error_response(e)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    async def root(request: Request) -> Response:
        return json_response({"name": "tokenginx", "api": "/api/v1", "openapi": "/openapi.json",
                              "docs": "/docs" if config.http.docs else None})

    routes = [Route(ep.path, wrap(ep, metrics), methods=[ep.method]) for ep in _ordered(endpoints)]
    routes += [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/", root, methods=["GET"]),
    ]
    if config.http.docs:
        routes.append(Route("/docs", docs, methods=["GET"]))
    if server.idp is not None:
        routes += idp_routes.routes(server.idp, metrics)
    # Application routes (Route.register) last: they may not shadow any route above.
    routes += app_routes.mount(server, door, routes, endpoints, lambda ep: wrap(ep, metrics))

    middleware = [Middleware(RequestIdMiddleware)]
    if config.http.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=config.http.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
                allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
                expose_headers=["X-Request-ID"],
                max_age=600,
            )
        )
    middleware.append(Middleware(GZip, minimum_size=config.http.gzip_min_bytes))
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    dispatch_by_method(app.router)
    app.state.stopping = asyncio.Event()
    app.state.endpoints = endpoints
    app.state.metrics = metrics
    return app


def _ordered(endpoints: list[Endpoint]) -> list[Endpoint]:
    """HEAD routes first: Starlette answers HEAD with a GET route of the same path."""
    return sorted(endpoints, key=lambda ep: ep.method != "HEAD")
