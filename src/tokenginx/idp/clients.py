"""OAuth 2.0 clients of the built-in authorization server.

Two sources, one view: clients declared in the config file (``oauth.server.clients``,
read once at start) and clients created at run time through the admin API or CLI,
kept in the keyspace hash ``idp:oauth:clients`` (field = client_id, value = JSON), so
they are persisted and shared by every node of a Redis backend. A config client
cannot be overwritten or deleted at run time; edit the file instead.

Secrets are never stored or returned: only their SHA-256 digest is kept. The server
generates run-time secrets (32 random bytes), and a slow password hash adds nothing
against guessing 256 random bits, so the digest is the right trade: one cheap,
constant-time check per token request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from tokenginx.idp.calls import GateCalls

CLIENTS_KEY = "idp:oauth:clients"

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
SIGNING_ALGS = ("RS256", "ES256")
DEFAULT_SCOPES = ("openid", "profile", "email", "phone")
# OpenID Connect scopes: they describe a user, so client_credentials never grants them.
USER_SCOPES = frozenset(("openid", "profile", "email", "phone", "address", "offline_access"))

# The rules, as patterns the admin API's OpenAPI schema repeats (so it cannot drift).
# White space and control characters, spelled out: Python's and ECMAScript's ``\s`` differ.
_WS = "\\x00-\\x20\\x7f-\\x9f\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
CLIENT_ID_PATTERN = f"^[^:{_WS}]{{1,256}}$"
# RFC 6749 §3.1.2: an absolute URI without fragment. Any scheme: native apps use
# private ones (RFC 8252 §7.1); http is for loopback and development.
REDIRECT_URI_PATTERN = f"^[A-Za-z][A-Za-z0-9+.\\-]*:[^#{_WS}]+$"
BACKCHANNEL_URI_PATTERN = f"^https?://[^/#{_WS}]+[^#{_WS}]*$"
SCOPE_PATTERN = r"^[\x21\x23-\x5b\x5d-\x7e]+$"  # RFC 6749 §3.3 scope-token
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
_REDIRECT_URI = re.compile(REDIRECT_URI_PATTERN)
_BACKCHANNEL_URI = re.compile(BACKCHANNEL_URI_PATTERN)
_SCOPE = re.compile(SCOPE_PATTERN)

_DUMMY = hashlib.sha256(b"tokenginx: no such client").hexdigest()


class ClientError(ValueError):
    """A client definition that cannot be accepted; names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    token_endpoint_auth_method: str  # client_secret_basic | client_secret_post | none
    backchannel_logout_uri: str | None = None
    # Where RP-initiated logout may send the browser back to (exact match); empty =
    # the redirect URIs.
    post_logout_redirect_uris: tuple[str, ...] = ()
    id_token_signed_response_alg: str = "RS256"
    # A resource server may introspect tokens issued to any client (RFC 7662 §2.1).
    resource_server: bool = False
    source: str = "api"  # "config" or "api"
    created_at: int = 0
    secret_sha256: str = field(default="", repr=False)

    @property
    def public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def check_secret(self, secret: str) -> bool:
        """Constant-time comparison with the stored digest."""
        if self.public or not self.secret_sha256:
            return False
        return hmac.compare_digest(hash_secret(secret), self.secret_sha256)

    def redirect_uri_allowed(self, uri: str) -> bool:
        """Exact string match, query included (contract §5.10, RFC 6749 §3.1.2.3)."""
        return uri in self.redirect_uris

    def post_logout_redirect_allowed(self, uri: str) -> bool:
        """OIDC RP-Initiated Logout §3: only a registered address, matched exactly."""
        return uri in (self.post_logout_redirect_uris or self.redirect_uris)

    def allows_grant(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def allows_scopes(self, scope: str | Iterable[str]) -> bool:
        wanted = scope.split() if isinstance(scope, str) else scope
        return set(wanted) <= set(self.scopes)

    def as_json(self) -> dict[str, Any]:
        """The public view (no secret, no digest)."""
        return {
            "client_id": self.client_id,
            "name": self.name,
            "public": self.public,
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "scopes": list(self.scopes),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "backchannel_logout_uri": self.backchannel_logout_uri,
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "id_token_signed_response_alg": self.id_token_signed_response_alg,
            "resource_server": self.resource_server,
            "source": self.source,
            "created_at": self.created_at or None,
        }

    def record(self) -> dict[str, Any]:
        """What is stored in the keyspace (the digest, never the secret)."""
        out = self.as_json()
        del out["public"], out["source"]
        out["secret_sha256"] = self.secret_sha256
        return out


def check_secret_for_unknown(secret: str) -> None:
    """Spend the time a real check takes, so unknown ids do not answer faster."""
    hmac.compare_digest(hash_secret(secret), _DUMMY)


# -- validation ------------------------------------------------------------------------
def _str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ClientError(name, "must be a list of non-empty strings")
    return list(dict.fromkeys(value))  # order kept, duplicates dropped


def _redirect_uri(uri: str) -> str:
    if not _REDIRECT_URI.fullmatch(uri):
        raise ClientError("redirect_uris", f"{uri!r} must be an absolute URI without fragment or white space")
    return uri


def build(data: Mapping[str, Any], *, source: str, secret_sha256: str = "",
          created_at: int = 0) -> OAuthClient:
    """An :class:`OAuthClient` from a config mapping, an admin request or a stored
    record, with every field checked."""
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise ClientError("client_id", "must be 1 to 256 characters without white space, control "
                          "characters or ':'")
    name = data.get("name") or client_id
    if not isinstance(name, str):
        raise ClientError("name", "must be a string")

    secret_given = bool(data.get("client_secret")) or bool(secret_sha256)
    method = data.get("token_endpoint_auth_method") or (
        "client_secret_basic" if secret_given else "none"
    )
    if method not in AUTH_METHODS:
        raise ClientError("token_endpoint_auth_method", "must be one of " + ", ".join(AUTH_METHODS))

    grants = _str_list(data.get("grant_types"), "grant_types") or (
        ["authorization_code", "refresh_token"] if method == "none"
        else ["authorization_code", "refresh_token", "client_credentials"]
    )
    for g in grants:
        if g not in GRANT_TYPES:
            raise ClientError("grant_types", f"{g!r} is not supported (supported: {', '.join(GRANT_TYPES)})")
    if method == "none" and "client_credentials" in grants:
        raise ClientError("grant_types", "a public client cannot use client_credentials")

    uris = [_redirect_uri(u) for u in _str_list(data.get("redirect_uris"), "redirect_uris")]
    if "authorization_code" in grants and not uris:
        raise ClientError("redirect_uris", "the authorization_code grant needs at least one redirect URI")

    scopes = _str_list(data.get("scopes", data.get("scope")), "scopes") or list(DEFAULT_SCOPES)
    for scope in scopes:
        if not _SCOPE.fullmatch(scope):
            raise ClientError("scopes", f"{scope!r} is not a valid scope token (RFC 6749 §3.3)")

    post_logout = [_redirect_uri(u) for u in _str_list(data.get("post_logout_redirect_uris"),
                                                        "post_logout_redirect_uris")]
    backchannel = data.get("backchannel_logout_uri") or None
    if backchannel is not None:
        if not isinstance(backchannel, str):
            raise ClientError("backchannel_logout_uri", "must be a string")
        if not _BACKCHANNEL_URI.fullmatch(backchannel):
            raise ClientError("backchannel_logout_uri", "must be an absolute http(s) URI without fragment")

    alg = data.get("id_token_signed_response_alg") or "RS256"
    if alg not in SIGNING_ALGS:
        raise ClientError("id_token_signed_response_alg", "must be one of " + ", ".join(SIGNING_ALGS))
    resource_server = data.get("resource_server", False)
    if not isinstance(resource_server, bool):
        raise ClientError("resource_server", "must be a boolean")

    if method == "none":
        if data.get("client_secret"):
            raise ClientError("client_secret", "a public client (token_endpoint_auth_method none) has no secret")
        secret_sha256 = ""
    elif not secret_sha256:
        secret = data.get("client_secret")
        if not isinstance(secret, str) or not secret:
            raise ClientError("client_secret", "a confidential client needs a secret")
        secret_sha256 = hash_secret(secret)
    return OAuthClient(
        client_id=client_id,
        name=name,
        redirect_uris=tuple(uris),
        grant_types=tuple(grants),
        scopes=tuple(scopes),
        token_endpoint_auth_method=method,
        backchannel_logout_uri=backchannel,
        post_logout_redirect_uris=tuple(post_logout),
        id_token_signed_response_alg=alg,
        resource_server=resource_server,
        source=source,
        created_at=created_at,
        secret_sha256=secret_sha256,
    )


class Clients:
    """``idp.clients``: lookup, creation and deletion of OAuth clients."""

    def __init__(self, calls: GateCalls, configured: Iterable[Mapping[str, Any]] = ()) -> None:
        self._calls = calls
        self._config = self.check(configured)

    @staticmethod
    def check(configured: Iterable[Mapping[str, Any]]) -> dict[str, OAuthClient]:
        """The ``oauth.server.clients`` entries by id; a bad one raises
        :class:`ClientError` naming its position (``oauth.server.clients[1].grant_types``)."""
        out: dict[str, OAuthClient] = {}
        for i, data in enumerate(configured):
            try:
                c = build(data, source="config")
            except ClientError as e:
                raise ClientError(f"oauth.server.clients[{i}].{e.field}", e.reason) from None
            if c.client_id in out:
                raise ClientError(f"oauth.server.clients[{i}].client_id", f"{c.client_id!r} is declared twice")
            out[c.client_id] = c
        return out

    def get(self, client_id: str) -> OAuthClient | None:
        if not client_id:
            return None
        c = self._config.get(client_id)
        if c is not None:
            return c
        raw = self._calls("HGET", CLIENTS_KEY, client_id)
        return None if raw is None else self._load(raw)

    def all(self) -> list[OAuthClient]:
        out = dict(self._config)
        reply = self._calls("HGETALL", CLIENTS_KEY) or []
        pairs = reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2])
        for name, raw in pairs:
            cid = name.decode() if isinstance(name, bytes) else str(name)
            if cid not in out:
                c = self._load(raw)
                if c is not None:
                    out[cid] = c
        return sorted(out.values(), key=lambda c: c.client_id)

    def create(self, data: Mapping[str, Any]) -> tuple[OAuthClient, str | None]:
        """Register a client; returns it and its secret (``None`` for a public client),
        which is shown this once and never again. A secret in ``data`` is ignored:
        run-time secrets are always generated."""
        data = {k: v for k, v in data.items() if k != "client_secret"}
        if "client_id" not in data:
            data["client_id"] = secrets.token_urlsafe(16)
        method = data.get("token_endpoint_auth_method") or "client_secret_basic"
        data["token_endpoint_auth_method"] = method
        secret = None if method == "none" else secrets.token_urlsafe(32)
        if secret is not None:
            data["client_secret"] = secret
        client = build(data, source="api", created_at=int(time.time()))
        if client.client_id in self._config:
            raise ClientExists(client.client_id)
        stored = orjson.dumps(client.record())
        if not self._calls("HSETNX", CLIENTS_KEY, client.client_id, stored):
            raise ClientExists(client.client_id)
        return client, secret

    def delete(self, client_id: str) -> bool:
        """Remove a run-time client; config clients are refused with :class:`ClientError`."""
        if client_id in self._config:
            raise ClientError("client_id", "declared in the config file (oauth.server.clients); remove it there")
        return bool(self._calls("HDEL", CLIENTS_KEY, client_id))

    def authenticate(self, client_id: str, secret: str | None) -> OAuthClient | None:
        """The client when ``secret`` is right (or absent for a public client); the same
        amount of hashing whether the id is known or not."""
        client = self.get(client_id)
        if client is None:
            if secret is not None:
                check_secret_for_unknown(secret)
            return None
        if client.public:
            return client if secret is None else None
        if secret is None:
            return None
        return client if client.check_secret(secret) else None

    @staticmethod
    def _load(raw: bytes) -> OAuthClient | None:
        try:
            data = orjson.loads(raw)
            return build(data, source="api", secret_sha256=str(data.get("secret_sha256") or ""),
                         created_at=int(data.get("created_at") or 0))
        except (orjson.JSONDecodeError, ClientError, TypeError, ValueError, AttributeError):
            return None  # a record damaged by hand is not a client


class ClientExists(ClientError):
    def __init__(self, client_id: str) -> None:
        super().__init__("client_id", f"{client_id!r} already exists")
