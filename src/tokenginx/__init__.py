"""TokenginX: an SSO session and token server speaking the Redis protocol."""

from tokenginx.version import __version__

__all__ = [
    "__version__",
    "Server",
    "Config",
    # the application API (tokenginx.app; docs/extending.md)
    "Route",
    "RouteRegistry",
    "Middleware",
    "g",
    "StreamResponse",
    "HTTPJSONResponse",
    "Logger",
    "HTTPRequest",
    "TCPRequest",
]

_APP_NAMES = {"Route", "RouteRegistry", "Middleware", "g", "StreamResponse", "HTTPJSONResponse",
              "Logger", "HTTPRequest", "TCPRequest"}


def __getattr__(name: str):  # lazy: importing the package must not start uvloop & co.
    if name == "Server":
        from tokenginx.server import Server

        return Server
    if name == "Config":
        from tokenginx.config import Config

        return Config
    if name in _APP_NAMES:
        import tokenginx.app

        return getattr(tokenginx.app, name)
    raise AttributeError(name)
