"""The per-user index: entries never outlive what they point to."""

from __future__ import annotations

import json

import pytest

from tokenginx.errors import WrongTypeError
from tokenginx.sso import cas, index, oauth, saml, users
from tokenginx.storage.memory import value_size

T0 = 1_700_000_000
IDX = index.index_key("alice")


def _fields(db) -> dict[bytes, int]:
    h = db.get_hash(IDX) or {}
    return {k: int(v) for k, v in h.items()}


def test_every_protocol_is_filed_under_the_user(ctx):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1", expires_in=60)
    saml.set_session(ctx(), "idx1", "alice", "a", expires_in=30)
    cas.set_tgt(ctx(), "TGT-1", "alice", expires_in=90)
    cas.set_st(ctx(), "ST-1", "TGT-1", "https://app", expires_in=10)
    assert users.sessions(ctx(), "alice") == [
        {"type": "cas_st", "id": "ST-1", "key": "cas:st:ST-1", "expires_at": T0 + 10},
        {"type": "saml_session", "id": "idx1", "key": "saml:session:idx1", "expires_at": T0 + 30},
        {"type": "access_token", "id": "at1", "key": "oauth:access_token:at1", "expires_at": T0 + 60},
        {"type": "cas_tgt", "id": "TGT-1", "key": "cas:tgt:TGT-1", "expires_at": T0 + 90},
        {"type": "refresh_token", "id": "rt1", "key": "oauth:refresh_token:rt1",
         "expires_at": T0 + 2592000},
    ]


def test_index_ttl_is_the_latest_entry_deadline(ctx, db, clock):
    oauth.set_token(ctx(), "at1", "alice", "read", expires_in=60)
    assert db.expire_at_ms(IDX) == clock() + 60_000
    oauth.set_token(ctx(), "at2", "alice", "read", expires_in=10)
    assert db.expire_at_ms(IDX) == clock() + 60_000
    assert oauth.revoke(ctx(), "at1") == 1  # the latest goes: the index TTL follows
    assert db.expire_at_ms(IDX) == clock() + 10_000
    clock.advance(10_000)
    assert not db.exists(IDX)  # every entry expired, so did the index


def test_expired_entries_are_pruned_on_write(ctx, db, clock):
    oauth.set_token(ctx(), "at1", "alice", "read", expires_in=5)
    oauth.set_token(ctx(), "at2", "alice", "read", expires_in=50)
    clock.advance(5_000)
    oauth.set_token(ctx(), "at3", "alice", "read", expires_in=20)
    assert set(_fields(db)) == {b"oauth:access_token:at2", b"oauth:access_token:at3"}


def test_large_index_prunes_amortised(ctx, db, clock):
    for i in range(40):
        oauth.set_token(ctx(), f"old{i}", "alice", "read", expires_in=1)
    clock.advance(1_000)
    for i in range(24):  # the 64th entry triggers a prune pass
        oauth.set_token(ctx(), f"new{i}", "alice", "read", expires_in=100)
    fields = _fields(db)
    assert len(fields) == 24 and all(k.startswith(b"oauth:access_token:new") for k in fields)
    assert db.expire_at_ms(IDX) == clock() + 100_000


def test_deleted_or_overwritten_artifacts_drop_out(ctx, db, clock):
    oauth.set_token(ctx(), "at1", "alice", "read")
    oauth.set_token(ctx(), "at2", "alice", "read")
    oauth.set_token(ctx(), "at3", "alice", "read")
    db.delete(b"oauth:access_token:at1")  # plain DEL: the index is not told
    oauth.set_token(ctx(), "at2", "bob", "read")  # re-used id, another owner
    db.set_string(b"oauth:access_token:at3", b"garbage", keep_ttl=True)
    assert users.sessions(ctx(), "alice") == []
    assert users.revoke_all(ctx(), "alice") == 0
    assert oauth.introspect(ctx(), "at2")["sub"] == "bob"  # not revoked with alice


def test_revoke_all_removes_everything_and_the_index(ctx, db, events):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    saml.set_session(ctx(), "idx1", "alice", "a")
    cas.set_tgt(ctx(), "TGT-1", "alice")
    cas.set_st(ctx(), "ST-1", "TGT-1", "https://app")
    oauth.set_token(ctx(), "other", "bob", "read")
    events.clear()
    assert users.revoke_all(ctx(), "alice") == 5
    assert sorted(k for e, k in events if e == "revoked") == [
        b"cas:st:ST-1", b"cas:tgt:TGT-1", b"oauth:access_token:at1",
        b"oauth:refresh_token:rt1", b"saml:session:idx1"]
    assert sorted(db.keys(b"*")) == [b"oauth:access_token:other", b"sso:user:bob"]
    assert users.revoke_all(ctx(), "alice") == 0


def test_empty_user_is_never_indexed(ctx, db):
    oauth.set_token(ctx(), "cc", "", "api")
    assert db.keys(b"sso:*") == []
    assert users.sessions(ctx(), "") == [] and users.revoke_all(ctx(), "") == 0


def test_wrong_type_index_fails_before_anything_is_written(ctx, db):
    db.set_string(IDX, b"not a hash")
    with pytest.raises(WrongTypeError):
        oauth.set_token(ctx(), "at1", "alice", "read")
    assert not db.exists(b"oauth:access_token:at1")


def test_memory_accounting_stays_exact(ctx, db, clock):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    oauth.set_token(ctx(), "at2", "alice", "read", expires_in=1)
    clock.advance(1_000)
    oauth.set_token(ctx(), "at3", "alice", "read")
    oauth.revoke(ctx(), "at1")
    assert db.used == sum(value_size(k, v) for k, v in db.data.items())


def test_index_values_are_deadlines(ctx, db, clock):
    saml.set_session(ctx(), "idx1", "alice", "a", expires_in=7)
    assert _fields(db) == {b"saml:session:idx1": clock() + 7_000}
    assert json.loads(db.get_string(b"saml:session:idx1"))["expires_at"] == T0 + 7


def test_index_without_ttl_gets_the_latest_deadline(ctx, db, clock):
    """A hand-made index (no TTL, many entries) is not cut short by a new entry."""
    h = db.hash_for_write(IDX)
    for i in range(20):
        h[b"oauth:access_token:x%d" % i] = b"%d" % (clock() + 500_000)
    oauth.set_token(ctx(), "at1", "alice", "read", expires_in=10)
    assert db.expire_at_ms(IDX) == clock() + 500_000
