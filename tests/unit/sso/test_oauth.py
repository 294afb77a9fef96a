"""OAuth tokens in domain terms: storage, introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

import json
from datetime import datetime

from tokenginx.sso import oauth
from tokenginx.sso.kinds import TOKEN

T0 = 1_700_000_000  # ManualClock's start, in seconds


def test_set_token_stores_the_record_with_the_configured_ttl(ctx, db, protocols):
    protocols.oauth.default_token_ttl = 120
    oauth.set_token(ctx(), "at1", "alice", "read write", client_id="app",
                    metadata={"ip": "10.0.0.1"})
    assert db.pttl(b"oauth:access_token:at1") == 120_000
    assert json.loads(db.get_string(b"oauth:access_token:at1")) == {
        "token_id": "at1", "user_id": "alice", "client_id": "app", "scope": "read write",
        "token_type": "Bearer", "refresh_token": None, "metadata": {"ip": "10.0.0.1"},
        "created_at": T0, "expires_at": T0 + 120,
    }
    t = oauth.get(ctx(), "at1")
    assert t is not None and oauth.as_json(t)["expires_at"] == T0 + 120


def test_key_prefix_comes_from_config(ctx, db, protocols):
    protocols.oauth.key_prefix = "tenant_a:oauth"
    oauth.set_token(ctx(), "at1", "alice", "read", expires_in=60)
    assert db.exists(b"tenant_a:oauth:access_token:at1")
    assert oauth.introspect(ctx(), "at1")["active"] is True


def test_introspection_of_an_active_token(ctx):
    oauth.set_token(ctx(), "at1", "alice", "openid profile", client_id="app", expires_in=300)
    assert oauth.introspect(ctx(), "at1") == {
        "active": True, "scope": "openid profile", "client_id": "app", "username": "alice",
        "sub": "alice", "token_type": "Bearer", "exp": T0 + 300, "iat": T0,
    }


def test_client_credentials_token_discloses_no_user(ctx):
    oauth.set_token(ctx(), "cc", "", "api", client_id="svc", expires_in=300)
    info = oauth.introspect(ctx(), "cc")
    assert info["active"] is True and "sub" not in info and "username" not in info
    assert info["client_id"] == "svc"


def test_inactive_is_exactly_active_false(ctx, clock, db):
    assert oauth.introspect(ctx(), "nope") == {"active": False}
    oauth.set_token(ctx(), "at1", "alice", "read", expires_in=10)
    clock.advance(9_999)
    assert oauth.introspect(ctx(), "at1")["active"] is True
    clock.advance(1)
    assert oauth.introspect(ctx(), "at1") == {"active": False}
    db.set_string(b"oauth:access_token:garbled", b"{not json")
    assert oauth.introspect(ctx(), "garbled") == {"active": False}
    db.hash_for_write(b"oauth:access_token:h")[b"f"] = b"v"
    assert oauth.introspect(ctx(), "h") == {"active": False}


def test_seed_000_shaped_token_is_understood(ctx, db, clock):
    """OAuth2TokenStore.create_access_token: SETEX of scopes (list) and ISO created_at."""
    created = datetime.fromtimestamp(T0 - 5).isoformat()
    value = json.dumps({"user_id": "user123", "client_id": "client_app",
                        "scopes": ["read", "write"], "token_type": "Bearer", "created_at": created})
    db.set_string(b"oauth:access_token:seed", value.encode(), clock() + 3600_000)
    assert oauth.introspect(ctx(), "seed") == {
        "active": True, "scope": "read write", "client_id": "client_app", "username": "user123",
        "sub": "user123", "token_type": "Bearer", "exp": T0 + 3600, "iat": T0 - 5,
    }
    got = oauth.as_json(oauth.get(ctx(), "seed"))
    assert got["refresh_token"] is None and got["metadata"] == {} and got["created_at"] == T0 - 5
    assert oauth.revoke(ctx(), "seed") == 1
    assert oauth.introspect(ctx(), "seed") == {"active": False}


def test_quickstart_token_key_and_username(ctx, db, clock):
    value = {"user_id": "user123", "username": "john_doe", "created_at": "2024-01-01T00:00:00Z"}
    db.set_string(b"oauth:token:abc123", json.dumps(value).encode(), clock() + 60_000)
    info = oauth.introspect(ctx(), "abc123")
    assert info["username"] == "john_doe" and info["sub"] == "user123"
    assert info["iat"] == 1704067200


def test_record_expiry_is_honoured_without_a_key_ttl(ctx, db):
    db.set_string(b"oauth:access_token:old", json.dumps({"user_id": "u", "expires_at": T0 - 1}).encode())
    assert oauth.introspect(ctx(), "old") == {"active": False}
    assert oauth.get(ctx(), "old") is None
    db.set_string(b"oauth:access_token:new", json.dumps({"user_id": "u", "expires_at": T0 + 9}).encode())
    assert oauth.introspect(ctx(), "new")["exp"] == T0 + 9


def test_hint_orders_the_search_but_does_not_limit_it(ctx):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    assert oauth.introspect(ctx(), "at1", "refresh_token")["token_type"] == "Bearer"
    assert oauth.introspect(ctx(), "rt1", "access_token")["token_type"] == "refresh_token"
    assert oauth.introspect(ctx(), "rt1", "bogus")["active"] is True


def test_variant_a_kind_lives_at_oauth_token(ctx, db):
    oauth.set_token(ctx(), "a1", "alice", "read", expires_in=60, kind=TOKEN)
    assert db.exists(b"oauth:token:a1") and not db.exists(b"oauth:access_token:a1")
    t = oauth.get(ctx(), "a1")
    assert t is not None and (t.user_id, t.scope, t.expires_at) == ("alice", "read", T0 + 60)


def test_refresh_token_links_every_access_token_issued_from_it(ctx, db, protocols):
    oauth.set_token(ctx(), "at1", "alice", "read write", client_id="app", refresh_token="rt1")
    assert db.pttl(b"oauth:refresh_token:rt1") == protocols.oauth.default_refresh_token_ttl * 1000
    oauth.set_token(ctx(), "at2", "alice", "read", client_id="app", refresh_token="rt1")
    refresh = json.loads(db.get_string(b"oauth:refresh_token:rt1"))
    assert refresh["access_tokens"] == ["at1", "at2"]
    assert refresh["scope"] == "read write"  # the grant's scope, not the narrowed one
    assert oauth.revoke(ctx(), "rt1") == 3
    for t in ("at1", "at2", "rt1"):
        assert oauth.introspect(ctx(), t) == {"active": False}


def test_revoking_an_access_token_leaves_its_refresh_token_unless_cascade(ctx):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    oauth.set_token(ctx(), "at2", "alice", "read", refresh_token="rt1")
    assert oauth.revoke(ctx(), "at1") == 1
    assert oauth.introspect(ctx(), "rt1")["active"] is True
    assert oauth.introspect(ctx(), "at2")["active"] is True
    assert oauth.revoke(ctx(), "at2", cascade=True) == 2  # at2, then rt1
    assert oauth.introspect(ctx(), "rt1") == {"active": False}
    assert oauth.revoke(ctx(), "at2") == 0  # idempotent


def test_cascade_takes_the_siblings_too(ctx):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    oauth.set_token(ctx(), "at2", "alice", "read", refresh_token="rt1")
    assert oauth.revoke(ctx(), "at1", cascade=True) == 3


def test_a_relinked_access_token_is_not_revoked_with_its_old_refresh_token(ctx):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt2")  # re-issued
    assert oauth.revoke(ctx(), "rt1") == 1
    assert oauth.introspect(ctx(), "at1")["active"] is True


def test_existing_refresh_token_keeps_its_lifetime_unless_told(ctx, db, clock):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1", refresh_expires_in=100)
    clock.advance(50_000)
    oauth.set_token(ctx(), "at2", "alice", "read", refresh_token="rt1")
    assert db.pttl(b"oauth:refresh_token:rt1") == 50_000
    oauth.set_token(ctx(), "at3", "alice", "read", refresh_token="rt1", refresh_expires_in=500)
    assert db.pttl(b"oauth:refresh_token:rt1") == 500_000
    assert json.loads(db.get_string(b"oauth:refresh_token:rt1"))["expires_at"] == T0 + 550


def test_refresh_token_of_another_user_is_replaced_not_extended(ctx, db):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    oauth.set_token(ctx(), "at2", "mallory", "admin", refresh_token="rt1")
    refresh = json.loads(db.get_string(b"oauth:refresh_token:rt1"))
    assert refresh["user_id"] == "mallory" and refresh["access_tokens"] == ["at2"]


def test_revocation_emits_revoked_before_the_delete(ctx, events):
    oauth.set_token(ctx(), "at1", "alice", "read", refresh_token="rt1")
    events.clear()
    oauth.revoke(ctx(), "rt1")
    names = [(e, k) for e, k in events if not k.startswith(b"sso:")]
    assert names == [
        ("revoked", b"oauth:access_token:at1"), ("del", b"oauth:access_token:at1"),
        ("revoked", b"oauth:refresh_token:rt1"), ("del", b"oauth:refresh_token:rt1"),
    ]


def test_epoch_parsing():
    assert oauth.epoch(12) == 12 and oauth.epoch(12.9) == 12 and oauth.epoch("42") == 42
    assert oauth.epoch("1970-01-01T00:01:00+00:00") == 60
    assert oauth.epoch("1970-01-01T00:01:00Z") == 60
    assert oauth.epoch("yesterday") is None and oauth.epoch(None) is None and oauth.epoch("") is None


def test_hint_decides_which_of_two_same_id_tokens_answers(ctx):
    oauth.set_token(ctx(), "dup", "alice", "read")
    oauth.set_token(ctx(), "other", "bob", "read", refresh_token="dup")
    assert oauth.introspect(ctx(), "dup")["sub"] == "alice"
    assert oauth.introspect(ctx(), "dup", "refresh_token")["sub"] == "bob"
    assert oauth.revoke(ctx(), "dup", "refresh_token") == 2  # bob's refresh + "other"
    assert oauth.introspect(ctx(), "dup")["sub"] == "alice"
