"""CAS tickets (CAS Protocol 3.0): TGT, ST, PGT, PT.

* An ST or PT is bound to the service it was issued for and is consumed by its first
  validation attempt, successful or not (decisions.md §15; CAS 3.0 §3.1.1, §3.2.1).
* A ticket is only as good as the tickets it came from: validation fails once its
  TGT (or PGT) is gone, and destroying a TGT also deletes its STs, PGTs and PTs,
  found through the owner's per-user index.
"""

from __future__ import annotations

from typing import Any

from tokenginx.errors import CommandError
from tokenginx.sso import index
from tokenginx.sso.context import CONSUMED, REVOKED, SSOContext, parse, text
from tokenginx.sso.kinds import CAS_PGT, CAS_PT, CAS_ST, CAS_TGT, Kind

INVALID_TICKET = "INVALID_TICKET"
INVALID_SERVICE = "INVALID_SERVICE"
_CHILDREN = (CAS_ST, CAS_PGT, CAS_PT)


def _attributes(record: dict[str, Any]) -> dict[str, Any]:
    a = record.get("attributes")
    return a if type(a) is dict else {}


# -- TGT -------------------------------------------------------------------------------
def set_tgt(ctx: SSOContext, tgt_id: str, user_id: str, *, expires_in: int | None = None,
            attributes: dict[str, Any] | None = None) -> None:
    at = ctx.deadline(expires_in or ctx.protocols.cas.default_tgt_ttl)
    key = CAS_TGT.key(ctx.protocols, tgt_id)
    record = {
        "tgt_id": tgt_id,
        "user_id": user_id,
        "attributes": attributes or {},
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user_id, key, at)
    ctx.store(key, record, at)


def get_tgt(ctx: SSOContext, tgt_id: str) -> dict[str, Any] | None:
    key = CAS_TGT.key(ctx.protocols, tgt_id)
    r = ctx.load(key)
    if r is None:
        return None
    created = r.get("created_at")
    return {
        "tgt_id": text(r.get("tgt_id")) or tgt_id,
        "user_id": CAS_TGT.owner_of(r),
        "attributes": _attributes(r),
        "created_at": created if type(created) is int else None,
        "expires_at": ctx.expires_at_s(key),
    }


def destroy_tgt(ctx: SSOContext, tgt_id: str) -> int:
    """Log out: delete the TGT and every ticket issued under it; 1 if it existed."""
    key = CAS_TGT.key(ctx.protocols, tgt_id)
    record = ctx.load(key)
    if not ctx.end(key, REVOKED):
        return 0
    user = "" if record is None else CAS_TGT.owner_of(record)
    for e in index.entries(ctx, user):
        if e.kind in _CHILDREN and e.record.get("tgt_id") == tgt_id and ctx.end(e.key, REVOKED):
            index.remove(ctx, user, e.key)
    index.remove(ctx, user, key)
    return 1


def _load_parent(ctx: SSOContext, kind: Kind, id_: str, name: str) -> dict[str, Any]:
    record = ctx.load(kind.key(ctx.protocols, id_))
    if record is None:
        raise CommandError(f"ERR unknown or expired {name}")
    return record


# -- ST --------------------------------------------------------------------------------
def set_st(ctx: SSOContext, st_id: str, tgt_id: str, service: str, *,
           expires_in: int | None = None) -> None:
    tgt = _load_parent(ctx, CAS_TGT, tgt_id, "TGT")
    user = CAS_TGT.owner_of(tgt)
    at = ctx.deadline(expires_in or ctx.protocols.cas.default_st_ttl)
    key = CAS_ST.key(ctx.protocols, st_id)
    record = {
        "st_id": st_id,
        "tgt_id": tgt_id,
        "service": service,
        "user_id": user,
        "attributes": _attributes(tgt),
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user, key, at)
    ctx.store(key, record, at)


def validate_st(ctx: SSOContext, st_id: str, service: str, pgt_id: str | None = None) -> dict[str, Any]:
    """``{"valid":true,"user_id","attributes","service"}`` or ``{"valid":false,"code",
    "message"}``. With ``pgt_id``, a successful validation also issues that PGT (the
    validating service becomes a proxy) and the reply carries ``pgt_id``."""
    record = _consume(ctx, CAS_ST, st_id)
    failure = _check(ctx, record, service, ((CAS_TGT, "tgt_id", "Ticket-granting ticket"),))
    if failure is not None:
        return failure
    assert record is not None
    out = _success(record, service)
    if pgt_id:
        set_pgt(ctx, pgt_id, text(record.get("tgt_id")), out["user_id"], service)
        out["pgt_id"] = pgt_id
    return out


# -- PGT / PT --------------------------------------------------------------------------
def set_pgt(ctx: SSOContext, pgt_id: str, tgt_id: str, user_id: str, service: str, *,
            expires_in: int | None = None) -> None:
    tgt = _load_parent(ctx, CAS_TGT, tgt_id, "TGT")
    user = user_id or CAS_TGT.owner_of(tgt)
    at = ctx.deadline(expires_in or ctx.protocols.cas.default_pgt_ttl)
    key = CAS_PGT.key(ctx.protocols, pgt_id)
    record = {
        "pgt_id": pgt_id,
        "tgt_id": tgt_id,
        "user_id": user,
        "service": service,
        "attributes": _attributes(tgt),
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user, key, at)
    ctx.store(key, record, at)


def set_pt(ctx: SSOContext, pt_id: str, pgt_id: str, service: str, *,
           expires_in: int | None = None) -> None:
    pgt = _load_parent(ctx, CAS_PGT, pgt_id, "PGT")
    user = CAS_PGT.owner_of(pgt)
    at = ctx.deadline(expires_in or ctx.protocols.cas.default_pt_ttl)
    key = CAS_PT.key(ctx.protocols, pt_id)
    proxy = text(pgt.get("service"))
    record = {
        "pt_id": pt_id,
        "pgt_id": pgt_id,
        "tgt_id": text(pgt.get("tgt_id")),
        "service": service,
        "user_id": user,
        "attributes": _attributes(pgt),
        "proxies": [proxy] if proxy else [],
        "created_at": ctx.now_s,
        "expires_at": at // 1000,
    }
    index.add(ctx, user, key, at)
    ctx.store(key, record, at)


def validate_pt(ctx: SSOContext, pt_id: str, service: str) -> dict[str, Any]:
    """As :func:`validate_st`, plus ``proxies`` (CAS 2.0 ``<cas:proxies>``)."""
    record = _consume(ctx, CAS_PT, pt_id)
    failure = _check(ctx, record, service, (
        (CAS_PGT, "pgt_id", "Proxy-granting ticket"),
        (CAS_TGT, "tgt_id", "Ticket-granting ticket"),
    ))
    if failure is not None:
        return failure
    assert record is not None
    out = _success(record, service)
    proxies = record.get("proxies")
    out["proxies"] = [p for p in proxies if type(p) is str] if type(proxies) is list else []
    return out


# -- validation ------------------------------------------------------------------------
def _consume(ctx: SSOContext, kind: Kind, ticket_id: str) -> dict[str, Any] | None:
    """Take the ticket out of the keyspace, whatever the outcome of its validation."""
    key = kind.key(ctx.protocols, ticket_id)
    value = ctx.db.lookup(key)
    if type(value) is not bytes:
        return None
    record = parse(value)
    ctx.end(key, CONSUMED)
    if record is not None:
        index.remove(ctx, kind.owner_of(record), key)
    return record


def _check(ctx: SSOContext, record: dict[str, Any] | None, service: str,
           parents: tuple[tuple[Kind, str, str], ...]) -> dict[str, Any] | None:
    if record is None:
        return failure(INVALID_TICKET, "Ticket not found or expired")
    if text(record.get("service")) != service:
        return failure(INVALID_SERVICE, "Service mismatch")
    for kind, field, name in parents:
        parent = text(record.get(field))
        if not parent or ctx.load(kind.key(ctx.protocols, parent)) is None:
            return failure(INVALID_TICKET, f"{name} not found or expired")
    return None


def failure(code: str, message: str) -> dict[str, Any]:
    return {"valid": False, "code": code, "message": message}


def _success(record: dict[str, Any], service: str) -> dict[str, Any]:
    return {
        "valid": True,
        "user_id": CAS_ST.owner_of(record),
        "attributes": _attributes(record),
        "service": service,
    }
