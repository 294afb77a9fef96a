"""Authorization codes (one use) and ID-token claims."""

from __future__ import annotations

from tokenginx.sso import grants, index, users

T0 = 1_700_000_000


def test_code_is_consumed_once(ctx, db, protocols):
    grants.set_code(ctx(), "c1", "app", "https://app/cb", "alice", "openid",
                    code_challenge="xyz", nonce="n-1", data={"state": "s"})
    assert db.pttl(b"oauth:auth_code:c1") == protocols.oauth.default_code_ttl * 1000
    record = grants.consume_code(ctx(), "c1")
    assert record == {
        "code": "c1", "client_id": "app", "redirect_uri": "https://app/cb", "user_id": "alice",
        "scope": "openid", "code_challenge": "xyz", "code_challenge_method": "plain",
        "nonce": "n-1", "data": {"state": "s"}, "created_at": T0, "expires_at": T0 + 600,
    }
    assert grants.consume_code(ctx(), "c1") is None
    assert not db.exists(b"oauth:auth_code:c1")
    assert not db.exists(index.index_key("alice"))  # unfiled with it


def test_code_without_challenge_has_no_method(ctx):
    grants.set_code(ctx(), "c1", "app", "https://app/cb", "alice", "openid", expires_in=30)
    record = grants.consume_code(ctx(), "c1")
    assert record is not None
    assert record["code_challenge"] is None and record["code_challenge_method"] is None


def test_expired_code_cannot_be_consumed(ctx, clock):
    grants.set_code(ctx(), "c1", "app", "https://app/cb", "alice", "openid", expires_in=5)
    clock.advance(5_000)
    assert grants.consume_code(ctx(), "c1") is None


def test_consumption_emits_consumed_before_the_delete(ctx, events):
    grants.set_code(ctx(), "c1", "app", "https://app/cb", "alice", "openid")
    events.clear()
    grants.consume_code(ctx(), "c1")
    assert [e for e in events if e[1] == b"oauth:auth_code:c1"] == [
        ("consumed", b"oauth:auth_code:c1"), ("del", b"oauth:auth_code:c1")]


def test_codes_are_revoked_with_their_user(ctx):
    grants.set_code(ctx(), "c1", "app", "https://app/cb", "alice", "openid")
    assert [s["type"] for s in users.sessions(ctx(), "alice")] == ["auth_code"]
    assert users.revoke_all(ctx(), "alice") == 1
    assert grants.consume_code(ctx(), "c1") is None


def test_id_token_claims_round_trip_and_are_filed_under_sub(ctx, db, protocols):
    claims = {"iss": "https://idp", "sub": "alice", "aud": "app", "email_verified": True}
    grants.set_id_token(ctx(), "id1", claims)
    assert db.pttl(b"oauth:id_token:id1") == protocols.oauth.default_id_token_ttl * 1000
    assert grants.get_id_token(ctx(), "id1") == claims
    assert [s["id"] for s in users.sessions(ctx(), "alice")] == ["id1"]
    grants.set_id_token(ctx(), "anon", {"iss": "https://idp"}, expires_in=5)
    assert grants.get_id_token(ctx(), "anon") == {"iss": "https://idp"}
    assert grants.get_id_token(ctx(), "missing") is None
