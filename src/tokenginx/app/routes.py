"""Route registration: the application's HTTP routes and TCP commands.

A :class:`RouteRegistry` is a plain list of :class:`AppRoute` declarations; a
``Server`` reads its registry when it starts, so routes may be registered before or
after the ``Server`` is built. ``Route.register`` (the seed's module-level API) feeds
:data:`DEFAULT_REGISTRY`, which ``Server()`` uses unless given ``routes=``; tests and
embedded uses pass their own ``RouteRegistry()`` and stay isolated.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
PROTOCOLS = ("http", "tcp")

# A TCP command name: what a RESP client can send as its first argument.
_COMMAND = re.compile(r"[A-Za-z0-9_.:\-|]{1,64}")
# ``{name}`` or ``{name:convertor}`` (Starlette's convertors: str, path, int, float, uuid).
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::(str|path|int|float|uuid))?}")


class RouteError(ValueError):
    """A route declaration is invalid or conflicts with another route."""


@dataclass(frozen=True)
class AppRoute:
    """One registered route: an HTTP ``method`` + ``path`` or a TCP command ``path``."""

    path: str
    method: str
    protocol: str  # "http" | "tcp"
    handler: Callable[..., Any]
    auth: bool = False
    summary: str | None = None

    @property
    def name(self) -> str:
        """The TCP command name (upper-case), or the HTTP path."""
        return self.path.upper() if self.protocol == "tcp" else self.path


class RouteRegistry:
    """The routes of one application. Thread-safe; order of registration is kept."""

    def __init__(self) -> None:
        self._routes: list[AppRoute] = []
        self._lock = threading.Lock()

    def register(
        self,
        path: str,
        method: str = "GET",
        protocol: str = "http",
        *,
        auth: bool = False,
        summary: str | None = None,
    ) -> Callable[[F], F]:
        """Decorator registering ``handler(request)`` for ``path`` (HTTP) or a TCP command."""
        protocol = (protocol or "").lower()
        if protocol not in PROTOCOLS:
            raise RouteError(f"protocol must be 'http' or 'tcp', got {protocol!r}")
        method = (method or "GET").upper()
        if protocol == "http":
            if method not in HTTP_METHODS:
                raise RouteError(f"unsupported HTTP method {method!r} for {path!r}")
            validate_http_path(path)
        else:
            if not isinstance(path, str) or not _COMMAND.fullmatch(path):
                raise RouteError(f"invalid TCP command name {path!r}")

        def decorator(handler: F) -> F:
            if not callable(handler):
                raise RouteError(f"handler for {path!r} is not callable")
            route = AppRoute(path, method, protocol, handler, auth, summary)
            with self._lock:
                for other in self._routes:
                    if _same(other, route):
                        what = f"TCP command {path!r}" if protocol == "tcp" else f"{method} {path}"
                        raise RouteError(f"{what} is already registered (by {_qualname(other.handler)})")
                self._routes.append(route)
            return handler

        return decorator

    def add(self, route: AppRoute) -> None:
        """Register an already-built route (same checks as :meth:`register`)."""
        self.register(route.path, route.method, route.protocol, auth=route.auth, summary=route.summary)(
            route.handler
        )

    def remove(self, route: AppRoute) -> None:
        with self._lock:
            self._routes.remove(route)

    def routes(self) -> list[AppRoute]:
        with self._lock:
            return list(self._routes)

    def http_routes(self) -> list[AppRoute]:
        return [r for r in self.routes() if r.protocol == "http"]

    def tcp_routes(self) -> list[AppRoute]:
        return [r for r in self.routes() if r.protocol == "tcp"]

    def tcp_route(self, name: str) -> AppRoute | None:
        """The TCP command called ``name`` (case-insensitive), or None."""
        wanted = name.upper()
        for r in self.tcp_routes():
            if r.path.upper() == wanted:
                return r
        return None

    def __len__(self) -> int:
        return len(self._routes)


def _same(a: AppRoute, b: AppRoute) -> bool:
    if a.protocol != b.protocol:
        return False
    if a.protocol == "tcp":
        return a.path.upper() == b.path.upper()
    return a.method == b.method and starlette_path(a.path) == starlette_path(b.path)


def _qualname(func: Callable[..., Any]) -> str:
    return getattr(func, "__qualname__", repr(func))


WILDCARD = "wildcard"  # the path parameter holding what ``*`` matched


def validate_http_path(path: str) -> None:
    if not isinstance(path, str) or not path.startswith("/"):
        raise RouteError(f"an HTTP route path must start with '/', got {path!r}")
    if "*" in path[:-1] or (path.endswith("*") and not path.endswith("/*")):
        raise RouteError(f"'*' is only allowed as the last path segment ('/files/*'), got {path!r}")
    rest = _PARAM.sub("", path)
    if "{" in rest or "}" in rest:
        raise RouteError(f"malformed path parameter in {path!r} (use {{name}})")
    names = [m.group(1) for m in _PARAM.finditer(path)]
    if len(names) != len(set(names)) or (path.endswith("/*") and WILDCARD in names):
        raise RouteError(f"duplicate path parameter in {path!r}")


def starlette_path(path: str) -> str:
    """The seed's syntax in Starlette's: ``/files/*`` → ``/files/{wildcard:path}``."""
    if path.endswith("/*"):
        return path[:-1] + "{" + WILDCARD + ":path}"
    return path


DEFAULT_REGISTRY = RouteRegistry()


class Route:
    """The seed's module-level API: ``@Route.register(path, method, protocol)``."""

    @staticmethod
    def register(
        path: str, method: str = "GET", protocol: str = "http", **kw: Any
    ) -> Callable[[F], F]:
        return DEFAULT_REGISTRY.register(path, method, protocol, **kw)
