"""Commands the identity provider runs for itself.

The built-in OAuth/OIDC and CAS servers are applications of the store: they keep
users, clients, keys, browser sessions and tokens in the keyspace by running
commands through the gate with their own internal client, exactly as an external
application would through a Redis client. Statistics, persistence, keyspace events,
MONITOR and the SSO index therefore see them like any other caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tokenginx.client import Client
from tokenginx.errors import CommandError

if TYPE_CHECKING:
    from tokenginx.server import Server


class StoreError(RuntimeError):
    """A command the identity provider ran was refused (``-OOM``, ``-LOADING``…)."""

    def __init__(self, error: CommandError) -> None:
        super().__init__(str(error))
        self.error = error


def _arg(value: str | bytes | int) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, int):
        return b"%d" % value
    return value.encode("utf-8")


class GateCalls:
    """``calls("HSET", key, field, value)`` → the command's reply, or :class:`StoreError`."""

    def __init__(self, server: Server) -> None:
        self._gate = server.gate
        self._client = Client(server.state, kind="idp", addr="internal")
        # The provider is part of the server: it is trusted like the server itself,
        # and its own endpoints authenticate their callers (users, OAuth clients).
        self._client.authenticated = True

    def __call__(self, *argv: str | bytes | int) -> Any:
        reply = self._gate.execute(self._client, [_arg(a) for a in argv])
        if isinstance(reply, CommandError):
            raise StoreError(reply)
        return reply
