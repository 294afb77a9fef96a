"""The application's HTTP routes (``Route.register``) mounted beside ``/api/v1``.

Each request goes: built-in authentication (``auth=True`` routes only, the same check
as the REST API) → a fresh ``g`` → application middleware ``process_request`` → the
handler → ``process_response`` → the HTTP response; background tasks start once it has
been sent. Sync handlers (and their middleware) run in the server's handler threads
with the request's context copied in; async handlers are awaited on the loop. Errors
become the REST API's JSON envelope (500 logged), never a crash.

Application routes may not shadow built-in ones: a route the built-in router would
already answer for that method is refused when the app is built (server start).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Match, Route

from tokenginx.app.background import BackgroundTasks, is_async_callable
from tokenginx.app.context import begin
from tokenginx.app.middleware import MiddlewareManager
from tokenginx.app.request import FormFile, HTTPRequest
from tokenginx.app.responses import HTTPJSONResponse, StreamResponse
from tokenginx.app.routes import AppRoute, RouteError, starlette_path
from tokenginx.app.store import LoopCaller
from tokenginx.client import Client
from tokenginx.transport.http.calls import Door
from tokenginx.transport.http.endpoints import Endpoint
from tokenginx.transport.http.envelope import ApiError, invalid

if TYPE_CHECKING:
    from tokenginx.server import Server

REQUEST_ID_SCOPE_KEY = "tokenginx.request_id"  # set by RequestIdMiddleware

_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::(\w+))?}")
_SAMPLE = {"int": "1", "float": "1.5", "uuid": str(uuid.UUID(int=1)), "path": "x/y"}


def mount(
    server: Server,
    door: Door,
    builtin: list[BaseRoute],
    endpoints: list[Endpoint],
    wrap: Callable[[Endpoint], Any],
) -> list[Route]:
    """Starlette routes for the server's application HTTP routes; their OpenAPI
    descriptions are appended to ``endpoints``."""
    app_routes = sorted(server.routes.http_routes(), key=_precedence)
    for route in app_routes:
        refuse_shadowing(route, builtin)
    routes: list[Route] = []
    for route in app_routes:
        ep = Endpoint(
            method=route.method,
            path=starlette_path(route.path),
            handler=_handler(server, door, route),
            summary=route.summary or _summary(route),
            tag="application",
            operation_id=_operation_id(route),
            auth=route.auth,
            responses={200: ("Handler response", None)},
        )
        endpoints.append(ep)
        routes.append(Route(ep.path, wrap(ep), methods=[route.method]))
    return routes


def _precedence(route: AppRoute) -> tuple[bool, bool, int]:
    """Match order: HEAD routes first (a GET route also answers HEAD), then the more
    literal path (``/notes/clock`` before ``/notes/{id}``, any path before ``/files/*``);
    among equals, the first registered."""
    segments = route.path.strip("/").split("/")
    literal = sum(1 for seg in segments if seg != "*" and not _PARAM.search(seg))
    return route.method != "HEAD", route.path.endswith("/*"), -literal


def refuse_shadowing(route: AppRoute, builtin: list[BaseRoute]) -> None:
    """Raise :class:`RouteError` if a built-in route would answer ``route``'s requests."""
    path = starlette_path(route.path)
    sample = _PARAM.sub(lambda m: _SAMPLE.get(m.group(2) or "", "x"), path)
    scope = {"type": "http", "path": sample, "root_path": "", "method": route.method,
             "headers": [], "query_string": b""}
    for other in builtin:
        match, _ = other.matches(scope)
        if match == Match.FULL:
            raise RouteError(
                f"application route {route.method} {route.path} would shadow the built-in "
                f"route {route.method} {getattr(other, 'path', other)!s}; choose another path"
            )


def _summary(route: AppRoute) -> str:
    doc = inspect.getdoc(route.handler)
    return doc.splitlines()[0] if doc else f"{route.method} {route.path} (application route)"


def _operation_id(route: AppRoute) -> str:
    return "app_" + route.method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", route.path).rstrip("_")


def _handler(server: Server, door: Door, route: AppRoute) -> Callable[[Request], Any]:
    handler = route.handler
    is_async = is_async_callable(handler)
    manager = server.middleware_manager

    async def endpoint(request: Request) -> Response:
        principal = door.client(request) if route.auth else None  # 401 before anything else
        rid = request.scope.get(REQUEST_ID_SCOPE_KEY) or uuid.uuid4().hex
        # This request's own asyncio task owns this context: the fresh g is visible to
        # its middleware, handler and response (streamed bodies included) and no other.
        begin(request_id=rid)
        body = await door.raw_body(request)
        bg = BackgroundTasks(server.background, rid)
        req = HTTPRequest(
            method=request.method,
            path=request.url.path,
            path_params=dict(request.path_params),
            query_params=dict(request.query_params),
            query_string=request.url.query,
            headers=request.headers,
            body=body,
            client_address=_client(request),
            bg=bg,
            request_id=rid,
            form=await _multipart(request, body),
            principal=principal,
            caller=LoopCaller(asyncio.get_running_loop(), _gate_call(door, request, principal)),
        )
        if is_async:
            response = to_response(await _run_async(manager, req, handler))
        else:  # the chain and the serialisation of its result, in a handler thread
            response = await server.handler_pool.run(
                contextvars.copy_context(), _run_sync, manager, req, handler
            )
        if len(bg):
            _after(response, bg)
        return response

    return endpoint


def _gate_call(door: Door, request: Request, principal: Client | None) -> Callable[[list[bytes]], Any]:
    """Gate calls as the request's authenticated client on ``auth=True`` routes; on open
    routes as the application itself (trusted like the built-in identity provider: the
    application decides what an anonymous caller may do), built on first use."""
    client = principal

    def call(argv: list[bytes]) -> Any:
        nonlocal client
        if client is None:
            host, port = _client(request)
            client = Client(door.state, kind="app", addr=f"{host}:{port}")
            client.authenticated = True
        return door.call(client, *argv)

    return call


def _run_sync(manager: MiddlewareManager, req: HTTPRequest, handler: Callable[..., Any]) -> Response:
    result = manager.run_request(req, "http")
    if result is None:
        result = handler(req)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            loop = manager.loop
            if loop is None:
                raise RuntimeError("an async handler needs the server's event loop")
            result = asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
    return to_response(manager.run_response(req, result, "http"))


async def _awaited(value: Any) -> Any:
    return await value


async def _run_async(manager: MiddlewareManager, req: HTTPRequest, handler: Callable[..., Any]) -> Any:
    result = await manager.arun_request(req, "http")
    if result is None:
        result = await handler(req)
    return await manager.arun_response(req, result, "http")


def _client(request: Request) -> tuple[str, int]:
    peer = request.scope.get("client")
    return (peer[0], peer[1]) if peer else ("", 0)


async def _multipart(request: Request, body: bytes) -> dict[str, Any] | None:
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return None
    request._body = body  # the stream is consumed: let Starlette's parser read this copy
    try:
        form = await request.form()
    except Exception as e:  # MultiPartException and malformed bodies
        raise invalid("body", f"invalid multipart form: {e}") from None
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            fields[name] = FormFile(value.filename or "", value.content_type or "", await value.read())
        else:
            fields[name] = value
    await form.close()
    return fields


def _after(response: Response, bg: BackgroundTasks) -> None:
    """Start ``bg`` once the response has been sent (Starlette's background semantics)."""
    previous = response.background

    async def start() -> None:
        if previous is not None:
            await previous()
        bg.schedule()

    response.background = BackgroundTask(start)


def to_response(result: Any) -> Response:
    """What a handler (or middleware) returned, as an HTTP response."""
    if isinstance(result, Response):
        return result
    if isinstance(result, tuple):
        if len(result) not in (2, 3) or not isinstance(result[1], int) or isinstance(result[1], bool):
            raise TypeError("a tuple response must be (body, status) or (body, status, headers)")
        response = to_response(result[0])
        if not 100 <= result[1] <= 599:
            raise ValueError(f"invalid HTTP status {result[1]!r}")
        response.status_code = result[1]
        if len(result) == 3:
            for name, value in (result[2] or {}).items():
                response.headers[name] = str(value)
        if result[1] in (204, 304) or result[1] < 200:
            response.body = b""
            del response.headers["content-length"]
        return response
    if isinstance(result, HTTPJSONResponse):
        return Response(result.render(), result.status, result.headers, "application/json")
    if isinstance(result, StreamResponse):
        return StreamingResponse(result.content, result.status, result.headers, result.content_type)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return Response(result, 200, None, "text/plain; charset=utf-8")
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), 200, None, "application/octet-stream")
    try:
        body = orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS)
    except TypeError as e:
        raise TypeError(f"handler returned a value that is not JSON-serialisable: {e}") from None
    return Response(body, 200, None, "application/json")


__all__ = ["ApiError", "mount", "refuse_shadowing", "to_response"]
