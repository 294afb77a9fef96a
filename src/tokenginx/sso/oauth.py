"""OAuth 2.0 tokens: storage, introspection (RFC 7662), revocation (RFC 7009).

Access tokens live at ``oauth:access_token:{id}`` (``oauth:token:{id}`` for Variant A's
``OAUTH.SET``), refresh tokens at ``oauth:refresh_token:{id}``. A refresh token keeps
the ids of the access tokens issued from it (``access_tokens``) and each of those
points back (``refresh_token``), so revoking the refresh token takes them down; a link
is only followed when both ends agree, so a re-used id is never revoked by mistake.

Lookups are tolerant of records other programs wrote with plain ``SETEX``: seed 000's
``OAuth2TokenStore`` stores ``scopes`` (a list) and ``created_at`` (ISO text) and
relies on the key's TTL for expiry (decisions.md §6).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tokenginx.sso import index
from tokenginx.sso.context import REVOKED, SSOContext, text
from tokenginx.sso.kinds import ACCESS_TOKEN, REFRESH_TOKEN, TOKEN, Kind

ACCESS_KINDS = (ACCESS_TOKEN, TOKEN)
_ACCESS_FIRST = (ACCESS_TOKEN, TOKEN, REFRESH_TOKEN)
_REFRESH_FIRST = (REFRESH_TOKEN, ACCESS_TOKEN, TOKEN)


@dataclass(slots=True)
class Token:
    """A live token found in the keyspace, whatever wrote it."""

    kind: Kind
    id: str
    key: bytes
    record: dict[str, Any]
    expires_at: int | None  # Unix seconds

    @property
    def user_id(self) -> str:
        return self.kind.owner_of(self.record)

    @property
    def client_id(self) -> str:
        return text(self.record.get("client_id")) or text(self.record.get("clientId"))

    @property
    def scope(self) -> str:
        r = self.record
        scope = r.get("scope")
        if type(scope) is str:
            return scope
        scopes = scope if type(scope) is list else r.get("scopes")
        if type(scopes) is list:
            return " ".join(s for s in scopes if type(s) is str)
        return ""

    @property
    def token_type(self) -> str:
        t = text(self.record.get("token_type"))
        return t or ("refresh_token" if self.kind is REFRESH_TOKEN else "Bearer")

    @property
    def created_at(self) -> int | None:
        r = self.record
        for name in ("created_at", "issued_at", "iat"):
            at = epoch(r.get(name))
            if at is not None:
                return at
        return None

    @property
    def refresh_token(self) -> str | None:
        return text(self.record.get("refresh_token")) or None


def epoch(value: Any) -> int | None:
    """Unix seconds from a number, digits, or ISO 8601 text (naive = local time, as
    ``datetime.now().isoformat()`` writes it)."""
    t = type(value)
    if t is int or t is float:
        return int(value)
    if t is not str or not value:
        return None
    if value.isdigit():
        return int(value)
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def order(hint: str | None) -> tuple[Kind, ...]:
    """Where to look for a token. The hint only chooses the order: RFC 7662 §2.1 and
    RFC 7009 §2.1 have the server extend its search past a wrong hint."""
    return _REFRESH_FIRST if hint == "refresh_token" else _ACCESS_FIRST


def find(ctx: SSOContext, token_id: str, kinds: tuple[Kind, ...] = _ACCESS_FIRST) -> Token | None:
    protocols = ctx.protocols
    for kind in kinds:
        key = kind.key(protocols, token_id)
        record = ctx.load(key)
        if record is None:
            continue
        deadline = ctx.db.expire_at_ms(key)
        if deadline is None:
            # No TTL on the key (written by hand): honour the record's own expiry.
            exp = epoch(record.get("expires_at"))
            if exp is not None and exp * 1000 <= ctx.now_ms:
                continue
        else:
            exp = deadline // 1000
        return Token(kind, token_id, key, record, exp)
    return None


# -- access and refresh tokens ---------------------------------------------------------
def set_token(
    ctx: SSOContext,
    token_id: str,
    user_id: str,
    scope: str,
    *,
    expires_in: int | None = None,
    client_id: str = "",
    token_type: str = "Bearer",
    metadata: dict[str, str] | None = None,
    refresh_token: str | None = None,
    refresh_expires_in: int | None = None,
    kind: Kind = ACCESS_TOKEN,
) -> None:
    """Store an access token; with ``refresh_token``, create or extend that refresh
    token and link the two."""
    cfg = ctx.protocols.oauth
    at = ctx.deadline(expires_in or cfg.default_token_ttl)
    key = kind.key(ctx.protocols, token_id)
    record = {
        "token_id": token_id,
        "user_id": user_id,
        "client_id": client_id,
        "scope": scope,
        "token_type": token_type,
        "refresh_token": refresh_token or None,
        "metadata": metadata or {},
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user_id, key, at)
    ctx.store(key, record, at)
    if refresh_token:
        _link_refresh(ctx, refresh_token, token_id, user_id, client_id, scope, refresh_expires_in)


def _link_refresh(ctx: SSOContext, refresh_id: str, token_id: str, user_id: str,
                  client_id: str, scope: str, expires_in: int | None) -> None:
    """A refresh token of the same user and client keeps its scope and lifetime
    (unless ``expires_in`` is given) and gains the new access token; anything else
    at that id is replaced by a new refresh token."""
    rkey = REFRESH_TOKEN.key(ctx.protocols, refresh_id)
    old = ctx.load(rkey)
    current = ctx.db.expire_at_ms(rkey)
    if (old is not None and REFRESH_TOKEN.owner_of(old) == user_id
            and text(old.get("client_id")) == client_id):
        linked = [a for a in old.get("access_tokens") or ()
                  if type(a) is str and a != token_id and _issued_from(ctx, a, refresh_id)]
        old["access_tokens"] = [*linked, token_id]
        record = old
        keep = expires_in is None and current is not None
    else:
        record = {
            "token_id": refresh_id,
            "user_id": user_id,
            "client_id": client_id,
            "scope": scope,
            "token_type": "refresh_token",
            "access_tokens": [token_id],
            "created_at": ctx.now_s,
        }
        keep = False
    if keep:
        assert current is not None
        at = current
    else:
        at = ctx.deadline(expires_in or ctx.protocols.oauth.default_refresh_token_ttl)
        record["expires_at"] = at // 1000
    index.add(ctx, user_id, rkey, at)
    ctx.store(rkey, record, None if keep else at, keep_ttl=keep)


def _issued_from(ctx: SSOContext, access_id: str, refresh_id: str) -> bool:
    t = find(ctx, access_id, (ACCESS_TOKEN,))
    return t is not None and t.refresh_token == refresh_id


def get(ctx: SSOContext, token_id: str) -> Token | None:
    """A live access token (``oauth:access_token:`` then ``oauth:token:``)."""
    return find(ctx, token_id, ACCESS_KINDS)


def as_json(t: Token) -> dict[str, Any]:
    """The ``OAUTH.TOKEN.GET`` object."""
    metadata = t.record.get("metadata")
    return {
        "token_id": t.id,
        "user_id": t.user_id,
        "client_id": t.client_id,
        "scope": t.scope,
        "token_type": t.token_type,
        "refresh_token": t.refresh_token,
        "metadata": metadata if type(metadata) is dict else {},
        "created_at": t.created_at,
        "expires_at": t.expires_at,
    }


def introspect(ctx: SSOContext, token_id: str, hint: str | None = None) -> dict[str, Any]:
    """The RFC 7662 §2.2 object: ``{"active": false}`` and nothing else for a token that
    is unknown, expired or revoked; known members only for an active one."""
    t = find(ctx, token_id, order(hint))
    if t is None:
        return {"active": False}
    out: dict[str, Any] = {"active": True}
    scope, client, user = t.scope, t.client_id, t.user_id
    if scope:
        out["scope"] = scope
    if client:
        out["client_id"] = client
    if user:
        out["username"] = text(t.record.get("username")) or user
        out["sub"] = user
    out["token_type"] = t.token_type
    exp, iat = t.expires_at, t.created_at
    if exp is not None:
        out["exp"] = exp
    if iat is not None:
        out["iat"] = iat
    return out


def revoke(ctx: SSOContext, token_id: str, hint: str | None = None, cascade: bool = False) -> int:
    """RFC 7009 revocation; returns how many tokens were revoked (0 if unknown).

    A refresh token always takes the access tokens issued from it along; an access
    token takes its refresh token (and so its siblings) only with ``cascade``.
    """
    t = find(ctx, token_id, order(hint))
    if t is None:
        return 0
    if t.kind is REFRESH_TOKEN:
        return _revoke_refresh(ctx, t)
    n = _revoke_one(ctx, t)
    if cascade and t.refresh_token:
        r = find(ctx, t.refresh_token, (REFRESH_TOKEN,))
        if r is not None:
            n += _revoke_refresh(ctx, r)
    return n


def _revoke_refresh(ctx: SSOContext, r: Token) -> int:
    n = 0
    for access_id in r.record.get("access_tokens") or ():
        if type(access_id) is str:
            t = find(ctx, access_id, (ACCESS_TOKEN,))
            if t is not None and t.refresh_token == r.id:
                n += _revoke_one(ctx, t)
    return n + _revoke_one(ctx, r)


def _revoke_one(ctx: SSOContext, t: Token) -> int:
    if not ctx.end(t.key, REVOKED):
        return 0
    index.remove(ctx, t.user_id, t.key)
    return 1
