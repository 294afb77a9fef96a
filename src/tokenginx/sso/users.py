"""Everything of one user, across protocols: list it, or revoke it in one call
(after a password change, an account lock, a "sign out everywhere")."""

from __future__ import annotations

from typing import Any

from tokenginx.sso import index
from tokenginx.sso.context import REVOKED, SSOContext


def sessions(ctx: SSOContext, user: str) -> list[dict[str, Any]]:
    """``[{"type","id","key","expires_at"}]`` of the user's live artifacts."""
    return [
        {
            "type": e.kind.type,
            "id": e.id,
            "key": e.key.decode("utf-8", "replace"),
            "expires_at": None if e.expire_at_ms is None else e.expire_at_ms // 1000,
        }
        for e in index.entries(ctx, user)
    ]


def revoke_all(ctx: SSOContext, user: str) -> int:
    """Revoke every live artifact of ``user``; returns how many were deleted.

    Each one gets a ``revoked`` event before its deletion. Cascades need no extra
    work: what a refresh token or a TGT would take down belongs to the same user, so
    it is in the same index.
    """
    n = 0
    for e in index.entries(ctx, user):
        if ctx.end(e.key, REVOKED):
            n += 1
    index.drop(ctx, user)
    return n
