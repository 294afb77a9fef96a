"""The built-in identity provider: user accounts, OAuth clients, signing keys and the
browser session shared by the OAuth 2.0/OIDC server (``/oauth``) and the CAS server
(``/cas``). Everything it keeps lives in the keyspace (so it is persisted, replicated
by the Redis backend and visible to every door), written through :class:`GateCalls`.

The :class:`IdP` object is built once per :class:`~tokenginx.server.Server` (as
``server.idp``) when any of ``idp.enabled``, ``oauth.server.enabled`` or
``cas.server.enabled`` is set. Its parts (accounts, clients, signing keys, browser
sessions) are attributes each module's owner adds here, created on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenginx.idp.calls import GateCalls, StoreError

if TYPE_CHECKING:
    from tokenginx.config import Config
    from tokenginx.server import Server

__all__ = ["IdP", "GateCalls", "StoreError", "idp_enabled"]


def idp_enabled(config: Config) -> bool:
    return bool(config.idp.enabled or config.oauth.server.enabled or config.cas.server.enabled)


class IdP:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.calls = GateCalls(server)

    @property
    def issuer(self) -> str:
        """The public base URL, without a trailing slash."""
        if self.config.idp.issuer:
            return self.config.idp.issuer.rstrip("/")
        port = self.server.http_port
        host = self.config.server.http_addr.rsplit(":", 1)[0].strip("[]") or "127.0.0.1"
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"
