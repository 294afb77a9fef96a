"""Application middleware: ``process_request`` before the handler, ``process_response``
after it.

Middleware runs *after* the built-in gate: an ``auth=True`` route has already been
authenticated when the first ``process_request`` is called, so application middleware
can never let an unauthenticated request through.

Order: ``process_request`` in the order the middleware was added; the first one
returning something other than ``None`` short-circuits (that value becomes the
response, the handler is not called). ``process_response`` then runs in reverse order
for every middleware whose ``process_request`` ran, and may replace the response.
The ``response`` it sees is what the handler returned (a dict, a tuple, an
``HTTPJSONResponse``…), before it is turned into bytes.

Methods may be plain functions or ``async def``. For a sync HTTP handler the whole
chain runs in a worker thread (blocking middleware is fine there); for an async handler
it runs on the event loop, so sync middleware must be quick there.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

PROTOCOLS = ("http", "tcp", "both")
_RAN = "_tokenginx_middleware_ran"


class Middleware:
    """Base class: override either method; the defaults do nothing."""

    def process_request(self, request: Any) -> Any:
        return None

    def process_response(self, request: Any, response: Any) -> Any:
        return response


class MiddlewareManager:
    """The middleware of one server, per protocol."""

    def __init__(self) -> None:
        self._entries: list[tuple[Middleware, str]] = []
        self._lock = threading.Lock()
        # The server's event loop, for async middleware called from a worker thread.
        self.loop: asyncio.AbstractEventLoop | None = None

    def add_middleware(self, middleware: Any, protocol: str = "http") -> Any:
        """Add ``middleware`` for ``"http"``, ``"tcp"`` or ``"both"``; returns it."""
        protocol = (protocol or "").lower()
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if not (hasattr(middleware, "process_request") or hasattr(middleware, "process_response")):
            raise TypeError(f"{middleware!r} has neither process_request nor process_response")
        with self._lock:
            self._entries.append((middleware, protocol))
        return middleware

    def remove_middleware(self, middleware: Any) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e[0] is not middleware]

    def middleware(self, protocol: str) -> list[Any]:
        """The middleware that applies to ``protocol`` (``"http"`` or ``"tcp"``), in order."""
        with self._lock:
            return [mw for mw, p in self._entries if p == protocol or p == "both"]

    def __len__(self) -> int:
        return len(self._entries)

    # -- sync (worker threads, the TCP door) ----------------------------------------
    def run_request(self, request: Any, protocol: str) -> Any:
        """Run ``process_request``; a non-None result is the short-circuit response."""
        chain = self.middleware(protocol)
        for i, mw in enumerate(chain):
            _mark(request, i + 1)
            method = getattr(mw, "process_request", None)
            if method is None:
                continue
            result = self._resolve(method(request))
            if result is not None:
                return result
        return None

    def run_response(self, request: Any, response: Any, protocol: str) -> Any:
        """Run ``process_response`` in reverse for the middleware that saw the request."""
        chain = self.middleware(protocol)
        for mw in reversed(chain[: _ran(request, len(chain))]):
            method = getattr(mw, "process_response", None)
            if method is not None:
                response = self._resolve(method(request, response))
        return response

    def _resolve(self, value: Any) -> Any:
        if not inspect.isawaitable(value):
            return value
        loop = self.loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is not None or loop is None or loop.is_closed():
            if inspect.iscoroutine(value):
                value.close()
            raise TypeError("async middleware on the event loop: use arun_request/arun_response")
        return asyncio.run_coroutine_threadsafe(_await(value), loop).result()

    # -- async (on the event loop) --------------------------------------------------
    async def arun_request(self, request: Any, protocol: str) -> Any:
        chain = self.middleware(protocol)
        for i, mw in enumerate(chain):
            _mark(request, i + 1)
            method = getattr(mw, "process_request", None)
            if method is None:
                continue
            result = method(request)
            if inspect.isawaitable(result):
                result = await result
            if result is not None:
                return result
        return None

    async def arun_response(self, request: Any, response: Any, protocol: str) -> Any:
        chain = self.middleware(protocol)
        for mw in reversed(chain[: _ran(request, len(chain))]):
            method = getattr(mw, "process_response", None)
            if method is None:
                continue
            response = method(request, response)
            if inspect.isawaitable(response):
                response = await response
        return response


async def _await(value: Any) -> Any:
    return await value


def _mark(request: Any, count: int) -> None:
    try:
        setattr(request, _RAN, count)
    except AttributeError:  # a request type with __slots__: every middleware counts as run
        pass


def _ran(request: Any, default: int) -> int:
    return getattr(request, _RAN, default)
