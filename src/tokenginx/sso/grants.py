"""Authorization codes (one use, RFC 6749 §4.1.2) and OIDC ID-token claims."""

from __future__ import annotations

from typing import Any

from tokenginx.sso import index
from tokenginx.sso.context import CONSUMED, SSOContext
from tokenginx.sso.kinds import AUTH_CODE, ID_TOKEN


def set_code(
    ctx: SSOContext,
    code: str,
    client_id: str,
    redirect_uri: str,
    user_id: str,
    scope: str,
    *,
    expires_in: int | None = None,
    code_challenge: str | None = None,
    code_challenge_method: str | None = None,
    nonce: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    at = ctx.deadline(expires_in or ctx.protocols.oauth.default_code_ttl)
    key = AUTH_CODE.key(ctx.protocols, code)
    record = {
        "code": code,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "user_id": user_id,
        "scope": scope,
        "code_challenge": code_challenge,
        # RFC 7636 §4.3: a challenge without a method is "plain"
        "code_challenge_method": code_challenge_method or ("plain" if code_challenge else None),
        "nonce": nonce,
        "data": data or {},
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user_id, key, at)
    ctx.store(key, record, at)


def consume_code(ctx: SSOContext, code: str) -> dict[str, Any] | None:
    """Read and delete in one step: of two racing consumers exactly one gets the record
    (commands run one at a time on the event loop, so nothing runs in between)."""
    key = AUTH_CODE.key(ctx.protocols, code)
    record = ctx.load(key)
    if record is None:
        return None
    ctx.end(key, CONSUMED)
    index.remove(ctx, AUTH_CODE.owner_of(record), key)
    return record


def set_id_token(ctx: SSOContext, token_id: str, claims: dict[str, Any],
                 expires_in: int | None = None) -> None:
    """Store the claims object as given; it is filed under its ``sub``."""
    at = ctx.deadline(expires_in or ctx.protocols.oauth.default_id_token_ttl)
    key = ID_TOKEN.key(ctx.protocols, token_id)
    index.add(ctx, ID_TOKEN.owner_of(claims), key, at)
    ctx.store(key, claims, at)


def get_id_token(ctx: SSOContext, token_id: str) -> dict[str, Any] | None:
    return ctx.load(ID_TOKEN.key(ctx.protocols, token_id))
