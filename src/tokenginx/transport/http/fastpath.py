"""Cheaper equivalents of two pieces of Starlette that every request used to pay for.

Both keep Starlette's behaviour exactly; they only skip work that cannot change the
answer (see ``benchmarks/http_throughput.py`` for what they are worth).

- :class:`GZip` wraps Starlette's ``GZipMiddleware``: requests that accept gzip go
  through it unchanged; the others skip its per-request set-up (a ``Headers`` object,
  a responder that re-normalises the excluded content types) unless the response is
  large or streamed, which is the only case where its identity responder adds
  ``Vary: Accept-Encoding``.
- :func:`dispatch_by_method` makes the router try only the routes that serve the
  request's method instead of every route in turn.
- :class:`RequestEndpoint` is ``request_response`` for handlers that answer every
  exception themselves, without the per-request exception-handler wrapper.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

try:  # Starlette >= 0.46: non-gzip responses go through an identity responder (Vary)
    from starlette.middleware.gzip import IdentityResponder
except ImportError:  # pragma: no cover - older Starlette passed them straight through
    IdentityResponder = None  # type: ignore[assignment,misc]


class GZip:
    """``GZipMiddleware(app, minimum_size)``, minus its cost when gzip is not accepted."""

    def __init__(self, app: ASGIApp, minimum_size: int = 500) -> None:
        self.app = app
        self.minimum_size = minimum_size
        self.gzip = GZipMiddleware(app, minimum_size=minimum_size)
        self._identity_kwargs: dict[str, Any] = {}
        if hasattr(self.gzip, "exclude_content_types"):
            self._identity_kwargs["exclude_content_types"] = self.gzip.exclude_content_types

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"accept-encoding":  # the first one, as Headers.get reads it
                if b"gzip" in value:
                    await self.gzip(scope, receive, send)
                    return
                break
        if IdentityResponder is None:  # pragma: no cover
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Identity(self, send).send)


class _Identity:
    """What Starlette's identity responder sends, built only when it can differ.

    It holds the response start until the first body message and adds ``Vary`` unless
    that body is complete and smaller than ``minimum_size``. A response whose
    ``Content-Length`` is below the minimum and whose body comes in one message goes
    out unchanged here; anything else is replayed into a real ``IdentityResponder``.
    """

    __slots__ = ("gzip", "downstream", "start", "responder")

    def __init__(self, gzip: GZip, send: Send) -> None:
        self.gzip = gzip
        self.downstream = send
        self.start: Message | None = None
        self.responder: Any = None

    async def send(self, message: Message) -> None:
        responder = self.responder
        if responder is not None:
            await responder.send_with_compression(message)
            return
        start = self.start
        kind = message["type"]
        if start is None:
            if kind == "http.response.start" and self._small(message):
                self.start = message
                return
        elif (
            kind == "http.response.body"
            and not message.get("more_body", False)
            and len(message.get("body", b"")) < self.gzip.minimum_size
        ):
            self.start = None
            self.responder = _Passthrough(self.downstream)
            await self.downstream(start)
            await self.downstream(message)
            return
        gzip = self.gzip
        responder = IdentityResponder(gzip.app, gzip.minimum_size, **gzip._identity_kwargs)
        responder.send = self.downstream
        self.responder = responder
        if start is not None:
            self.start = None
            await responder.send_with_compression(start)
        await responder.send_with_compression(message)

    def _small(self, message: Message) -> bool:
        for name, value in message.get("headers", ()):
            if name.lower() == b"content-length":
                return value.isdigit() and int(value) < self.gzip.minimum_size
        return False


class _Passthrough:
    """After a complete small body: anything further goes out as it is (as it would)."""

    __slots__ = ("send",)

    def __init__(self, send: Send) -> None:
        self.send = send

    async def send_with_compression(self, message: Message) -> None:
        await self.send(message)


def dispatch_by_method(router: Router) -> None:
    """Make ``router`` try only the routes that serve the request's method.

    Starlette tries each route in order and takes the first that matches both path and
    method. That is the first path match among the routes accepting the method (or
    accepting every method), so trying only those, in the same order, picks the same
    route. When none matches fully (404, 405, a slash redirect) Starlette's own loop
    runs as before. Routes added to the router later are not seen: call this last.
    """
    if getattr(router, "middleware_stack", None) != router.app:
        return  # the router has middleware of its own (or an unknown Starlette): leave it
    routes = list(router.routes)
    methods: set[str] = set()
    for route in routes:
        methods |= getattr(route, "methods", None) or set()
    by_method: dict[str, list[BaseRoute]] = {
        method: [r for r in routes if not getattr(r, "methods", None) or method in r.methods]  # type: ignore[attr-defined]
        for method in methods
    }
    full_scan = router.app
    full = Match.FULL

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            candidates = by_method.get(scope["method"])
            if candidates is not None:
                for route in candidates:
                    match, child_scope = route.matches(scope)
                    if match is full:
                        if "router" not in scope:
                            scope["router"] = router
                        scope["route"] = route
                        scope.update(child_scope)
                        await route.handle(scope, receive, send)
                        return
        await full_scan(scope, receive, send)

    router.middleware_stack = app


class RequestEndpoint:
    """An ASGI app running ``handler(request) -> response``, as a Route of a function does.

    Starlette's ``request_response`` also wraps every call in its exception-handler
    machinery (a closure per request and a wrapper around every ``send``) so that
    exceptions the handler lets out reach the registered handlers. The handlers given
    here turn every ``Exception`` into a response themselves; anything else that
    escapes (from sending the response, say) still reaches the same handlers through
    the application's ``ExceptionMiddleware`` and ``ServerErrorMiddleware``.
    """

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[Request], Awaitable[Response]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.handler(Request(scope, receive, send))
        await response(scope, receive, send)
