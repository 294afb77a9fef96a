"""The per-user index: which tokens, sessions and tickets belong to a user.

``sso:user:{user}`` is a hash: field = the artifact's key, value = its deadline (Unix
ms). Every artifact the domain writes for a non-empty user is filed here, so "revoke
everything of user X" and "list X's live sessions" need no scan of the keyspace.

Index entries never outlive what they point to:

* an artifact the domain deletes (revoked, consumed, destroyed) is unfiled at once;
* an entry is only reported after checking that its key still exists *and* still
  belongs to the user (a key overwritten or deleted by plain commands drops out);
* expired entries are pruned when the index is written, amortised so a user with
  many tokens does not pay O(n) on every write;
* the index key's own TTL is kept at the latest deadline of its entries, so an index
  whose artifacts all expired disappears by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tokenginx.sso.context import SSOContext, parse
from tokenginx.sso.kinds import Kind, kind_of
from tokenginx.storage.events import HASH
from tokenginx.storage.memory import field_size

PREFIX = b"sso:user:"
_SMALL = 16  # below this many entries, prune on every write


def index_key(user: str) -> bytes:
    return PREFIX + user.encode()


@dataclass(slots=True)
class Entry:
    kind: Kind
    id: str
    key: bytes
    record: dict[str, Any]
    expire_at_ms: int | None


def add(ctx: SSOContext, user: str, key: bytes, expire_at_ms: int) -> None:
    """File ``key`` (deadline ``expire_at_ms``) under ``user``; no-op for user ""."""
    if not user:
        return
    db = ctx.db
    ikey = index_key(user)
    h = db.hash_for_write(ikey)  # WRONGTYPE before anything is written
    value = b"%d" % expire_at_ms
    old = h.get(key)
    h[key] = value
    db.changed(ikey, "hset", HASH, field_size(key, value) if old is None else len(value) - len(old))
    n = len(h)
    current = db.expire_at_ms(ikey)
    if current is None or n <= _SMALL or n & (n - 1) == 0:
        _prune(ctx, ikey, h)  # also sets the TTL of a new (or hand-made) index
    elif current < expire_at_ms:
        db.set_expire(ikey, expire_at_ms)


def remove(ctx: SSOContext, user: str, key: bytes) -> None:
    if not user:
        return
    db = ctx.db
    ikey = index_key(user)
    h = db.lookup(ikey)
    if type(h) is not dict:
        return
    old = h.pop(key, None)
    if old is None:
        return
    db.changed(ikey, "hdel", HASH, -field_size(key, old))
    if db.delete_if_empty(ikey):
        return
    if _deadline(old) == db.expire_at_ms(ikey):
        _prune(ctx, ikey, h)  # the latest deadline left: shrink the index TTL


def entries(ctx: SSOContext, user: str) -> list[Entry]:
    """The user's live artifacts, oldest deadline first. Reads only."""
    if not user:
        return []
    db = ctx.db
    h = db.lookup(index_key(user))
    if type(h) is not dict:
        return []
    out = []
    for key in list(h):
        found = kind_of(ctx.protocols, key)
        if found is None:
            continue
        kind, id_ = found
        record = parse(db.lookup(key))
        if record is None or kind.owner_of(record) != user:
            continue
        out.append(Entry(kind, id_, key, record, db.expire_at_ms(key)))
    out.sort(key=lambda e: (e.expire_at_ms or 0, e.key))
    return out


def drop(ctx: SSOContext, user: str) -> None:
    """Delete the whole index of ``user``."""
    if user:
        ctx.db.delete(index_key(user))


def _deadline(value: bytes) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _prune(ctx: SSOContext, ikey: bytes, h: dict[bytes, bytes]) -> None:
    """Drop entries past their deadline; set the index TTL to the latest one left."""
    db = ctx.db
    now = ctx.now_ms
    latest = 0
    dead = []
    for key, value in h.items():
        at = _deadline(value)
        if at <= now:
            dead.append(key)
        elif at > latest:
            latest = at
    if dead:
        delta = 0
        for key in dead:
            delta -= field_size(key, h.pop(key))
        db.changed(ikey, "hdel", HASH, delta)
        if db.delete_if_empty(ikey):
            return
    if latest and db.expire_at_ms(ikey) != latest:
        db.set_expire(ikey, latest)
