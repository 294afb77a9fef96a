"""SAML 2.0: sessions by session index, their lookup by NameID for Single Logout,
one-use artifacts (Artifact Resolution) and pending logout requests (contract §6.2).

A session is filed in the per-user index under its NameID, so the sessions of a
NameID are found without a scan, and a user-wide revocation ends them too.
"""

from __future__ import annotations

from typing import Any

from tokenginx.sso import index
from tokenginx.sso.context import CONSUMED, REVOKED, SSOContext, text
from tokenginx.sso.kinds import SAML_ARTIFACT, SAML_LOGOUT, SAML_SESSION

# SAML core §8.3.1: the format that applies when none is given.
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


def set_session(
    ctx: SSOContext,
    session_index: str,
    name_id: str,
    assertion: str,
    *,
    expires_in: int | None = None,
    name_id_format: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    at = ctx.deadline(expires_in or ctx.protocols.saml.default_session_ttl)
    key = SAML_SESSION.key(ctx.protocols, session_index)
    record = {
        "session_index": session_index,
        "name_id": name_id,
        "name_id_format": name_id_format or UNSPECIFIED,
        "assertion": assertion,
        "attributes": attributes or {},
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, name_id, key, at)
    ctx.store(key, record, at)


def get_session(ctx: SSOContext, session_index: str) -> dict[str, Any] | None:
    key = SAML_SESSION.key(ctx.protocols, session_index)
    record = ctx.load(key)
    return None if record is None else _session(ctx, key, session_index, record)


def _session(ctx: SSOContext, key: bytes, session_index: str, r: dict[str, Any]) -> dict[str, Any]:
    """The session object, whatever shape the stored record has."""
    attributes = r.get("attributes")
    created = r.get("created_at")
    return {
        "session_index": text(r.get("session_index")) or session_index,
        "name_id": text(r.get("name_id")),
        "name_id_format": text(r.get("name_id_format")) or UNSPECIFIED,
        "assertion": text(r.get("assertion")),
        "attributes": attributes if type(attributes) is dict else {},
        "created_at": created if type(created) is int else None,
        "expires_at": ctx.expires_at_s(key),
    }


def delete_session(ctx: SSOContext, session_index: str) -> int:
    """End a session (Single Logout); 1 if it existed."""
    key = SAML_SESSION.key(ctx.protocols, session_index)
    record = ctx.load(key)
    if not ctx.end(key, REVOKED):
        return 0
    if record is not None:
        index.remove(ctx, SAML_SESSION.owner_of(record), key)
    return 1


def sessions_of(ctx: SSOContext, name_id: str) -> list[dict[str, Any]]:
    """Every live session of a NameID, oldest first."""
    found = [
        _session(ctx, e.key, e.id, e.record)
        for e in index.entries(ctx, name_id)
        if e.kind is SAML_SESSION
    ]
    found.sort(key=lambda s: (s["created_at"] or 0, s["session_index"]))
    return found


def set_artifact(ctx: SSOContext, artifact_id: str, payload: bytes,
                 expires_in: int | None = None) -> None:
    """The payload is opaque (typically the Base64 SAMLResponse): stored as is."""
    at = ctx.deadline(expires_in or ctx.protocols.saml.default_artifact_ttl)
    ctx.db.set_string(SAML_ARTIFACT.key(ctx.protocols, artifact_id), payload, at)


def resolve_artifact(ctx: SSOContext, artifact_id: str) -> bytes | None:
    """One use: the first resolution gets the payload and deletes the artifact."""
    key = SAML_ARTIFACT.key(ctx.protocols, artifact_id)
    payload = ctx.db.lookup(key)
    if type(payload) is not bytes:
        return None
    ctx.end(key, CONSUMED)
    return payload


def set_logout(ctx: SSOContext, request_id: str, request: dict[str, Any],
               expires_in: int | None = None) -> None:
    at = ctx.deadline(expires_in or ctx.protocols.saml.default_logout_ttl)
    ctx.store(SAML_LOGOUT.key(ctx.protocols, request_id), request, at)


def get_logout(ctx: SSOContext, request_id: str) -> dict[str, Any] | None:
    return ctx.load(SAML_LOGOUT.key(ctx.protocols, request_id))
