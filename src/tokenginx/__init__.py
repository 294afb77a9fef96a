"""TokenginX: an SSO session and token server speaking the Redis protocol."""

from tokenginx.version import __version__

__all__ = ["__version__", "Server", "Config"]


def __getattr__(name: str):  # lazy: importing the package must not start uvloop & co.
    if name == "Server":
        from tokenginx.server import Server

        return Server
    if name == "Config":
        from tokenginx.config import Config

        return Config
    raise AttributeError(name)
