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

from functools import cached_property
from typing import TYPE_CHECKING

from tokenginx.idp.calls import GateCalls, StoreError

if TYPE_CHECKING:
    from tokenginx.config import Config
    from tokenginx.idp.accounts import Accounts
    from tokenginx.idp.browser import BrowserSessions
    from tokenginx.idp.clients import Clients
    from tokenginx.idp.keys import SigningKeys
    from tokenginx.idp.logout import Logout
    from tokenginx.idp.tokens import Tokens
    from tokenginx.server import Server

__all__ = ["IdP", "GateCalls", "StoreError", "idp_enabled"]


def idp_enabled(config: Config) -> bool:
    return bool(config.idp.enabled or config.oauth.server.enabled or config.cas.server.enabled)


class IdP:
    def __init__(self, server: Server) -> None:
        self.server = server
        self.config = server.config
        self.calls = GateCalls(server)

    @cached_property
    def accounts(self) -> Accounts:
        """User accounts and password login (:mod:`tokenginx.idp.accounts`)."""
        from tokenginx.idp.accounts import Accounts

        return Accounts(self)

    @cached_property
    def sessions(self) -> BrowserSessions:
        """The browser SSO session (cookie, store, CSRF)."""
        from tokenginx.idp.browser import BrowserSessions

        return BrowserSessions(self)

    @cached_property
    def logout(self) -> Logout:
        """Ending browser sessions (token revocation, back-channel logout, hooks)."""
        from tokenginx.idp.logout import Logout

        return Logout(self)

    @cached_property
    def clients(self) -> Clients:
        """OAuth clients: config-declared and run-time (:mod:`tokenginx.idp.clients`)."""
        from tokenginx.idp.clients import Clients

        return Clients(self.calls, self.config.oauth.server.clients)

    @cached_property
    def keys(self) -> SigningKeys:
        """ID-token signing keys and the JWKS (:mod:`tokenginx.idp.keys`)."""
        from tokenginx.idp.keys import SigningKeys
        from tokenginx.idp.tokens import lifetimes

        life = lifetimes(self.config)
        return SigningKeys(self.calls, rotation_seconds=self.config.oauth.server.key_rotation_seconds,
                           retention=lambda: max(life.access, life.id_token))

    @cached_property
    def tokens(self) -> Tokens:
        """Issuing, rotating and revoking OAuth tokens (:mod:`tokenginx.idp.tokens`)."""
        from tokenginx.idp.tokens import Tokens

        return Tokens(self)

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
