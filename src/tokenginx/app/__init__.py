"""The application API (the PyLiteFlux programming model) on the TokenginX server.

``Route.register`` adds HTTP routes and TCP commands, ``Middleware`` wraps them, ``g``
is the request-scoped namespace, ``request.bg`` schedules background tasks, and
``HTTPJSONResponse`` / ``StreamResponse`` shape HTTP answers. See docs/extending.md.
"""

from tokenginx.app.background import BackgroundPool, BackgroundTasks, HandlerPool
from tokenginx.app.context import g
from tokenginx.app.logger import Logger
from tokenginx.app.middleware import Middleware, MiddlewareManager
from tokenginx.app.request import FormFile, HTTPRequest
from tokenginx.app.responses import HTTPJSONResponse, StreamResponse
from tokenginx.app.routes import DEFAULT_REGISTRY, AppRoute, Route, RouteError, RouteRegistry

__all__ = [
    "AppRoute",
    "BackgroundPool",
    "BackgroundTasks",
    "DEFAULT_REGISTRY",
    "FormFile",
    "HTTPJSONResponse",
    "HTTPRequest",
    "HandlerPool",
    "Logger",
    "Middleware",
    "MiddlewareManager",
    "Route",
    "RouteError",
    "RouteRegistry",
    "StreamResponse",
    "TCPRequest",
    "g",
]


def __getattr__(name: str):  # the TCP half imports the RESP transport: load it on use
    if name == "TCPRequest":
        from tokenginx.app.tcp import TCPRequest

        return TCPRequest
    raise AttributeError(name)
